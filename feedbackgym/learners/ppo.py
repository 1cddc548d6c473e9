"""Token-level PPO (the LMRL-Gym / trlx recipe that ArCHer compares against).

    feedbackgym train ppo --scenario twenty_questions --actor lm:models/actor --out runs/ppo

Every token is an action. Per iteration, on the episodes just collected (on-policy), `PPO.batch`:

1. one no-grad pass gives each token's log-prob under the current policy (``old``) and under the
   frozen starting policy (``ref``), both at the **sampling temperature** T, log softmax(logits / T):
   the distribution the tokens were drawn from, so that the ratio pi/pi_old is a ratio of
   sampling probabilities (TRL divides by T the same way); and a value V_t from a linear head on
   the LM's last hidden state at the position that *predicts* token t;
2. token rewards (`token_rewards`): -kl_coef * (old - ref) on every token, plus the env's reward
   for the utterance on its last token (LMRL-Gym's ``TokenTrajectory``); a step without tokens
   passes its reward to the last token before it (`fold_tokenless`);
3. GAE over the episode's tokens: discount 1 and ``gae_lambda`` inside an utterance, ``gamma``
   and ``gae_lambda`` from an utterance's last token to the next utterance's first; after the last
   utterance the next value is 0 when the episode terminated and V(s') when it was truncated;
   returns = advantages + values; advantages whitened over the iteration's tokens;
4. ``update_epochs`` passes over micro-batches of whole episodes (`episode_batches`; LMRL-Gym's
   PPO trains on whole trajectories too), so that the model runs once per episode and each turn
   is read off the last turn's pass (`token_logprobs` packs them), with `PPO.loss`: the clipped ratio loss on
   the whitened advantages (`policy_loss`) plus ``vf_coef`` x the value loss (`value_loss`;
   unclipped unless ``clip_vloss``: returns here span about -13..0 and a ±0.2 clip on each value
   change slowed the head, see docs/learners.md).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from feedbackgym.learners._base import Learner, accumulate, clipped_step, seeded_init
from feedbackgym.learners._policy import left_pad, token_logprobs
from feedbackgym.learners.args import LMOptimArgs, PPOArgs


@dataclass
class Args(PPOArgs, LMOptimArgs):
    """Token PPO's fields. From the bases: ``learning_rate`` 1e-4 (LMRL-Gym: 1e-6 to 3e-5 for 124M+
    GPT-2; see docs/learners.md for the measurement behind this one), ``gamma`` 0.95 per
    utterance (as ArCHer's; tokens inside an utterance are not discounted), ``gae_lambda`` 0.95 and
    ``clip_coef`` 0.2 (LMRL-Gym), ``update_epochs`` 2 passes over the iteration's utterances,
    ``vf_coef`` 0.5, ``batch_size`` 16 utterances per micro-batch (whole episodes, at least one), ``grad_accum`` 2,
    ``max_grad_norm`` 1.0."""

    critic_lr: float = 1e-3
    """Adam lr of the value head (a fresh linear layer on the LM's last hidden state)"""
    kl_coef: float = 0.05
    """weight of the per-token KL penalty to the starting policy, in the reward"""
    clip_vloss: bool = False
    """clip each value's change to ±clip_coef in the value loss (CleanRL's flag; off: measured slower on returns of -13..0)"""


# ---------------------------------------------------------------------- the update, as formulas
def token_rewards(old: list[float], ref: list[float], reward: float, kl_coef: float) -> list[float]:
    """One utterance's token rewards: -kl_coef * (log pi_old - log pi_ref) on each token, and the
    env's reward for the utterance added on its last token."""
    r = [-kl_coef * (o - f) for o, f in zip(old, ref)]
    r[-1] += reward
    return r


def fold_tokenless(steps: list, gamma: float) -> list[tuple]:
    """(step, reward, span) for each step with tokens. A step without tokens has no action to
    credit of its own: its reward, discounted by gamma per utterance step, goes to the step with
    tokens before it (the latest action it can follow from; crediting the next one would credit
    an action for what happened before it), whose span (the utterance steps its last token's link
    to the next utterance covers: the discount is gamma ** span) grows by one. A reward before
    the learner's first tokens follows from no action of its own and shifts no advantage: it is
    left out of the signal (it still counts in the episode's return)."""
    out: list[list] = []
    for s in steps:
        if s.token_ids:
            out.append([s, float(s.reward), 1])
        elif out:
            out[-1][1] += gamma ** out[-1][2] * float(s.reward)
            out[-1][2] += 1
    return [tuple(x) for x in out]


def gae(rewards: list[float], values: list[float], last: list, final_value: float, gamma: float, lam: float) -> list[float]:
    """Advantages over one episode's tokens. ``last[t]``: token t ends an utterance (True, or the
    number of utterance steps its link spans: its next value is discounted by ``gamma ** last[t]``);
    ``final_value``: the value after the episode's last token (0 if terminated, V(s') if truncated)."""
    adv, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        nxt = final_value if t == len(rewards) - 1 else values[t + 1]
        g = gamma ** int(last[t])
        if t == len(rewards) - 1:
            running = 0.0
        delta = rewards[t] + g * nxt - values[t]
        running = delta + g * lam * running
        adv[t] = running
    return adv


def whiten(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (+1e-8) that whiten the advantages of an iteration's tokens."""
    return float(x.mean()), float(x.std()) + 1e-8


def policy_loss(logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token, averaged over real tokens; and the clipped fraction.
    max(-A * ratio, -A * clip(ratio, 1 - clip, 1 + clip)), ratio = exp(logp - old)."""
    ratio = torch.exp(logp - old)
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    tokens = mask.sum().clamp(min=1)
    return (pg * mask).sum() / tokens, (((ratio - 1).abs() > clip).float() * mask).sum() / tokens


def value_loss(v: torch.Tensor, v_old: torch.Tensor, ret: torch.Tensor, mask: torch.Tensor, clip: float | None) -> torch.Tensor:
    """0.5 * (V - return)^2 averaged over real tokens; with ``clip``, PPO's pessimistic clipped form
    (each value's change from ``v_old`` limited to ±clip)."""
    loss = (v - ret) ** 2
    if clip is not None:
        loss = torch.maximum(loss, (v_old + (v - v_old).clamp(-clip, clip) - ret) ** 2)
    return 0.5 * (loss * mask).sum() / mask.sum().clamp(min=1)


class Tempered(nn.Module):
    """``model`` with its logits divided by ``temperature``: log-probs of the distribution the
    policy samples from (`token_logprobs` takes log_softmax of what this returns)."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, temperature
        self._keep = "logits_to_keep" in inspect.signature(model.forward).parameters

    def forward(self, input_ids, attention_mask, position_ids, output_hidden_states=False, logits_to_keep=0):
        extra = {"logits_to_keep": logits_to_keep} if self._keep else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, output_hidden_states=output_hidden_states, **extra)
        out.logits = out.logits / self.temperature
        return out


def sampling_temperature(policy) -> float:
    """The temperature ``policy`` samples at (a `Policy`'s LM options; 1 for one without them)."""
    return float(getattr(getattr(getattr(policy, "agent", None), "options", None), "temperature", 1.0))


def explained_variance(b: Batch) -> float | None:
    """1 - Var(returns - values) / Var(returns) over the batch's tokens, the values as the head
    gave them before this iteration's update (CleanRL's diagnostic; None when the returns are constant)."""
    m = torch.zeros_like(b.old, dtype=torch.bool)
    for i, k in enumerate(b.n):
        m[i, m.shape[1] - k :] = True
    ret, val = b.returns[m].cpu().numpy(), b.values[m].cpu().numpy()
    var = float(ret.var())
    return None if var == 0 else 1.0 - float((ret - val).var()) / var


@dataclass
class Batch:
    """An iteration's utterances, ready for the loss: every tensor is (utterances, longest
    utterance), row i right-aligned in its last ``n[i]`` columns."""

    prompts: list[list[int]]
    actions: list[list[int]]
    n: list[int]
    old: torch.Tensor
    """log pi_old of each token at the sampling temperature"""
    values: torch.Tensor
    advantages: torch.Tensor
    """GAE advantages, whitened over the iteration's tokens"""
    returns: torch.Tensor
    """GAE advantages (before whitening) + values: the value head's targets"""
    kl: list[float]
    episode: list[int]
    """the episode each utterance belongs to (its trajectory's index in the iteration)"""


def episode_batches(episode: list[int], order: list[int], size: int) -> list[list[int]]:
    """Micro-batches of utterance rows, each of whole episodes taken in ``order`` (episode indices):
    an episode joins the current micro-batch while its utterances stay within ``size`` (one episode
    longer than ``size`` is a micro-batch of its own)."""
    rows: dict[int, list[int]] = {}
    for r, e in enumerate(episode):
        rows.setdefault(e, []).append(r)
    out: list[list[int]] = [[]]
    for e in order:
        if e not in rows:
            continue
        if out[-1] and len(out[-1]) + len(rows[e]) > size:
            out.append([])
        out[-1].extend(rows[e])
    return [mb for mb in out if mb]


# ---------------------------------------------------------------------- the learner
class PPO(Learner):
    name = "ppo"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        if sampling_temperature(policy) <= 0:
            raise ValueError("token PPO needs a sampling policy (temperature > 0): a greedy one has no probability ratio")
        self.ref = copy.deepcopy(policy.model).requires_grad_(False).eval()
        width = policy.model.config.hidden_size
        self.value = seeded_init(seed, lambda: nn.Linear(width, 1)).to(self.device)
        self.opt = torch.optim.Adam([
            {"params": list(policy.model.parameters()), "lr": args.learning_rate},
            {"params": list(self.value.parameters()), "lr": args.critic_lr},
        ])  # fmt: skip

    def _logprobs(self, model, prompts: list[list[int]], actions: list[list[int]], hidden: bool = False):
        return token_logprobs(Tempered(model, sampling_temperature(self.policy)), prompts, actions, self.policy.pad_id, hidden=hidden)

    def _values(self, prompts: list[list[int]], actions: list[list[int]]):
        """(log-probs, mask, values) of each token; the value read where the token is predicted."""
        logp, mask, h, _ = self._logprobs(self.policy.model, prompts, actions, hidden=True)
        return logp, mask, self.value(h).squeeze(-1) * mask

    @torch.no_grad()
    def _state_value(self, prompts: list[str]) -> torch.Tensor:
        """V at each prompt's last position (where the next utterance's first token is predicted)."""
        ids, m, pos = (t.to(self.device) for t in left_pad([self.policy.encode(p) for p in prompts], self.policy.pad_id))
        h = self.policy.model(input_ids=ids, attention_mask=m, position_ids=pos, output_hidden_states=True).hidden_states[-1]
        return self.value(h[:, -1]).squeeze(-1)

    def batch(self, trajectories: list) -> Batch | None:
        """Steps 1-3 of the module docstring on the iteration's trajectories (None: no tokens)."""
        a = self.args
        episodes = [fold_tokenless(t.steps, a.gamma) for t in trajectories]
        steps = [s for ep in episodes for s in ep]
        episode = [e for e, ep in enumerate(episodes) for _ in ep]
        if not steps:
            return None
        prompts = [self.policy.encode(s.prompt) for s, _, _ in steps]
        actions = [list(s.token_ids) for s, _, _ in steps]
        n = [len(x) for x in actions]
        with torch.no_grad():
            old, _, values = self._values(prompts, actions)
            ref, _ = self._logprobs(self.ref, prompts, actions)
        row = lambda x, i: x[i, x.shape[1] - n[i] :].tolist()  # noqa: E731  (row i's tokens; right-aligned)
        cut = [t for t, ep in zip(trajectories, episodes) if ep and t.steps[-1].truncated and not t.steps[-1].terminated]
        final_v = dict(zip((id(t) for t in cut), self._state_value([t.steps[-1].next_prompt for t in cut]).tolist())) if cut else {}
        adv_rows, ret_rows, kls, k = [], [], [], 0
        for t, ep in zip(trajectories, episodes):
            rewards, vals, last, idx = [], [], [], []
            for _, reward, span in ep:
                kls += [o - r for o, r in zip(row(old, k), row(ref, k))]
                rewards += token_rewards(row(old, k), row(ref, k), reward, a.kl_coef)
                vals += row(values, k)
                last += [0] * (n[k] - 1) + [span]
                idx.append(k)
                k += 1
            if not idx:
                continue
            adv = gae(rewards, vals, last, final_v.get(id(t), 0.0), a.gamma, a.gae_lambda)
            pos = 0
            for j in idx:
                adv_rows.append(adv[pos : pos + n[j]])
                ret_rows.append([x + v for x, v in zip(adv[pos : pos + n[j]], vals[pos : pos + n[j]])])
                pos += n[j]
        mu, sd = whiten(np.concatenate([np.asarray(r) for r in adv_rows]))
        A, R = torch.zeros_like(old), torch.zeros_like(old)
        for j in range(len(steps)):
            A[j, A.shape[1] - n[j] :] = (torch.tensor(adv_rows[j], device=A.device) - mu) / sd
            R[j, R.shape[1] - n[j] :] = torch.tensor(ret_rows[j], device=R.device)
        return Batch(prompts, actions, n, old, values, A, R, kls, episode)

    def loss(self, b: Batch, rows: list[int], stats: dict | None = None) -> torch.Tensor:
        """Step 4's loss on the utterances ``rows`` of ``b``: policy loss + vf_coef * value loss."""
        a = self.args
        w = max(b.n[r] for r in rows)
        sub = lambda x: torch.stack([x[r, x.shape[1] - w :] for r in rows])  # noqa: E731
        lp, m, v = self._values([b.prompts[r] for r in rows], [b.actions[r] for r in rows])
        pg_loss, clipfrac = policy_loss(lp, sub(b.old), sub(b.advantages), m, a.clip_coef)
        v_loss = value_loss(v, sub(b.values), sub(b.returns), m, a.clip_coef if a.clip_vloss else None)
        if stats is not None:
            stats["pg_loss"].append(float(pg_loss.detach()))
            stats["value_loss"].append(float(v_loss.detach()))
            stats["clipfrac"].append(float(clipfrac))
        return pg_loss + a.vf_coef * v_loss

    def update(self, trajectories: list, iteration: int) -> dict:
        a = self.args
        b = self.batch(trajectories)
        if b is None:
            return {}
        stats = {"pg_loss": [], "value_loss": [], "clipfrac": []}
        params = list(self.policy.model.parameters()) + list(self.value.parameters())
        for _ in range(a.update_epochs):
            order = self.rng.permutation(max(b.episode) + 1).tolist()
            micro = episode_batches(b.episode, order, a.batch_size)
            for s in range(0, len(micro), a.grad_accum):
                accumulate(micro[s : s + a.grad_accum], lambda mb: self.loss(b, mb, stats))
                clipped_step(self.opt, params, a.max_grad_norm)
        self.policy.forget()
        return {**{k: float(np.mean(v)) for k, v in stats.items()}, "kl": float(np.mean(b.kl)), "explained_variance": explained_variance(b)}

    def extra_state(self) -> dict:
        return {"value": self.value.state_dict(), "opt": self.opt.state_dict(), "ref": self.ref.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.value.load_state_dict(state["value"])
        self.opt.load_state_dict(state["opt"])
        self.ref.load_state_dict(state["ref"])
