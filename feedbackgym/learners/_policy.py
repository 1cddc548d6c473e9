"""The trainable actor: an `LMAgent` over a model this learner owns, and log-probs with grad.

Sampling goes through `LMAgent.generate_text` (left-padded, per-row seeded, token ids returned).
Many rows outside a conversation (a learner's fresh samples at replay states, `Policy.sample`
without keys) are sampled in batches of similar prompt lengths, and a prompt that is a prefix
of another drawn prompt (an earlier turn of the same episode) reuses the longer prompt's KV cache,
so each episode's transcript runs through the model about once (`shared_prefix_plan`).
Scoring an utterance under the current weights (`Policy.logprobs`) runs one forward pass over
``prompt + action`` rows that are **left-padded** with explicit position ids (the count of real
tokens before each position), so a padded row computes exactly what it would alone; ArCHer's
right padding put pads mid-sequence and shifted GPT-2's positions.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from feedbackgym.agents.lm import Generation, LMAgent, LMOptions, dequantized, quiet_loading
from feedbackgym.agents.models import locate


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
    tokens ``(n, A, d)`` and at the prompt's last token ``(n, d)`` (for a value head).

    **Packed**: a row whose ``prompt + action`` is a prefix of another row's (an earlier turn of
    the same episode, whose transcript the later prompt extends) is read off that row's forward
    pass: a causal LM's outputs at a position depend only on the tokens up to it, so the model
    runs once per chain of turns, not once per turn (`packing_plan`). The values are those of a
    pass per row up to float rounding (matrix shapes differ); rows that share no prefix run as
    before, in their order."""
    device = next(model.parameters()).device
    width_a = max(1, max(len(a) for a in actions))
    seqs = [list(p) + list(a) for p, a in zip(prompts, actions)]
    roots, root_of = packing_plan(seqs)
    ids, mask, pos = left_pad([seqs[r] for r in roots], pad_id)
    ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
    width = ids.shape[1]
    slot = {r: k for k, r in enumerate(roots)}
    # row i's action token j sits at column (pad of its root) + len(prompt) + j of its root's row;
    # it is predicted at the column before. Columns of a row's unused (left) action slots repeat
    # its first predicting column and are masked out.
    row_idx = torch.tensor([slot[root_of[i]] for i in range(len(seqs))], device=device)
    starts = [width - len(seqs[root_of[i]]) + len(prompts[i]) - 1 for i in range(len(seqs))]
    cols = torch.tensor([[max(0, s + max(0, j - (width_a - len(a)))) for j in range(width_a)] for s, a in zip(starts, actions)], device=device)
    keep = width - min(min(starts), width - width_a - 1)
    extra = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=hidden, **extra)
    logits = out.logits[:, -keep:] if out.logits.shape[1] > keep else out.logits
    picked = logits[row_idx[:, None], cols - (width - logits.shape[1])].float()
    targets = ids[row_idx[:, None], (cols + 1).clamp(max=width - 1)]
    logp = torch.log_softmax(picked, -1).gather(-1, targets[..., None]).squeeze(-1)
    amask = torch.zeros_like(logp)
    for i, a in enumerate(actions):
        if len(a):
            amask[i, width_a - len(a) :] = 1.0
    logp = logp * amask
    if not hidden:
        return logp, amask
    h = out.hidden_states[-1]
    return logp, amask, h[row_idx[:, None], cols], h[row_idx, torch.tensor(starts, device=device)]


def packing_plan(seqs: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """``(roots, root_of)``: the rows to run (no strict prefix of another row; in their order) and,
    for each row, the root whose sequence starts with its own (itself for a root)."""
    plan = shared_prefix_plan(seqs, batch_tokens=2**62, max_rows=2**62)
    roots = sorted(r for batch, _ in plan for r in batch)
    root_of = list(range(len(seqs)))
    for _, followers in plan:
        for i, r in followers.items():
            root_of[i] = r
    return roots, root_of


class Policy:
    """An LM actor that a learner trains: sample utterances, score them with grad."""

    #: most prompt tokens (rows x longest prompt) in one batched call of unkeyed sampling
    batch_tokens = 16384
    #: unkeyed sampling in `shared_prefix_plan`'s batches (False: one `generate_text` call, as
    #: before it existed; benchmarks/archer_cost.py compares the two)
    share_prefixes = True

    def __init__(self, model, tokenizer, max_new_tokens: int = 24, temperature: float = 1.0, name: str = "lm"):
        # top_p 1: a learner's samples come from the distribution its log-probs are computed under
        options = LMOptions(max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0, device=str(next(model.parameters()).device))
        self.agent = LMAgent(model, tokenizer, options, name=name)
        self.peft = None
        self.model, self.tokenizer = model, tokenizer
        self.model.eval()  # no dropout: sampled and scored log-probs are the same function
        self.pad_id = self.agent.pad_id

    @classmethod
    def load(cls, name: str | Path, lora: int = 0, seed: int = 0, device: str = "cpu", **kw) -> Policy:
        """A private copy (not the cache `lm:` agents share) of ``lm:NAME``'s model: a folder
        written by save_pretrained, or anything `agents.models.locate` finds (``smollm2``, a GGUF
        file: read through its dequantized copy, a hub name in the local cache), on ``device``
        (``cpu``, ``cuda``, ``cuda:1``). ``lora`` > 0
        adds LoRA adapters of that rank (`add_lora`, initialised from ``seed``) and trains only them."""
        where = locate(str(name))
        path = str(dequantized(Path(where.path) / where.gguf_file)) if where.gguf_file else where.path
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        policy = cls(model, tok, name=f"lm:{name}", **kw)
        if lora:
            policy.add_lora(lora, seed)  # on the CPU: the same initial adapters on every device
        return policy.to(device)

    def to(self, device: str | torch.device) -> Policy:
        """Move the model (and its adapters) to ``device``; sampling and scoring then run there."""
        self.model.to(device)
        self.agent = LMAgent(self.model, self.tokenizer, replace(self.agent.options, device=str(device)), name=self.agent.name)
        return self

    def add_lora(self, rank: int, seed: int) -> None:
        """Wrap the model in peft LoRA adapters of rank ``rank`` (alpha 2 x rank, no dropout: sampled
        and scored log-probs stay one function; peft's default modules for the model type, e.g.
        GPT-2's c_attn, Llama's q_proj and v_proj) and freeze everything else. ``self.model`` stays
        the transformers model (the adapters sit inside it), whose ``state_dict`` then holds only
        what trains and whose ``load_state_dict`` expects only that: a checkpoint stores the
        adapters, the base weights are read from ``lm:NAME`` again on resume."""
        from peft import LoraConfig, get_peft_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            conv1d = self.model.config.model_type == "gpt2"  # GPT-2's projections store weights transposed
            self.peft = get_peft_model(self.model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, fan_in_fan_out=conv1d))
        self.model = self.peft.get_base_model().eval()
        self.model.register_state_dict_post_hook(_drop_frozen)
        self.model.register_load_state_dict_post_hook(_frozen_not_missing)
        self.agent = LMAgent(self.model, self.tokenizer, self.agent.options, name=self.agent.name)

    def prompt(self, view) -> str:
        return self.agent.prompt(view)

    def encode(self, prompt: str) -> list[int]:
        return self.agent.encode(prompt)

    def sample(self, prompts: Sequence[str], seeds: Sequence[int], keys: Sequence | None = None, temperature: float | None = None) -> list[Generation]:
        """One utterance per prompt, row i drawn with ``seeds[i]`` (reproducible: a row's draw
        depends on its prompt and seed only). With ``keys`` (conversations, as in a rollout), one
        batched call that keeps their KV caches; without, `shared_prefix_plan`'s batches."""
        agent = self.agent
        if temperature is not None and temperature != agent.options.temperature:
            agent = LMAgent(self.model, self.tokenizer, LMOptions(**{**_opts(agent.options), "temperature": temperature}), agent.name)
        seeds = [int(s) for s in seeds]
        if keys is not None or len(prompts) < 2 or not self.share_prefixes:
            return agent.generate_text(list(prompts), seeds, keys)
        out: list[Generation | None] = [None] * len(prompts)
        ids = agent.encode_all(list(prompts))
        for roots, followers in shared_prefix_plan(ids, self.batch_tokens, max(1, agent.options.prompt_cache)):
            # roots first, each keyed by its own row; then the rows whose prompt is a prefix of a
            # root, keyed by that root: they feed only their last token (LMAgent's prompt cache)
            for rows, key_of in ((roots, {r: r for r in roots}), (followers, dict(followers))):
                rows = list(rows)
                if rows:
                    gens = agent.generate_text([prompts[i] for i in rows], [seeds[i] for i in rows], [("prefix", key_of[i]) for i in rows])
                    for i, g in zip(rows, gens):
                        out[i] = g
            agent.forget()  # the roots' caches: not a conversation's, and stale after any update
        return out

    def forget(self) -> None:
        """Drop the prompt KV cache: after a weight update its entries are stale."""
        self.agent.forget()

    def logprobs(self, prompts: Sequence[str], token_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs (with grad) of ``token_ids`` after each prompt: ``(logp, mask)``."""
        return token_logprobs(self.model, [self.encode(p) for p in prompts], token_ids, self.pad_id)

    def save(self, path: str | Path) -> None:
        """The model as save_pretrained writes it (LoRA adapters merged into the weights), so that
        ``lm:PATH`` plays any seat."""
        model = self.model
        if self.peft is not None:
            model = copy.deepcopy(self.peft).merge_and_unload().requires_grad_(True)
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


def _drop_frozen(module, state, prefix, local_metadata) -> None:
    """State-dict hook: leave out the parameters that do not train (a LoRA model's base weights)."""
    for name, p in module.named_parameters(remove_duplicate=False):  # tied weights under each name
        if not p.requires_grad:
            state.pop(prefix + name, None)


def _frozen_not_missing(module, incompatible) -> None:
    """Load hook: a state without the frozen parameters is complete (they keep their loaded values)."""
    frozen = {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if k not in frozen]


def shared_prefix_plan(ids: Sequence[Sequence[int]], batch_tokens: int, max_rows: int = 256) -> list[tuple[list[int], dict[int, int]]]:
    """Batches for sampling many prompts (token ids) at once: ``[(roots, followers)]``. A root is a
    row whose prompt is no strict prefix of another row's, one per distinct prompt (the first
    row that has it); roots are sorted by length and cut into batches of at most ``max_rows``
    rows and ``batch_tokens`` tokens (rows x the longest prompt). ``followers`` maps each other
    row to a root of the same batch whose prompt starts with its own: the longest of its chain
    (an episode's latest drawn turn), or the root of an equal prompt (CHAI's and GRPO's k draws
    of one state run its prompt through the model once).

    Sorted, a prompt that is a prefix of others comes right before them, so each distinct
    prompt's chain is its run of neighbours that each extend the one before."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(ids):
        groups.setdefault(tuple(row), []).append(i)
    uniq = sorted(groups)
    longer = {a: b for a, b in zip(uniq, uniq[1:]) if len(b) > len(a) and b[: len(a)] == a}
    end: dict[tuple[int, ...], tuple[int, ...]] = {}
    for u in reversed(uniq):
        end[u] = end[longer[u]] if u in longer else u
    roots = sorted((groups[u][0] for u in uniq if end[u] == u), key=lambda i: (len(ids[i]), i))
    batches: list[list[int]] = [[]]
    for r in roots:
        if batches[-1] and (len(batches[-1]) >= max_rows or (len(batches[-1]) + 1) * len(ids[r]) > batch_tokens):
            batches.append([])
        batches[-1].append(r)
    where = {r: k for k, batch in enumerate(batches) for r in batch}
    plan: list[tuple[list[int], dict[int, int]]] = [(batch, {}) for batch in batches]
    for u in uniq:
        root = groups[end[u]][0]
        for i in groups[u]:
            if i != root:
                plan[where[root]][1][i] = root
    return plan


def _opts(o: LMOptions) -> dict:
    from dataclasses import asdict

    return asdict(o)
