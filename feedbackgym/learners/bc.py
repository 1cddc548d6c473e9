"""Behaviour cloning on demonstrations: imitate a scripted agent in the learner's seat.

    feedbackgym train bc --scenario twenty_questions --actor lm:models/actor --out runs/bc --demo scripted:expert

Before training, ``demo_episodes`` episodes are played with ``demo`` in the learner's seat
(seeds ``DEMO_SEED + k``, apart from training and evaluation seeds); each of its utterances
becomes a (prompt, `` text\\n``) pair in the prompt format the LM agent uses. Each iteration takes
``actor_steps`` cross-entropy steps on pairs drawn uniformly. The loop still collects
``rollout_size`` episodes per iteration with the policy, for the learning curve only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feedbackgym.core import View
from feedbackgym.learners.args import LMOptimArgs
from feedbackgym.learners.filtered_bc import Imitator
from feedbackgym.rollout import play_scenario, scenario_for

DEMO_SEED = 3_000_000_000


@dataclass
class Args(LMOptimArgs):
    """Behaviour cloning's fields (from the base: ``learning_rate`` 1e-4, LMRL-Gym's BC)."""

    demo: str = "scripted:expert"
    """agent spec whose utterances are imitated"""
    demo_episodes: int = 200
    """demonstration episodes played before training"""
    actor_steps: int = 4
    """actor optimizer steps per iteration"""


def demonstrations(policy, scenario: str, seats: dict, demo: str, episodes: int) -> list[tuple[str, list[int]]]:
    """(prompt, target tokens) for every utterance ``demo`` makes in the learner's seat."""
    sc = scenario_for(scenario, **seats)
    learner = sc.learner_role
    sc = sc.with_roles(**{learner: demo})
    pairs = []
    for k in range(episodes):
        ep = play_scenario(sc, DEMO_SEED + k)
        log = ep.log
        for i, m in enumerate(log):
            if m.role != learner:
                continue
            view = View(learner, None, ep.instance, log[:i], 0, ())  # the view as it was at that turn
            ids = policy.tokenizer(f" {m.text}\n", add_special_tokens=False)["input_ids"]
            pairs.append((policy.prompt(view), ids))
    return pairs


class BC(Imitator):
    name = "bc"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        self.data: list[tuple[str, list[int]]] = []

    def prepare(self, train_args, seats: dict) -> None:
        self.data = demonstrations(self.policy, train_args.scenario, seats, self.args.demo, self.args.demo_episodes)
        if not self.data:
            raise ValueError(f"{self.args.demo} never spoke in the learner's seat of {train_args.scenario}")

    def update(self, trajectories: list, iteration: int) -> dict:
        losses = self.imitate(self.data)
        return {"bc_loss": float(np.mean(losses)), "demos": len(self.data)}
