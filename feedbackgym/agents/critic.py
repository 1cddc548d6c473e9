"""Scripted critics: truthful feedback of the LLF-Bench kinds (r, hp, hn, fp, fn) and the others.

Each turn the critic reads the actor's last move, asks the task which of the scenario's feedback
kinds apply and what they would say (``Instance.hint``), draws one of them with its generator
(LLF-Bench's "mixture"), and renders it from the seeded paraphrase bank.

| name | says |
|---|---|
| constructive | a truthful hint of one of the scenario's kinds |
| noisy | like constructive, but with probability ``flip`` the opposite verdict (a mislabelled r/binary) |
| cgi | grades each of the actor's candidate moves and suggests a revision (CGI) |
| verdict | "correct" or "incorrect", and with ``truth`` the right move (Critique-GRPO's templates) |
"""

from __future__ import annotations

from feedbackgym.agents.base import ScriptedAgent, register
from feedbackgym.core import ATOMS, Feedback, FrozenDict, Utterance, check_range, freeze
from feedbackgym.feedback import banks

_SCORE = {"positive": 1.0, "agree": 1.0, "negative": 0.0}


def say(view, kind: str, hint, labels: dict, paraphrase: str | int | None = None) -> Utterance:
    """Render ``hint`` from the ``kind`` bank and wrap it as typed feedback; ``labels`` (a fresh
    dict whose values are immutable: atoms or tuples of them) is completed in place with the
    speaker's role, the bank case and the suggestion, and handed frozen (given ``truthful`` too,
    the engine takes the feedback as it is).
    ``paraphrase`` None means the scenario's ``feedback.paraphrase``."""
    options = banks.templates(kind, view.world.family, hint.case)
    choice = view.paraphrase if paraphrase is None else paraphrase
    if choice == "random":
        template = options[int(view.rng.random() * len(options))]
    else:
        template = banks.pick(options, view.rng, choice)
    text = template.format_map(hint.slots)
    if text[:1].islower():  # a slot ("the Vale of ...") may open the sentence
        text = text[0].upper() + text[1:]
    suggestion = hint.suggestion
    labels["source_role"] = view.role
    labels["case"] = hint.case
    labels["suggested_answer"] = suggestion if type(suggestion) in ATOMS else freeze(suggestion)
    return Utterance(text, Feedback(kind, text, _SCORE.get(hint.case), FrozenDict(labels)))


class FeedbackGiver(ScriptedAgent):
    """A scripted role that answers moves (critics, judges, users): it says ``opening`` before
    there is a move, the task's ``invalid_reply`` to an unreadable one, and otherwise whatever
    ``respond`` makes of the last valid move."""

    opening = "Go ahead, make your move."

    def act(self, view):
        if view.last_invalid:
            text = view.world.invalid_reply
            if view.world.reply_role == view.role:  # an oracle answers plainly ("Invalid question.")
                return text
            labels = FrozenDict(truthful=True, case="invalid", suggested_answer=None, source_role=view.role)
            return Utterance(text, Feedback("r", text, 0.0, labels))
        if view.last_move is None:
            return Utterance(self.opening)
        return self.respond(view, view.last_move)

    def respond(self, view, last):  # pragma: no cover - abstract
        raise NotImplementedError


@register("critic", "constructive", requires="hints")
class ConstructiveCritic(FeedbackGiver):
    name = "constructive"

    def __init__(self, paraphrase: str | int | None = None):
        self.paraphrase = paraphrase

    def respond(self, view, last):
        w = view.world
        options = [(k, h) for k in view.feedback_kinds if (h := w.hint(k, last, view)) is not None]
        if not options:  # none of the scenario's kinds applies to this move: say how it went
            options = [("r", w.hint("r", last, view))]
        kind, hint = options[int(view.rng.random() * len(options))]
        return say(view, kind, hint, {"truthful": True}, self.paraphrase)


@register("critic", "noisy", requires="hints")
class NoisyCritic(ConstructiveCritic):
    """A binary / reward critic whose verdict is flipped with probability ``flip``."""

    name = "noisy"

    def __init__(self, flip: float = 0.25, paraphrase: str | int | None = None):
        super().__init__(paraphrase)
        check_range(flip=flip)
        self.flip = flip

    def respond(self, view, last):
        w = view.world
        hint = w.hint("binary", last, view)
        flipped = bool(view.rng.random() < self.flip)
        if flipped:
            hint = type(hint)("negative" if hint.case == "positive" else "positive", hint.slots)
        return say(view, "binary", hint, {"truthful": not flipped, "label_flipped": flipped}, self.paraphrase)


GRADES = ("Very Poor", "Poor", "Neutral", "Good", "Excellent")


@register("critic", "cgi", requires="hints")
class CGICritic(FeedbackGiver):
    """CGI's critic (Yang et al., 2025): grades each candidate move on contribution (does it
    advance the goal), feasibility (is it a valid move) and efficiency (is it as good as the best
    move there is), gives an overall grade, and, when no candidate is the best, a revision: the
    move the expert would make. Grades come from the task's ``quality`` of each move."""

    name = "cgi"

    def __init__(self, paraphrase: str | int | None = None):
        self.paraphrase = paraphrase

    def respond(self, view, last):
        w = view.world
        if last.kind != "candidates":
            return say(view, "r", w.hint("r", last, view), {"truthful": True}, self.paraphrase)
        expert = w.expert(view)
        best = w.quality(w.parse("actor", expert), view.log)
        lines, top = [], 0.0
        for i, (text, move) in enumerate(last.value, 1):
            q = w.quality(move, view.log)
            top = max(top, q)
            contribution = "advances the goal" if q > 0.5 else "helps a little" if q > 0 else "does not advance the goal"
            efficiency = "efficient" if q >= best - 0.05 else "not the most efficient"
            lines.append(f'Candidate {i} ("{text}"): {contribution}, feasible, {efficiency}. Grade: {GRADES[min(4, int(q * 5))]}.')
        suggestion = None
        if top < best - 0.05:
            suggestion = expert
            lines.append(f'Revision: consider "{expert}"')
        text = "\n".join(lines)
        labels = FrozenDict(case="cgi", truthful=True, suggested_answer=suggestion, source_role=view.role)
        return Utterance(text, Feedback("critique", text, top, labels))


@register("critic", "verdict", requires="hints")
class VerdictCritic(FeedbackGiver):
    """Critique-GRPO's template critiques: the verdict on the actor's move alone ("correct" or
    "incorrect": its *indicative* critique, kind ``binary``) or, with ``truth``, the verdict and
    on a wrong move the right one (its critique *with ground truth*, kind ``critique``, the
    right move as ``suggested_answer``). A move with no verdict (a twenty-questions question)
    is said to be no answer; with ``truth`` the right move follows it too."""

    name = "verdict"

    def __init__(self, truth: bool = False):
        self.truth = bool(truth)

    def respond(self, view, last):
        w = view.world
        verdict = w.score(last).is_correct
        case = "no_verdict" if verdict is None else "positive" if verdict else "negative"
        text = {"no_verdict": "That is not an answer.", "positive": "Your answer is correct.", "negative": "Your answer is incorrect."}[case]
        suggestion = None
        if self.truth and not verdict:
            suggestion = w.solution()
            if suggestion is None:
                raise ValueError(f"scripted:verdict with truth: task family {w.family!r} has no one right answer to give away")
            text += f" The correct answer is {suggestion}."
        labels = FrozenDict(truthful=True, case=case, suggested_answer=suggestion, source_role=view.role)
        score = None if verdict is None else float(verdict)
        return Utterance(text, Feedback("critique" if self.truth else "binary", text, score, labels))
