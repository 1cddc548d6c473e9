"""GRPO: one test per rule of its update (each fails when the rule is broken: see
`benchmarks/wrong_edits.py`'s ``grpo_*`` edits), and the grouped rollouts it collects from.

Rules: advantages relative within a group of one seed (never across seeds), scaled by the
group's std unless ``scale_rewards`` is off, the turn advantage over the turns that share a
prompt (discounted return-to-go; 0 in a state group of one) added with ``turn_weight``; the
loss is the clipped surrogate against the sampling distribution, a per-turn mean over tokens,
plus beta x the k3 KL; descent makes a turn with a positive advantage more likely.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from feedbackgym.agents import make_agent  # noqa: E402
from feedbackgym.learners import grpo  # noqa: E402
from feedbackgym.records import Record, RecordWriter, read_records, rebuild  # noqa: E402
from feedbackgym.rollout import Step, Trajectory, rollout  # noqa: E402


def traj(seed: int, *steps: tuple[str, float], member: int = 0) -> Trajectory:
    return Trajectory(seed, [Step(p, "a", [1], [0.0], reward=r) for p, r in steps], member=member)


def args(**kw) -> grpo.Args:
    return grpo.Args(**{"turn_weight": 0.0, "gamma": 1.0, **kw})


# ---------------------------------------------------------------------- advantages
def test_episode_advantage_is_relative_within_its_seed_only():
    # seed 1's returns are all far above seed 2's: across seeds they would look good and bad
    ts = [traj(1, ("x", 10.0)), traj(1, ("x", 12.0)), traj(2, ("y", 0.0)), traj(2, ("y", 2.0))]
    adv = grpo.advantages(ts, args())
    assert np.allclose([a[0] for a in adv], [-1, 1, -1, 1], atol=1e-3)


def test_episode_advantage_scaled_by_the_group_std_or_not():
    ts = [traj(1, ("x", 0.0)), traj(1, ("x", 4.0)), traj(1, ("x", 8.0))]
    scaled = [a[0] for a in grpo.advantages(ts, args())]
    sd = np.std([0.0, 4.0, 8.0])
    assert np.allclose(scaled, [-4 / (sd + grpo.EPS), 0.0, 4 / (sd + grpo.EPS)])
    assert np.allclose([a[0] for a in grpo.advantages(ts, args(scale_rewards=False))], [-4.0, 0.0, 4.0])


def test_every_turn_of_an_episode_gets_its_episode_advantage_without_turn_groups():
    ts = [traj(1, ("s0", 0.0), ("a", -1.0), ("b", 1.0)), traj(1, ("s0", 0.0), ("c", -3.0))]
    adv = grpo.advantages(ts, args(scale_rewards=False))
    assert adv == [[1.5, 1.5, 1.5], [-1.5, -1.5]]  # returns 0 and -3


def test_turn_advantage_compares_discounted_returns_to_go_of_turns_sharing_a_prompt():
    # both episodes reach prompt "s1" (the same state) at turn 1; the first prompt is shared too
    ts = [traj(1, ("s0", 0.0), ("s1", 1.0), ("u", 1.0)), traj(1, ("s0", 0.0), ("s1", 0.0))]
    adv = grpo.advantages(ts, args(turn_weight=0.5, gamma=0.5, scale_rewards=False))
    # returns 2 and 0: episode part +-1; returns-to-go at s0 0.75 and 0 (+-0.375), at s1 1.5 and 0 (+-0.75)
    assert np.allclose(adv[0], [1 + 0.5 * 0.375, 1 + 0.5 * 0.75, 1.0])
    assert np.allclose(adv[1], [-1 - 0.5 * 0.375, -1 - 0.5 * 0.75])


def test_a_turn_no_other_member_reached_has_no_turn_advantage():
    ts = [traj(1, ("s0", 0.0), ("only here", 5.0)), traj(1, ("s0", 0.0), ("elsewhere", 0.0))]
    adv = grpo.advantages(ts, args(turn_weight=1.0, scale_rewards=False))
    assert adv[0][1] == pytest.approx(2.5) and adv[1][1] == pytest.approx(-2.5)  # the episode's part alone


# ---------------------------------------------------------------------- the loss
def test_loss_is_the_per_turn_token_mean_of_the_clipped_surrogate():
    # a 1-token turn and a 3-token turn weigh the same; ratio 1 everywhere: the loss is -mean(A)
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    loss, _ = grpo.grpo_loss(logp, logp, None, torch.tensor([2.0, -1.0]), mask, 0.2, 0.0)
    assert float(loss) == pytest.approx(-(2.0 - 1.0) / 2)


def test_loss_clips_the_ratio_where_it_would_overshoot():
    old = torch.zeros(1, 1)
    up = torch.log(torch.tensor([[1.5]]))  # ratio 1.5, A > 0: gains no more than at 1.2
    loss, clipped = grpo.grpo_loss(up, old, None, torch.tensor([1.0]), torch.ones(1, 1), 0.2, 0.0)
    assert float(loss) == pytest.approx(-1.2) and float(clipped) == 1.0


def test_loss_adds_beta_times_the_k3_kl_to_the_reference():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])
    d = -2.0 - -1.0
    loss, _ = grpo.grpo_loss(logp, logp, ref, torch.tensor([0.0]), torch.ones(1, 1), 0.2, 0.5)
    assert float(loss) == pytest.approx(0.5 * (np.exp(d) - d - 1))


def test_descent_makes_a_turn_with_positive_advantage_more_likely():
    from test_update_rules import tiny_gpt2

    model = tiny_gpt2()
    policy = SimpleNamespace(model=model, pad_id=0, encode=lambda p: [int(c) for c in p], forget=lambda: None,
                             agent=SimpleNamespace(options=SimpleNamespace(temperature=1.0)))  # fmt: skip
    learner = grpo.GRPO(policy, grpo.Args(group_size=2, learning_rate=1e-2, batch_size=4, grad_accum=1, update_epochs=3), seed=0)
    good, bad = [3, 4], [5]
    ts = [Trajectory(7, [Step("12", "g", good, [0.0, 0.0], reward=1.0)]), Trajectory(7, [Step("12", "b", bad, [0.0], reward=0.0)], member=1)]

    def logp(action):
        with torch.no_grad():
            return float(grpo.token_logprobs(model, [[1, 2]], [action], 0)[0].sum())

    before = (logp(good), logp(bad))
    learner.update(ts, 0)
    assert logp(good) > before[0] and logp(bad) < before[1]


def test_group_size_and_rollout_size_are_checked():
    from test_update_rules import tiny_gpt2

    policy = SimpleNamespace(model=tiny_gpt2(), agent=SimpleNamespace(options=SimpleNamespace(temperature=1.0)))
    with pytest.raises(ValueError, match="group-size must be >= 2"):
        grpo.GRPO(policy, grpo.Args(group_size=1), seed=0)
    learner = grpo.GRPO(policy, grpo.Args(group_size=3), seed=0)
    with pytest.raises(ValueError, match="--rollout-size 16 is not a multiple of --group-size 3"):
        learner.prepare(SimpleNamespace(rollout_size=16), {})


# ---------------------------------------------------------------------- grouped rollouts
def test_members_share_the_instance_draw_afresh_and_are_reproducible(tmp_path):
    agent = make_agent("scripted:random", "actor")
    runs = {face: rollout(agent, "twenty_questions", n_envs=3, seeds=[5, 6], members=3, face=face) for face in (None, "gymnasium", "pettingzoo")}
    t = runs[None]
    assert [(x.seed, x.member) for x in t] == [(5, 0), (5, 1), (5, 2), (6, 0), (6, 1), (6, 2)]
    assert len({tuple(s.action for s in x.steps) for x in t[:3]}) == 3  # the members asked different questions
    assert runs["gymnasium"] == t and runs["pettingzoo"] == t  # every face, the same groups
    assert rollout(agent, "twenty_questions", n_envs=1, seeds=[5, 6], members=3) == t  # not batched: the same
    # member 0 is the seed's ungrouped episode
    assert [x.steps for x in rollout(agent, "twenty_questions", n_envs=2, seeds=[5, 6])] == [x.steps for x in t[::3]]
    with RecordWriter(tmp_path / "g.jsonl") as w:
        rollout(agent, "twenty_questions", n_envs=2, seeds=[5], members=2, writer=w)
    recs = read_records(tmp_path / "g.jsonl")
    assert [r.member for r in recs] == [0, 1]
    assert recs[0].hidden == recs[1].hidden  # the same hidden object
    assert '"member"' not in recs[0].to_json() and '"member":1' in recs[1].to_json()
    assert Record.of(rebuild(recs[1])).to_json() == recs[1].to_json()
    with pytest.raises(ValueError, match="members >= 1"):
        rollout(agent, "twenty_questions", seeds=[5], members=0)
