"""What the critic-based learners share: text features, the double critic, Polyak averaging and
a FIFO replay buffer.

Features: by default each text is embedded once by frozen all-MiniLM-L6-v2 (``encoders.py``) and
kept in a `FeatureCache` whose contents go into checkpoints (so a resumed run sees the very same
floats, whatever batch first computed them); ``embedder="hashing"`` uses the model-free hashing
embedder (tests, machines without the weights); ``fine_tune=True`` makes MiniLM part of the
critic, trained with it, with its own copy in the target critic (ArCHer fine-tunes RoBERTa).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from feedbackgym.encoders import EmbeddingCache


# ---------------------------------------------------------------------- features
class FeatureCache(EmbeddingCache):
    """`EmbeddingCache` returning torch tensors, whose contents can be saved and restored."""

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(super().__call__(list(texts)), dtype=np.float32))

    def state_dict(self) -> dict:
        """Plain data and a tensor (a checkpoint is read without unpickling objects)."""
        return {"texts": list(self._cache), "vectors": torch.from_numpy(np.stack(list(self._cache.values()))) if self._cache else None}

    def load_state_dict(self, state: dict) -> None:
        vectors = np.asarray(state["vectors"]) if state["texts"] else ()
        self._cache = OrderedDict(zip(state["texts"], vectors)) if state["texts"] else OrderedDict()


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2 as a trainable module: mean-pooled, unit-length sentence vectors."""

    dim = 384

    def __init__(self, max_length: int = 256):
        super().__init__()
        from feedbackgym.encoders import minilm_encoder

        self.tokenizer, self.model = minilm_encoder("cpu")
        self.tokenizer.truncation_side = "left"  # a long transcript keeps its latest turns
        self.max_length = max_length

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = batch.to(self.model.device)
        states = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return nn.functional.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)

    def __deepcopy__(self, memo):  # the tokenizer is shared, the weights copied
        new = MiniLMEncoder.__new__(MiniLMEncoder)
        nn.Module.__init__(new)
        new.tokenizer, new.max_length = self.tokenizer, self.max_length
        new.model = copy.deepcopy(self.model, memo)
        return new


# ---------------------------------------------------------------------- critic
def mlp(inp: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class DoubleCritic(nn.Module):
    """Two Q heads on [enc(s); enc(a)] and two V heads on enc(s) (ArCHer's `DoubleCritic`).
    ``encoder`` is a trainable text encoder, or None when features come from a frozen cache."""

    def __init__(self, dim: int, hidden: int, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.q1, self.q2 = mlp(2 * dim, hidden), mlp(2 * dim, hidden)
        self.v1, self.v2 = mlp(dim, hidden), mlp(dim, hidden)

    def q(self, es: torch.Tensor, ea: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([es, ea], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def v(self, es: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.v1(es).squeeze(-1), self.v2(es).squeeze(-1)


class Features:
    """Texts -> feature tensors for one critic: its own encoder when it has one, else the cache."""

    def __init__(self, cache: FeatureCache | None):
        self.cache = cache

    def __call__(self, critic: DoubleCritic, texts: Sequence[str]) -> torch.Tensor:
        if critic.encoder is not None:
            return critic.encoder(texts)
        return self.cache(texts).to(next(critic.parameters()).device)


@torch.no_grad()
def polyak(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(1.0 - tau).add_(o, alpha=tau)


# ---------------------------------------------------------------------- replay
class ReplayBuffer:
    """FIFO ring of transitions, sampled uniformly with the learner's generator."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: list = []
        self.head = 0  # next slot to overwrite once full

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item) -> None:
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            self.items[self.head] = item
            self.head = (self.head + 1) % self.capacity

    def sample(self, n: int, rng: np.random.Generator) -> list:
        return [self.items[i] for i in rng.integers(0, len(self.items), size=n)]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "items": list(self.items), "head": self.head}

    def load_state_dict(self, state: dict) -> None:
        self.capacity, self.items, self.head = state["capacity"], list(state["items"]), state["head"]
