"""`feedbackgym train sb3_ppo | maskable_ppo`: SB3 through the candidate-action view in the same
loop as the LM learners; a run killed mid-episode and resumed writes what an uninterrupted run does."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sb3_contrib")

from test_train import comparable, kill_after_first_checkpoint_and_resume  # noqa: E402

from feedbackgym.learners import train  # noqa: E402
from feedbackgym.records import read_records  # noqa: E402

SMALL = dict(scenario="guess_number", num_envs=2, eval_every=2, eval_episodes=3)
SB3 = dict(num_steps=16, batch_size=16, update_epochs=2)


def flags(out, iterations: int, algo: str = "maskable_ppo", **extra) -> list[str]:
    values = {**SMALL, **SB3, "out": str(out), "iterations": iterations, "checkpoint_every": 2, **extra}
    return [sys.executable, "-m", "feedbackgym.learners.train", algo, "--quiet"] + [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.parametrize("algo", ["sb3_ppo", "maskable_ppo"])
def test_each_sb3_learner_runs_two_iterations(algo, tmp_path):
    cls = train.learner_class(algo)
    lines = train.run(algo, train.TrainArgs(out=str(tmp_path), iterations=2, **SMALL), cls.Args(**SB3), quiet=True)
    assert [m["iteration"] for m in lines] == [0, 1, 2]
    assert [m["env_steps"] for m in lines] == [0, 32, 64]  # num_steps * num_envs per iteration
    assert lines[2]["episodes"] >= 2 and "eval_return" in lines[0] and "eval_return" in lines[2]
    for key in ("return", "success", "pg_loss", "value_loss", "entropy_loss", "approx_kl"):
        assert math.isfinite(lines[2][key]), (key, lines[2])
    assert len(read_records(tmp_path / "eval.jsonl")) == 2 * 3
    assert (tmp_path / "curve.png").stat().st_size > 0
    model = cls.algorithm().load(tmp_path / "model.zip", device="cpu")
    assert model.num_timesteps == 64


def test_maskable_ppo_never_repeats_a_guess_and_ppo_may(tmp_path):
    """The masks reach MaskablePPO through the loop's envs: in guess_number no number is said twice
    in an episode; plain PPO samples among all K."""
    repeats = {}
    for algo in ("maskable_ppo", "sb3_ppo"):
        train.run(algo, train.TrainArgs(out=str(tmp_path / algo), iterations=1, **{**SMALL, "eval_episodes": 6}),
                  train.learner_class(algo).Args(**SB3), quiet=True)  # fmt: skip
        guesses = [[m.text for m in r.messages if m.role == "actor"] for r in read_records(tmp_path / algo / "eval.jsonl")]
        repeats[algo] = sum(len(g) - len(set(g)) for g in guesses)
    assert repeats["maskable_ppo"] == 0 and repeats["sb3_ppo"] > 0  # the deterministic unmasked policy repeats itself


def test_stopped_mid_episode_and_resumed_matches_an_uninterrupted_run(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main(flags(whole, 4)[3:]) == 0
    assert train.main(flags(parts, 2)[3:]) == 0
    saved = train.load_checkpoint(train.newest_checkpoint(parts))["learner"]
    assert any(env["actions"] for env in saved["envs"]), "no env was mid-episode at the checkpoint: the replay is untested"
    assert train.main(["maskable_ppo", "--quiet", "--out", str(parts), "--resume", "--iterations", "4"]) == 0
    assert comparable(parts / "metrics.jsonl") == comparable(whole / "metrics.jsonl")
    assert (parts / "eval.jsonl").read_text() == (whole / "eval.jsonl").read_text()


def test_killed_and_resumed_run_matches_an_uninterrupted_run(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert train.main(flags(whole, 10)[3:]) == 0
    kill_after_first_checkpoint_and_resume(flags(broken, 10), broken, 11)
    expected = comparable(whole / "metrics.jsonl")
    assert [m["iteration"] for m in expected] == list(range(11))
    assert comparable(broken / "metrics.jsonl") == expected
    assert (broken / "eval.jsonl").read_text() == (whole / "eval.jsonl").read_text()


def test_sb3_learners_take_no_actor_and_no_face(tmp_path, capsys):
    assert train.main(["sb3_ppo", "--quiet", "--out", str(tmp_path / "a"), "--iterations", "1", "--num-envs", "1",
                       "--num-steps", "8", "--batch-size", "8", "--eval-episodes", "1"]) == 0  # fmt: skip
    with pytest.raises(SystemExit):  # not a flag of the SB3 learners
        train.main(["sb3_ppo", "--actor", "lm:x", "--out", str(tmp_path / "b")])
    assert "unrecognized arguments: --actor" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a language model"):
        train.run("sb3_ppo", train.TrainArgs(actor="lm:x", out=str(tmp_path / "c")))


def test_candidate_policy_starts_as_sb3s_and_its_shared_term_reaches_each_candidate(tmp_path):
    """--similarity: the logits get ``w . local[i]`` per candidate, w shared and zero at the start.
    Set w's "said" weight very negative: plain PPO (no masks) then never says a number twice."""
    cls = train.learner_class("sb3_ppo")
    session = cls(train.TrainArgs(out=str(tmp_path), **SMALL), cls.Args(**SB3, similarity="hashing"), {})
    policy = session.model.policy
    assert type(policy).__name__ == "CandidateMultiInputActorCriticPolicy" and not policy.action_net.local.any()
    env = session.eval_env
    obs, _ = env.reset(seed=1)
    with torch.no_grad():
        probs = policy.get_distribution(policy.obs_to_tensor(obs)[0]).distribution.probs[0]
    assert float(probs.max() - probs.min()) < 1e-2  # SB3's near-uniform start
    with torch.no_grad():
        policy.action_net.local[0] = -100.0  # replies' "said" column
    said = []
    for _ in range(10):
        action, _ = session.model.predict(obs, deterministic=False)
        said.append(int(action))
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            break
    assert len(said) == len(set(said)) >= 2
    started = cls(train.TrainArgs(out=str(tmp_path / "s"), **SMALL), cls.Args(**SB3, similarity="hashing", support_start=0.5), {})
    assert started.model.policy.action_net.local.tolist() == [0.0, 0.0, 0.0, 0.5, 0.0]  # --support-start: that weight only


@pytest.mark.slow
def test_maskable_ppo_with_the_shared_term_beats_the_random_policy_on_guess_number(tmp_path):
    """The documented settings (docs/learners.md, SB3 learners): 20,480 steps, eval success on the
    200 fixed seeds above the uniform policy's over the allowed candidates (0.09-0.125 there)."""
    from feedbackgym.learners.sb3 import random_baseline

    cls = train.learner_class("maskable_ppo")
    args = train.TrainArgs(out=str(tmp_path), scenario="guess_number", iterations=20, eval_every=20, eval_episodes=200, seed=1)
    lines = train.run("maskable_ppo", args, cls.Args(learning_rate=1e-3, update_epochs=10, transcript=False, similarity="hashing"), quiet=True)
    random = random_baseline("guess_number", episodes=200, masked=True)["eval_success"]
    assert lines[-1]["eval_success"] > random + 0.1, (lines[-1]["eval_success"], random)


def test_hindsight_table_holds_the_training_wins_answers_and_resumes(tmp_path):
    """--similarity hindsight on twenty_questions: the answer table holds every won training
    episode (no evaluation one), each object's learned answer to each question agrees with the
    knowledge base, and a run stopped with the table non-empty and resumed matches an
    uninterrupted one."""
    from feedbackgym.envs.tasks.twenty_questions import knowledge_base

    extra = dict(scenario="twenty_questions", similarity="hindsight", num_envs=4, num_steps=64)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main(flags(whole, 4, **extra)[3:]) == 0
    assert train.main(flags(parts, 2, **extra)[3:]) == 0
    saved = train.load_checkpoint(train.newest_checkpoint(parts))["learner"]
    counts, sums = np.asarray(saved["answers"]["counts"]), np.asarray(saved["answers"]["sums"])
    lines = train.read_metrics(parts / "metrics.jsonl")
    won = round(sum(m["success"] * (m["episodes"] - before["episodes"]) for before, m in zip(lines, lines[1:])))  # episodes: cumulative
    kb = knowledge_base()
    n_q = len(kb.attributes)
    assert saved["answers"]["episodes"] == won >= 1 and any(env["actions"] for env in saved["envs"])
    assert not counts[:n_q].any() and counts.sum() > 0  # only objects win
    asked = counts[n_q:, :n_q] > 0
    mean = sums[n_q:, :n_q][asked] / counts[n_q:, :n_q][asked]
    np.testing.assert_array_equal(mean, np.where(kb.matrix[asked], 1.0, -1.0))  # what the oracle answered
    assert train.main(["maskable_ppo", "--quiet", "--out", str(parts), "--resume", "--iterations", "4"]) == 0
    assert comparable(parts / "metrics.jsonl") == comparable(whole / "metrics.jsonl")
    assert (parts / "eval.jsonl").read_text() == (whole / "eval.jsonl").read_text()
    from feedbackgym.learners.sb3 import load_policy

    final = train.load_checkpoint(train.newest_checkpoint(whole))["learner"]["answers"]
    loaded = load_policy(whole).env.envs[0].answers  # the policy comes back with the table its support reads
    assert loaded.episodes == final["episodes"] > saved["answers"]["episodes"]
    np.testing.assert_array_equal(loaded.counts, final["counts"])


def test_merged_wins_reach_the_observations_the_next_rollout_starts_from(tmp_path):
    """After a merge that changes what an env's answers support, SB3's saved last observation of
    that env (where its next rollout starts) carries the new support, not the old."""
    from test_sb3_views import replies_of

    cls = train.learner_class("maskable_ppo")
    session = cls(train.TrainArgs(out=str(tmp_path), **{**SMALL, "scenario": "twenty_questions", "num_envs": 2}),
                  cls.Args(**SB3, similarity="hindsight"), {})  # fmt: skip
    session.iterate(0, 0)
    k = session.answers.relations.shape[0]
    replies = session.envs[0].get_wrapper_attr("replies")
    answered = {int(j): int(replies[j, 1]) for j in np.flatnonzero(replies[:, 0] * replies[:, 1])}
    assert answered, "env 0 has no answer to relate"
    session.answers.record(k - 1, replies_of(k, answered))  # two wins that tell apart by those answers
    session.answers.record(k - 2, replies_of(k, {j: -p for j, p in answered.items()}))
    before = session.model._last_obs["inferred"][0].copy()
    session.merge_answers()
    after = session.model._last_obs["inferred"][0]
    assert not np.array_equal(after, before) and after.reshape(-1, 2)[k - 1, 0] > 0 > after.reshape(-1, 2)[k - 2, 0]
