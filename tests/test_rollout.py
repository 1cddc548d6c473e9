"""Batched rollouts: the right episodes, no model call spent on a reset, and the same trajectories
as the sequential loop through the Gymnasium face, whatever the number of episodes in flight."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import feedbackgym  # noqa: E402
from feedbackgym.agents import make_agent  # noqa: E402
from feedbackgym.agents.lm import LMAgent  # noqa: E402
from feedbackgym.envs.engine import act  # noqa: E402
from feedbackgym.learners.bootstrap import Args, run  # noqa: E402
from feedbackgym.records import RecordWriter, read_records  # noqa: E402
from feedbackgym.rollout import Trajectory, rollout  # noqa: E402


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A one-layer actor bootstrapped in seconds on judged_qa: it answers in the task's words."""
    out = tmp_path_factory.mktemp("judged_qa_actor")
    run(Args(task="judged_qa", out=str(out), episodes=24, update_epochs=2, batch_size=8, vocab_size=400,
             n_layer=1, n_embd=32, n_head=2, n_positions=256, eval_episodes=0))  # fmt: skip
    return str(out)


class Counting:
    """An agent that records the size of every model call."""

    def __init__(self, agent):
        self.agent, self.calls = agent, []

    def generate(self, views):
        self.calls.append(len(views))
        assert all(v.role == "actor" for v in views)
        return self.agent.generate(views)


def sequential(agent, env_id, episodes, seed, **env_kwargs):
    """The plain loop through the Gymnasium face: one env, one episode after another."""
    env = feedbackgym.make(env_id, **env_kwargs)
    out = []
    for k in range(episodes):
        env.reset(seed=seed + k)
        steps, done = [], False
        while not done:
            base = env.unwrapped
            view = base.episode.view(base.learner)
            said = act(agent, [view])[0]
            text, tokens = (said.text, said.token_ids) if hasattr(said, "token_ids") else (said if isinstance(said, str) else said.text, [])
            _, reward, terminated, truncated, info = env.step(text)
            steps.append((text, tokens, reward, terminated, truncated))
            done = terminated or truncated
        out.append((steps, info["success"]))
    return out


def as_tuples(trajectories):
    return [([(s.action, s.token_ids, s.reward, s.terminated, s.truncated) for s in t.steps], t.success) for t in trajectories]


def chained(t: Trajectory) -> bool:
    """Each step's next prompt is the prompt of the learner's next turn."""
    return all(a.next_prompt == b.prompt for a, b in zip(t.steps, t.steps[1:]))


def test_counts_seeds_and_flags():
    expert = make_agent("scripted:expert", "actor")
    runs = rollout(expert, "feedbackgym/TwentyQuestions-v0", n_envs=4, episodes=10, seed=7)
    assert [t.seed for t in runs] == list(range(7, 17))
    assert all(t.success and t.steps[-1].terminated for t in runs)
    for t in runs:
        assert not any(s.terminated or s.truncated for s in t.steps[:-1])
        assert t.total_reward == -(len(t.steps) - 1)  # -1 per question, 0 on the right guess
        assert t.steps[0].token_ids == [] and t.steps[0].prompt == ""  # a scripted agent: no tokens, the transcript
        assert chained(t) and t.steps[-1].next_prompt.startswith(t.steps[-1].prompt) and "actor:" in t.steps[-1].next_prompt
    assert rollout(expert, "twenty_questions", n_envs=3, episodes=0) == []
    again = rollout(expert, "twenty_questions", n_envs=2, seeds=[t.seed for t in runs][::-1])
    assert again == runs[::-1]  # explicit seeds, in their order


def test_batched_equals_sequential_and_no_call_on_reset(lm_dir):
    agent = LMAgent.from_pretrained(lm_dir, temperature=0.0, max_new_tokens=10)
    counting = Counting(agent)
    batched = rollout(counting, "feedbackgym/JudgedQA-v0", n_envs=4, episodes=7, seed=3)
    assert len(batched) == 7 and [t.seed for t in batched] == list(range(3, 10))
    steps = sum(len(t.steps) for t in batched)
    assert sum(counting.calls) == steps  # one row per learner turn: none spent on a reset
    assert max(counting.calls) == 4 and len(counting.calls) < steps
    assert all(len(s.token_ids) == len(s.logprobs) > 0 for t in batched for s in t.steps)
    assert as_tuples(batched) == sequential(agent, "feedbackgym/JudgedQA-v0", 7, seed=3)
    one_at_a_time = rollout(agent, "feedbackgym/JudgedQA-v0", n_envs=1, episodes=7, seed=3)
    assert as_tuples(one_at_a_time) == as_tuples(batched)
    assert all(chained(t) for t in batched)


def test_rewards_are_the_gymnasium_faces():
    """judged_qa's final_correct arrives after the judge and the final answer: at the last step."""
    actor = make_agent("scripted:sycophant", "actor")
    judge = {"judge": "scripted:hypercritical-grounded"}
    runs = rollout(actor, "feedbackgym/JudgedQA-v0", n_envs=5, episodes=12, seed=0, **judge)
    assert as_tuples(runs) == sequential(actor, "feedbackgym/JudgedQA-v0", 12, seed=0, **judge)
    assert all(s.reward == 0 for t in runs for s in t.steps[:-1])
    assert 0 < sum(t.total_reward for t in runs) < 12


def test_other_seats_share_the_batch(lm_dir):
    """An LM judge's calls are batched across the episodes waiting on it, like the learner's."""
    judge = f"lm:{lm_dir}"
    runs = rollout(make_agent("scripted:sycophant", "actor"), "judged_qa", n_envs=3, episodes=5, seed=0, judge=judge)
    again = rollout(make_agent("scripted:sycophant", "actor"), "judged_qa", n_envs=1, episodes=5, seed=0, judge=judge)
    assert as_tuples(runs) == as_tuples(again)
    assert all(len(t.steps) == 2 for t in runs)


def test_the_writer_gets_every_episode_in_seed_order(tmp_path):
    path = tmp_path / "episodes.jsonl"
    with RecordWriter(path) as writer:
        runs = rollout(make_agent("scripted:expert", "actor"), "twenty_questions", n_envs=3, episodes=7, seed=0, writer=writer)
    records = read_records(path)
    assert [r.seed for r in records] == [t.seed for t in runs] == list(range(7))  # in seed order, whatever ends first
    by_seed = {r.seed: r for r in records}
    for t in runs:  # the learner's utterances are the recorded actor messages, labelled as the learner's
        actor = [m for m in by_seed[t.seed].messages if m.role == "actor"]
        assert [m.text for m in actor] == [s.action for s in t.steps] and all(m.labels.get("source") == "learner" for m in actor)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_envs"):
        rollout(make_agent("scripted:expert", "actor"), "twenty_questions", n_envs=0, episodes=1)
    with pytest.raises(ValueError, match="episodes"):
        rollout(make_agent("scripted:expert", "actor"), "twenty_questions", n_envs=1)
    with pytest.raises(ValueError, match="no role is played by the learner"):
        rollout(make_agent("scripted:expert", "actor"), "twenty_questions", n_envs=1, episodes=1, actor="scripted:expert")
    with pytest.raises(ValueError, match="unknown face"):
        rollout(make_agent("scripted:expert", "actor"), "twenty_questions", n_envs=1, episodes=1, face="parallel")
