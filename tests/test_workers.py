"""``--workers N``: `run`, `eval`, `rollout()` and `train` on Ray actors give the episodes, the
records and the figures of one process. One test per Ray start: a local cluster takes seconds to come up."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from conftest import save_tiny_lm  # noqa: E402

from feedbackgym.agents.lm import LMAgent  # noqa: E402
from feedbackgym.cli import main  # noqa: E402
from feedbackgym.learners import train  # noqa: E402
from feedbackgym.records import RecordWriter  # noqa: E402
from feedbackgym.rollout import CHUNK, rollout, worker_pool  # noqa: E402


def test_run_eval_and_rollout_on_two_workers_match_one_process(tmp_path, capsys):
    # run: two task families, each long enough for several chunks a worker (CHUNK x --in-flight seeds a chunk)
    for name, roles in (("judged_qa", ["--actor", "scripted:sycophant", "--judge", "scripted:malicious"]), ("guess_number", ["--actor", "scripted:expert"])):
        outs = {}
        for n in (1, 2):
            path = tmp_path / f"{name}-{n}.jsonl"
            args = ["run", name, *roles, "--episodes", str(5 * CHUNK * 3 + 1), "--in-flight", "3", "--record", str(path), "--quiet"]
            assert main([*args, "--workers", str(n)]) == 0
            outs[n] = capsys.readouterr().out.replace(path.name, "RECORD")
        assert (tmp_path / f"{name}-2.jsonl").read_bytes() == (tmp_path / f"{name}-1.jsonl").read_bytes(), name
        assert outs[2] == outs[1], name  # the printed table: every figure and interval
    # eval: the matrix, with a baseline seat and a giver reusing its episodes
    rows = {}
    for n in (1, 2):
        js = tmp_path / f"m{n}.json"
        assert main(["eval", "judged_qa", "--actors", "scripted:sycophant,scripted:stubborn", "--judges", "scripted:constructive,scripted:malicious,none",
                     "--episodes", "40", "--in-flight", "4", "--workers", str(n), "--json", str(js), "--quiet"]) == 0  # fmt: skip
        rows[n] = json.loads(js.read_text())
    assert rows[2] == rows[1] and len(rows[1]) == 6
    # rollout(): an LM in the learner's seat, sent to each worker; trajectories (tokens, log-probs) and records
    lm = save_tiny_lm(tmp_path / "lm", ["Task: Guess the number between 1 and 100.\nactor: 50\nuser: Too low.\nactor:"] * 20)
    agent = LMAgent.from_pretrained(str(lm), max_new_tokens=4)
    trajs = {}
    for n in (1, 2):
        with RecordWriter(tmp_path / f"r{n}.jsonl") as writer:
            trajs[n] = rollout(agent, "guess_number", n_envs=2, episodes=2 * CHUNK * 2 + 3, seed=5, writer=writer, workers=n, actor="learner")
    assert [asdict(t) for t in trajs[2]] == [asdict(t) for t in trajs[1]]
    assert [t.seed for t in trajs[1]] == list(range(5, 5 + 2 * CHUNK * 2 + 3))
    assert (tmp_path / "r2.jsonl").read_bytes() == (tmp_path / "r1.jsonl").read_bytes()
    # feedbackgym train --workers: the policy's weights go to the workers each iteration (`Replica`),
    # and FCP's workers write under its positive condition, as the learner's own seat does
    learners = {
        "ppo": ({"batch_size": 4, "grad_accum": 2, "update_epochs": 1}, "pg_loss"),
        "fcp": ({"batch_size": 4, "grad_accum": 1, "actor_steps": 2}, "bc_loss"),
    }
    for algo, (options, loss) in learners.items():
        lines = {}
        for n in (1, 2):
            args = train.TrainArgs(actor=f"lm:{lm}", out=str(tmp_path / f"{algo}{n}"), iterations=2, workers=n, scenario="guess_number",
                                   rollout_size=2 * CHUNK * 2, num_envs=2, max_new_tokens=4, eval_every=1, eval_episodes=3)  # fmt: skip
            train.run(algo, args, train.learner_class(algo).Args(**options), quiet=True)
            lines[n] = [{k: v for k, v in m.items() if k not in train.CLOCK_FIELDS} for m in train.read_metrics(tmp_path / f"{algo}{n}" / "metrics.jsonl")]
        assert lines[2] == lines[1] and lines[1][-1][loss] != 0, algo  # the update ran on what the workers collected
        assert (tmp_path / f"{algo}2" / "eval.jsonl").read_bytes() == (tmp_path / f"{algo}1" / "eval.jsonl").read_bytes(), algo
    # more workers than the cluster has CPUs (an actor a CPU) would wait forever: refused, saying why
    import ray

    too_many = int(ray.cluster_resources()["CPU"]) + 1
    with pytest.raises(ValueError, match=f"--workers {too_many}: the Ray cluster has {too_many - 1} CPUs"):
        worker_pool(too_many)


def test_workers_must_be_a_positive_count(capsys):
    with pytest.raises(SystemExit):
        main(["run", "guess_number", "--workers", "0"])
    assert "expected a count >= 1, got 0" in capsys.readouterr().err
