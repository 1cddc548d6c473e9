"""`feedbackgym train`: every learner runs through the loop; a run killed with SIGKILL and resumed
writes the same metrics and evaluation episodes as an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from conftest import save_tiny_lm  # noqa: E402

from feedbackgym.learners import train  # noqa: E402

TEXTS = ["Task: Guess the number between 1 and 100.\nactor: 50\nuser: Too low.\nactor: 75\nuser: Too high.\nactor:"] * 20


@pytest.fixture(scope="module")
def tiny_actor(tmp_path_factory):
    return f"lm:{save_tiny_lm(tmp_path_factory.mktemp('tiny_actor'), TEXTS)}"


SMALL = dict(scenario="guess_number", rollout_size=4, num_envs=4, max_new_tokens=6, eval_every=2, eval_episodes=4)
LEARNER = {
    "archer": dict(embedder="hashing", batch_size=4, grad_accum=2, critic_steps=2, warmup_iters=1),
    "chai": dict(embedder="hashing", batch_size=4, grad_accum=2, critic_steps=2, k=3),
    "ppo": dict(batch_size=4, grad_accum=2, update_epochs=1),
    "filtered_bc": dict(batch_size=4, grad_accum=1, actor_steps=2),
    "bc": dict(batch_size=4, grad_accum=1, actor_steps=2, demo_episodes=3),
    "grpo": dict(batch_size=4, grad_accum=2, group_size=2, beta=0.04),
    "fcp": dict(batch_size=4, grad_accum=1, actor_steps=2),
    "critique_grpo": dict(batch_size=4, grad_accum=2, group_size=2),
}
#: a learner's scenario where it needs its own (Critique-GRPO: one with a refinement step)
SCENARIO = {"critique_grpo": "guess_number_refine"}
LOSSES = {"archer": ["critic_loss", "actor_loss"], "chai": ["critic_loss"], "ppo": ["pg_loss", "value_loss"], "filtered_bc": ["bc_loss"], "bc": ["bc_loss"],
          "grpo": ["pg_loss"], "fcp": ["bc_loss"], "critique_grpo": ["pg_loss"]}  # fmt: skip


@pytest.mark.parametrize("algo", sorted(LEARNER))
def test_each_learner_runs_two_iterations_with_finite_losses(algo, tiny_actor, tmp_path):
    cls = train.learner_class(algo)
    args = train.TrainArgs(actor=tiny_actor, out=str(tmp_path / algo), iterations=2, **{**SMALL, "scenario": SCENARIO.get(algo, SMALL["scenario"])})
    lines = train.run(algo, args, cls.Args(**LEARNER[algo]), quiet=True)
    assert [m["iteration"] for m in lines] == [0, 1, 2]
    last = lines[-1]
    for key in LOSSES[algo]:
        assert math.isfinite(last[key]), (key, last)
    assert last["episodes"] == 8 and "eval_return" in last
    assert (tmp_path / algo / "curve.png").stat().st_size > 0
    assert (tmp_path / algo / "actor" / "config.json").exists()
    from feedbackgym.records import read_records

    assert len(read_records(tmp_path / algo / "eval.jsonl")) == 2 * 4  # before training and after the last iteration


def test_archer_actor_frozen_during_warmup_and_chai_always(tiny_actor, tmp_path):
    lines = train.run("archer", train.TrainArgs(actor=tiny_actor, out=str(tmp_path / "a"), iterations=2, **SMALL),
                      train.learner_class("archer").Args(**{**LEARNER["archer"], "warmup_iters": 1}), quiet=True)  # fmt: skip
    assert "actor_loss" not in lines[1] and "actor_loss" in lines[2]

    from feedbackgym.learners._policy import Policy

    start = Policy.load(tiny_actor[3:]).model.state_dict()
    train.run("chai", train.TrainArgs(actor=tiny_actor, out=str(tmp_path / "c"), iterations=2, **SMALL),
              train.learner_class("chai").Args(**LEARNER["chai"]), quiet=True)  # fmt: skip
    after = Policy.load(str(tmp_path / "c" / "actor")).model.state_dict()
    assert all(torch.equal(start[k], after[k]) for k in start)


def command(actor: str, out, iterations: int, algo: str = "archer") -> list[str]:
    flags = {**SMALL, "scenario": SCENARIO.get(algo, SMALL["scenario"]), **LEARNER[algo]}
    flags |= {"actor": actor, "out": str(out), "iterations": iterations, "checkpoint_every": 2}
    return [sys.executable, "-m", "feedbackgym.learners.train", algo, "--quiet"] + [
        x for k, v in flags.items() for x in (f"--{k.replace('_', '-')}", str(v))
    ]


def comparable(path) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in train.CLOCK_FIELDS} for m in train.read_metrics(path)]


def kill_after_first_checkpoint_and_resume(cmd: list[str], out, whole_lines: int) -> None:
    """Run ``cmd`` (``python -m feedbackgym.learners.train ALGO --quiet ...``) in a subprocess,
    SIGKILL it as soon as its first checkpoint exists, then resume it with ``--resume``."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while train.newest_checkpoint(out) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(train.read_metrics(out / "metrics.jsonl"))
    assert done_before < whole_lines, "the run finished before it could be killed: the test proves nothing"
    resumed = subprocess.run(cmd[:5] + ["--out", str(out), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.parametrize("algo", ["archer", "grpo", "fcp", "critique_grpo"])
def test_killed_and_resumed_run_matches_an_uninterrupted_run(algo, tiny_actor, tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert train.main(command(tiny_actor, whole, 6, algo)[3:]) == 0  # uninterrupted, in this process (same code path)
    kill_after_first_checkpoint_and_resume(command(tiny_actor, broken, 6, algo), broken, 7)
    expected = comparable(whole / "metrics.jsonl")
    assert [m["iteration"] for m in expected] == list(range(7))
    assert comparable(broken / "metrics.jsonl") == expected
    assert (broken / "eval.jsonl").read_text() == (whole / "eval.jsonl").read_text()
    assert json.loads((broken / "args.json").read_text()) == json.loads((whole / "args.json").read_text()) | {
        "train": json.loads((whole / "args.json").read_text())["train"] | {"out": str(broken)}
    }


def test_lm_learners_need_an_actor_and_a_known_face(tmp_path, capsys):
    assert train.main(["archer", "--scenario", "guess_number", "--out", str(tmp_path / "a")]) == 2
    assert "--actor lm:DIR is required" in capsys.readouterr().err
    assert train.main(["archer", "--actor", "lm:x", "--face", "parallel", "--out", str(tmp_path / "b")]) == 2
    assert "--face 'parallel': expected one of gymnasium, pettingzoo" in capsys.readouterr().err
    assert not (tmp_path / "a" / "args.json").exists()  # refused before the run folder holds a run
    for device, says in (("tpu", "not a torch device"), ("cuda:99", "torch sees"), ("meta", "expected cpu, cuda or cuda:N")):
        assert train.main(["grpo", "--actor", "lm:x", "--device", device, "--out", str(tmp_path / "c")]) == 2
        assert f"--device {device!r}: " in (err := capsys.readouterr().err) and says in err, err
    assert not (tmp_path / "c").exists()


def test_a_learner_whose_seat_a_worker_cannot_play_refuses_workers(tiny_actor, tmp_path, capsys):
    # CHAI acts best-of-k under its critic: a worker's Replica, which samples the policy alone,
    # would collect with another policy than the one CHAI trains
    argv = ["chai", "--actor", tiny_actor, "--scenario", "guess_number", "--workers", "2", "--out", str(tmp_path / "c")]
    assert train.main(argv) == 2
    assert "--workers 2: chai acts with more than its policy's samples" in capsys.readouterr().err
    assert train.learner_class("fcp").replicable and train.learner_class("ppo").replicable
