"""Scripted critics: truthful feedback of the LLF-Bench kinds (r, hp, hn, fp, fn) and the others.

Each turn the critic reads the actor's last move, asks the task which of the scenario's feedback
kinds apply and what they would say (``Instance.hint``), draws one of them with its generator
(LLF-Bench's "mixture"), and renders it from the seeded paraphrase bank.

| name | says |
|---|---|
| constructive | a truthful hint of one of the scenario's kinds |
| noisy | like constructive, but with probability ``flip`` the opposite verdict (a mislabelled r/binary) |
"""

from __future__ import annotations

from feedbackgym.agents.base import ScriptedAgent, register
from feedbackgym.envs.protocol import Utterance
from feedbackgym.feedback import banks
from feedbackgym.feedback.types import Feedback

_SCORE = {"positive": 1.0, "agree": 1.0, "negative": 0.0}


def say(view, kind: str, hint, labels: dict, paraphrase="random") -> Utterance:
    """Render ``hint`` from the ``kind`` bank and wrap it as typed feedback; ``labels`` (a fresh
    dict) is completed in place with the speaker's role, the bank case and the suggestion."""
    options = banks.templates(kind, view.world.family, hint.case)
    if paraphrase == "random":
        template = options[int(view.rng.random() * len(options))]
    else:
        template = banks.pick(options, view.rng, paraphrase)
    text = template.format_map(hint.slots)
    labels["source_role"] = view.role
    labels["case"] = hint.case
    labels["suggested_answer"] = hint.suggestion
    return Utterance(text, Feedback(kind, text, _SCORE.get(hint.case), labels))


@register("critic", "constructive")
class ConstructiveCritic(ScriptedAgent):
    name = "constructive"

    def __init__(self, paraphrase: str | int = "random"):
        self.paraphrase = paraphrase

    def act(self, view):
        w = view.world
        last = view.last_move
        if last is None:
            return Utterance("Make a move first, then I can comment on it.")
        options = [(k, h) for k in view.feedback_kinds if (h := w.hint(k, last, view)) is not None]
        if not options:  # none of the scenario's kinds applies to this move: say how it went
            options = [("r", w.hint("r", last, view))]
        kind, hint = options[int(view.rng.random() * len(options))]
        return say(view, kind, hint, {"truthful": True}, self.paraphrase)


@register("critic", "noisy")
class NoisyCritic(ConstructiveCritic):
    """A binary / reward critic whose verdict is flipped with probability ``flip``."""

    name = "noisy"

    def __init__(self, flip: float = 0.25, paraphrase: str | int = "random"):
        super().__init__(paraphrase)
        self.flip = flip

    def act(self, view):
        w = view.world
        last = view.last_move
        if last is None:
            return super().act(view)
        hint = w.hint("binary", last, view)
        flipped = bool(view.rng.random() < self.flip)
        if flipped:
            hint = type(hint)("negative" if hint.case == "positive" else "positive", hint.slots)
        return say(view, "binary", hint, {"truthful": not flipped, "label_flipped": flipped}, self.paraphrase)
