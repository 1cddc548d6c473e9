"""Online filtered behaviour cloning: imitate the best trajectories collected so far.

    feedbackgym train filtered_bc --scenario twenty_questions --actor lm:models/actor --out runs/fbc

Every iteration adds its trajectories to the pool of *all* trajectories collected so far, keeps
the top ``fraction`` of the pool by return (ArCHer's online filtered BC: top 10%; ties broken by
arrival, earlier first), and takes ``actor_steps`` next-token cross-entropy steps on the learner's
utterances in them (the policy's own tokens, stop token included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from feedbackgym.learners._base import Learner, accumulate, clipped_step
from feedbackgym.learners.args import LMOptimArgs


@dataclass
class Args(LMOptimArgs):
    """Online filtered BC's fields (from the base: ``learning_rate`` 1e-4, LMRL-Gym's BC)."""

    fraction: float = 0.1
    """share of all trajectories so far that is imitated (anchor 0.1)"""
    actor_steps: int = 4
    """actor optimizer steps per iteration"""


def select_top(returns: list[float], fraction: float) -> list[int]:
    """Indices of the best ``ceil(fraction * n)`` returns (at least one), earlier first on ties."""
    if not returns:
        return []
    k = max(1, math.ceil(fraction * len(returns)))
    return sorted(sorted(range(len(returns)), key=lambda i: (-returns[i], i))[:k])


def nll(policy, prompts: list[str], token_ids: list[list[int]]) -> torch.Tensor:
    """Mean next-token cross-entropy over the utterances' tokens."""
    logp, mask = policy.logprobs(prompts, token_ids)
    return -logp.sum() / mask.sum().clamp(min=1)


class Imitator(Learner):
    """What both behaviour-cloning learners share: an Adam optimiser on the policy and `imitate`."""

    def __init__(self, policy, args: LMOptimArgs, seed: int):
        super().__init__(policy, args, seed)
        self.opt = torch.optim.Adam(policy.model.parameters(), lr=args.learning_rate)

    def imitate(self, data: list[tuple[str, list[int]]], steps: int | None = None) -> list[float]:
        """``steps`` (default ``args.actor_steps``) clipped cross-entropy steps on (prompt, tokens)
        pairs drawn uniformly with the learner's generator; the loss of each step."""
        a, losses = self.args, []
        for _ in range(a.actor_steps if steps is None else steps):
            micro = [[data[i] for i in self.rng.integers(0, len(data), a.batch_size)] for _ in range(a.grad_accum)]
            losses.append(accumulate(micro, lambda mb: nll(self.policy, [p for p, _ in mb], [t for _, t in mb])))
            clipped_step(self.opt, self.policy.model.parameters(), a.max_grad_norm)
        self.policy.forget()
        return losses

    def extra_state(self) -> dict:
        return {"opt": self.opt.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])


class FilteredBC(Imitator):
    name = "filtered_bc"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        self.pool: list[tuple[float, list[tuple[str, list[int]]]]] = []  # (return, [(prompt, tokens)])

    def update(self, trajectories: list, iteration: int) -> dict:
        a = self.args
        for t in trajectories:
            self.pool.append((t.total_reward, [(s.prompt, list(s.token_ids)) for s in t.steps if s.token_ids]))
        keep = select_top([r for r, _ in self.pool], a.fraction)
        data = [u for i in keep for u in self.pool[i][1]]
        losses = self.imitate(data) if data else []
        kept = [self.pool[i][0] for i in keep]
        return {"bc_loss": float(np.mean(losses)) if losses else float("nan"), "kept": len(keep), "kept_min_return": float(min(kept)) if kept else float("nan")}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "pool": list(self.pool)}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.pool = list(state["pool"])
