"""examples/rllib_spc.py: RLlib's PPO trains both SPC seats through the PettingZoo face and
`CandidateAgents`. RLlib pins gymnasium 1.2.2, so it runs in its own interpreter: this one if it
has ``ray.rllib``, else ``FEEDBACKGYM_RLLIB_PYTHON``, else ``.venv-rllib`` (``make rllib`` builds
it and runs this test)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def rllib_python() -> str | None:
    for python in (sys.executable, os.environ.get("FEEDBACKGYM_RLLIB_PYTHON"), str(ROOT / ".venv-rllib" / "bin" / "python")):
        if python and Path(python).exists() and subprocess.run([python, "-c", "import ray.rllib"], capture_output=True).returncode == 0:
            return python
    return None


@pytest.mark.slow
def test_rllib_ppo_trains_both_spc_seats_through_the_pettingzoo_face(tmp_path):
    python = rllib_python()
    if python is None:
        pytest.skip("no interpreter with ray[rllib] (it pins gymnasium 1.2.2): `make rllib` builds .venv-rllib and runs this test")
    out = tmp_path / "rows.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # conftest points RAY_TMPDIR into the sandbox (a short path: Ray's sockets)
    done = subprocess.run([python, "examples/rllib_spc.py", "--iterations", "3", "--batch", "200", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert [r["episodes"] for r in rows] == [100, 200, 300]  # 200 env steps an iteration, an episode is 2 moves
    for r in rows:  # zero-sum, so the candidate moves were real moves of the game (an invalid one scores no win)
        assert r["generator_return"] + r["critic_return"] == pytest.approx(0.0)
        assert abs(r["critic_return"]) <= 1 and math.isfinite(r["critic_policy_loss"])
    assert len({r["critic_policy_loss"] for r in rows}) > 1  # the critic's module was updated on what it played
