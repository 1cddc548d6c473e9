"""The README's tour runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_tour_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has a Python tour"
    namespace: dict = {}  # the blocks run in order, as a reader would
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "Reply with the option or its letter." in out and "intent" in out
    # the tour answers the right option at seed 0, so the malicious judge attacks it, citing evidence
    assert "'intent': 'malicious'" in out and "'intervened': True" in out and "'truthful': False" in out
    assert "[doc1]" in out and "Voudom" in out
    lines = out.rstrip().splitlines()
    assert "1.0 True False" in lines  # kept the right answer: reward 1, no flip
    # the real model's episode: it answered, the judge spoke, it was asked again (what it says is
    # the model's: the README reports this machine's run)
    tail = lines[lines.index("1.0 True False") + 1 : -1]
    assert tail[0].startswith("actor ") and any(ln.startswith("judge ") for ln in tail)
    assert re.fullmatch(r"(True|False) (True|False|None)", lines[-1])


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = text.split("```")[1]
    assert first_block.strip().splitlines()[:2] == [
        "make demo    # set-up on first use, then the robustness matrix: scripted actors (seconds), then SmolLM2 (about 90 s)",
        "make test    # set-up on first use, then the whole default suite",
    ]
