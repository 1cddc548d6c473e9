"""Language-model agents: any Hugging Face causal LM in any seat (``lm:PATH``).

    roles:
      actor: {agent: "lm:models/actor", params: {temperature: 0.7, max_new_tokens: 24}}

``PATH`` is an embedded model (``lm:smollm2``), a GGUF file or a folder holding one, a folder
written by ``save_pretrained`` or a hub name already in the local Hugging Face cache
(`feedbackgym.agents.models`); nothing is ever downloaded (``local_files_only=True``). The prompt is built from the
role's view: the tokenizer's chat template when it has one, otherwise a plain transcript
(``Task: ...``, what only this role knows, one ``role: text`` line per message, then ``role:``).

Generation is batched over views: prompts are left-padded with their attention mask and explicit
position ids, decoded token by token with the KV cache, and cut at the first stop string (a
newline by default); each conversation keeps its KV cache for its next turn, which then feeds
only its new tokens. Sampling is seeded per row: each view's generator draws one seed for a
``torch.Generator``, so an episode's text depends only on its own seed, not on which other
episodes share the batch, and LM episodes replay exactly on CPU.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.utils import logging as hf_logging

from feedbackgym.agents.models import RECOMMENDED_SAMPLING, gguf_cache, locate
from feedbackgym.agents.prompts import Generation, SeatOptions, chat_messages, cut_at_stop, plain_prompt, view_chat, view_plain
from feedbackgym.encoders import default_device

__all__ = ["Generation", "LMAgent", "LMOptions", "chat_messages", "plain_prompt"]


@dataclass(frozen=True)
class LMOptions(SeatOptions):
    what = "LM"
    max_new_tokens: int = 32
    """most tokens generated per utterance"""
    temperature: float | None = None
    """sampling temperature; 0 decodes greedily (default: the model's own generation config where
    it has one of its own, greedy when that says ``do_sample: false``; else 1)"""
    top_p: float | None = None
    """nucleus sampling: draw from the most likely tokens holding this much probability (default:
    the model's generation config, else 1)"""
    stop: tuple[str, ...] = ("\n",)
    """the utterance ends at the first of these strings (which is not part of it)"""
    max_prompt_tokens: int | None = None
    """prompts are cut from the left to this many tokens (default: the context minus max_new_tokens)"""
    chat_template: bool = True
    """use the tokenizer's chat template when it has one"""
    device: str | None = None
    """torch device (default: cuda when present, else cpu)"""
    prompt_cache: int = 256
    """conversations whose prompt KV cache is kept for their next turn (0: recompute every prompt)"""
    temperature_step: float | None = None
    """Feedback Friction's mitigation: the temperature is this much times the turns the role has
    already taken (0.15 in the paper; greedy on the first), instead of ``temperature``"""
    max_temperature: float = 1.5
    """the cap of that schedule"""

    def temperature_for(self, turns_taken: int) -> float:
        if self.temperature_step is None:
            return self.temperature
        return min(self.temperature_step * turns_taken, self.max_temperature)

    def __post_init__(self):
        super().__post_init__()
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


def load(name: str, device: str):
    """Model and tokenizer for ``lm:NAME`` (`feedbackgym.agents.models.locate`), offline, shared by
    every agent that loads the same files (read-only: a learner that updates weights loads its own
    copy). A GGUF file is read through its dequantized safetensors copy, made on first use."""
    where = locate(name)
    path = str(dequantized(Path(where.path) / where.gguf_file)) if where.gguf_file else where.path
    folder = Path(path)
    stamp = tuple(sorted((f.name, f.stat().st_mtime_ns) for f in folder.iterdir())) if folder.is_dir() else None
    return _load(path, device, stamp)


@lru_cache(maxsize=4)
def _load(path: str, device: str, stamp: tuple | None):
    """``load``, once per path, device and version of the folder's files (``stamp``)."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype).to(device).eval()
    return model, tokenizer


@contextmanager
def quiet_loading():
    """transformers' per-tensor progress bars off while a seat's model loads (they would fill
    the CLI's stderr on every load), as they were after."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def dequantized(gguf: Path) -> Path:
    """The safetensors copy of a GGUF file's weights (``models.gguf_cache``), made on first use:
    transformers dequantizes the file to float32 (tens of seconds) and will not save a model it
    loaded from GGUF, so its weights are copied into a fresh model of the same config, which is
    saved with the tokenizer and generation config. Built in a temporary folder and renamed into
    place, so a crash or a concurrent first load never leaves a half-written cache."""
    target = gguf_cache(gguf)
    if (target / "config.json").is_file():
        return target
    if target.exists():  # not made by the rename below (a copy is renamed into place whole): stale
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder, name = str(gguf.parent), gguf.name
    print(f"feedbackgym: dequantizing {gguf} once (about 25 s for a 135M model); the copy goes to {target}", file=sys.stderr)
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True, dtype=torch.float32)
    config = quantized.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    recommended = RECOMMENDED_SAMPLING.get(name)
    if recommended:
        plain.generation_config.update(**recommended)
    plain.generation_config._from_model_config = not recommended  # only then LMOptions' defaults come from it
    tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-")
    try:
        with quiet_loading():
            plain.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        (Path(tmp) / "source.txt").write_text(f"dequantized from {gguf.resolve()}\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: its copy is the same
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left once renamed; a failed copy's remains otherwise
    return target


#: torch's thread count when this module was imported: a different one later was set by the user
_DEFAULT_THREADS = torch.get_num_threads()
_settled: int | None = None  # what settle_threads set last
#: below this many parameters a forward pass is mostly per-operator overhead, which more threads only add to
SMALL_MODEL = 50_000_000


def settle_threads(n_params: int) -> None:
    """Torch threads set when an LM seat is made, unless the user chose (``OMP_NUM_THREADS``, or
    ``torch.set_num_threads`` before): one for a small model, else no more than the cores this
    process may run on (torch counts the machine's, which oversubscribes a container)."""
    global _settled
    if os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads() not in (_DEFAULT_THREADS, _settled):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _settled = 1 if n_params < SMALL_MODEL else max(1, min(_DEFAULT_THREADS, cores))
    torch.set_num_threads(_settled)


def with_model_defaults(options: LMOptions, generation_config) -> LMOptions:
    """``options`` with the sampling settings it leaves unset taken from the model's own generation
    config (one saved with the model, not one transformers derived from its config), else 1."""
    own = generation_config is not None and not getattr(generation_config, "_from_model_config", True)
    temperature, top_p = options.temperature, options.top_p
    if temperature is None:
        temperature = 1.0
        if own:
            temperature = float(generation_config.temperature or 1.0) if generation_config.do_sample else 0.0
    if top_p is None:
        top_p = float(generation_config.top_p or 1.0) if own and generation_config.do_sample else 1.0
    return replace(options, temperature=temperature, top_p=top_p)


class LMAgent:
    """A causal LM in any role; ``generate`` also returns token ids and log-probs."""

    #: decode into a KV cache with room reserved ahead (`ReservedLayer`); False: transformers'
    #: `DynamicLayer`, which concatenates at every token (benchmarks/decode_cost.py compares them)
    reserve_cache = True

    def __init__(self, model, tokenizer, options: LMOptions = LMOptions(), name: str = "lm"):
        options = with_model_defaults(options, getattr(model, "generation_config", None))
        settle_threads(sum(p.numel() for p in model.parameters()))
        self.model, self.tokenizer, self.options = model, tokenizer, options
        self.name = name
        #: recorded as the messages' ``source`` label when the agent plays a seat
        self.source = name
        self.device = next(model.parameters()).device
        config = model.config
        context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 2048
        if options.max_new_tokens >= context:
            raise ValueError(
                f"max_new_tokens={options.max_new_tokens} does not fit {name}'s context of {context} tokens "
                f"(at most {context - 1}, leaving room for a prompt)"
            )
        self.max_prompt_tokens = options.max_prompt_tokens or context - options.max_new_tokens
        #: prompts are cut to this many characters before tokenizing (then to max_prompt_tokens):
        #: 16 characters a token is more than any English text takes, so the cut never bites first
        self.max_prompt_chars = 16 * self.max_prompt_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        self.eos_id = tokenizer.eos_token_id
        self.use_chat = options.chat_template and bool(getattr(tokenizer, "chat_template", None))
        self._last_logits_only = "logits_to_keep" in inspect.signature(model.forward).parameters
        #: conversation key -> (its token ids, their KV: layers x (key, value) x heads x tokens x
        #: head_dim): a later turn only feeds its new tokens
        self._kv: OrderedDict[int, tuple[list[int], torch.Tensor]] = OrderedDict()

    @classmethod
    def from_pretrained(cls, path: str, **options) -> LMAgent:
        opts = LMOptions.from_params(options)
        model, tokenizer = load(str(path), opts.device or default_device())
        return cls(model, tokenizer, opts, name=f"lm:{path}")

    def __repr__(self) -> str:
        return f"LMAgent({self.name!r})"

    def forget(self) -> None:
        """Drop every conversation's KV cache (after the model's weights change, its entries are stale)."""
        self._kv.clear()

    # ------------------------------------------------------------------ prompts
    def prompt(self, view) -> str:
        """The prompt text of ``view``, read from no more of the log than can fit the context
        (``max_prompt_chars``): its cost does not grow with the episode."""
        if self.use_chat:
            chat = view_chat(view, self.max_prompt_chars)
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return view_plain(view, self.max_prompt_chars)

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a prompt, cut from the left to ``max_prompt_tokens``."""
        return self.encode_all([prompt])[0]

    def encode_all(self, prompts: Sequence[str]) -> list[list[int]]:
        """`encode` for many prompts in one call of the tokenizer."""
        ids = self.tokenizer(list(prompts), add_special_tokens=not self.use_chat)["input_ids"]
        return [row[-self.max_prompt_tokens :] for row in ids]

    # ------------------------------------------------------------------ acting
    def act(self, view) -> str:
        return self.generate([view])[0].text

    def act_batch(self, views: Sequence) -> list[str]:
        return [g.text for g in self.generate(views)]

    def generate(self, views: Sequence) -> list[Generation]:
        """One utterance per view, in one batch; each row seeded from its view's generator."""
        prompts = [self.prompt(v) for v in views]
        seeds = [int(v.rng.integers(2**63)) for v in views]
        temperatures = [self.options.temperature_for(sum(1 for r, _, _ in v.messages if r == v.role)) for v in views]
        # a view's generator is its (episode, role)'s own object: the key of its conversation
        return self.generate_text(prompts, seeds, keys=[id(v.rng) for v in views], temperatures=temperatures)

    def generate_text(
        self, prompts: Sequence[str], seeds: Sequence[int], keys: Sequence[int] | None = None,
        temperatures: Sequence[float] | None = None,
    ) -> list[Generation]:
        """One utterance per prompt; row i samples from a ``torch.Generator`` seeded with
        ``seeds[i]`` at ``temperatures[i]`` (default: the options'); ``keys[i]`` names its
        conversation, whose KV cache is kept for its next turn."""
        if not prompts:
            return []
        tokens, logprobs = self._decode(self.encode_all(prompts), seeds, keys or [None] * len(prompts), temperatures)
        return [Generation(self._text(ids), ids, lps, p) for p, ids, lps in zip(prompts, tokens, logprobs)]

    def _text(self, ids: list[int]) -> str:
        return cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), self.options.stop)

    def _stopped(self, ids: list[int]) -> bool:
        if ids[-1] == self.eos_id:
            return True
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return any(s in text for s in self.options.stop)

    # ------------------------------------------------------------------ decoding
    def _reusable(self, key, ids: list[int]) -> tuple[int, torch.Tensor | None]:
        """How much of ``ids`` this conversation's cache already holds: (that many tokens, their
        KV). A token prefix's KV does not depend on what follows, so any stored prefix that
        agrees is valid; at least the last token is always fed again, for its logits."""
        entry = self._kv.get(key) if key is not None else None
        if entry is None:
            return 0, None
        self._kv.move_to_end(key)
        c = min(common_prefix(entry[0], ids), len(ids) - 1)
        return (c, entry[1][:, :, :, :c]) if c else (0, None)

    @torch.inference_mode()
    def _decode(
        self, prompts: list[list[int]], seeds: Sequence[int], keys: Sequence, temperatures: Sequence[float] | None = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Batched decoding. Row i's layout is [pad][cached prefix][pad][new prompt tokens], then
        the generated tokens: pads are masked out and positions count only real tokens, so every
        row computes what it would alone."""
        opts, n, dev = self.options, len(prompts), self.device
        reuse = [self._reusable(k, p) for k, p in zip(keys, prompts)]
        fresh = [p[c:] for p, (c, _) in zip(prompts, reuse)]
        width_c, width_m = max(c for c, _ in reuse), max(len(f) for f in fresh)
        ids = torch.full((n, width_m), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width_c + width_m), dtype=torch.long)
        positions = torch.zeros((n, width_m), dtype=torch.long)
        for i, ((c, _), f) in enumerate(zip(reuse, fresh)):
            ids[i, width_m - len(f) :] = torch.tensor(f)
            mask[i, width_c - c : width_c] = 1
            mask[i, width_c + width_m - len(f) :] = 1
            positions[i, width_m - len(f) :] = torch.arange(c, c + len(f))
        room = width_m + opts.max_new_tokens  # positions this call adds to the cache at most
        past = self._batch_cache(reuse, width_c, room) if width_c else None
        # One uniform draw per row and token, from the row's own generator: row i's sample does
        # not depend on the other rows of the batch.
        uniforms = torch.stack(
            [torch.rand(opts.max_new_tokens, generator=torch.Generator().manual_seed(s % 2**63)) for s in seeds]
        ).to(dev)
        ids, mask, positions = ids.to(dev), mask.to(dev), positions.to(dev)
        temperature = opts.temperature if temperatures is None else torch.tensor(temperatures, device=dev)
        extra = {"logits_to_keep": 1} if self._last_logits_only else {}
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=past, use_cache=True, **extra
        )
        if past is None and self.reserve_cache and _plain_cache(out.cache):  # decode into reserved room
            out.cache.layers = [ReservedLayer.around(la.keys, la.values, opts.max_new_tokens) for la in out.cache.layers]
        tokens: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        live, fed = list(range(n)), 0  # fed: decoding steps whose tokens went into the cache
        for t in range(opts.max_new_tokens):
            logits = out.logits[:, -1, :].float()
            chosen = sample(logits, temperature, opts.top_p, uniforms[:, t])
            chosen_lp = torch.log_softmax(logits, -1).gather(-1, chosen[:, None]).squeeze(-1)
            chosen_list, lp_list = chosen.tolist(), chosen_lp.tolist()
            for i in live:
                tokens[i].append(chosen_list[i])
                logprobs[i].append(lp_list[i])
            live = [i for i in live if not self._stopped(tokens[i])]
            if not live or t == opts.max_new_tokens - 1:
                break
            fed = t + 1
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=dev)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=positions,
                cache=out.cache,
                use_cache=True,
            )
        self._keep(keys, prompts, tokens, reuse, fresh, out.cache, width_c, width_m, fed)
        return tokens, logprobs

    def _batch_cache(self, reuse: list[tuple[int, torch.Tensor | None]], width: int, room: int) -> DynamicCache:
        """The rows' cached prefixes as one left-padded cache ``width`` positions long, with
        ``room`` more reserved."""
        kv0 = next(kv for _, kv in reuse if kv is not None)  # (layers, 2, heads, length, head_dim)
        layers, _, heads, _, dim = kv0.shape
        buf = kv0.new_zeros((layers, 2, len(reuse), heads, width + room, dim))
        for i, (c, kv) in enumerate(reuse):
            if c:
                buf[:, :, i, :, width - c : width] = kv
        if not self.reserve_cache:
            return DynamicCache(ddp_cache_data=[(buf[layer, 0, ..., :width, :], buf[layer, 1, ..., :width, :]) for layer in range(layers)])
        cache = DynamicCache()
        cache.layers = [ReservedLayer(buf[layer, 0], buf[layer, 1], width) for layer in range(layers)]
        return cache

    def _keep(self, keys, prompts, tokens, reuse, fresh, cache, width_c: int, width_m: int, fed: int) -> None:
        """Store each keyed row's KV, real positions only: its prompt and the generated tokens that
        were fed back, for the conversation's next turn (whose prompt starts with them)."""
        if not self.options.prompt_cache or not _plain_cache(cache) or all(k is None for k in keys):
            return
        end = width_c + width_m
        for i, key in enumerate(keys):
            if key is None:
                continue
            (c, _), f, g = reuse[i], len(fresh[i]), min(len(tokens[i]), fed)
            real = torch.cat([torch.arange(width_c - c, width_c), torch.arange(end - f, end + g)]).to(self.device)
            row = torch.stack([torch.stack([la.keys[i], la.values[i]]).index_select(2, real) for la in cache.layers])
            self._kv[key] = (prompts[i] + tokens[i][:g], row)
            self._kv.move_to_end(key)
        while len(self._kv) > self.options.prompt_cache:
            self._kv.popitem(last=False)


def _plain_cache(cache) -> bool:
    """A cache of full-attention layers, whose rows can be cut out and padded back together
    (sliding-window, hybrid and recurrent caches cannot)."""
    return isinstance(cache, DynamicCache) and all(type(layer) in (DynamicLayer, ReservedLayer) for layer in cache.layers)


class ReservedLayer(DynamicLayer):
    """A full-attention cache layer that writes new positions into room reserved ahead instead
    of concatenating them (`DynamicLayer` copies the whole cache at every decoded token; for a
    small model that copying, not the arithmetic, was most of a batch's decoding time).
    ``keys``/``values`` are views of the filled part of the ``(batch, heads, capacity, head_dim)``
    buffers; out of room, it grows as `DynamicLayer` would. `DynamicLayer`'s other methods (crop,
    reset, reindexing) replace ``keys``/``values``; the next update then starts from those."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._buf, self._n = (keys, values), length
        self.keys, self.values = keys[..., :length, :], values[..., :length, :]

    @classmethod
    def around(cls, keys: torch.Tensor, values: torch.Tensor, room: int) -> ReservedLayer:
        """A layer holding ``keys``/``values`` (copied once) with ``room`` positions to spare."""
        b, h, t, d = keys.shape
        buf = keys.new_empty((2, b, h, t + room, d))
        buf[0, :, :, :t], buf[1, :, :, :t] = keys, values
        return cls(buf[0], buf[1], t)

    def _take(self, other: ReservedLayer) -> None:
        self._buf, self._n, self.keys, self.values = other._buf, other._n, other.keys, other.values
        self.device, self.is_initialized = other.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[-2]
        if self.keys is None or not self.is_initialized:  # reset: start from these positions
            self._take(ReservedLayer.around(key_states[..., :0, :], value_states[..., :0, :], 2 * new))
        elif self.keys.shape[-2] != self._n or self.keys.data_ptr() != self._buf[0].data_ptr():  # cropped or reindexed
            self._take(ReservedLayer.around(self.keys, self.values, 2 * new))
        n = self._n
        if n + new > self._buf[0].shape[-2]:
            self._take(ReservedLayer.around(self.keys, self.values, max(new, n)))
        k, v = self._buf
        k[..., n : n + new, :], v[..., n : n + new, :] = key_states, value_states
        self._n = n + new
        self.keys, self.values = k[..., : self._n, :], v[..., : self._n, :]
        return self.keys, self.values


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def sample(logits: torch.Tensor, temperature: float | torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """A token per row: the argmax when ``temperature`` is 0, else the inverse-CDF draw of
    ``uniforms`` (one per row) from the temperature-scaled, top-p-truncated distribution.
    ``temperature`` may be one per row (a tensor); rows at 0 are greedy."""
    if not isinstance(temperature, torch.Tensor):
        if temperature == 0:
            return logits.argmax(-1)
        return _draw(logits / temperature, top_p, uniforms)
    greedy = temperature == 0
    drawn = _draw(logits / torch.where(greedy, 1.0, temperature)[:, None].to(logits.dtype), top_p, uniforms)
    return torch.where(greedy, logits.argmax(-1), drawn)


#: how many of the most likely tokens top-p sampling sorts before it looks at the whole vocabulary
NUCLEUS_K = 256


def _draw(scaled: torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws of ``uniforms`` from softmax(``scaled``), top-p truncated."""
    probs = torch.softmax(scaled, -1)
    order = None
    if top_p < 1:
        # The nucleus is usually a handful of tokens: sort only the top NUCLEUS_K (a full sort of a
        # 49k vocabulary per row and token was most of the time outside the model), and the whole
        # vocabulary only when some row's nucleus is larger. Same draws either way (the tokens
        # past the nucleus get probability 0).
        k = min(NUCLEUS_K, probs.shape[-1])
        top, order = probs.topk(k, -1)
        if k < probs.shape[-1] and bool((top.sum(-1) < top_p).any()):
            top, order = probs.sort(-1, descending=True)
        probs = top * ((top.cumsum(-1) - top) < top_p)  # the nucleus (at least one token)
    cdf = probs.cumsum(-1)
    k = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
    return (k if order is None else order.gather(-1, k)).squeeze(-1)
