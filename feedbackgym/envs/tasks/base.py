"""What a task family provides: instance generation from a seed, hidden truth, a verifier, a
scripted expert and an oracle. Each family is one module in this folder."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from feedbackgym.core import Hint, Message, Parsed, Verdict, View

__all__ = [
    "AnswerInstance", "Hint", "Instance", "MAX_ACTION_CHARS", "Params", "Parsed", "Passage", "Task", "Verdict",
    "answer_hint", "invalid", "precheck",
]

#: Longest actor utterance considered; longer text is an invalid move, not a slow parse.
MAX_ACTION_CHARS = 2000


_NUMBERING = re.compile(r"^\s*(?:\(?\d+[.)]|[-*•])\s*")


def invalid(reason: str) -> Parsed:
    return Parsed(valid=False, kind="invalid", reason=reason)


def precheck(text: str) -> Parsed | None:
    """Common refusals for any task: empty, oversized, or non-text input."""
    if type(text) is not str:
        return invalid(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_ACTION_CHARS:
        return invalid(f"message of {len(text)} characters; at most {MAX_ACTION_CHARS} are read")
    if text.isspace() or not text:
        return invalid("empty message")
    return None


def answer_hint(kind: str, answer: Any, truth: Any, slots: dict[str, Any]) -> Hint | None:
    """`Instance.hint` for a family whose move states an answer with one true value (judged QA,
    arithmetic): what a truthful critic of each kind says about ``answer``, given ``truth`` and
    the family's bank slots."""
    ok = answer == truth
    base = {"answer": answer}
    if kind == "r":
        return Hint("positive" if ok else "negative", base)
    if kind in ("hp", "hn"):
        return Hint("default", {**base, **slots}) if ok == (kind == "hp") else None
    if kind == "fp":
        return None if ok else Hint("default", {"suggestion": truth, **slots}, truth)
    if kind == "fn":
        return None if ok else Hint("default", base)
    if kind == "unary":
        return None if ok else Hint("default", {})
    if kind == "binary":
        return Hint("positive" if ok else "negative", {})
    if kind == "critique":
        return Hint("agree", base) if ok else Hint("disagree_suggest", {**base, "suggestion": truth}, truth)
    return None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Instance(ABC):
    """One episode's hidden world."""

    family: ClassVar[str]
    #: "answer": every actor turn states an answer that may be revised (judged QA);
    #: "search": every actor turn is a new move towards a goal (twenty questions, guess the number).
    mode: ClassVar[Literal["answer", "search"]]
    #: The role whose messages are oracle replies rather than feedback (None: none is).
    reply_role: ClassVar[str | None] = None
    #: What the task's oracle or a feedback giver says to a move it cannot read.
    invalid_reply: ClassVar[str] = "That is not a move I can read."
    instruction: str
    #: how a move is written, for the asks ("one option or its letter"; '' for no hint)
    move_form: ClassVar[str] = ""

    def ask(self, view: View) -> str:
        """What this turn asks of ``view.role``, said last to a model in a chat so that it is asked
        rather than left to continue a transcript ('' when the instruction already says it):
        a mover's first move is what the instruction asks; later it is asked for its next move,
        in the protocol's final phase for its final answer, and after the critique of its draft
        (``protocol.refine``) for its refined move; the oracle for its reply to the
        last move; a feedback giver for its feedback on it. Tasks may word their own."""
        form = f": {self.move_form}." if self.move_form else "."
        if view.moves:
            if view.refining:
                return "Refine your draft in light of the feedback on it, and give your move" + form
            if view.final:
                return "Give your final answer" + form
            return "Your next move" + form if view.since else ""
        if view.role == self.reply_role:
            return "Reply to the last move."
        return "Give your feedback on the last move."

    @abstractmethod
    def private_view(self, role: str) -> str:
        """What ``role`` may additionally know, as text ('' if nothing)."""

    @abstractmethod
    def parse(self, role: str, text: str) -> Parsed:
        """Read an actor move; never raises: bad input is ``Parsed(valid=False, reason=...)``."""

    @abstractmethod
    def score(self, parsed: Parsed) -> Verdict: ...

    @abstractmethod
    def respond(self, parsed: Parsed) -> str:
        """The oracle's truthful answer to a valid actor move."""

    @abstractmethod
    def expert(self, view: View) -> str:
        """The scripted expert's next move, from what the actor can see (and, for QA, the truth)."""

    @abstractmethod
    def noisy(self, view: View, rng: np.random.Generator) -> str:
        """A plausible but uninformed move (a wrong option, a random question or number)."""

    @abstractmethod
    def state(self, value: Any) -> str:
        """An utterance stating ``value`` as the actor's answer."""

    @abstractmethod
    def hidden(self) -> dict[str, Any]:
        """The hidden truth, for info, records and the TUI."""

    def solution(self) -> Any:
        """The right answer's value, as `parse` reads it from a move (what a critic that gives
        the truth away names: Critique-GRPO's "incorrect, the truth is X"); None where the family
        has no one right answer (a negotiation)."""
        return None

    def hint(self, kind: str, last: Parsed, view: View) -> Hint | None:
        """What a truthful critic would say of kind ``kind`` about the actor's ``last`` valid move:
        the bank case, its slots and the answer it suggests; None when the kind does not apply."""
        return None

    def diagnosis(self, last: Parsed, view: View) -> str | None:
        """What a teacher who knows the truth says is wrong with the wrong answer ``last`` and
        what to try instead, without stating the right answer (MINT's textual feedback, Feedback
        Friction's hints): an option it rules out, the part of the question that was misread, the
        step that went wrong. It may draw on ``view.rng`` (a different diagnosis each iteration)
        and on ``view.log`` (what was already tried). None: the family has no diagnoses."""
        return None

    def read_candidates(self, role: str, text: str, m: int) -> Parsed:
        """A list of up to ``m`` candidate moves, one a line (numbering allowed): the readable
        ones, in order; invalid if none is readable."""
        bad = precheck(text)
        if bad:
            return bad
        moves = []
        for line in text.splitlines():
            line = _NUMBERING.sub("", line).strip()
            if line and len(moves) < m:
                p = self.parse(role, line)
                if p.valid:
                    moves.append((line, p))
        if not moves:
            return invalid(f"list up to {m} candidate moves, one a line")
        return Parsed(True, "candidates", moves)

    def quality(self, move: Parsed, log: Sequence[Message]) -> float:
        """How good a valid move is, in [0, 1], given what was said before it (CGI's grades and a
        critic's improvement reward): 1 for a right answer, 0 for a wrong one by default."""
        return float(bool(self.score(move).is_correct))

    def skips(self, role: str, log: Sequence[Message]) -> bool:
        """Whether ``role``'s next slot in the schedule is skipped (a negotiation closed early)."""
        return False

    def extra_metrics(self, log: Sequence[Message]) -> dict[str, Any]:
        """Task-specific per-episode metrics (negotiation's deal price, SPC's detection...)."""
        return {}

    def role_reward(self, role: str, log: Sequence[Message]) -> float:
        """The task's own reward for ``role`` at the end of an episode (the ``task`` scheme)."""
        return 0.0

    def candidates(self) -> list[str] | None:
        """The candidate utterances of this instance for a learner that picks from a list (the
        SB3 view `CandidateActions`: action ``i`` says the ``i``-th); every instance of a family
        lists as many. None: the family has no candidate list."""
        return None

    def answer_values(self) -> list[Any]:
        """Candidate answers the feedback parser looks for in text (options, numbers...)."""
        return []


@dataclass(frozen=True)
class Passage:
    """One passage of an item's evidence corpus."""

    id: str
    text: str
    supports: str | None  # the answer it states for this item's question, None for filler


class AnswerInstance(Instance):
    """An item whose move states one answer among candidate ``options``, one of them the
    ``truth``, with a ``distractor`` and an evidence ``corpus`` of `Passage`s (judged QA,
    arithmetic): the scoring, the expert, the candidate moves, the private views and the truthful
    critics' hints such families share. A subclass parses, words ``question`` and ``instruction``,
    and implements the judge hooks (``evidence_for``, ``claim_for``) and ``slots``."""

    mode = "answer"
    options: list[str]
    truth: str
    distractor: str
    question: str
    corpus: list[Passage]

    def private_view(self, role: str) -> str:
        if role == "judge":
            docs = "\n".join(f"[{p.id}] {p.text}" for p in self.corpus)
            return f"Correct answer (do not reveal it as such): {self.truth}\nEvidence:\n{docs}"
        if role == "critic":
            return f"Correct answer (please do not disclose it): {self.truth}"
        return ""

    def score(self, parsed: Parsed) -> Verdict:
        return Verdict(is_correct=parsed.value == self.truth, solved=False)

    def respond(self, parsed: Parsed) -> str:
        return "Correct." if parsed.value == self.truth else "Incorrect."

    def state(self, value: Any) -> str:
        return f"The answer is {value}."

    def expert(self, view: View) -> str:
        return self.state(self.truth)

    def solution(self) -> str:
        return self.truth

    def noisy(self, view: View, rng: np.random.Generator) -> str:
        wrong = [o for o in self.options if o != self.truth]
        return self.state(wrong[int(rng.integers(len(wrong)))])

    def candidates(self) -> list[str]:
        return [self.state(option) for option in self.options]

    def answer_values(self) -> list[Any]:
        return self.options

    def hidden(self) -> dict[str, Any]:
        return {
            "question": self.question,
            **self.item(),
            "options": list(self.options),
            "truth": self.truth,
            "distractor": self.distractor,
            "corpus": [{"id": p.id, "text": p.text, "supports": p.supports} for p in self.corpus],
        }

    def item(self) -> dict[str, Any]:
        """What else the hidden truth holds about the item (its relation, its expression...)."""
        return {}

    def slots(self) -> dict[str, Any]:
        """The bank slots that hints about this item fill."""
        return {}

    def hint(self, kind: str, last: Parsed, view: View) -> Hint | None:
        return answer_hint(kind, last.value, self.truth, self.slots())


class Task(ABC):
    """A task family: ``sample`` draws one episode's `Instance`. Register a subclass with
    ``@feedbackgym.core.register_task``; the capability flags say which of the role agents'
    hooks its instances implement, so that scripted agents play where they can."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    #: the roles whose messages are moves in the task (parsed and scored); the first opens
    movers: ClassVar[tuple[str, ...]] = ("actor",)
    #: its instances implement `Instance.hint`: the scripted critics (constructive, noisy, cgi) play in it
    hints: ClassVar[bool] = False
    #: its instances have ``truth``, ``options``, ``distractor``, ``question``, ``evidence_for(value, k,
    #: retriever)`` and ``claim_for(value, rng)``: the scripted judges and Ask-Again / Friction users play in it
    judge_hooks: ClassVar[bool] = False
    #: the actor asks questions an oracle answers (`Instance.respond`): the patience user plays in it
    questions: ClassVar[bool] = False

    @abstractmethod
    def sample(self, rng: np.random.Generator, params: Params) -> Instance: ...
