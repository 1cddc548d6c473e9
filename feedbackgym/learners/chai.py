"""CHAI (Verma et al. 2022, as ArCHer's baseline): a frozen actor steered by a learned critic.

    feedbackgym train chai --scenario twenty_questions --actor lm:models/actor --out runs/chai

The acting policy is best-of-k: at each turn the frozen actor proposes ``k`` utterances and the
one with the highest min(Qbar1, Qbar2)(s, a) under the target critic is said (the anchor's
``chai_agent.py``, k=5). The critic is ArCHer's, trained the same way (double Q and V heads,
target critic with Polyak averaging), with one difference that is the anchor's: its V target
is taken at an action of *that* policy, y_V,i = Qbar_i(s, a*) with a* the best of k fresh
samples by min(Qbar1, Qbar2) (the anchor's trainer calls the agent's ``get_action``, which for
CHAI is best-of-k): an approximate max backup, so the critic evaluates the best-of-k policy it
steers, not the frozen actor's average (``v_samples`` such a* are averaged, 1 by default).
The actor's weights never change (the anchor's CHAI sets warmup_iter = iterations; here
``warmup_iters`` and the actor fields are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from feedbackgym.learners import archer
from feedbackgym.learners._base import seeds


@dataclass
class Args(archer.Args):
    k: int = 5
    """candidate utterances per turn, the best by the critic is said (anchor 5)"""


class CHAI(archer.ArCHer):
    name = "chai"
    Args = Args

    def actor_frozen(self, iteration: int) -> bool:
        return True  # whatever warmup_iters says

    def best_of_k(self, prompts: list[str], seeds_: list[int], keys: list | None = None) -> list:
        """Per prompt, the best of ``k`` samples of the frozen actor by min(Qbar1, Qbar2); the
        candidates of prompt i are drawn with seeds derived from ``seeds_[i]``. With ``keys``
        (conversations, in a rollout) the k candidates of a turn share its conversation's KV
        cache, which then feeds only the tokens new since the turn before."""
        k = self.args.k
        sub = [int(x) for s in seeds_ for x in np.random.SeedSequence(int(s) % 2**63).generate_state(k, np.uint64)]
        gens = self.policy.sample([p for p in prompts for _ in range(k)], sub, None if keys is None else [key for key in keys for _ in range(k)])
        with torch.no_grad():
            es = self.features(self.target, [p for p in prompts for _ in range(k)])
            q1, q2 = self.target.q(es, self.features(self.target, [g.text for g in gens]))
            score = torch.minimum(q1, q2).view(len(prompts), k)
        best = score.argmax(1).tolist()
        return [gens[i * k + b] for i, b in enumerate(best)]

    def act(self, prompts, seeds_, keys=None):
        return self.best_of_k(list(prompts), list(seeds_), None if keys is None else list(keys))

    def v_sample_requests(self, batch: list) -> list:
        """None to draw ahead: a best-of-k choice needs the target critic as it is when the
        critic step runs (ArCHer's up-front batch of fresh samples does not apply)."""
        return []

    def sample_actions(self, states: list[str], k: int = 1) -> list[list]:
        """``k`` actions per state from CHAI's acting policy (best-of-``args.k``): the V target's."""
        gens = self.best_of_k([s for s in states for _ in range(k)], seeds(self.rng, len(states) * k))
        return [gens[i * k : (i + 1) * k] for i in range(len(states))]
