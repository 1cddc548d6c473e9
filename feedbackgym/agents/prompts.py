"""What a language model is shown and what it gives back, for every model-backed seat (an
embedded LM, a GGUF file, a served model) and for the chat-messages observation. No torch here.

Two prompt formats are built from a role's view: `chat_messages` (OpenAI chat messages: the
role's own turns are the assistant's, everyone else's are user turns) and `plain_prompt` (a
transcript for models without a chat template).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple


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


def chat_messages(role: str, instruction: str, private: str, messages: Sequence[tuple[str, str]]) -> list[dict]:
    """The view as a chat: this role's own messages are the assistant's, everyone else's are one
    user turn of ``role: text`` lines; the task (and what only this role knows) opens the chat."""
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
        chat.append({"role": "user", "content": f"Your turn, {role}."})
    return chat




def view_chat(view) -> list[dict]:
    """The chat messages a model in ``view.role``'s seat is prompted with: the same for an
    embedded LM (through its chat template), a served model and ``obs_format="messages"``."""
    private = view.private if view.role != "actor" else ""
    return chat_messages(view.role, view.instruction, private, [(who, text) for who, _, text in view.messages])


def view_plain(view) -> str:
    """`plain_prompt` of ``view``: the transcript a model without a chat template continues."""
    private = view.private if view.role != "actor" else ""
    return plain_prompt(view.role, view.instruction, private, [(who, text) for who, _, text in view.messages])
