"""Behaviour cloning on demonstrations: imitate a scripted agent in the learner's seat.

    feedbackgym train bc --scenario twenty_questions --actor lm:models/actor --out runs/bc --demo scripted:expert

Before training, ``demo_episodes`` episodes are played with ``demo`` in the learner's seat
(seeds ``DEMO_SEED + k``, apart from training and evaluation seeds); each of its utterances
becomes a (prompt, `` text\\n``) pair in the prompt format the LM agent uses. Each iteration takes
``steps`` cross-entropy steps on pairs drawn uniformly. The loop still collects
``rollout_size`` episodes per iteration with the policy, for the learning curve only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from feedbackgym.learners._base import Learner
from feedbackgym.learners.filtered_bc import imitate

DEMO_SEED = 3_000_000_000


@dataclass
class Args:
    demo: str = "scripted:expert"
    """agent spec whose utterances are imitated"""
    demo_episodes: int = 200
    """demonstration episodes played before training"""
    lr: float = 1e-4
    """Adam lr (LMRL-Gym's BC: 1e-4)"""
    steps: int = 4
    """optimizer steps per iteration"""
    batch_size: int = 16
    """utterances per micro-batch"""
    grad_accum: int = 2
    """micro-batches per step, averaged"""
    max_grad_norm: float = 1.0
    """gradient clipping"""


def demonstrations(policy, scenario: str, seats: dict, demo: str, episodes: int) -> list[tuple[str, list[int]]]:
    """(prompt, target tokens) for every utterance ``demo`` makes in the learner's seat."""
    import feedbackgym
    from feedbackgym.rollout import play_scenario as play
    from feedbackgym.envs.engine import View

    learner = feedbackgym.make(scenario, **seats).unwrapped.learner
    sc = feedbackgym.make(scenario, **seats).unwrapped.scenario.with_roles(**{learner: demo})
    pairs = []
    for k in range(episodes):
        ep = play(sc, DEMO_SEED + k)
        log = ep.log
        for i, m in enumerate(log):
            if m.role != learner:
                continue
            view = View(learner, None, ep.instance, log[:i], 0, ())  # the view as it was at that turn
            ids = policy.tokenizer(f" {m.text}\n", add_special_tokens=False)["input_ids"]
            pairs.append((policy.prompt(view), ids))
    return pairs


class BC(Learner):
    name = "bc"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        self.opt = torch.optim.Adam(policy.model.parameters(), lr=args.lr)
        self.data: list[tuple[str, list[int]]] = []

    def prepare(self, train_args, seats: dict) -> None:
        self.data = demonstrations(self.policy, train_args.scenario, seats, self.args.demo, self.args.demo_episodes)
        if not self.data:
            raise ValueError(f"{self.args.demo} never spoke in the learner's seat of {train_args.scenario}")

    def update(self, trajectories: list, iteration: int) -> dict:
        losses = imitate(self, self.data)
        return {"bc_loss": float(np.mean(losses)), "demos": len(self.data)}

    def extra_state(self) -> dict:
        return {"opt": self.opt.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
