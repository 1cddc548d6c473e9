"""The dialogue engine: roles, a turn schedule, a typed message log and episode state.

One `Episode` is one run of a scenario with one seed. Everything that happens is a `Message`
appended to ``episode.log``; every face (Gymnasium, PettingZoo, the TUI, records) is a view of
that log. The engine never imports gymnasium or pettingzoo.

The schedule: ``protocol.order`` is one round (it always opens with the actor); it repeats
``protocol.rounds`` times (forever if None), then each role in ``protocol.final`` speaks once.
The episode *terminates* when the task is solved (reason ``success``) or the schedule is done
(``protocol_end``); it is *truncated* when the actor's turn budget ``protocol.max_turns`` runs out
(``max_turns``). An unparseable actor move is an invalid move: it costs a turn, the env answers
with the reason, and the actor moves again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from feedbackgym.feedback.parse import read_feedback
from feedbackgym.feedback.types import Feedback, _plain

if TYPE_CHECKING:
    from feedbackgym.agents.base import Agent
    from feedbackgym.envs.scenario import Scenario
    from feedbackgym.envs.tasks.base import Instance, Parsed

#: Message kinds.
MESSAGE_KINDS = ("answer", "question", "guess", "feedback", "reply", "invalid", "env")

#: Roles whose messages to the actor are feedback.
FEEDBACK_ROLES = ("critic", "judge", "user")


@dataclass(frozen=True)
class Message:
    """One utterance in the log. ``labels`` are hidden: never rendered into any agent's view."""

    turn: int
    role: str
    text: str
    kind: str
    feedback: Feedback | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "role": self.role,
            "text": self.text,
            "kind": self.kind,
            "feedback": self.feedback.to_dict() if self.feedback else None,
            "labels": _plain(self.labels),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Message":
        fb = d.get("feedback")
        return cls(
            turn=int(d["turn"]),
            role=str(d["role"]),
            text=str(d["text"]),
            kind=str(d["kind"]),
            feedback=Feedback.from_dict(fb) if fb else None,
            labels=dict(d.get("labels") or {}),
        )


@dataclass(frozen=True)
class Utterance:
    """What a scripted agent may return instead of a bare string: the text plus typed feedback."""

    text: str
    feedback: Feedback | None = None


class View:
    """What one role sees at its turn. Built from the log; hidden labels are never part of it.

    ``world`` is the episode's task instance: scripted agents may consult it (a judge knows the
    gold answer, a user knows its goal), LM and human agents only read the text fields.
    """

    def __init__(self, role, instruction, private, rng, world, log, since, feedback_kinds):
        self.role = role
        self.instruction = instruction
        self.private = private
        self.rng: np.random.Generator = rng
        self.world: Instance = world
        self._log: list[Message] = log
        self._since = since
        self.feedback_kinds: tuple[str, ...] = feedback_kinds

    @property
    def messages(self) -> Sequence[tuple[str, str, str]]:
        """The visible log as (role, kind, text) triples."""
        return [(m.role, m.kind, m.text) for m in self._log]

    @cached_property
    def transcript(self) -> str:
        """The visible log formatted for this role (built only when an agent asks for it)."""
        return render_transcript(self._log)

    @property
    def new(self) -> list[tuple[str, str, str]]:
        """Messages since this role last spoke."""
        return [(m.role, m.kind, m.text) for m in self._log[self._since :]]

    @property
    def feedback(self) -> str:
        """The feedback addressed to the actor since this role last spoke ('' if none)."""
        return "\n".join(m.text for m in self._log[self._since :] if m.kind == "feedback")

    def last(self, role: str, kinds: Sequence[str] | None = None) -> str | None:
        for m in reversed(self._log):
            if m.role == role and (kinds is None or m.kind in kinds):
                return m.text
        return None


def render_transcript(log: Sequence[Message]) -> str:
    return "\n".join(f"{m.role}: {m.text}" for m in log)


@dataclass
class StepResult:
    message: Message
    rewards: dict[str, float]
    terminated: bool
    truncated: bool


class Episode:
    """One episode of a scenario. ``submit(role, text)`` is the only way anything happens."""

    def __init__(self, scenario: "Scenario", seed: int, agents: Mapping[str, "Agent"] | None = None):
        from feedbackgym.envs.rewards import REWARDS
        from feedbackgym.envs.tasks import TASKS

        self.scenario = scenario
        self.seed = int(seed)
        roles = list(scenario.roles)
        # One independent stream per consumer, so that who plays a role never shifts another's draws.
        streams = np.random.SeedSequence(self.seed).spawn(1 + len(roles))
        self.task_rng = np.random.default_rng(streams[0])
        self.rngs = {role: np.random.default_rng(s) for role, s in zip(roles, streams[1:])}
        task = TASKS[scenario.task.family]
        self.instance: Instance = task.sample(self.task_rng, task.Params(**scenario.task.params))
        self.agents = dict(agents or {})
        self.log: list[Message] = []
        self._rewards = {role: REWARDS[name]() for role, name in scenario.rewards.items()}
        self.pending: dict[str, float] = {role: 0.0 for role in roles}
        self.returns: dict[str, float] = {role: 0.0 for role in roles}
        self.actor_turns = 0
        self._last_answer: Any = None
        self._last_parsed: Parsed | None = None
        self._spoke_at: dict[str, int] = {role: 0 for role in roles}
        self._round = 0
        self._pos = 0
        self._in_final = False
        self.terminated = False
        self.truncated = False
        self.terminate_reason: str | None = None
        self._advance_to_valid()

    # ------------------------------------------------------------------ schedule
    def _advance_to_valid(self) -> None:
        p = self.scenario.protocol
        if self._in_final:
            return
        if self._pos >= len(p.order):
            self._round += 1
            self._pos = 0
        if p.rounds is not None and self._round >= p.rounds:
            self._in_final = True
            self._pos = 0

    def current_role(self) -> str | None:
        """Whose turn it is, or None once the episode is over."""
        if self.done:
            return None
        p = self.scenario.protocol
        if self._in_final:
            return p.final[self._pos] if self._pos < len(p.final) else None
        return p.order[self._pos]

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def _next_slot(self) -> None:
        self._pos += 1
        self._advance_to_valid()
        p = self.scenario.protocol
        if self._in_final and self._pos >= len(p.final):
            self._end(terminated=True, reason="protocol_end")
        elif self.current_role() == "actor" and self.actor_turns >= p.max_turns:
            self._end(terminated=False, reason="max_turns")

    # ------------------------------------------------------------------ views
    def view(self, role: str) -> View:
        return View(
            role=role,
            instruction=self.instance.instruction,
            private=self.instance.private_view(role),
            rng=self.rngs[role],
            world=self.instance,
            log=self.log,
            since=self._spoke_at.get(role, 0),
            feedback_kinds=tuple(self.scenario.feedback.kinds),
        )

    # ------------------------------------------------------------------ moves
    def submit(self, role: str, text: str | Utterance, source: str | None = None) -> StepResult:
        """Append ``role``'s utterance, score it, advance the schedule and hand out rewards."""
        if self.done:
            raise RuntimeError("the episode is over; reset before submitting")
        expected = self.current_role()
        if role != expected:
            raise ValueError(f"it is {expected!r}'s turn, not {role!r}'s")
        fb = None
        if isinstance(text, Utterance):
            text, fb = text.text, text.feedback
        text = text if isinstance(text, str) else str(text)
        turn = len(self.log)
        if role == "actor":
            msg = self._actor_move(turn, text, source)
        else:
            msg = self._feedback_move(turn, role, text, fb, source)
        self.log.append(msg)
        self._spoke_at[role] = len(self.log)
        if msg.kind == "invalid":
            # The env answers with the reason; the actor keeps the floor (its turn is spent).
            self.log.append(Message(len(self.log), "env", f"Invalid move: {msg.labels['reason']}", "env"))
            if self.actor_turns >= self.scenario.protocol.max_turns:
                self._end(terminated=False, reason="max_turns")
        elif role == "actor" and msg.labels.get("solved"):
            self._end(terminated=True, reason="success")
        else:
            self._next_slot()
        for r, scheme in self._rewards.items():
            self.pending[r] += scheme.on_message(self, msg)
        if self.done:
            for r, scheme in self._rewards.items():
                self.pending[r] += scheme.on_end(self)
        rewards = dict(self.pending)
        for r, v in rewards.items():
            self.returns[r] += v
        return StepResult(msg, rewards, self.terminated, self.truncated)

    def take_reward(self, role: str) -> float:
        """The reward accrued for ``role`` since it last took it (the Gymnasium per-step reward)."""
        r, self.pending[role] = self.pending[role], 0.0
        return r

    def _actor_move(self, turn: int, text: str, source: str | None) -> Message:
        self.actor_turns += 1
        parsed = self.instance.parse("actor", text)
        src = {"source": source} if source else {}
        if not parsed.valid:
            return Message(turn, "actor", text, "invalid", labels={"valid": False, "reason": parsed.reason, **src})
        verdict = self.instance.score(parsed)
        labels = {
            "valid": True,
            "is_correct": verdict.is_correct,
            "solved": verdict.solved,
            "answer_norm": _plain(parsed.value) if parsed.kind != "question" else None,
            **src,
        }
        if parsed.kind != "question":
            labels["answer_changed"] = self._last_answer is not None and parsed.value != self._last_answer
            self._last_answer = parsed.value
        self._last_parsed = parsed
        return Message(turn, "actor", text, parsed.kind, labels=labels)

    def _feedback_move(self, turn: int, role: str, text: str, fb: Feedback | None, source: str | None) -> Message:
        if fb is None and role in FEEDBACK_ROLES and self.instance.reply_role != role:
            fb = Feedback(kind=self.scenario.feedback.kinds[0], text=text)
        if fb is None:  # an oracle-style reply (twenty questions' answerer)
            labels = {"source": source} if source else {}
            return Message(turn, role, text, "reply", labels=labels)
        labels = dict(fb.labels)
        labels.setdefault("source_role", role)
        if source:
            labels["source"] = source
        if "truthful" not in labels or "suggested_answer" not in labels:
            reading = read_feedback(text, self.instance, self._last_parsed)
            labels.setdefault("suggested_answer", _plain(reading.suggestion))
            labels.setdefault("truthful", self.instance.is_truthful(reading, self._last_parsed))
        fb = Feedback(fb.kind, text, fb.score, labels)
        return Message(turn, role, text, "feedback", feedback=fb, labels={"to": "actor"})

    def _end(self, terminated: bool, reason: str) -> None:
        self.terminated, self.truncated = terminated, not terminated
        self.terminate_reason = reason

    # ------------------------------------------------------------------ driving
    def play_until(self, role: str | None = None) -> None:
        """Let the built-in agents act until it is ``role``'s turn (or the end)."""
        while not self.done:
            current = self.current_role()
            if current == role:
                return
            agent = self.agents.get(current)
            if agent is None:
                raise RuntimeError(f"no agent plays {current!r} and it is not the caller's role")
            self.submit(current, agent.act(self.view(current)))

    def metrics(self) -> dict[str, Any]:
        from feedbackgym.feedback.metrics import episode_metrics

        return episode_metrics(self)

    def hidden(self) -> dict[str, Any]:
        """The hidden truth of the instance (for info, records and the TUI; never for agents)."""
        return _plain(self.instance.hidden())
