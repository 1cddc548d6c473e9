"""Scripted simulated users: they hold the goal (the secret object, the number, the question) and
answer the actor truthfully, with as much information as their form allows.

| name | says after each actor move |
|---|---|
| oracle | the task's own answer: "Yes." / "No." in twenty questions; too low / too high in guess the number; right or wrong (with why) in judged QA |
| binary | GOOD or BAD only (MINT's binary form) |
| unary | only "try again" while the move is wrong (UFO), a plain verdict once it is right |
"""

from __future__ import annotations

from feedbackgym.agents.base import ScriptedAgent, register
from feedbackgym.agents.critic import say
from feedbackgym.envs.protocol import Utterance


class ScriptedUser(ScriptedAgent):
    #: feedback kinds tried in order; the first that applies to the move is said
    kinds: tuple[str, ...] = ()

    def __init__(self, paraphrase: str | int = "random"):
        self.paraphrase = paraphrase

    def act(self, view):
        w = view.world
        last = view.last_move
        if last is None:
            return Utterance("Go ahead, make your move.")
        if w.reply_role == "user" and self.name == "oracle":
            return w.respond(last)
        for kind in self.kinds:
            hint = w.hint(kind, last, view)
            if hint is not None:
                return say(view, kind, hint, {"truthful": True}, self.paraphrase)
        return Utterance(w.respond(last))


@register("user", "oracle")
class OracleUser(ScriptedUser):
    name = "oracle"
    kinds = ("hn", "r")


@register("user", "binary")
class BinaryUser(ScriptedUser):
    name = "binary"
    kinds = ("binary",)


@register("user", "unary")
class UnaryUser(ScriptedUser):
    name = "unary"
    kinds = ("unary", "r")
