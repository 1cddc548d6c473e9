"""The LM learners collect through either face: the PettingZoo face (the AEC env, the learner's
role the one agent driven from outside) gives the very trajectories the Gymnasium face gives, and
both give what the engine alone gives."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from test_train import LEARNER, comparable, tiny_actor  # noqa: E402, F401  (tiny_actor: a fixture)

from feedbackgym.learners import train  # noqa: E402
from feedbackgym.learners._base import Learner  # noqa: E402
from feedbackgym.learners._policy import Policy  # noqa: E402
from feedbackgym.records import RecordWriter, read_records  # noqa: E402
from feedbackgym.rollout import FACES, rollout  # noqa: E402

JUDGE = {"judge": "learner", "actor": "scripted:expert"}


@pytest.fixture
def one_thread():
    """One torch thread, as `feedbackgym train` runs (torch's default crawls on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def learner_roles(path) -> set[str]:
    """The roles whose messages in a recording came from the learner's seat."""
    return {m.role for r in read_records(path) for m in r.messages if (m.feedback.labels if m.feedback else m.labels).get("source") == "learner"}


@pytest.mark.parametrize(
    "scenario,seats",
    [("twenty_questions", {}), ("judged_qa", JUDGE)],
    ids=["actor-twenty_questions", "judge-judged_qa"],
)
def test_rollout_gives_the_same_trajectories_through_both_faces(tiny_actor, tmp_path, scenario, seats, one_thread):  # noqa: F811
    learner = Learner(Policy.load(tiny_actor[3:], max_new_tokens=6), None, seed=0)  # the agent `feedbackgym train` collects with
    seeds = [11, 12, 13, 14, 15]
    trajs = {}
    for face in (None, *FACES):
        learner.policy.forget()
        with RecordWriter(tmp_path / f"{face}.jsonl") as writer:
            trajs[face] = rollout(learner, scenario, n_envs=3, seeds=seeds, face=face, writer=writer, **seats)
    gym_, pz = trajs["gymnasium"], trajs["pettingzoo"]
    assert [t.seed for t in pz] == seeds and all(t.steps for t in pz)
    assert pz == gym_  # every step: prompt, action, tokens, log-probs, reward, next prompt, terminated, truncated
    assert trajs[None] == gym_  # the engine alone, every seat batched
    assert (tmp_path / "pettingzoo.jsonl").read_text() == (tmp_path / "gymnasium.jsonl").read_text() == (tmp_path / "None.jsonl").read_text()
    steps = [s for t in pz for s in t.steps]
    if scenario == "twenty_questions":  # -1 a turn, ended by the game's twenty-question rule: rewards and termination checked
        assert all(s.reward == -1.0 for s in steps) and all(t.steps[-1].terminated and not t.steps[-1].truncated for t in pz)
    else:  # the judge speaks once; the schedule's end terminates
        assert learner_roles(tmp_path / "pettingzoo.jsonl") == {"judge"} and all(t.steps[-1].terminated and not t.steps[-1].truncated for t in pz)
        assert all(s.prompt.startswith("Task:") and "judge:" in s.next_prompt for s in steps)


@pytest.mark.parametrize("face", (None, *FACES))
def test_every_face_needs_a_learner_seat(face):
    with pytest.raises(ValueError, match="no role is played by the learner"):
        rollout(object(), "judged_qa", n_envs=1, episodes=1, face=face, actor="scripted:expert")


def test_train_archer_as_judge_through_the_pettingzoo_face(tiny_actor, tmp_path):  # noqa: F811
    """Two ArCHer iterations in the judge's seat of judged_qa through the PettingZoo face write the
    same metrics and evaluation episodes as through the Gymnasium face."""
    small = dict(scenario="judged_qa", seats="judge=learner,actor=scripted:expert", rollout_size=4, num_envs=4,
                 max_new_tokens=6, eval_every=2, eval_episodes=4, iterations=2)  # fmt: skip
    for face in FACES:
        flags = {**small, **LEARNER["archer"], "actor": tiny_actor, "out": str(tmp_path / face), "face": face}
        assert train.main(["archer", "--quiet"] + [x for k, v in flags.items() for x in (f"--{k.replace('_', '-')}", str(v))]) == 0
    lines = comparable(tmp_path / "pettingzoo" / "metrics.jsonl")
    assert [m["iteration"] for m in lines] == [0, 1, 2] and lines[2]["episodes"] == 8
    assert math.isfinite(lines[2]["critic_loss"]) and math.isfinite(lines[2]["actor_loss"])
    assert lines == comparable(tmp_path / "gymnasium" / "metrics.jsonl")
    assert len(read_records(tmp_path / "pettingzoo" / "eval.jsonl")) == 8
    assert learner_roles(tmp_path / "pettingzoo" / "eval.jsonl") == {"judge"}
    assert (tmp_path / "pettingzoo" / "eval.jsonl").read_text() == (tmp_path / "gymnasium" / "eval.jsonl").read_text()
