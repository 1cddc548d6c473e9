"""CHAI (Verma et al. 2022, as ArCHer's baseline): a frozen actor steered by a learned critic.

    feedbackgym train chai --scenario twenty_questions --actor lm:models/actor --out runs/chai

The critic is ArCHer's, trained the same way (double Q and V heads, target critic with Polyak
averaging, V target from fresh samples of the frozen actor); the actor's weights never change (the anchor's CHAI sets warmup_iter = iterations; here
``warmup_iters`` and the actor fields are ignored).
At each turn the frozen actor proposes ``k`` utterances and the one with the highest
min(Qbar1, Qbar2)(s, a) under the target critic is said (the anchor's ``chai_agent.py``, k=5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from feedbackgym.learners import archer


@dataclass
class Args(archer.Args):
    k: int = 5
    """candidate utterances per turn, the best by the critic is said (anchor 5)"""


class CHAI(archer.ArCHer):
    name = "chai"
    Args = Args

    def actor_frozen(self, iteration: int) -> bool:
        return True  # whatever warmup_iters says

    def act(self, prompts, seeds_, keys=None):
        k = self.args.k
        # k candidates per turn, each from its own seed derived from the turn's seed
        sub = [int(x) for s in seeds_ for x in np.random.SeedSequence(int(s) % 2**63).generate_state(k, np.uint64)]
        gens = self.policy.sample([p for p in prompts for _ in range(k)], sub)
        with torch.no_grad():
            es = self.features(self.target, [p for p in prompts for _ in range(k)])
            q1, q2 = self.target.q(es, self.features(self.target, [g.text for g in gens]))
            score = torch.minimum(q1, q2).view(len(prompts), k)
        best = score.argmax(1).tolist()
        return [gens[i * k + b] for i, b in enumerate(best)]
