"""The shape every learner has, so that `train.py` runs them all the same way.

A learner owns the policy it trains, its optimizers and a numpy generator (its only source of
randomness: replay sampling, seeds of fresh policy samples). It is itself the agent in the
learner's seat: `feedbackgym.rollout.rollout` asks its ``generate`` (which samples with ``act``)
and records `Trajectory`s; each iteration the loop hands it the ones it just collected, and
``update`` returns the iteration's metrics. ``state_dict`` holds everything a resumed run needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def accumulate(micro_batches: Sequence, loss_fn: Callable[[object], torch.Tensor]) -> float:
    """Backward ``loss_fn`` over the micro-batches, each scaled by 1/len: the gradient of the
    *mean* loss over the whole batch, so the loss reads the same whatever the number of
    micro-batches. (ArCHer sums them. Under Adam that does not multiply the lr by their number:
    Adam divides by its running gradient scale, and the update norms of the two agree to 1e-4,
    ``benchmarks/update_settings.py adam``.) Returns that mean loss."""
    total = 0.0
    for mb in micro_batches:
        loss = loss_fn(mb) / len(micro_batches)
        loss.backward()
        total += float(loss.detach())
    return total


def clipped_step(optimizer: torch.optim.Optimizer, params, max_norm: float) -> float:
    """Clip the gradient's global norm to ``max_norm``, step, zero; the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def seeds(rng: np.random.Generator, n: int) -> list[int]:
    return [int(s) for s in rng.integers(2**63, size=n)]


class Learner:
    """Base: sample with the policy as it is; subclasses override ``update`` (and ``act``)."""

    name = "learner"
    #: whether a `Replica` of the policy can play this learner's seat on a worker (``--workers``):
    #: whether it acts by sampling its policy (``act`` not overridden; set for every subclass)
    replicable = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.replicable = cls.act is Learner.act

    def __init__(self, policy, args, seed: int):
        self.policy, self.args = policy, args
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1EA2]))

    @property
    def device(self) -> torch.device:
        """Where the policy's weights are (`feedbackgym train --device`): the learner's own
        modules and tensors go there too."""
        return next(self.policy.model.parameters()).device

    def act(self, prompts: Sequence[str], seeds_: Sequence[int], keys: Sequence | None = None):
        return self.policy.sample(prompts, seeds_, keys)

    # the agent in the learner's seat (what `rollout` asks)
    def prompt(self, view) -> str:
        return self.policy.prompt(view)

    def replica_prompt(self) -> Callable[[str], str] | None:
        """What this learner does to the policy's prompt before sampling (a picklable function, for
        a `Replica` on a worker to do the same), or None: it samples at the policy's prompt."""
        return None

    def generate(self, views: Sequence) -> list:
        """One utterance per view from ``act``, row i seeded with a draw from its view's
        generator (as `LMAgent.generate` draws it). The KV cache's key of a conversation is that
        generator object itself, not its ``id()``: the cache then holds it, so a later episode's
        generator cannot take a freed one's address and reuse its entry (which made the
        log-probs depend on memory addresses, in their last bits)."""
        seeds_ = [int(v.rng.integers(2**63)) for v in views]
        return self.act([self.prompt(v) for v in views], seeds_, [v.rng for v in views])

    def update(self, trajectories: list, iteration: int) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"policy": self.policy.model.state_dict(), "rng": self.rng.bit_generator.state, **self.extra_state()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.model.load_state_dict(state["policy"])
        self.policy.forget()
        self.rng.bit_generator.state = state["rng"]
        self.load_extra_state(state)

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


def seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module with weights drawn from ``seed``, leaving the global torch RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def plot(path, series: Sequence[tuple], xlabel: str, ylabel: str, title: str) -> None:
    """A line chart saved to ``path``: one line per ``(xs, ys, matplotlib keywords)`` of ``series``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for xs, ys, style in series:
        ax.plot(xs, ys, **style)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
