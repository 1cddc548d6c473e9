"""A person in a role: a seat agent that asks the UI for each move and waits for the answer.

The engine calls ``SeatAgent.act(view)`` in a worker thread, as it calls any agent. The seat turns
the view into a `TurnRequest`, hands it to its `TurnBroker` and blocks until the UI answers with
an utterance, or until the broker is closed (the episode was restarted, rewound or left), in
which case ``act`` raises `SeatClosed`. The engine never sees a widget; the UI never runs the
engine on its own thread.
"""

from __future__ import annotations

import itertools
import threading
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

    def utterance(self, choice: str | None, text: str) -> str | Utterance:
        """The move for ``text`` said as ``choice``; feedback is labelled ``source: human``."""
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
        return Utterance(text, Feedback(kind, text, None, {"source": "human"}))


class TurnBroker:
    """Passes one request at a time from the seats of one episode to the UI, and the answer back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: tuple[TurnRequest, Future] | None = None
        self._subscribers: list[Callable[[TurnRequest], None]] = []
        self._closed = False

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

    def answer(self, request_id: int, said: str | Utterance) -> bool:
        """Fulfil the pending request ``request_id``; False if it is no longer pending."""
        with self._lock:
            if self._pending is None or self._pending[0].id != request_id:
                return False
            future = self._pending[1]
        try:
            future.set_result(said)
        except InvalidStateError:  # closed in the meantime
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
        request = TurnRequest(
            self.broker.new_id(), view.role, len(view.messages), view.instruction, view.private, choices, view.feedback_kinds
        )
        return self.broker.ask(request)

    def act_batch(self, views):
        return [self.act(v) for v in views]
