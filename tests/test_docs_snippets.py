"""Every ```python block of README.md and docs/*.md runs as written when copied alone.

Each block is run by itself in a fresh interpreter (``sys.executable``), with a temporary folder
as the working directory, Hugging Face offline, and a time limit. Nothing else is put before or
after the code: a block that needs an import or a name must have it.

The working directory holds ``models/actor``, a tiny GPT-2 built here from a config (never
downloaded), when a block names it, so that ``lm:models/actor`` and
``LMAgent.from_pretrained("models/actor")`` load. It is a random model: the blocks that use it are
checked to run, not for what it says.

Blocks that are not meant to run (output samples, pseudo-code) are tagged ```text, ```pycon or
```bash, not ```python.

Budget marker. A long block may be preceded, on the line right above its fence, by

    <!-- snippet: episodes=4 n_envs=2 -->

Each ``name=value`` replaces the literal after ``name=`` in the code (``episodes=256`` becomes
``episodes=4``) and nothing else; every name must occur in the block (a marker that no longer
matches fails). The word ``slow`` in a marker marks the block's test ``@pytest.mark.slow``
(training-length: out of the default suite). A block with a budget is also run exactly as written,
at full size, in the slow suite (``-m slow``, id ``...:as-written``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT_S = 180  # a block in the default suite, at its budget
SLOW_TIMEOUT_S = 3600  # a block as written, at full size (SB3's 10,000 MiniLM-embedded steps)
MARKER = re.compile(r"^<!--\s*snippet:(?P<body>.*?)-->\s*$")
MODEL = "models/actor"


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the ```python fence
    code: str  # as written in the file
    budget: tuple[tuple[str, str], ...] = ()
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def runnable(self, budget: bool = True) -> str:
        """The code with the marker's substitutions (and only those) made; as written without."""
        code = self.code
        for name, value in self.budget if budget else ():
            code, n = re.subn(rf"\b{re.escape(name)}=[\w.]+", f"{name}={value}", code)
            assert n, f"{self.id}: the budget marker names {name}=, which the block does not contain"
        return code


def parse_marker(line: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    m = MARKER.match(line.strip())
    if not m:
        return (), False
    budget, slow = [], False
    for word in m["body"].split():
        if word == "slow":
            slow = True
        elif "=" in word:
            name, value = word.split("=", 1)
            assert re.fullmatch(r"\w+", name) and re.fullmatch(r"[\w.]+", value), f"bad budget entry {word!r}"
            budget.append((name, value))
        else:
            raise AssertionError(f"unknown snippet marker word {word!r} in {line.strip()!r}")
    return tuple(budget), slow


def collect(path: Path) -> list[Snippet]:
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            assert i < len(lines), f"{path}:{start + 1}: unclosed ```python block"
            budget, slow = parse_marker(lines[start - 1]) if start else ((), False)
            out.append(Snippet(path, start + 1, "\n".join(lines[start + 1 : i]) + "\n", budget, slow))
        i += 1
    return out


SNIPPETS = [s for f in FILES for s in collect(f)]


def params():
    for s in SNIPPETS:
        yield pytest.param(s, True, id=s.id, marks=[pytest.mark.slow] if s.slow else [])
        if s.budget:
            yield pytest.param(s, False, id=f"{s.id}:as-written", marks=[pytest.mark.slow])


def test_the_docs_have_snippets():
    assert len(SNIPPETS) >= 8
    assert {s.path.name for s in SNIPPETS} >= {"README.md", "lm.md", "scenarios.md"}


def test_budget_markers_match_their_blocks():
    budgeted = [s for s in SNIPPETS if s.budget]
    assert budgeted, "the long blocks (docs/lm.md's rollout and SB3 ones) carry budget markers"
    for s in budgeted:
        assert s.runnable() != s.code  # each name= is found (runnable asserts it) and its value changed


def test_no_python_block_escapes_collection():
    """A block tagged ```py, ```python3 or ```Python would not be run: tag it ```python."""
    for f in FILES:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            tag = line.strip().removeprefix("```") if line.strip().startswith("```") else ""
            assert tag.lower() not in {"py", "python3", "py3"} and tag not in {"Python"}, f"{f.name}:{n}: {line.strip()}"


@pytest.fixture(scope="session")
def snippet_models(tmp_path_factory) -> Path:
    """A 1-layer GPT-2 from a config with a byte-level BPE tokenizer trained here, saved (the
    recipe of tests/test_train.py's ``tiny_actor``: conftest.save_tiny_lm), as ``<tmp>/models/actor``."""
    pytest.importorskip("torch")
    from conftest import save_tiny_lm

    texts = [
        "Task: Guess the object. Ask yes/no questions.\nactor: Is it alive?\nuser: No.\nactor: Is it a chair?\n",
        "Task: Answer a question about a fictional world.\nactor: The answer is Voudom.\njudge: I disagree.\n",
    ] * 20
    return save_tiny_lm(tmp_path_factory.mktemp("snippet_models") / MODEL, texts)


@pytest.mark.parametrize(("snippet", "budget"), params())
def test_snippet_runs_alone(snippet: Snippet, budget: bool, tmp_path, request):
    if MODEL in snippet.code:
        (tmp_path / "models").mkdir()
        (tmp_path / MODEL).symlink_to(request.getfixturevalue("snippet_models"), target_is_directory=True)
    script = tmp_path / "snippet.py"
    code = snippet.runnable(budget)
    script.write_text(code)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",  # one torch thread: many times faster on a shared 2-core machine
        "MKL_NUM_THREADS": "1",
    }
    timeout = TIMEOUT_S if budget else SLOW_TIMEOUT_S
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{snippet.id} ran past {timeout} s; give it a budget marker. stderr:\n{e.stderr}")
    assert proc.returncode == 0, (
        f"{snippet.id} exited {proc.returncode}\n--- code as run ---\n{code}"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
    )
