"""One test per rule of each learner's update, each built so that breaking the rule fails it.

`benchmarks/wrong_edits.py` applies a wrong edit per rule to a copy of the package and checks
that this file (with the rest of the default suite's learner tests) catches every one. The
rules, each on hand-built tensors, tiny models or hand-set critic weights:

- PPO: the policy-gradient sign (a better utterance becomes more likely), ratio clipping, the
  KL penalty's sign, the reward on an utterance's last token, returns = advantages + values,
  advantage whitening, the truncation bootstrap, the value head read where a token is
  predicted, old log-probs at the sampling temperature, a tokenless step's reward kept;
- CHAI: best-of-k by min(Qbar1, Qbar2), also in the V target (the anchor's max backup);
- ArCHer: the advantage from the online critic (weights where online and target differ), the
  actor frozen bit for bit during warm-up while the critic trains, FIFO replay in exact order,
  Polyak after every critic step;
- filtered BC: imitates exactly the top fraction of every trajectory so far;
- BC: maximum likelihood on the demonstrated tokens only (not the prompt, not the pads).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from feedbackgym.learners import archer, chai, ppo  # noqa: E402
from feedbackgym.learners._critic import FeatureCache, ReplayBuffer  # noqa: E402
from feedbackgym.learners.filtered_bc import Args as FBCArgs  # noqa: E402
from feedbackgym.learners.filtered_bc import FilteredBC  # noqa: E402
from feedbackgym.rollout import Step  # noqa: E402


# ====================================================================== PPO
def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(vocab_size=12, n_positions=32, n_embd=8, n_layer=1, n_head=2)).eval()


def ppo_learner(temperature: float = 1.0, **kw) -> ppo.PPO:
    """PPO on a tiny GPT-2 whose prompts are digit strings ("12" -> tokens [1, 2])."""
    model = tiny_gpt2()
    policy = SimpleNamespace(
        model=model, pad_id=0, encode=lambda p: [int(c) for c in p], forget=lambda: None,
        agent=SimpleNamespace(options=SimpleNamespace(temperature=temperature)),
    )  # fmt: skip
    args = dict(gamma=0.9, gae_lambda=0.0, kl_coef=0.0, update_epochs=1, batch_size=8, grad_accum=1)
    return ppo.PPO(policy, ppo.Args(**{**args, **kw}), seed=0)


def alone(model, prompt: list[int], action: list[int], temperature: float = 1.0):
    """Log-probs of ``action``'s tokens and the last hidden states that predict them, from one
    unpadded row (what a batched, padded computation must reproduce)."""
    with torch.no_grad():
        out = model(torch.tensor([prompt + action]), output_hidden_states=True)
    at = slice(len(prompt) - 1, len(prompt) - 1 + len(action))
    logp = torch.log_softmax(out.logits[0, at] / temperature, -1).gather(-1, torch.tensor(action)[:, None]).squeeze(-1)
    return logp, out.hidden_states[-1][0, at]


def episode(*steps: Step) -> SimpleNamespace:
    return SimpleNamespace(steps=list(steps))


def tokens(b: ppo.Batch, x: torch.Tensor, i: int) -> list[float]:
    """Row i's real tokens of a right-aligned batch tensor."""
    return x[i, x.shape[1] - b.n[i] :].tolist()


def test_ppo_policy_gradient_descends_toward_the_advantage():
    # at ratio 1 the loss is -mean(A) and its gradient in log pi is -A / tokens: descent raises the
    # log-prob of a token with A > 0 and lowers it for A < 0
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = ppo.policy_loss(logp, logp.detach(), torch.tensor([[1.0, -2.0]]), torch.ones(1, 2), 0.2)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.5) and logp.grad.tolist() == [[-0.5, 1.0]]


def test_ppo_update_makes_the_better_utterance_more_likely():
    learner = ppo_learner(update_epochs=2, learning_rate=1e-2)
    good, bad = [3], [5]
    trajs = [episode(Step("12", "g", good, [0.0], 1.0, "123", terminated=True)),
             episode(Step("12", "b", bad, [0.0], -1.0, "125", terminated=True))]  # fmt: skip
    before = [float(alone(learner.policy.model, [1, 2], a)[0]) for a in (good, bad)]
    for _ in range(3):
        learner.update(trajs, 0)
    after = [float(alone(learner.policy.model, [1, 2], a)[0]) for a in (good, bad)]
    assert after[0] - after[1] > before[0] - before[1] + 0.1  # the better one gains on the worse
    assert after[1] < before[1]


def test_ppo_ratio_is_clipped_on_the_side_the_advantage_gains():
    mask = torch.ones(1, 1)
    # ratio e^0.5 = 1.65 > 1.2 with A = 1: the surrogate is held at 1.2 * A, no gradient
    lp = torch.tensor([[0.5]], requires_grad=True)
    loss, clipfrac = ppo.policy_loss(lp, torch.zeros(1, 1), torch.ones(1, 1), mask, 0.2)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-1.2) and float(lp.grad) == 0.0 and float(clipfrac) == 1.0
    # the same ratio with A = -1 is not clipped (pessimistic): -A * ratio, gradient ratio
    lp = torch.tensor([[0.5]], requires_grad=True)
    loss, _ = ppo.policy_loss(lp, torch.zeros(1, 1), -torch.ones(1, 1), mask, 0.2)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(np.exp(0.5)) and float(lp.grad) == pytest.approx(np.exp(0.5))
    # ratio e^-0.5 = 0.61 < 0.8 with A = -1: held at 0.8
    lp = torch.tensor([[-0.5]], requires_grad=True)
    loss, _ = ppo.policy_loss(lp, torch.zeros(1, 1), -torch.ones(1, 1), mask, 0.2)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.8) and float(lp.grad) == 0.0


def test_ppo_kl_penalty_pulls_toward_the_reference():
    # a token the policy now likes more than the reference (old > ref) is penalised
    assert ppo.token_rewards([-1.0, -2.0], [-1.5, -1.0], 0.5, kl_coef=0.1) == pytest.approx([-0.05, 0.1 + 0.5])
    # through the update: a one-token terminated episode with reward 0 has return -kl_coef * (old - ref)
    learner = ppo_learner(kl_coef=0.5)
    with torch.no_grad():
        for p in learner.policy.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    b = learner.batch([episode(Step("12", "x", [3], [0.0], 0.0, "123", terminated=True))])
    old = float(alone(learner.policy.model, [1, 2], [3])[0])
    ref = float(alone(learner.ref, [1, 2], [3])[0])
    assert old != pytest.approx(ref, abs=1e-3)
    assert tokens(b, b.returns, 0) == pytest.approx([-0.5 * (old - ref)], abs=1e-5)


def test_ppo_reward_sits_on_the_utterance_s_last_token():
    assert ppo.token_rewards([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], -1.0, 0.3) == [0.0, 0.0, -1.0]
    # lambda 0: R_t = r_t + V_{t+1} inside the utterance; a terminated last token returns its reward alone
    learner = ppo_learner()
    b = learner.batch([episode(Step("12", "x", [3, 4, 5], [0.0] * 3, -1.0, "12345", terminated=True))])
    v = tokens(b, b.values, 0)
    assert tokens(b, b.returns, 0) == pytest.approx([v[1], v[2], -1.0], abs=1e-6)


def test_ppo_returns_are_advantages_plus_values_and_advantages_are_whitened():
    learner = ppo_learner(gae_lambda=0.5)
    b = learner.batch([
        episode(Step("12", "x", [3, 4], [0.0] * 2, -1.0, "1234"), Step("1234", "y", [5], [0.0], 2.0, "12345", terminated=True)),
        episode(Step("21", "z", [6, 7], [0.0] * 2, 0.5, "2167", terminated=True)),
    ])  # fmt: skip
    # by hand from the values: gamma 0.9 between utterances, 1 inside, lambda 0.5
    (v0, v1), (v2,), (v3, v4) = (tokens(b, b.values, i) for i in range(3))
    d2 = 2.0 - v2
    d1 = -1.0 + 0.9 * v2 - v1
    d0 = v1 - v0
    d4 = 0.5 - v4
    d3 = v4 - v3
    raw = [d0 + 0.5 * (d1 + 0.9 * 0.5 * d2), d1 + 0.9 * 0.5 * d2, d2, d3 + 0.5 * d4, d4]
    vals = [v0, v1, v2, v3, v4]
    got = [x for i in range(3) for x in tokens(b, b.returns, i)]
    assert got == pytest.approx([a + v for a, v in zip(raw, vals)], abs=1e-5)
    white = [x for i in range(3) for x in tokens(b, b.advantages, i)]
    mu, sd = np.mean(raw), np.std(raw)
    assert white == pytest.approx([(a - mu) / sd for a in raw], abs=1e-4)
    assert np.mean(white) == pytest.approx(0.0, abs=1e-6) and np.std(white) == pytest.approx(1.0, abs=1e-4)


def test_ppo_bootstraps_a_truncated_episode_and_not_a_terminated_one():
    learner = ppo_learner()
    b = learner.batch([episode(Step("12", "x", [3], [0.0], -1.0, "123", truncated=True)),
                       episode(Step("12", "x", [3], [0.0], -1.0, "123", terminated=True))])  # fmt: skip
    _, h = alone(learner.policy.model, [1, 2, 3], [4])  # the state after "123": its last position
    v_next = float(learner.value(h[0]))
    assert abs(v_next) > 1e-3
    assert tokens(b, b.returns, 0) == pytest.approx([-1.0 + 0.9 * v_next], abs=1e-5)
    assert tokens(b, b.returns, 1) == pytest.approx([-1.0], abs=1e-6)


def test_ppo_value_head_reads_the_position_that_predicts_each_token():
    learner = ppo_learner()
    b = learner.batch([episode(Step("1234", "x", [5, 6, 7], [0.0] * 3, 0.0, "x", terminated=True)),
                       episode(Step("9", "y", [8], [0.0], 0.0, "x", terminated=True))])  # fmt: skip
    for i, (p, a) in enumerate([([1, 2, 3, 4], [5, 6, 7]), ([9], [8])]):
        logp, h = alone(learner.policy.model, p, a)
        with torch.no_grad():
            assert tokens(b, b.values, i) == pytest.approx(learner.value(h).squeeze(-1).tolist(), abs=1e-5)
        assert tokens(b, b.old, i) == pytest.approx(logp.tolist(), abs=1e-5)


def test_ppo_ratio_is_against_the_sampling_temperature():
    learner = ppo_learner(temperature=0.5)
    b = learner.batch([episode(Step("12", "x", [3, 4], [0.0] * 2, 0.0, "1234", terminated=True))])
    at_half = alone(learner.policy.model, [1, 2], [3, 4], temperature=0.5)[0].tolist()
    at_one = alone(learner.policy.model, [1, 2], [3, 4])[0].tolist()
    assert at_half != pytest.approx(at_one, abs=1e-3)
    assert tokens(b, b.old, 0) == pytest.approx(at_half, abs=1e-5)
    # the loss scores the current policy at the same temperature: before any step the ratio is 1
    lp, _, _ = learner._values(b.prompts, b.actions)
    assert torch.allclose(lp, b.old, atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        ppo_learner(temperature=0.0)


def test_ppo_tokenless_step_keeps_its_reward():
    learner = ppo_learner()
    # the empty utterance's reward -2 goes to the token before it, one utterance step later: -1 + 0.9 * -2
    b = learner.batch([episode(Step("12", "x", [3], [0.0], -1.0, "123"), Step("123", "", [], [], -2.0, "123", terminated=True))])
    assert b.n == [1] and tokens(b, b.returns, 0) == pytest.approx([-2.8], abs=1e-6)
    # truncated after it: and the bootstrap two utterance steps on, gamma ** 2 * V(s')
    b = learner.batch([episode(Step("12", "x", [3], [0.0], -1.0, "123"), Step("123", "", [], [], -2.0, "124", truncated=True))])
    _, h = alone(learner.policy.model, [1, 2, 4], [5])
    assert tokens(b, b.returns, 0) == pytest.approx([-2.8 + 0.81 * float(learner.value(h[0]))], abs=1e-5)
    # before the learner's first tokens no action of its own precedes the reward: the next one is not credited
    b = learner.batch([episode(Step("1", "", [], [], -5.0, "12"), Step("12", "x", [3], [0.0], -1.0, "123", terminated=True))])
    assert tokens(b, b.returns, 0) == pytest.approx([-1.0], abs=1e-6)


def test_ppo_value_loss_unclipped_by_default_and_clipped_on_request():
    v, v_old, ret, m = torch.tensor([[1.0]], requires_grad=True), torch.tensor([[0.0]]), torch.tensor([[-3.0]]), torch.ones(1, 1)
    assert float(ppo.value_loss(v, v_old, ret, m, None)) == pytest.approx(0.5 * 16)
    # clipped: max((1 + 3)^2, (0 + 0.2 + 3)^2) = 16 (the unclipped is worse here)
    assert float(ppo.value_loss(v, v_old, ret, m, 0.2)) == pytest.approx(0.5 * 16)
    # a value far on the right side: unclipped 0.5 * (-2.5 + 3)^2, clipped held at 0.5 * (-0.2 + 3)^2
    v = torch.tensor([[-2.5]])
    assert float(ppo.value_loss(v, v_old, ret, m, None)) == pytest.approx(0.5 * 0.25)
    assert float(ppo.value_loss(v, v_old, ret, m, 0.2)) == pytest.approx(0.5 * 2.8**2)
    assert ppo.Args().clip_vloss is False


# ====================================================================== ArCHer and CHAI
# 2-d features; states s0, s1; the replay action "a"; the stub policy's samples cycle f, g, h.
VECTORS = {"s0": [1.0, 0.0], "s1": [0.0, 1.0], "a": [1.0, 1.0], "f": [1.0, 0.0], "g": [0.0, 1.0], "h": [1.0, 1.0]}
LOGP = {"f": [-1.0, -2.0], "g": [-0.5, -0.5], "h": [-2.0, 0.0]}


class Table:
    dim = 2

    def __call__(self, texts):
        return np.array([VECTORS[t] for t in texts], dtype=np.float32)


class CyclingPolicy:
    """Samples cycle f, g, h, f, ...; the log-probs of a sample scale with one trainable weight."""

    def __init__(self):
        self.model = nn.Module()
        self.model.scale = nn.Parameter(torch.tensor(1.0))
        self.calls = 0

    def sample(self, prompts, seeds, keys=None, temperature=None):
        out = []
        for _ in prompts:
            text = "fgh"[self.calls % 3]
            self.calls += 1
            out.append(SimpleNamespace(text=text, token_ids=[ord(text)]))
        return out

    def logprobs(self, prompts, token_ids):
        rows = [LOGP[chr(ids[0])] for ids in token_ids]
        return self.model.scale * torch.tensor(rows), torch.ones(len(rows), 2)

    def forget(self):
        pass


def linear(weights):
    layer = nn.Linear(len(weights), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
    return layer


def hand_set(cls=archer.ArCHer, **kw):
    args = cls.Args(**{"gamma": 0.9, "hidden": 4, "batch_size": 2, "grad_accum": 1, **kw})
    learner = cls(CyclingPolicy(), args, seed=0, features=FeatureCache(Table()))
    # online: V1 = e.[1, 1], V2 = e.[0, 3]; Q1 = [s; a].[0, 0, 1, 1], Q2 = [s; a].[1, 1, 0, 1]
    c = learner.critic
    c.v1, c.v2, c.q1, c.q2 = linear([1, 1]), linear([0, 3]), linear([0, 0, 1, 1]), linear([1, 1, 0, 1])
    # target (different on purpose): Vbar1 = e.[2, 0], Vbar2 = e.[5, 5]; Qbar1 = a.[3, 0], Qbar2 = a.[-2, 1]
    t = learner.target
    t.v1, t.v2, t.q1, t.q2 = linear([2, 0]), linear([5, 5]), linear([0, 0, 3, 0]), linear([0, 0, -2, 1])
    learner.target.requires_grad_(False)
    learner.critic_opt = torch.optim.Adam(c.parameters(), lr=0.1)
    return learner


def test_archer_advantage_comes_from_the_online_critic():
    learner = hand_set()
    loss, adv = learner.actor_objective(["s0", "s1"])  # samples f at s0, g at s1
    # online: s0, f: min(Q1, Q2) = min(1, 1) = 1, min(V1, V2)(s0) = min(1, 0) = 0 -> A = 1
    #         s1, g: min(1, 2) = 1, min(V1, V2)(s1) = min(1, 3) = 1 -> A = 0
    # (the target critic would give -4 and 0: min(3, -2) - min(2, 5) = -4)
    assert adv.tolist() == pytest.approx([1.0, 0.0])
    assert float(loss) == pytest.approx(-(1.0 * -3.0 + 0.0 * -1.0) / 2)  # -mean(A * sum log pi)


def transitions(n=4):
    return [SimpleNamespace(steps=[Step("s0", "a", [1], [0.0], -1.0, "s1"), Step("s1", "a", [1], [0.0], 0.0, "s0", terminated=True)]) for _ in range(n // 2)]


def test_archer_warmup_keeps_the_actor_frozen_bit_for_bit_while_the_critic_learns():
    learner = hand_set(critic_steps=2, actor_steps=1, warmup_iters=2)
    start = learner.policy.model.scale.detach().clone()
    critic_start = [p.detach().clone() for p in learner.critic.parameters()]
    for it in range(2):
        out = learner.update(transitions(), it)
        assert "actor_loss" not in out
        assert torch.equal(learner.policy.model.scale, start)  # bit for bit
        assert not learner.actor_opt.state  # not even a zero-gradient Adam step
    assert any(not torch.equal(a, b) for a, b in zip(critic_start, learner.critic.parameters()))  # the critic trains from iteration 0
    out = learner.update(transitions(), 2)
    assert "actor_loss" in out and not torch.equal(learner.policy.model.scale, start)


def test_chai_actor_never_changes():
    learner = hand_set(chai.CHAI, critic_steps=1, actor_steps=1, warmup_iters=0, k=3)
    start = learner.policy.model.scale.detach().clone()
    for it in range(3):
        assert "actor_loss" not in learner.update(transitions(), it)
    assert torch.equal(learner.policy.model.scale, start)


def test_replay_buffer_overwrites_the_oldest_in_exact_order():
    buf = ReplayBuffer(3)
    for i in range(11):
        buf.add(i)
        # the last three added, each in the slot i % 3 of a ring (no sorting: the layout is what resume saves)
        expected = list(range(i + 1)) if i < 3 else [max(j for j in range(i + 1) if j % 3 == s) for s in range(3)]
        assert buf.items == expected, i
    assert buf.head == 11 % 3  # the next add overwrites 9, the oldest
    buf.add(11)
    assert buf.items == [9, 10, 11]


def test_polyak_after_every_critic_step():
    learner = hand_set(critic_steps=3, warmup_iters=5, tau=0.1)
    target = [p.detach().clone() for p in learner.target.parameters()]
    snaps = []
    step = learner.critic_step

    def recorded(*args, **kw):
        value = step(*args, **kw)
        snaps.append([p.detach().clone() for p in learner.critic.parameters()])
        return value

    learner.critic_step = recorded
    learner.update(transitions(), 0)
    assert len(snaps) == 3
    for online in snaps:  # theta_bar <- 0.9 theta_bar + 0.1 theta, after each step's weights
        target = [0.9 * t + 0.1 * o for t, o in zip(target, online)]
    for t, new in zip(target, learner.target.parameters()):
        assert torch.allclose(new, t, atol=1e-6)


def test_chai_picks_the_best_of_k_by_min_of_the_target_qs():
    learner = hand_set(chai.CHAI, k=3)
    # candidates f, g, h: Qbar1 = 3, 0, 3; Qbar2 = -2, 1, -1; min = -2, 0, -1 -> g (argmin: f; by Qbar1 alone: f or h)
    said = learner.act(["s0", "s1"], [7, 8])
    assert [g.text for g in said] == ["g", "g"]


def test_chai_v_target_goes_through_best_of_k():
    learner = hand_set(chai.CHAI, k=3)
    batch = [Step("s0", "a", [1], [0.0], -1.0, "s1"), Step("s1", "a", [1], [0.0], 0.0, "s0", terminated=True)]
    (yq1, yq2), (yv1, yv2) = learner.targets(batch)
    # y_V,i = Qbar_i(s, a*), a* = g the best of f, g, h: Qbar1(g) = 0, Qbar2(g) = 1 (the frozen
    # actor's first sample f would give 3 and -2)
    assert yv1.tolist() == pytest.approx([0.0, 0.0]) and yv2.tolist() == pytest.approx([1.0, 1.0])
    # Q targets as ArCHer's: r + 0.9 * Vbar_i(s'), none after termination: Vbar1(s1) = 0, Vbar2(s1) = 5
    assert yq1.tolist() == pytest.approx([-1.0, 0.0]) and yq2.tolist() == pytest.approx([-1.0 + 4.5, 0.0])


# ====================================================================== filtered BC and BC
class Recording(CyclingPolicy):
    def __init__(self):
        super().__init__()
        self.trained = []

    def logprobs(self, prompts, token_ids):
        self.trained += [(p, tuple(t)) for p, t in zip(prompts, token_ids)]
        return self.model.scale * -torch.ones(len(prompts), 1), torch.ones(len(prompts), 1)


def test_filtered_bc_imitates_exactly_the_top_fraction_of_every_trajectory_so_far():
    def traj(tag, ret):  # two utterances, the second without tokens (never imitated)
        return SimpleNamespace(total_reward=ret, steps=[Step(tag, "x", [len(tag)], [0.0], ret, tag), Step(tag + "!", "", [], [], 0.0, tag)])

    learner = FilteredBC(Recording(), FBCArgs(fraction=0.25, actor_steps=20, batch_size=4, grad_accum=1), seed=0)
    first = [traj("a", -9), traj("bb", -1), traj("ccc", -5), traj("dddd", -8), traj("eeeee", -1)]
    out = learner.update(first, 0)
    # ceil(0.25 * 5) = 2: the two -1s ("bb", "eeeee"); ties broken by arrival
    assert out["kept"] == 2 and set(learner.policy.trained) == {("bb", (2,)), ("eeeee", (5,))}
    learner.policy.trained.clear()
    out = learner.update([traj("f" * 6, 0), traj("g" * 7, -1), traj("h" * 8, -7)], 1)
    # the pool holds all 8: ceil(2) = 2: "ffffff" (0), then the earliest -1, "bb"
    assert out["kept"] == 2 and set(learner.policy.trained) == {("ffffff", (6,)), ("bb", (2,))}


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from conftest import save_tiny_lm

    from feedbackgym.learners._policy import Policy

    texts = ["Task: Guess the number between 1 and 100.\nactor: 50\nuser: Too low.\nactor: 75\nuser: Too high.\nactor:"] * 10
    return Policy.load(save_tiny_lm(tmp_path_factory.mktemp("tiny"), texts), max_new_tokens=4)


def test_bc_loss_is_the_mean_nll_of_the_demonstrated_tokens_only(tiny_policy):
    from feedbackgym.learners.filtered_bc import nll

    prompts, targets = ["actor: 50\nuser:", "Task:"], [[5, 9, 11], [7]]  # rows of unequal length: pads in between
    value = nll(tiny_policy, prompts, targets)
    by_hand = []
    for p, t in zip(prompts, targets):
        ids = tiny_policy.encode(p)
        with torch.no_grad():
            logits = tiny_policy.model(torch.tensor([ids + t])).logits[0, len(ids) - 1 : -1]
        by_hand += (-torch.log_softmax(logits, -1).gather(-1, torch.tensor(t)[:, None]).squeeze(-1)).tolist()
    assert float(value) == pytest.approx(float(np.mean(by_hand)), abs=1e-5)


def test_bc_imitates_the_demonstrator_s_utterances_and_raises_their_likelihood(tiny_policy):
    import copy

    from feedbackgym.learners import bc
    from feedbackgym.learners.filtered_bc import nll

    policy = copy.deepcopy(tiny_policy)
    data = bc.demonstrations(policy, "guess_number", {}, "scripted:expert", 2)
    assert data
    for prompt, ids in data:  # the target is the utterance as the LM would say it, and nothing of the prompt
        assert policy.tokenizer.decode(ids).startswith(" ") and policy.tokenizer.decode(ids).endswith("\n")
        assert prompt.endswith(":") and policy.tokenizer.decode(ids).strip() not in ("", prompt)
    learner = bc.BC(policy, bc.Args(actor_steps=5, batch_size=4, grad_accum=1, learning_rate=1e-2), seed=0)
    learner.data = data
    prompts, targets = [p for p, _ in data], [t for _, t in data]
    with torch.no_grad():
        before = float(nll(policy, prompts, targets))
    learner.update([], 0)
    with torch.no_grad():
        after = float(nll(policy, prompts, targets))
    assert after < before - 0.1
