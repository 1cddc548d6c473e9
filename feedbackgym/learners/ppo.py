"""Token-level PPO (the LMRL-Gym / trlx recipe that ArCHer compares against).

    feedbackgym train ppo --scenario twenty_questions --actor lm:models/actor --out runs/ppo

Every token is an action. Per iteration, on the episodes just collected (on-policy):

1. one no-grad pass gives each token's log-prob under the current policy (``old``) and under the
   frozen starting policy (``ref``), and a value V_t from a linear head on the LM's last hidden
   state at the position that predicts the token;
2. token rewards: -kl_coef * (old - ref) on every token, plus the env's reward for the
   utterance on its last token;
3. GAE over the episode's tokens: discount 1 and ``gae_lambda`` inside an utterance, ``gamma``
   and ``gae_lambda`` from an utterance's last token to the next utterance's first; after the last
   utterance the next value is 0 when the episode terminated and V(s') when it was truncated;
4. ``update_epochs`` passes over utterance minibatches: clipped ratio loss on whitened advantages
   plus ``vf_coef`` x the clipped value loss.
"""

from __future__ import annotations

import copy
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
    GPT-2; here ArCHer's actor lr, for the 2M-param bootstrapped actor), ``gamma`` 0.95 per
    utterance (as ArCHer's; tokens inside an utterance are not discounted), ``gae_lambda`` 0.95 and
    ``clip_coef`` 0.2 (LMRL-Gym), ``update_epochs`` 2 passes over the iteration's utterances,
    ``vf_coef`` 0.5, ``batch_size`` 16 utterances per micro-batch, ``grad_accum`` 2,
    ``max_grad_norm`` 1.0."""

    critic_lr: float = 1e-3
    """Adam lr of the value head (a fresh linear layer on the LM's last hidden state)"""
    kl_coef: float = 0.05
    """weight of the per-token KL penalty to the starting policy, in the reward"""


def gae(rewards: list[float], values: list[float], last: list[bool], final_value: float, gamma: float, lam: float) -> list[float]:
    """Advantages over one episode's tokens. ``last[t]``: token t ends an utterance (its next
    value is discounted by ``gamma``); ``final_value``: the value after the episode's last token
    (0 if terminated, V(s') if truncated)."""
    adv, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        nxt = final_value if t == len(rewards) - 1 else values[t + 1]
        g = gamma if last[t] else 1.0
        if t == len(rewards) - 1:
            running = 0.0
        delta = rewards[t] + g * nxt - values[t]
        running = delta + g * lam * running
        adv[t] = running
    return adv


class PPO(Learner):
    name = "ppo"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        self.ref = copy.deepcopy(policy.model).requires_grad_(False).eval()
        width = policy.model.config.hidden_size
        self.value = seeded_init(seed, lambda: nn.Linear(width, 1))
        self.opt = torch.optim.Adam([
            {"params": list(policy.model.parameters()), "lr": args.learning_rate},
            {"params": list(self.value.parameters()), "lr": args.critic_lr},
        ])  # fmt: skip

    def _values(self, prompts: list[list[int]], actions: list[list[int]]):
        logp, mask, h, _ = token_logprobs(self.policy.model, prompts, actions, self.policy.pad_id, hidden=True)
        return logp, mask, self.value(h).squeeze(-1) * mask

    @torch.no_grad()
    def _state_value(self, prompts: list[str]) -> torch.Tensor:
        ids, m, pos = left_pad([self.policy.encode(p) for p in prompts], self.policy.pad_id)
        h = self.policy.model(input_ids=ids, attention_mask=m, position_ids=pos, output_hidden_states=True).hidden_states[-1]
        return self.value(h[:, -1]).squeeze(-1)

    def update(self, trajectories: list, iteration: int) -> dict:
        a = self.args
        steps = [s for t in trajectories for s in t.steps if s.token_ids]
        if not steps:
            return {}
        prompts = [self.policy.encode(s.prompt) for s in steps]
        actions = [list(s.token_ids) for s in steps]
        with torch.no_grad():
            old, mask, values = self._values(prompts, actions)
            ref, _ = token_logprobs(self.ref, prompts, actions, self.policy.pad_id)
        n = [len(x) for x in actions]
        row = lambda x, i: x[i, x.shape[1] - n[i] :].tolist()  # noqa: E731  (row i's tokens; right-aligned)
        truncated_ends = [t for t in trajectories if t.steps and t.steps[-1].truncated and not t.steps[-1].terminated]
        final_v = {}  # V(s') after a truncated episode's last utterance (0 after a terminated one)
        if truncated_ends:
            final_v = dict(zip((id(t) for t in truncated_ends), self._state_value([t.steps[-1].next_prompt for t in truncated_ends]).tolist()))
        adv_rows, ret_rows, kls = [], [], []
        i = 0
        for t in trajectories:
            idx = [i + j for j, s in enumerate(s for s in t.steps if s.token_ids)]
            i += len(idx)
            if not idx:
                continue
            rewards, vals, last = [], [], []
            for k, s in zip(idx, (s for s in t.steps if s.token_ids)):
                kl = [o - r for o, r in zip(row(old, k), row(ref, k))]
                kls += kl
                r = [-a.kl_coef * x for x in kl]
                r[-1] += s.reward
                rewards += r
                vals += row(values, k)
                last += [False] * (n[k] - 1) + [True]
            adv = gae(rewards, vals, last, final_v.get(id(t), 0.0), a.gamma, a.gae_lambda)
            pos = 0
            for k in idx:
                adv_rows.append(adv[pos : pos + n[k]])
                ret_rows.append([x + v for x, v in zip(adv[pos : pos + n[k]], vals[pos : pos + n[k]])])
                pos += n[k]
        flat = np.concatenate([np.asarray(r) for r in adv_rows])
        mu, sd = float(flat.mean()), float(flat.std()) + 1e-8
        A = torch.zeros_like(old)
        R = torch.zeros_like(old)
        for k in range(len(steps)):
            A[k, A.shape[1] - n[k] :] = (torch.tensor(adv_rows[k]) - mu) / sd
            R[k, R.shape[1] - n[k] :] = torch.tensor(ret_rows[k])
        stats = {"pg_loss": [], "value_loss": [], "clipfrac": []}

        def loss(rows):
            w = old.shape[1]
            sub = lambda x: torch.stack([x[r, w - max(n[q] for q in rows) :] for r in rows])  # noqa: E731
            lp, m, v = self._values([prompts[r] for r in rows], [actions[r] for r in rows])
            o, adv_, ret, v_old = sub(old), sub(A), sub(R), sub(values)
            ratio = torch.exp(lp - o)
            pg = torch.maximum(-adv_ * ratio, -adv_ * ratio.clamp(1 - a.clip_coef, 1 + a.clip_coef))
            v_clip = v_old + (v - v_old).clamp(-a.clip_coef, a.clip_coef)
            vl = 0.5 * torch.maximum((v - ret) ** 2, (v_clip - ret) ** 2)
            tokens = m.sum().clamp(min=1)
            pg_loss, v_loss = (pg * m).sum() / tokens, (vl * m).sum() / tokens
            stats["pg_loss"].append(float(pg_loss.detach()))
            stats["value_loss"].append(float(v_loss.detach()))
            stats["clipfrac"].append(float((((ratio - 1).abs() > a.clip_coef).float() * m).sum() / tokens))
            return pg_loss + a.vf_coef * v_loss

        params = list(self.policy.model.parameters()) + list(self.value.parameters())
        chunk = a.batch_size * a.grad_accum
        for _ in range(a.update_epochs):
            order = self.rng.permutation(len(steps)).tolist()
            for s in range(0, len(order), chunk):
                rows = order[s : s + chunk]
                micro = [rows[j : j + a.batch_size] for j in range(0, len(rows), a.batch_size)]
                accumulate(micro, loss)
                clipped_step(self.opt, params, a.max_grad_norm)
        self.policy.forget()
        return {**{k: float(np.mean(v)) for k, v in stats.items()}, "kl": float(np.mean(kls))}

    def extra_state(self) -> dict:
        return {"value": self.value.state_dict(), "opt": self.opt.state_dict(), "ref": self.ref.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.value.load_state_dict(state["value"])
        self.opt.load_state_dict(state["opt"])
        self.ref.load_state_dict(state["ref"])
