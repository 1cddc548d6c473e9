"""A run's checkpoints as safetensors + JSON: nothing in a run folder is ever unpickled.

A run folder may come from someone else, and unpickling a file runs whatever code it names
(``torch.load(weights_only=False)``, SB3's ``.load``). So a checkpoint is two files in
``RUN/checkpoints/``, named by the iteration it was written after:

- ``NNNNNN.safetensors``: every tensor of the state (state dicts of the policy, critics and
  optimizers, numpy arrays such as RNG keys), each under the path of keys that leads to it, joined
  with ``/`` (``learner/policy/transformer.h.0.attn.c_attn.weight``,
  ``learner/actor_opt/state/3/exp_avg``, ``rng/numpy/1``);
- ``NNNNNN.json``: the rest of the state as plain JSON (counters, RNG states as ints, the replay
  buffer's `Step`s as their fields), with ``{"$tensor": key}`` where a tensor was, and the
  safetensors file's sha256 (a damaged or swapped tensor file is refused, not loaded).

`encode` / `decode` turn a nested state (dicts, lists, tuples, tensors, numpy arrays, numbers,
strings, `Step`, `Trajectory`) into that pair and back; `save` writes a checkpoint atomically (each
file to a temporary name, then ``os.replace``; the JSON, which names the tensor file, last, so a
kill mid-write leaves no half checkpoint among `found`'s) and keeps the last `KEEP`; `load`
reads one, refusing a foreign or damaged one with `CheckpointError` naming the file and what is
wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from feedbackgym.rollout import Step, Trajectory

FORMAT = "feedbackgym-checkpoint"
VERSION = 1
#: checkpoints kept in a run folder (the newest and the one before it: if the newest is damaged,
#: ``--resume`` names the earlier one, usable with ``--resume-from``)
KEEP = 2
#: the only objects besides plain data a checkpoint holds: built from their fields, no code run
RECORDS = {"Step": Step, "Trajectory": Trajectory}
_NAME = re.compile(r"^(\d{6,})\.json$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or read: names the file and what is wrong with it."""


# ---------------------------------------------------------------------- state <-> (tensors, JSON)
def encode(state) -> tuple[dict[str, torch.Tensor], object]:
    """``state`` as (tensors by key, a JSON-able skeleton naming them). Raises TypeError, naming
    where, for a value of any other type (a learner whose state it cannot write is a bug)."""
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()

    def tensor(t: torch.Tensor, path: str) -> str:
        t = t.detach().cpu()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        alias = (ptr, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if ptr is not None and alias in seen:  # the same tensor twice (tied weights): stored once
            return seen[alias]
        if ptr in storages or not t.is_contiguous():  # a view of a stored tensor's storage
            t = t.contiguous().clone()
        key, n = path, 1
        while key in tensors:
            key, n = f"{path}#{n}", n + 1
        tensors[key] = t
        if ptr is not None:
            seen[alias] = key
            storages.add(ptr)
        return key

    def enc(v, path: str):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return float(v) if math.isfinite(v) else {"$float": repr(float(v))}
        if isinstance(v, torch.Tensor):
            return {"$tensor": tensor(v, path)}
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise TypeError(f"checkpoint state {path}: a numpy array of Python objects cannot be saved without pickling")
            return {"$ndarray": tensor(torch.from_numpy(np.ascontiguousarray(v)), path)}
        if isinstance(v, list):
            return [enc(x, _at(path, i)) for i, x in enumerate(v)]
        if isinstance(v, tuple):
            return {"$tuple": [enc(x, _at(path, i)) for i, x in enumerate(v)]}
        if isinstance(v, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in v):
                return {k: enc(x, _at(path, k)) for k, x in v.items()}
            return {"$dict": [[enc(k, path), enc(x, _at(path, k))] for k, x in v.items()]}
        name = type(v).__name__
        if RECORDS.get(name) is type(v):
            return {f"${name}": {f.name: enc(getattr(v, f.name), _at(path, f.name)) for f in dataclasses.fields(v)}}
        raise TypeError(f"checkpoint state {path}: a {type(v).__module__}.{type(v).__qualname__} cannot be saved as tensors and JSON")

    return tensors, enc(state, "")


def decode(skeleton, tensors: dict[str, torch.Tensor]):
    """The state `encode` made ``skeleton`` and ``tensors`` from; ValueError naming where, for a
    skeleton of any other shape."""

    def dec(v, path: str):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [dec(x, _at(path, i)) for i, x in enumerate(v)]
        if not isinstance(v, dict):
            raise ValueError(f"{path or 'the top'}: unexpected {type(v).__name__}")
        if len(v) == 1 and next(iter(v)).startswith("$"):
            (tag, x), = v.items()  # fmt: skip
            if tag in ("$tensor", "$ndarray"):
                if not isinstance(x, str) or x not in tensors:
                    raise ValueError(f"{path or 'the top'}: names tensor {str(x)[:80]!r}, which the tensor file lacks")
                return tensors[x] if tag == "$tensor" else tensors[x].numpy()
            if tag == "$float" and x in ("nan", "inf", "-inf"):
                return float(x)
            if tag == "$tuple" and isinstance(x, list):
                return tuple(dec(e, _at(path, i)) for i, e in enumerate(x))
            if tag == "$dict" and isinstance(x, list) and all(isinstance(p, list) and len(p) == 2 for p in x):
                return {_key(dec(k, path), path): dec(e, _at(path, k)) for k, e in x}
            if tag[1:] in RECORDS and isinstance(x, dict):
                cls = RECORDS[tag[1:]]
                names = {f.name for f in dataclasses.fields(cls)}
                if set(x) - names:
                    raise ValueError(f"{path or 'the top'}: a {tag[1:]} has no field {sorted(set(x) - names)[0][:80]!r}")
                return cls(**{k: dec(e, _at(path, k)) for k, e in x.items()})
            raise ValueError(f"{path or 'the top'}: {tag[:80]!r} with a {type(x).__name__} is not a value a checkpoint holds")
        return {k: dec(x, _at(path, k)) for k, x in v.items()}

    return dec(skeleton, "")


def _at(path: str, k) -> str:
    return f"{path}/{k}" if path else str(k)


def _key(k, path: str):
    if isinstance(k, (dict, list)):
        raise ValueError(f"{path or 'the top'}: a dict key must be a number or a string, not a {type(k).__name__}")
    return k


# ---------------------------------------------------------------------- files
def found(folder: Path) -> list[tuple[int, Path]]:
    """(iteration, JSON path) of every checkpoint in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    its = ((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return sorted(its, reverse=True)


def _write(path: Path, write) -> None:
    """``write(tmp)`` then move it to ``path`` in one step, synced first (never half a file there)."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save(folder: Path, iteration: int, state: dict, about: dict | None = None) -> Path:
    """Write ``state`` as checkpoint ``iteration`` of ``folder`` (atomically), keep the newest
    `KEEP`; ``about``: plain fields written beside it (the algorithm). Returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = encode(state)
    name = f"{iteration:06d}"
    st = folder / f"{name}.safetensors"
    _write(st, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))
    doc = {"format": FORMAT, "version": VERSION, "iteration": iteration, **(about or {}),
           "tensors": st.name, "sha256": sha256(st), "state": skeleton}  # fmt: skip
    js = folder / f"{name}.json"
    _write(js, lambda tmp: tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8"))
    kept = {p.stem for _, p in found(folder)[:KEEP]}
    for p in folder.iterdir():  # older checkpoints, and what a killed write left (a tensor file without its JSON, temporaries)
        if p.is_file() and p.stem not in kept and (p.suffix in (".json", ".safetensors") or p.name.endswith(".tmp")):
            p.unlink()
    return js


def load(path: Path, algo: str | None = None) -> dict:
    """The state of the checkpoint whose JSON is ``path`` (its ``.safetensors`` beside it: either
    may be given). A foreign, damaged or truncated file raises `CheckpointError` naming it; so
    does a checkpoint of another algorithm than ``algo``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as e:
        raise CheckpointError(f"{path}: not readable: {type(e).__name__}: {str(e)[:200]}") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not JSON (not UTF-8 text: byte {e.start} is {e.object[e.start:e.start + 1]!r})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not JSON (corrupt or truncated): {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a feedbackgym checkpoint (JSON nested too deep to read)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: not a feedbackgym checkpoint (format {str(got)[:80]!r}, expected {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {str(doc.get('version'))[:20]!r}; this feedbackgym reads version {VERSION}")
    missing = [k for k in ("iteration", "tensors", "sha256", "state") if k not in doc]
    if missing:
        raise CheckpointError(f"{path}: not a whole checkpoint (missing {', '.join(missing)})")
    if algo is not None and doc.get("algo") != algo:
        raise CheckpointError(f"{path}: a checkpoint of a {str(doc.get('algo'))[:40]} run, not of {algo}")
    if not isinstance(doc["tensors"], str) or Path(doc["tensors"]).name != doc["tensors"]:
        raise CheckpointError(f"{path}: field tensors {str(doc['tensors'])[:80]!r}: expected a file name beside it")
    st = path.with_name(doc["tensors"])
    if not st.exists():
        raise CheckpointError(f"{st}: missing (the checkpoint {path.name} names it)")
    if sha256(st) != doc["sha256"]:
        raise CheckpointError(f"{st}: damaged, truncated or replaced (its sha256 is not the one {path.name} recorded)")
    try:
        tensors = load_file(str(st), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{st}: not a readable safetensors file: {str(e)[:200]}") from None
    try:
        state = decode(doc["state"], tensors)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: field state, {str(e)[:300]}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: field state: nested too deep to be a feedbackgym checkpoint") from None
    return {**{k: v for k, v in doc.items() if k != "state"}, "state": state}
