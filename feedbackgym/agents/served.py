"""Served models in any seat: any OpenAI-compatible server (vLLM, llama.cpp's server, `transformers
serve`, a hosted API) through the official ``openai`` client (``openai:MODEL``).

    roles:
      judge: {agent: "openai:Qwen/Qwen2.5-7B-Instruct", params: {base_url: "http://127.0.0.1:8000/v1", temperature: 0}}

The prompt is `feedbackgym.agents.prompts.view_chat`: the same chat messages an embedded LM is
shown through its chat template. ``generate(views)`` sends one chat-completion request per view,
``concurrency`` at a time, and returns the `Generation`s in view order. Sampling seeds are drawn
from each view's generator in the calling thread, in view order, before any request is sent, so
an episode's requests depend only on its own seed (whether the server then honours ``seed`` is
the server's business). A request that still fails after the client's retries raises
`ServedError`: no move is made from a failed request.

``openai`` is imported only when an agent is built: `ServedError` and `ServedOptions` need no extra.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from feedbackgym.agents.prompts import Generation, SeatOptions, cut_at_stop, view_chat
from feedbackgym.core import Utterance

__all__ = ["ServedAgent", "ServedError", "ServedOptions", "check_model"]

#: HTTP statuses the ``openai`` client retries (with backoff): what `ServedError` counts as retried
RETRIED_STATUSES = frozenset({408, 409, 429})


class ServedError(RuntimeError):
    """A request to a served model that still failed after its retries; the message (one line)
    names the model, the base URL, the attempts and the underlying error."""

    def __init__(self, model: str, base_url: str, attempts: int, cause: BaseException | str):
        self.model, self.base_url, self.attempts = model, base_url, attempts
        detail = str(cause)
        root = cause
        while isinstance(root, BaseException) and (root.__cause__ or root.__context__) is not None:
            root = root.__cause__ or root.__context__  # the client's "Connection error." hides why
        if root is not cause and str(root) and str(root) not in detail:
            detail += f" ({type(root).__name__}: {root})"
        detail = " ".join(detail.split()) or type(cause).__name__  # one line
        kind = type(cause).__name__ if isinstance(cause, BaseException) else "bad response"
        super().__init__(
            f"served model openai:{model} at {base_url} failed after {attempts} attempt{'s' * (attempts != 1)}: {kind}: {detail}"
        )


@dataclass(frozen=True)
class ServedOptions(SeatOptions):
    what = "served-model"
    base_url: str | None = None
    """the server's OpenAI base URL (``http://HOST:PORT/v1``); default: env ``OPENAI_BASE_URL``"""
    api_key_env: str = "OPENAI_API_KEY"
    """the name of the environment variable that holds the API key (unset: ``EMPTY`` is sent,
    which a local server accepts)"""
    temperature: float | None = None
    """sampling temperature (None: not sent, the server's default)"""
    top_p: float | None = None
    """nucleus sampling (None: not sent)"""
    max_tokens: int | None = 32
    """most tokens per utterance (None: not sent, the server's default)"""
    seed: int | str | None = "auto"
    """``auto``: one draw per request from the view's generator; an int: sent as is; None: not sent"""
    stop: tuple[str, ...] = ("\n",)
    """the utterance ends at the first of these strings (sent to the server, and cut here too)"""
    logprobs: bool = True
    """ask for the generated tokens' log-probs (a server that gives none leaves them empty)"""
    timeout: float = 60.0
    """seconds per request attempt"""
    max_retries: int = 2
    """the client's retries (with backoff) of a failed connection, a timeout, 408, 409, 429 and 5xx"""
    concurrency: int = 8
    """requests in flight at once for one `generate` call"""

    def __post_init__(self):
        super().__post_init__()
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if isinstance(self.seed, bool) or not (self.seed is None or self.seed == "auto" or isinstance(self.seed, int)):
            raise ValueError(f"seed must be 'auto', an int or null, got {self.seed!r}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")


def check_model(name: str) -> str | None:
    """None if ``openai:NAME`` names a model (and the client is installed), else what was expected."""
    if not name:
        return "openai:MODEL naming a model the OpenAI-compatible server serves"
    try:
        import openai  # noqa: F401
    except ImportError as e:
        return f"the openai client for openai:MODEL agents (pip install 'feedbackgym[lm]'; {e})"
    return None


class ServedAgent:
    """A model behind an OpenAI-compatible server in any role; ``generate`` also returns the
    log-probs the server gives, the prompt (the chat as JSON) and the usage (tokens, latency)."""

    def __init__(self, model: str, options: ServedOptions = ServedOptions()):
        import openai

        base_url = options.base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ValueError(
                f"openai:{model}: no server to ask: give the seat's params a base_url "
                "(e.g. http://127.0.0.1:8000/v1) or set OPENAI_BASE_URL"
            )
        self.model, self.options, self.base_url = model, options, base_url.rstrip("/")
        self.name = f"openai:{model}"
        #: recorded as the messages' ``source`` label when the agent plays a seat
        self.source = self.name
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(options.api_key_env) or "EMPTY",
            timeout=options.timeout,
            max_retries=options.max_retries,
        )
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_params(cls, model: str, **params) -> ServedAgent:
        return cls(model, ServedOptions.from_params(params))

    def __repr__(self) -> str:
        return f"ServedAgent({self.name!r} at {self.base_url!r})"

    def close(self) -> None:
        """Stop the request threads and close the client's connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()

    # ------------------------------------------------------------------ acting
    def prompt(self, view) -> str:
        """What the model is conditioned on at ``view``: its chat messages as JSON text."""
        return json.dumps(view_chat(view), ensure_ascii=False)

    def act(self, view) -> Utterance:
        """The reply to ``view``, with what the request cost (the engine records it beside the log)."""
        return self.act_batch([view])[0]

    def act_batch(self, views: Sequence) -> list[Utterance]:
        return [Utterance(g.text, usage=g.usage) for g in self.generate(views)]

    def seeds(self, views: Sequence) -> list[int | None]:
        """The seed of each view's request: one draw from the view's generator each (``auto``),
        in view order, or the options' fixed seed, or None (not sent)."""
        seed = self.options.seed
        if seed == "auto":
            return [int(v.rng.integers(2**31)) for v in views]
        return [seed] * len(views)

    def generate(self, views: Sequence) -> list[Generation]:
        """One request per view, ``concurrency`` in flight; the Generations in view order. The
        first request that fails raises `ServedError` (requests not yet sent are not sent)."""
        if not views:
            return []
        chats = [view_chat(v) for v in views]
        seeds = self.seeds(views)  # here, in view order, before any request: determinism
        if len(views) == 1:
            return [self._request(chats[0], seeds[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix=f"served-{self.model}")
        futures = [self._pool.submit(self._request, c, s) for c, s in zip(chats, seeds)]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def _request(self, chat: list[dict], seed: int | None) -> Generation:
        import openai

        o = self.options
        body: dict[str, Any] = {"model": self.model, "messages": chat}
        for key in ("temperature", "top_p", "max_tokens"):
            if getattr(o, key) is not None:
                body[key] = getattr(o, key)
        if seed is not None:
            body["seed"] = seed
        if o.stop:
            body["stop"] = list(o.stop)
        if o.logprobs:
            body["logprobs"] = True
        t0 = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**body)
        except openai.APIStatusError as e:
            retried = e.status_code in RETRIED_STATUSES or e.status_code >= 500
            raise ServedError(self.model, self.base_url, 1 + o.max_retries * retried, e) from e
        except openai.APIConnectionError as e:  # refused, reset, timed out: the client retried it
            raise ServedError(self.model, self.base_url, 1 + o.max_retries, e) from e
        except openai.OpenAIError as e:
            raise ServedError(self.model, self.base_url, 1, e) from e
        latency = time.perf_counter() - t0
        choices = getattr(response, "choices", None)
        if not choices or getattr(choices[0].message, "content", None) is None:
            raise ServedError(self.model, self.base_url, 1, f"no message content in the response: {str(response)[:200]}")
        choice = choices[0]
        content = choice.logprobs.content if choice.logprobs is not None else None
        logprobs = [float(t.logprob) for t in content or ()]
        usage: dict[str, float] = {"latency_s": latency}
        if response.usage is not None:
            usage = {"prompt_tokens": response.usage.prompt_tokens, "completion_tokens": response.usage.completion_tokens, **usage}
        prompt = json.dumps(chat, ensure_ascii=False)
        return Generation(cut_at_stop(choice.message.content, self.options.stop), [], logprobs, prompt, usage)
