"""A person in a role: a seat agent that asks the UI for each move and waits for the answer.

The engine calls ``SeatAgent.act(view)`` in a worker thread, as it calls any agent. The seat turns
the view into a `TurnRequest`, hands it to its `TurnBroker` and blocks until the UI answers with
an utterance, or until the broker is closed (the episode was restarted, rewound or left), in
which case ``act`` raises `SeatClosed`. The engine never sees a widget; the UI never runs the
engine on its own thread.

A person sees what their seat's agent would: the request carries the view's text fields only
(the task, what only this role knows, what this turn asks: `TurnRequest.brief` words them as a
model seat is prompted, `prompts.view_chat`), never a hidden label. What they say is labelled
honestly: ``source: human``, the evidence ids they cite (``[doc3]``, of the passages their
brief lists), and for a judge ``intent: unknown`` unless they declare one; ``truthful`` is left
to the engine, which cannot judge free text (None). The broker keeps when each request was shown
and answered (`Answered`), for the journal.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass

from feedbackgym.core import Feedback
from feedbackgym.envs.engine import Utterance, View
from feedbackgym.envs.tasks import TASKS

#: The feedback picker: what a person chooses -> the feedback kind recorded (None: the scenario's first).
FEEDBACK_CHOICES: dict[str, str | None] = {"hint": "fp", "correction": "critique", "try again": "unary", "free": None}
#: What "try again" says when the person types nothing.
TRY_AGAIN = "Try again."
#: The picker's one choice for a role that answers questions (Twenty Questions' user): a plain reply.
REPLY = "reply"
#: A person's judge feedback says no intent unless they declare one: the UI does not guess it.
UNKNOWN_INTENT = "unknown"
#: The intents a person may declare for their judge feedback (the scripted judges' taxonomy).
INTENTS = ("constructive", "hypercritical", "malicious")
_PASSAGE = re.compile(r"^\[([^\]\s]+)\]", re.MULTILINE)  # "[doc3] ..." opening a line of the brief


def cited(text: str, ids: tuple[str, ...]) -> tuple[str, ...]:
    """The ids of ``ids`` that ``text`` cites (``[doc3]`` or ``doc3`` as a word), in the order first cited."""
    if not ids:
        return ()
    found = re.finditer(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(ids, key=len, reverse=True))) + r")(?![\w-])", text)
    return tuple(dict.fromkeys(m.group(1) for m in found))


class SeatClosed(Exception):
    """The move was no longer wanted: the episode it belonged to was restarted, rewound or left."""


@dataclass(frozen=True)
class TurnRequest:
    """What a person needs to take a turn: who they are, what they may know, what they may say."""

    id: int
    role: str
    turn: int
    instruction: str
    private: str
    choices: tuple[str, ...]
    """The picker's entries: empty for a role whose text is a move (the actor: plain text), `REPLY`
    for a replying role, else the keys of `FEEDBACK_CHOICES`."""
    scenario_kinds: tuple[str, ...]
    ask: str = ""
    """what this turn asks of the role, as a model seat is asked it (`View.ask`)"""
    target_turn: int | None = None
    """the turn this one answers: the latest message by another role (not the env's)"""

    @property
    def evidence(self) -> tuple[str, ...]:
        """The ids of the passages this role's brief lists (a judge's evidence), in order."""
        return tuple(_PASSAGE.findall(self.private))

    @property
    def brief(self) -> str:
        """What the person in this seat is told, in this seat's own words: who they are and what
        this turn asks of them first, then the task (for a feedback giver, as the actor was given
        it), then what only this role knows."""
        if not self.choices:  # a mover: the task is its own
            lines = [f"You are the {self.role} (turn {self.turn}). {self.instruction}"]
            if self.ask:
                lines.append(self.ask)
        else:
            on = f" (turn {self.target_turn})" if self.target_turn is not None else ""
            what = self.ask or "Your turn."
            lines = [f"You are the {self.role} (turn {self.turn}). {what.rstrip('.')}{on}.", f"The actor's task: {self.instruction}"]
        if self.private:
            lines.append(f"Only you see this: {self.private}")
        if self.evidence:
            lines.append("Cite passages by their ids, e.g. [" + self.evidence[0] + "]: the ids you cite are recorded.")
        return "\n".join(lines)

    def utterance(self, choice: str | None, text: str, intent: str | None = None) -> str | Utterance:
        """The move for ``text`` said as ``choice``; feedback is labelled ``source: human``, with
        the evidence ids it cites and, from a judge, its ``intent`` (`UNKNOWN_INTENT` unless
        declared)."""
        text = text.strip()
        if choice == "try again" and not text:
            text = TRY_AGAIN
        if not text:
            raise ValueError("type something to say first")
        if not self.choices or choice == REPLY:
            return text
        if choice not in FEEDBACK_CHOICES:
            raise ValueError(f"feedback choice {choice!r}: expected one of {list(FEEDBACK_CHOICES)}")
        kind = FEEDBACK_CHOICES[choice] or (self.scenario_kinds[0] if self.scenario_kinds else "r")
        labels: dict = {"source": "human"}
        ids = cited(text, self.evidence)
        if ids:
            labels["evidence_ids"] = ids
        if self.role == "judge":
            if intent is not None and intent not in INTENTS:
                raise ValueError(f"intent {intent!r}: expected one of {list(INTENTS)} or none")
            labels["intent"] = intent or UNKNOWN_INTENT
        return Utterance(text, Feedback.make(kind, text, None, labels))


@dataclass(frozen=True)
class Answered:
    """A request and what the person said to it, with when it was shown and answered (Unix times;
    None where the UI did not say when it showed it)."""

    request: TurnRequest
    said: str | Utterance
    shown_at: float | None
    submitted_at: float


class TurnBroker:
    """Passes one request at a time from the seats of one episode to the UI, and the answer back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: tuple[TurnRequest, Future] | None = None
        self._subscribers: list[Callable[[TurnRequest], None]] = []
        self._closed = False
        self._shown: dict[int, float] = {}
        self.answered: list[Answered] = []
        """every answer given, in order (the journal reads the last after each of a person's moves)"""

    def subscribe(self, callback: Callable[[TurnRequest], None]) -> None:
        """Call ``callback(request)`` (on the asking thread) for each new request."""
        self._subscribers.append(callback)

    def new_id(self) -> int:
        return next(self._ids)

    def ask(self, request: TurnRequest) -> str | Utterance:
        """Block until the UI answers ``request``; raise `SeatClosed` if the broker is closed first."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise SeatClosed(request.role)
            self._pending = (request, future)
        for callback in list(self._subscribers):
            callback(request)
        try:
            return future.result()
        except CancelledError:
            raise SeatClosed(request.role) from None
        finally:
            with self._lock:
                if self._pending is not None and self._pending[1] is future:
                    self._pending = None

    @property
    def pending(self) -> TurnRequest | None:
        with self._lock:
            return self._pending[0] if self._pending else None

    def shown(self, request_id: int) -> None:
        """Note that the request ``request_id`` is on screen now (its first showing counts)."""
        with self._lock:
            self._shown.setdefault(request_id, time.time())

    def answer(self, request_id: int, said: str | Utterance) -> bool:
        """Fulfil the pending request ``request_id``; False if it is no longer pending."""
        with self._lock:
            if self._pending is None or self._pending[0].id != request_id:
                return False
            request, future = self._pending
            answered = Answered(request, said, self._shown.pop(request_id, None), time.time())
            self.answered.append(answered)
        try:
            future.set_result(said)
        except InvalidStateError:  # closed in the meantime
            with self._lock:
                self.answered.remove(answered)
            return False
        return True

    def close(self) -> None:
        """Refuse every later request and release the one waiting."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, None
        if pending is not None:
            pending[1].cancel()


class SeatAgent:
    """The agent in a person's seat: each ``act`` is a request the UI answers."""

    name = "human"
    source = "human"

    def __init__(self, role: str, broker: TurnBroker):
        self.role, self.broker = role, broker

    def act(self, view: View) -> str | Utterance:
        if view.role in TASKS[view.world.family].movers:
            choices: tuple[str, ...] = ()
        elif view.role == view.world.reply_role:
            choices = (REPLY,)
        else:
            choices = tuple(FEEDBACK_CHOICES)
        log = view.log
        target = next((m.turn for m in reversed(log) if m.role not in (view.role, "env")), None)
        request = TurnRequest(
            self.broker.new_id(), view.role, len(log), view.instruction, view.private, choices, view.feedback_kinds,
            view.ask, target,
        )  # fmt: skip
        return self.broker.ask(request)

    def act_batch(self, views):
        return [self.act(v) for v in views]
