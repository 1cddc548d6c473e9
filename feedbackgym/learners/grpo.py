"""GRPO: group-relative advantages over k episodes of the same task instance, at the turn level.

    feedbackgym train grpo --scenario twenty_questions --actor lm:models/actor --out runs/grpo --group-size 4

The scalar-reward baseline that FCP and Critique-GRPO compare against (DeepSeekMath's GRPO, with
the turn-level groups of GiGPO for multi-turn episodes). No value function. Each iteration
collects ``rollout_size`` episodes as ``rollout_size / group_size`` groups: the members of a
group share their seed's task instance (`Episode`'s ``member``) while the learner and every
other seat draw afresh, so the group holds k samples from the same start state. Then, on the
learner's turns of each episode i of a group g (`advantages`):

1. the episode advantage A_ep(i) = (R_i - mean_g R) / (std_g R + eps), with ``scale_rewards``
   (off: R_i - mean_g R, Dr. GRPO's unscaled form);
2. the turn advantage: the group's turns at which the learner saw the same prompt (the same
   transcript: one state of the learner's POMDP, as after the same questions with the same
   answers) form a *state group*; A_turn = (G - mean G) / (std G + eps) over it, G the turn's
   return-to-go discounted by ``gamma`` per utterance; 0 in a state group of one;
3. A = A_ep + ``turn_weight`` x A_turn on every token of the turn (``turn_weight`` 0: plain
   episode-level GRPO, every turn of an episode sharing its episode's advantage).

The loss (`grpo_loss`): PPO's clipped surrogate per token, the ratio pi / pi_old against the
sampling distribution (log-probs at the sampling temperature, from a no-grad pass before the
update), averaged over each turn's tokens and then over turns (GRPO's per-sequence mean), plus
``beta`` x the per-token KL to the starting policy (the k3 estimator of DeepSeekMath:
exp(ref - logp) - (ref - logp) - 1; the starting policy is kept only when ``beta`` > 0).
``update_epochs`` passes over minibatches of turns, each of ``batch_size`` x ``grad_accum``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from feedbackgym.learners._base import Learner, accumulate, clipped_step
from feedbackgym.learners._policy import token_logprobs
from feedbackgym.learners.args import LMOptimArgs
from feedbackgym.learners.ppo import Tempered, sampling_temperature

EPS = 1e-4  # added to a group's std (DeepSeekMath / TRL)


@dataclass
class Args(LMOptimArgs):
    """GRPO's fields (from the base: ``learning_rate`` 1e-4, ``batch_size`` 16 turns a
    micro-batch, ``grad_accum`` 2, ``max_grad_norm`` 1.0)."""

    group_size: int = 4
    """episodes per group, each on the group's task instance (rollout_size must be a multiple of it)"""
    turn_weight: float = 1.0
    """weight of the turn-level (same-state) advantage added to the episode's (0: episode-level GRPO)"""
    gamma: float = 0.95
    """discount per utterance of the return-to-go that the turn advantage compares"""
    scale_rewards: bool = True
    """divide by the group's standard deviation (off: Dr. GRPO's unscaled advantages)"""
    clip_coef: float = 0.2
    """clipping of the probability ratio"""
    beta: float = 0.0
    """weight of the per-token KL to the starting policy (0: no reference model kept; DeepSeekMath 0.04)"""
    update_epochs: int = 1
    """passes over each iteration's turns"""


# ---------------------------------------------------------------------- the update, as formulas
def relative(values: list[float], scale: bool) -> list[float]:
    """Each value minus the group's mean, over (std + EPS) when ``scale``; 0 for a group of one."""
    if len(values) < 2:
        return [0.0] * len(values)
    x = np.asarray(values, dtype=np.float64)
    d = x - x.mean()
    return (d / (x.std() + EPS) if scale else d).tolist()


def returns_to_go(rewards: list[float], gamma: float) -> list[float]:
    out, g = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def advantages(trajectories: list, args: Args) -> list[list[float]]:
    """The advantage of every step of every trajectory (module docstring, steps 1-3); groups are
    the trajectories of one seed."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(trajectories):
        groups[t.seed].append(i)
    out = [[0.0] * len(t.steps) for t in trajectories]
    for members in groups.values():
        ep = relative([trajectories[i].total_reward for i in members], args.scale_rewards)
        states: dict[str, list[tuple[int, int, float]]] = defaultdict(list)  # prompt -> (trajectory, step, return-to-go)
        for a, i in zip(ep, members):
            steps = trajectories[i].steps
            for t, g in enumerate(returns_to_go([s.reward for s in steps], args.gamma)):
                out[i][t] = a
                states[steps[t].prompt].append((i, t, g))
        if args.turn_weight:
            for turns in states.values():
                for (i, t, _), a in zip(turns, relative([g for _, _, g in turns], args.scale_rewards)):
                    out[i][t] += args.turn_weight * a
    return out


def grpo_loss(logp, old, ref, adv, mask, clip: float, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean over turns of each turn's mean token loss: the clipped surrogate
    max(-A ratio, -A clip(ratio, 1 - clip, 1 + clip)), ratio = exp(logp - old), plus beta x the
    k3 KL estimate to ``ref`` (None: beta is 0); and the clipped fraction. ``adv``: one per turn."""
    ratio = torch.exp(logp - old)
    a = adv[:, None]
    per_token = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip))
    if beta:
        d = ref - logp
        per_token = per_token + beta * (torch.exp(d) - d - 1)
    tokens = mask.sum(1).clamp(min=1)
    loss = ((per_token * mask).sum(1) / tokens).mean()
    clipped = ((((ratio - 1).abs() > clip).float() * mask).sum() / mask.sum().clamp(min=1)).detach()
    return loss, clipped


def aligned(rows: list[int], table: dict, width: int) -> torch.Tensor:
    """The rows of ``table`` (`GRPO.fixed`) right-aligned in one (len(rows), width) tensor."""
    out = torch.zeros(len(rows), width, device=table[rows[0]].device)
    for j, r in enumerate(rows):
        out[j, width - len(table[r]) :] = table[r]
    return out


# ---------------------------------------------------------------------- the learner
class GRPO(Learner):
    name = "grpo"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        if sampling_temperature(policy) <= 0:
            raise ValueError("GRPO needs a sampling policy (temperature > 0): a greedy group is k copies of one episode")
        if args.group_size < 2:
            raise ValueError(f"--group-size must be >= 2 (a group of one has no relative advantage), got {args.group_size}")
        self.group_size = args.group_size  # what `feedbackgym train` collects per seed
        beta = getattr(args, "beta", 0.0)  # Critique-GRPO has none
        self.ref = copy.deepcopy(policy.model).requires_grad_(False).eval() if beta else None
        self.opt = torch.optim.Adam(policy.model.parameters(), lr=args.learning_rate)

    def prepare(self, train_args, seats: dict) -> None:
        if train_args.rollout_size % self.group_size:
            raise ValueError(f"--rollout-size {train_args.rollout_size} is not a multiple of --group-size {self.group_size}")

    def _logprobs(self, model, prompts, actions):
        return token_logprobs(Tempered(model, sampling_temperature(self.policy)), prompts, actions, self.policy.pad_id)

    def fixed(self, model, prompts: list, actions: list) -> dict[int, torch.Tensor]:
        """Each row's log-probs under ``model`` without gradient (pi_old, pi_ref), its tokens
        alone (the padding of its block cut off), in blocks of ``batch_size`` x ``grad_accum``."""
        chunk = self.args.batch_size * self.args.grad_accum
        with torch.no_grad():
            blocks = [self._logprobs(model, prompts[s : s + chunk], actions[s : s + chunk])[0] for s in range(0, len(actions), chunk)]
        return {i: row[row.shape[0] - len(actions[i]) :] for i, row in enumerate(r for block in blocks for r in block)}

    def descend(self, n: int, loss) -> None:
        """``update_epochs`` passes over the ``n`` rows in a fresh order, a step per block of
        ``batch_size`` x ``grad_accum`` rows (``loss(rows)``: a micro-batch's mean loss)."""
        a = self.args
        chunk = a.batch_size * a.grad_accum
        for _ in range(a.update_epochs):
            order = self.rng.permutation(n).tolist()
            for s in range(0, len(order), chunk):
                rows = order[s : s + chunk]
                accumulate([rows[j : j + a.batch_size] for j in range(0, len(rows), a.batch_size)], loss)
                clipped_step(self.opt, self.policy.model.parameters(), a.max_grad_norm)

    def update(self, trajectories: list, iteration: int) -> dict:
        a = self.args
        adv = advantages(trajectories, a)
        turns = [(s, x) for t, row in zip(trajectories, adv) for s, x in zip(t.steps, row) if s.token_ids]
        if not turns:
            return {}
        prompts = [self.policy.encode(s.prompt) for s, _ in turns]
        actions = [list(s.token_ids) for s, _ in turns]
        A = torch.tensor([x for _, x in turns], dtype=torch.float32, device=self.device)
        stats: dict[str, list[float]] = {"pg_loss": [], "clipfrac": []}
        old = self.fixed(self.policy.model, prompts, actions)
        ref = self.fixed(self.ref, prompts, actions) if self.ref is not None else None

        def loss(rows: list[int]) -> torch.Tensor:
            lp, m = self._logprobs(self.policy.model, [prompts[r] for r in rows], [actions[r] for r in rows])
            w = lp.shape[1]
            r_ = aligned(rows, ref, w) if ref is not None else None
            value, clipped = grpo_loss(lp, aligned(rows, old, w), r_, A[rows], m, a.clip_coef, a.beta)
            stats["pg_loss"].append(float(value.detach()))
            stats["clipfrac"].append(float(clipped))
            return value

        self.descend(len(turns), loss)
        self.policy.forget()
        groups = len({t.seed for t in trajectories})
        flat = np.asarray([x for _, x in turns])
        return {**{k: float(np.mean(v)) for k, v in stats.items()}, "groups": groups, "adv_abs_mean": float(np.abs(flat).mean()),
                "zero_adv_share": float(np.mean(np.abs(flat) < 1e-9))}  # fmt: skip

    def extra_state(self) -> dict:
        return {"opt": self.opt.state_dict(), **({"ref": self.ref.state_dict()} if self.ref is not None else {})}

    def load_extra_state(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        if self.ref is not None:
            self.ref.load_state_dict(state["ref"])
