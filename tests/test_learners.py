"""The learners' update rules on hand-made batches, against numbers worked out by hand.

ArCHer: Q targets (terminated vs truncated), V targets (fresh samples, averaged), the actor loss,
Polyak after a critic step; averaged gradient accumulation; left padding; PPO's GAE; filtered BC's
selection."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from feedbackgym.learners import archer  # noqa: E402
from feedbackgym.learners._base import accumulate  # noqa: E402
from feedbackgym.learners._critic import FeatureCache, ReplayBuffer, polyak  # noqa: E402
from feedbackgym.learners._policy import token_logprobs  # noqa: E402
from feedbackgym.learners.filtered_bc import FilteredBC, select_top  # noqa: E402
from feedbackgym.learners.ppo import gae  # noqa: E402
from feedbackgym.rollout import Step  # noqa: E402

# Hand-made 2-d features: states s0, s1; the replay action "a"; fresh policy samples "f", "g".
VECTORS = {"s0": [1.0, 0.0], "s1": [0.0, 1.0], "a": [1.0, 1.0], "f": [0.0, 2.0], "g": [2.0, 0.0]}


class TableEmbedder:
    dim = 2

    def __call__(self, texts):
        import numpy as np

        return np.array([VECTORS[t] for t in texts], dtype=np.float32)


class StubPolicy:
    """Samples cycle f, g, f, g, ... ; log-probs of a sample are fixed per text (with grad)."""

    def __init__(self):
        self.model = nn.Linear(1, 1)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.calls = 0

    def sample(self, prompts, seeds, keys=None, temperature=None):
        out = []
        for _ in prompts:
            text = "fg"[self.calls % 2]
            self.calls += 1
            out.append(SimpleNamespace(text=text, token_ids=[ord(text)]))
        return out

    def logprobs(self, prompts, token_ids):
        # two tokens per utterance, log-probs -1 and -2 for "f" (sum -3), -0.5 and -0.5 for "g" (sum -1)
        rows = [[-1.0, -2.0] if ids == [ord("f")] else [-0.5, -0.5] for ids in token_ids]
        return self.scale * torch.tensor(rows), torch.ones(len(rows), 2)

    def forget(self):
        pass


def linear(weights):
    layer = nn.Linear(len(weights), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
    return layer


def hand_made_archer(v_samples=1, gamma=0.9):
    learner = archer.ArCHer(StubPolicy(), archer.Args(gamma=gamma, v_samples=v_samples, hidden=4), seed=0, features=FeatureCache(TableEmbedder()))
    # Target critic: Vbar1(e) = e.[1, 2]; Vbar2(e) = e.[3, 0];
    # Qbar1(s, a) = [s; a].[1, 0, 0, 1]; Qbar2(s, a) = [s; a].[2, 0, 0, 2]
    t = learner.target
    t.v1, t.v2, t.q1, t.q2 = linear([1, 2]), linear([3, 0]), linear([1, 0, 0, 1]), linear([2, 0, 0, 2])
    # Online critic: V1(e) = e.[1, 1]; V2(e) = e.[0, 3]; Q1 = [s; a].[0, 0, 1, 1]; Q2 = [s; a].[1, 1, 0, 1]
    c = learner.critic
    c.v1, c.v2, c.q1, c.q2 = linear([1, 1]), linear([0, 3]), linear([0, 0, 1, 1]), linear([1, 1, 0, 1])
    learner.critic_opt = torch.optim.Adam(c.parameters(), lr=0.1)
    return learner


BATCH = [
    Step("s0", "a", [1], [0.0], -1.0, "s1", terminated=False, truncated=False),
    Step("s0", "a", [1], [0.0], -1.0, "s1", terminated=False, truncated=True),
    Step("s1", "a", [1], [0.0], 0.0, "s0", terminated=True, truncated=False),
]


def test_q_targets_bootstrap_on_truncation_not_on_termination():
    # r + 0.9 * (1 - terminated) * V(s'): running 0.8 (= -1 + 0.9 * 2), truncated 0.8 as well, terminated 0
    y = archer.q_targets(torch.tensor([-1.0, -1.0, 0.0]), torch.tensor([2.0, 2.0, 5.0]), torch.tensor([0, 0, 1]), 0.9)
    assert y.tolist() == pytest.approx([0.8, 0.8, 0.0])


def test_critic_targets_on_a_hand_made_batch():
    learner = hand_made_archer()
    (yq1, yq2), (yv1, yv2) = learner.targets(BATCH)
    # y_Q1 = r + 0.9 * Vbar1(s'), Vbar1(s1) = 2:  -1 + 1.8 = 0.8 (running), 0.8 (truncated), 0 (terminated)
    assert yq1.tolist() == pytest.approx([0.8, 0.8, 0.0])
    # y_Q2 = r + 0.9 * Vbar2(s'), Vbar2(s1) = 0:  -1, -1, 0 (terminated: Vbar2(s0) = 3 is not used)
    assert yq2.tolist() == pytest.approx([-1.0, -1.0, 0.0])
    # y_V,i = Qbar_i(s, a_pi) with fresh samples f, g, f for s0, s0, s1:
    #   Qbar1(s0, f) = 1 + 2 = 3; Qbar1(s0, g) = 1 + 0 = 1; Qbar1(s1, f) = 0 + 2 = 2
    #   Qbar2(s0, f) = 2 + 4 = 6; Qbar2(s0, g) = 2 + 0 = 2; Qbar2(s1, f) = 0 + 4 = 4
    assert yv1.tolist() == pytest.approx([3.0, 1.0, 2.0])
    assert yv2.tolist() == pytest.approx([6.0, 2.0, 4.0])


def test_v_target_averages_k_fresh_samples():
    learner = hand_made_archer(v_samples=2)
    _, (yv1, yv2) = learner.targets(BATCH)
    # each state gets two samples, f then g: Qbar1(s0, .) = (3 + 1) / 2 = 2; Qbar1(s1, f) = 2, Qbar1(s1, g) = 0 -> 1
    assert yv1.tolist() == pytest.approx([2.0, 2.0, 1.0])
    # Qbar2(s0, .) = (6 + 2) / 2 = 4; Qbar2(s1, f) = 4, Qbar2(s1, g) = 0 -> 2
    assert yv2.tolist() == pytest.approx([4.0, 4.0, 2.0])


def test_critic_loss_on_the_hand_made_batch():
    learner = hand_made_archer()
    # Online: Q1(s, a) = a.[1, 1] = 2 for every row; Q2 = s.[1, 1] + a.[0, 1] = 1 + 1 = 2;
    # V1(s0) = 1, V1(s1) = 1; V2(s0) = 0, V2(s1) = 3.
    # MSE(Q1, [0.8, 0.8, 0]) = (1.44 + 1.44 + 4) / 3 = 2.29333
    # MSE(Q2, [-1, -1, 0]) = (9 + 9 + 4) / 3 = 7.33333
    # MSE(V1, [3, 1, 2]) = (4 + 0 + 1) / 3 = 1.66667
    # MSE(V2, [6, 2, 4]) = (36 + 4 + 1) / 3 = 13.66667
    assert float(learner.critic_objective(BATCH).detach()) == pytest.approx(2.293333 + 7.333333 + 1.666667 + 13.666667, abs=1e-4)


def test_actor_loss_and_advantage_from_the_online_critic():
    learner = hand_made_archer()
    loss, adv = learner.actor_objective(["s0", "s1"])
    # fresh samples: f at s0, g at s1.
    # s0, f: Q1 = f.[1, 1] = 2; Q2 = s0.[1, 1] + f.[0, 1] = 1 + 2 = 3 -> min 2; V1(s0) = 1, V2(s0) = 0 -> min 0: A = 2
    # s1, g: Q1 = 2; Q2 = 1 + 0 = 1 -> min 1; V1(s1) = 1, V2(s1) = 3 -> min 1: A = 0
    assert adv.tolist() == pytest.approx([2.0, 0.0])
    # log-prob sums: f -> -3, g -> -1.  L = -mean(A * sum log pi) = -(2 * -3 + 0 * -1) / 2 = 3
    assert float(loss.detach()) == pytest.approx(3.0)
    loss.backward()  # the gradient flows into the policy only: d L / d scale = -(2 * -3) / 2 = 3
    assert float(learner.policy.scale.grad) == pytest.approx(3.0)
    assert all(p.grad is None for p in learner.critic.parameters())


def test_polyak_step_after_every_critic_step():
    a, b = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        a.weight.fill_(0.0), a.bias.fill_(10.0), b.weight.fill_(1.0), b.bias.fill_(0.0)
    polyak(a, b, 0.1)  # 0.9 * 0 + 0.1 * 1 = 0.1; 0.9 * 10 + 0.1 * 0 = 9
    assert float(a.weight) == pytest.approx(0.1) and float(a.bias) == pytest.approx(9.0)
    polyak(a, b, 0.1)  # 0.9 * 0.1 + 0.1 = 0.19
    assert float(a.weight) == pytest.approx(0.19)

    learner = hand_made_archer()
    for t in BATCH:
        learner.buffer.add(t)
    before = [p.detach().clone() for p in learner.target.parameters()]
    learner.critic_step()
    for old, new, online in zip(before, learner.target.parameters(), learner.critic.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * online.detach())


def test_accumulation_averages_micro_batches():
    w = nn.Parameter(torch.tensor(2.0))
    xs = [torch.tensor([1.0]), torch.tensor([2.0])]
    mean = accumulate(xs, lambda x: ((w * x) ** 2).mean())
    # loss over the whole batch: mean((2x)^2) = (4 + 16) / 2 = 10; d/dw mean(w^2 x^2) = mean(2 w x^2) = 2*2*(1+4)/2 = 10
    # (summing the micro-batch losses, as the anchor does, would give 20)
    assert mean == pytest.approx(10.0)
    assert float(w.grad) == pytest.approx(10.0)


def test_left_padding_with_position_ids_matches_each_row_alone():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=2, n_head=2, pad_token_id=0)).eval()
    prompts, actions = [[5, 6, 7, 8, 9, 10], [11, 12]], [[13, 14, 15], [16]]
    logp, mask = token_logprobs(model, prompts, actions, pad_id=0)
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]  # actions right-aligned
    for i, (p, a) in enumerate(zip(prompts, actions)):
        alone = torch.log_softmax(model(torch.tensor([p + a])).logits[0], -1)
        expected = alone[len(p) - 1 : -1].gather(-1, torch.tensor(a)[:, None]).squeeze(-1)
        assert logp[i, -len(a) :].tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_replay_buffer_is_fifo():
    buf = ReplayBuffer(3)
    for i in range(5):
        buf.add(i)
    assert sorted(buf.items) == [2, 3, 4]  # 0 and 1, the oldest, were overwritten


def test_gae_by_hand():
    # two tokens of one utterance: rewards [0, 1], values [0.5, 0.5], gamma 0.9, lambda 0.5
    # terminated: t=1: delta = 1 + 0 - 0.5 = 0.5 -> A1 = 0.5; t=0 (inside the utterance, discount 1):
    #   delta = 0 + 0.5 - 0.5 = 0 -> A0 = 0 + 1 * 0.5 * 0.5 = 0.25
    assert gae([0, 1], [0.5, 0.5], [False, True], 0.0, 0.9, 0.5) == pytest.approx([0.25, 0.5])
    # truncated, V(s') = 1: delta1 = 1 + 0.9 * 1 - 0.5 = 1.4; A0 = 0 + 0.5 * 1.4 = 0.7
    assert gae([0, 1], [0.5, 0.5], [False, True], 1.0, 0.9, 0.5) == pytest.approx([0.7, 1.4])
    # across utterances the next value is discounted: tokens [u1 | u2], values [1, 2], rewards [0, 0]
    # t=1: delta = 0 - 2 = -2; t=0 (last of u1): delta = 0 + 0.9 * 2 - 1 = 0.8; A0 = 0.8 + 0.9 * 0.5 * -2 = -0.1
    assert gae([0, 0], [1, 2], [True, True], 0.0, 0.9, 0.5) == pytest.approx([-0.1, -2.0])


def test_filtered_bc_keeps_only_the_top_fraction_of_all_trajectories_so_far():
    assert select_top([-3, -1, -2, -1, -5], 0.4) == [1, 3]
    assert select_top([-3], 0.1) == [0]  # at least one

    trained = []

    class Recording(StubPolicy):
        def logprobs(self, prompts, token_ids):
            trained.extend(prompts)
            return self.scale * torch.ones(len(prompts), 1) * -1.0, torch.ones(len(prompts), 1)

    def traj(tag, ret):
        return SimpleNamespace(total_reward=ret, steps=[SimpleNamespace(prompt=tag, token_ids=[1])])

    from feedbackgym.learners.filtered_bc import Args

    learner = FilteredBC(Recording(), Args(fraction=0.25, actor_steps=3, batch_size=4, grad_accum=1), seed=0)
    out = learner.update([traj("bad", -9), traj("good", -1), traj("meh", -5), traj("worse", -8)], 0)
    assert out["kept"] == 1 and set(trained) == {"good"}
    trained.clear()
    # the pool is every trajectory so far: 8 of them, top 25% = 2: "good" and the new "best"
    out = learner.update([traj("best", 0), traj("x", -7), traj("y", -7), traj("z", -6)], 1)
    assert out["kept"] == 2 and set(trained) == {"good", "best"}


def test_ppo_hands_gae_each_episode_s_token_rewards_discounts_and_end_value(monkeypatch):
    """The update's plumbing into `gae`: the env's reward on an utterance's last token, gamma and
    gae_lambda by name, 0 after a terminated episode and V(s') after a truncated one."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from feedbackgym.learners import ppo

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=12, n_positions=32, n_embd=8, n_layer=1, n_head=2)).eval()
    policy = SimpleNamespace(model=model, pad_id=0, encode=lambda p: [int(c) for c in p], forget=lambda: None)
    learner = ppo.PPO(policy, ppo.Args(gamma=0.9, gae_lambda=0.5, kl_coef=0.0, update_epochs=1, batch_size=4, grad_accum=1), seed=0)
    calls = []
    real_gae = ppo.gae
    monkeypatch.setattr(ppo, "gae", lambda *a: calls.append(a) or real_gae(*a))
    ended = [Step("12", "x", [3, 4], [0.0, 0.0], -1.0, "345"), Step("345", "y", [5], [0.0], 0.0, "3456", terminated=True)]
    cut = [Step("12", "z", [6, 7], [0.0, 0.0], -1.0, "1267", truncated=True)]
    v_next = float(learner._state_value(["1267"])[0])
    learner.update([SimpleNamespace(steps=ended), SimpleNamespace(steps=cut)], 0)
    (r1, _, last1, end1, g1, l1), (r2, _, last2, end2, g2, l2) = calls
    assert r1 == [0.0, -1.0, 0.0] and last1 == [False, True, True] and end1 == 0.0  # terminated: no bootstrap
    assert r2 == [0.0, -1.0] and last2 == [False, True] and end2 == pytest.approx(v_next) and end2 != 0.0  # truncated: V(s')
    assert (g1, l1) == (g2, l2) == (0.9, 0.5)
