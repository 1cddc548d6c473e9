"""The documented examples run and print what the docs say they print."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_spc_selfplay_example_prints_both_win_rates_and_they_move():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "spc_selfplay.py"), "--episodes", "2000", "--report", "250"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+\s+\d\.\d\d\s+\d\.\d\d", line)]
    assert len(rows) == 8
    gen = [float(r[1]) for r in rows]
    critic = [float(r[2]) for r in rows]
    assert all(abs(g + c - 1) < 0.011 for g, c in zip(gen, critic))  # zero-sum: one of them wins each game
    assert max(gen) - min(gen) > 0.2 and max(critic) - min(critic) > 0.2  # both win rates move
    assert "generator's favourite move" in out
