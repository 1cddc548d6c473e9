"""What a language model is shown and what it gives back, for every model-backed seat (an
embedded LM, a GGUF file, a served model) and for the chat-messages observation. No torch here.

Two prompt formats are built from a role's view: `chat_messages` (OpenAI chat messages: the
role's own turns are the assistant's, everyone else's are user turns) and `plain_prompt` (a
transcript for models without a chat template).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import ClassVar, NamedTuple


class SeatOptions:
    """A model-backed seat's options (a dataclass deriving from this), made from a scenario's
    ``roles.X.params``: unknown keys are refused by name."""

    what: ClassVar[str] = "seat"

    def __post_init__(self):
        """The checks every seat's options share (``stop``, ``temperature``, ``top_p``); a subclass
        calls this first, then checks its own fields."""
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ()))
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")

    @classmethod
    def from_params(cls, params: Mapping):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown {cls.what} option(s) {unknown}; known: {sorted(known)}")
        return cls(**params)


class Generation(NamedTuple):
    """One generated utterance and what a learner needs of it."""

    text: str
    """the utterance: cut at the first stop string, surrounding whitespace removed"""
    token_ids: list[int]
    """the generated tokens, through the one that completed a stop string or the end token"""
    logprobs: list[float]
    """log-probability of each generated token under the model (temperature 1, no top-p)"""
    prompt: str
    """the text the model was conditioned on"""
    usage: Mapping[str, float] | None = None
    """a served model's token counts and latency (``prompt_tokens``, ``completion_tokens``,
    ``latency_s``): written to the record, never to ``info``"""


def plain_prompt(role: str, instruction: str, private: str, messages: Sequence[tuple[str, str]]) -> str:
    """The transcript format: the task, what only ``role`` knows, one ``role: text`` line per
    message, then ``role:`` for the model to continue. Append-only: the prompt of a later turn
    extends the earlier prompt and the utterance given at it."""
    lines = [f"Task: {instruction}"]
    if private:
        lines.append(f"Known only to the {role}: {private}")
    lines += [f"{who}: {text}" for who, text in messages]
    lines.append(f"{role}:")
    return "\n".join(lines)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """An utterance: ``text`` cut at the first of the ``stop`` strings, surrounding whitespace removed."""
    for s in stop:
        text = text.split(s, 1)[0]
    return text.strip()


def chat_messages(
    role: str, instruction: str, private: str, messages: Sequence[tuple[str, str]], ask: str = ""
) -> list[dict]:
    """The view as a chat: this role's own messages are the assistant's, everyone else's are one
    user turn of ``role: text`` lines; the task (and what only this role knows) opens the chat,
    and the last user turn ends with ``ask`` (what this turn asks; "Your turn, ROLE." after the
    role's own message when there is nothing to ask)."""
    head = f"You are the {role} in this conversation. Task: {instruction}"
    if private:
        head += f"\nKnown only to you: {private}"
    chat = [{"role": "user", "content": head}]
    for who, text in messages:
        side = "assistant" if who == role else "user"
        line = text if side == "assistant" else f"{who}: {text}"
        if chat[-1]["role"] == side:
            chat[-1]["content"] += "\n" + line
        else:
            chat.append({"role": side, "content": line})
    if chat[-1]["role"] == "assistant":
        chat.append({"role": "user", "content": ask or f"Your turn, {role}."})
    elif ask:
        chat[-1]["content"] += "\n" + ask
    return chat


def view_chat(view, max_chars: int | None = None) -> list[dict]:
    """The chat messages a model in ``view.role``'s seat is prompted with: the same for an
    embedded LM (through its chat template), a served model and ``obs_format="messages"``. The
    last user turn ends with what this turn asks (``view.ask``: "Give your final answer: ...").
    With ``max_chars``, only the latest messages whose text fits that budget are read (the task
    always opens the chat, with a note of how many earlier messages it leaves out), so the cost
    of a prompt is flat in the episode's length."""
    private = view.private if view.role != "actor" else ""
    log = view.log
    start = _first_fitting(log, max_chars - len(view.instruction) - len(private)) if max_chars else 0
    messages = [(log[i].role, log[i].text) for i in range(start, len(log))]
    # the turn's question comes last, so the model is asked it rather than left to continue
    chat = chat_messages(view.role, view.instruction, private, messages, view.ask)
    if start:
        chat[0]["content"] += f"\n({start} earlier messages are not shown.)"
    return chat


def view_plain(view, max_chars: int | None = None) -> str:
    """`plain_prompt` of ``view``: the transcript a model without a chat template continues.
    With ``max_chars``, its last ``max_chars`` characters, built from the latest lines only (so
    the cost is flat in the episode's length) and equal to the full transcript's last characters."""
    private = view.private if view.role != "actor" else ""
    log = view.log
    start = len(log) if max_chars else 0
    if max_chars:
        need = max_chars - len(view.role) - 1  # the closing "\n{role}:"
        while start > 0 and need > 0:  # walk back until the lines cover max_chars
            start -= 1
            need -= len(log[start].role) + len(log[start].text) + 3  # "{who}: {text}\n"
    text = plain_prompt(view.role, view.instruction, private, [(log[i].role, log[i].text) for i in range(start, len(log))])
    return text[-max_chars:] if max_chars else text


def _first_fitting(log, budget: int) -> int:
    """The first message of the longest suffix of ``log`` whose texts (and a line's overhead)
    fit ``budget`` characters."""
    i = len(log)
    while i > 0:
        budget -= len(log[i - 1].text) + len(log[i - 1].role) + 4
        if budget < 0:
            break
        i -= 1
    return i
