"""The benchmark scripts whose tables docs/benchmarks.md publishes: `benchmarks/sample_efficiency.py`
parses its rows, counts samples to the threshold, summarises seeds with their interval, reads a
finished run back instead of training it again and resumes an interrupted one."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from conftest import save_tiny_lm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its functions pickle by name into the worker processes (forked)
    spec.loader.exec_module(module)
    return module


se = script("sample_efficiency")


def test_key_values_reads_numbers_as_numbers_and_refuses_a_bare_word():
    assert se.key_values("rollout_size=32, learning_rate=1e-4,embedder=minilm,", "--x") == {
        "rollout_size": 32, "learning_rate": 1e-4, "embedder": "minilm"}  # fmt: skip
    with pytest.raises(SystemExit, match=r"--x: 'fast' is not key=value"):
        se.key_values("rollout_size=32,fast", "--x")


def test_a_variant_splits_its_fields_between_the_run_and_the_learner_and_names_what_it_does_not_know():
    name, algo, train_kw, learner_kw = se.variant("ppo_r32=ppo:rollout_size=32,update_epochs=4")
    assert (name, algo, train_kw, learner_kw) == ("ppo_r32", "ppo", {"rollout_size": 32}, {"update_epochs": 4})
    with pytest.raises(SystemExit, match="LEARNER one of"):
        se.variant("fast=dqn:rollout_size=32")
    with pytest.raises(SystemExit, match="warmup not a field of train or of ppo"):
        se.variant("p=ppo:warmup=3")


def lines(evals: list[tuple[int, float]]) -> list[dict]:
    return [{"iteration": i, "episodes": 16 * i, "env_steps": 300 * i, "eval_return": r, "eval_success": 0.0, "wall_s": 10.0 * i} for i, r in evals]


def test_samples_to_threshold_are_the_episodes_before_the_first_evaluation_that_reaches_it():
    run = se.result("twenty_questions", "archer", 0, lines([(0, -19.5), (2, -17.5), (4, -17.0), (6, -17.2)]), -17.0)
    assert run["samples_to_threshold"] == 64 and run["steps_to_threshold"] == 1200
    assert (run["start_return"], run["final_return"], run["episodes"]) == (-19.5, -17.2, 96)
    never = se.result("twenty_questions", "ppo", 0, lines([(0, -19.5), (2, -19.0)]), -17.0)
    assert never["samples_to_threshold"] is None


def test_the_summary_over_seeds_has_the_student_t_interval_and_counts_only_runs_that_reached():
    runs = [se.result("t", "a", s, lines([(0, -20.0), (1, f)]), -17.0) for s, f in enumerate([-18.0, -17.0, -16.0])]
    s = se.summarize(runs)
    assert s["final_return"]["mean"] == pytest.approx(-17.0) and s["final_return"]["sd"] == pytest.approx(1.0)
    # t(0.975, 2) = 4.3027: mean ± 4.3027 * 1 / sqrt(3)
    assert s["final_return"]["ci95"] == pytest.approx([-17.0 - 2.4841, -17.0 + 2.4841], abs=1e-3)
    assert s["gain_sd"] == pytest.approx(3.0)  # (mean final - start) / sd of the final
    assert (s["reached"], s["runs"]) == (2, 3) and s["samples_to_threshold"]["n"] == 2
    assert "| t/a (threshold -17.0) | -20.00 |" in se.table({"summary": {"t/a": s}, "thresholds": {"t": -17.0}})


@pytest.fixture(scope="module")
def tiny_actor(tmp_path_factory):
    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.learners.bootstrap import actor_segments, collect

    episodes = collect(load_scenario("twenty_questions"), 4, mix=0.5, seed=3)
    return save_tiny_lm(tmp_path_factory.mktemp("tiny_actor"), ["".join(t for t, _ in actor_segments(ep)) for ep in episodes])


def test_a_finished_run_is_read_back_and_an_interrupted_one_resumed(tmp_path, tiny_actor, capsys):
    out = tmp_path / "se"
    argv = ["--out", str(out), "--tasks", "twenty_questions", "--learners", "filtered_bc,fbc_r4", "--seeds", "0",
            "--actor", f"twenty_questions={tiny_actor}", "--rollout-size", "2", "--eval-every", "1", "--eval-episodes", "2",
            "--variant", "fbc_r4=filtered_bc:rollout_size=4", "--threshold", "twenty_questions=-19"]  # fmt: skip
    assert se.main([*argv, "--iterations", "1"]) == 0
    run = out / "twenty_questions_filtered_bc_s0"
    first, stamp = (run / "metrics.jsonl").read_text(), (run / "metrics.jsonl").stat().st_mtime_ns
    results = json.loads((out / "results.json").read_text())
    rows = {r["learner"]: r for r in results["runs"]}
    assert rows["filtered_bc"]["episodes"] == 2 and rows["fbc_r4"]["episodes"] == 4  # the variant's rollout size
    assert results["thresholds"]["twenty_questions"] == -19.0 and "| twenty_questions/fbc_r4" in capsys.readouterr().out

    assert se.main([*argv, "--iterations", "1"]) == 0  # finished: read back, not trained again
    assert (run / "metrics.jsonl").stat().st_mtime_ns == stamp

    assert se.main([*argv, "--iterations", "2"]) == 0  # asked for more: resumed from its checkpoint
    again = (run / "metrics.jsonl").read_text()
    assert again.startswith(first) and [json.loads(x)["iteration"] for x in again.splitlines()] == [0, 1, 2]
    assert json.loads((out / "results.json").read_text())["runs"][0]["episodes"] == 4

    shutil.rmtree(run / "checkpoints")  # killed before its first checkpoint: started over, not appended to
    (run / "metrics.jsonl").write_text(first)  # its lines up to iteration 1, no checkpoint of them
    assert se.main([*argv, "--iterations", "2"]) == 0
    assert [json.loads(x)["iteration"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


# ---------------------------------------------------------------------- language_feedback.py
sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports sample_efficiency as its neighbour
lf = script("language_feedback")


def test_the_kinds_experiment_s_scenarios_give_one_feedback_kind_each_or_no_critic(tmp_path):
    from feedbackgym.envs.scenario import load_scenario

    for kind in lf.KINDS:
        scenario = load_scenario(lf.kind_scenario(tmp_path, kind))
        assert scenario.feedback.kinds == [kind] and "critic" in scenario.protocol.order
    bare = load_scenario(lf.kind_scenario(tmp_path, None))
    assert "critic" not in bare.roles and "critic" not in bare.protocol.order


def test_each_experiment_s_cells_put_the_judge_and_the_positive_condition_where_they_belong(tmp_path):
    def cells(**kw):
        ns = argparse.Namespace(**{"experiment": "equal", "scenario": "guess_number", "out": str(tmp_path), "judges": "constructive,malicious-none", **kw})
        return lf.cells(ns)

    assert [(n, algo, extra) for n, algo, _, extra in cells()] == [("fcp", "fcp", {}), ("grpo", "grpo", {}), ("filtered_bc", "filtered_bc", {})]
    qa = {n: extra for n, _, _, extra in cells(scenario="judged_qa")}
    assert qa["fcp"] == {"seats": "judge=scripted:constructive", "positive": lf.APPROVAL} and qa["grpo"] == {"seats": "judge=scripted:constructive"}
    deception = cells(experiment="deception")
    assert [extra["seats"] for *_, extra in deception] == ["judge=scripted:constructive", "judge=scripted:malicious-none"]
    assert [n for n, *_ in cells(experiment="kinds")] == [f"fcp/{k}" for k in lf.KINDS] + ["fcp/no critic"]


def test_first_and_last_average_the_first_and_last_evaluations_episode_metrics(tmp_path):
    records = [{"metrics": {"initial_correct": float(i < 2), "n_invalid": i}} for i in range(4)] + [{"metrics": {"n_invalid": 9}}]
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    got = lf.first_and_last(tmp_path, 2)  # the first two records, the last two
    assert got == {"start_initial_correct": 1.0, "final_initial_correct": 0.0, "start_n_invalid": 0.5, "final_n_invalid": 6.0}
