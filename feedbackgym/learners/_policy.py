"""The trainable actor: an `LMAgent` over a model this learner owns, and log-probs with grad.

Sampling goes through `LMAgent.generate_text` (left-padded, per-row seeded, token ids returned).
Scoring an utterance under the current weights (`Policy.logprobs`) runs one forward pass over
``prompt + action`` rows that are **left-padded** with explicit position ids (the count of real
tokens before each position), so a padded row computes exactly what it would alone; ArCHer's
right padding put pads mid-sequence and shifted GPT-2's positions.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from feedbackgym.agents.lm import Generation, LMAgent, LMOptions


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows right-aligned in one tensor: (ids, attention mask, position ids). Positions count
    only real tokens (0 at a row's first token), pads get position 0 and are masked out."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, positions


def token_logprobs(model, prompts: Sequence[Sequence[int]], actions: Sequence[Sequence[int]], pad_id: int, hidden: bool = False):
    """Log-prob of each action token given its prompt and the action's earlier tokens.

    Returns ``(logp, amask)`` of shape ``(n, A)`` with ``A`` the longest action: actions are
    right-aligned (row i's tokens fill its last ``len(actions[i])`` columns, ``amask`` marks them).
    With ``hidden=True`` also the last layer's states at the positions that *predict* those
    tokens ``(n, A, d)`` and at the prompt's last token ``(n, d)`` (for a value head)."""
    device = next(model.parameters()).device
    width_a = max(1, max(len(a) for a in actions))
    ids, mask, pos = left_pad([list(p) + list(a) for p, a in zip(prompts, actions)], pad_id)
    ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
    extra = {"logits_to_keep": width_a + 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=hidden, **extra)
    logits = out.logits[:, -width_a - 1 : -1].float()
    targets = ids[:, -width_a:]
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    amask = torch.zeros_like(logp)
    for i, a in enumerate(actions):
        if len(a):
            amask[i, width_a - len(a) :] = 1.0
    logp = logp * amask
    if not hidden:
        return logp, amask
    h = out.hidden_states[-1]
    return logp, amask, h[:, -width_a - 1 : -1], h[:, -width_a - 1]


class Policy:
    """An LM actor that a learner trains: sample utterances, score them with grad."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 24, temperature: float = 1.0, name: str = "lm"):
        self.agent = LMAgent(model, tokenizer, LMOptions(max_new_tokens=max_new_tokens, temperature=temperature, device="cpu"), name=name)
        self.model, self.tokenizer = model, tokenizer
        self.model.eval()  # no dropout: sampled and scored log-probs are the same function
        self.pad_id = self.agent.pad_id

    @classmethod
    def load(cls, path: str | Path, **kw) -> Policy:
        """A private copy of the model at ``path`` (not the cache `lm:` agents share)."""
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        return cls(model, tok, name=f"lm:{path}", **kw)

    def prompt(self, view) -> str:
        return self.agent.prompt(view)

    def encode(self, prompt: str) -> list[int]:
        return self.agent.encode(prompt)

    def sample(self, prompts: Sequence[str], seeds: Sequence[int], keys: Sequence | None = None, temperature: float | None = None) -> list[Generation]:
        """One utterance per prompt, row i drawn with ``seeds[i]`` (reproducible)."""
        agent = self.agent
        if temperature is not None and temperature != agent.options.temperature:
            agent = LMAgent(self.model, self.tokenizer, LMOptions(**{**_opts(agent.options), "temperature": temperature}), agent.name)
        return agent.generate_text(list(prompts), [int(s) for s in seeds], keys)

    def forget(self) -> None:
        """Drop the prompt KV cache: after a weight update its entries are stale."""
        self.agent.forget()

    def logprobs(self, prompts: Sequence[str], token_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs (with grad) of ``token_ids`` after each prompt: ``(logp, mask)``."""
        return token_logprobs(self.model, [self.encode(p) for p in prompts], token_ids, self.pad_id)

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


def _opts(o: LMOptions) -> dict:
    from dataclasses import asdict

    return asdict(o)
