"""The dialogue engine: roles, a turn schedule, a typed message log and episode state.

One `Episode` is one run of a scenario with one seed. Everything that happens is a `Message`
appended to ``episode.log``; every face (Gymnasium, PettingZoo, the TUI, records) is a view of
that log. The engine never imports gymnasium or pettingzoo.

The schedule: ``protocol.order`` is one round (it opens with a moving role); it repeats
``protocol.rounds`` times (forever if None), then each role in ``protocol.final`` speaks once.
Which roles *move* (their text is parsed and scored: the actor; a buyer and a seller) is the
task's to say; the others give feedback or replies.
The episode *terminates* when the task is solved (reason ``success``), the schedule is done
(``protocol_end``), the actor's proposals run out (``proposals_exhausted``) or a user leaves
(``user_left``); it is *truncated* when the actor's turn budget ``protocol.max_turns`` runs out
(``max_turns``, a budget of moves), unless the scenario makes the budget a rule of the game
(``protocol.max_turns_terminates``: Twenty Questions' twenty), when it terminates, lost. An unreadable move is an invalid move: the env says why,
the turn is spent, and the schedule goes on (TextArena's rule: nobody can hold the floor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Mapping, NamedTuple, Sequence

import numpy as np

from feedbackgym.feedback.parse import read_feedback
from feedbackgym.feedback.types import Feedback, _plain

if TYPE_CHECKING:
    from feedbackgym.agents.base import Agent
    from feedbackgym.envs.scenario import Scenario
    from feedbackgym.envs.tasks.base import Instance, Parsed

#: The kinds of message the engine itself makes; a move's kind is the task's (answer, question,
#: guess, solution, verdict, offer, accept, walk, talk ...).
ENGINE_KINDS = ("feedback", "reply", "invalid", "env", "candidates")


class Message(NamedTuple):
    """One utterance in the log. ``labels`` are hidden: never rendered into any agent's view.
    Immutable (a named tuple: cheap to build, compare and pickle)."""

    turn: int
    role: str
    text: str
    kind: str
    feedback: Feedback | None = None
    labels: Mapping[str, Any] = {}

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


class Utterance(NamedTuple):
    """What a scripted agent may return instead of a bare string: the text plus typed feedback,
    and for a user, whether it leaves (which ends the episode)."""

    text: str
    feedback: Feedback | None = None
    leaves: bool = False


class View:
    """What one role sees at its turn. Built from the log; hidden labels are never part of it.

    ``world`` is the episode's task instance: scripted agents may consult it (a judge knows the
    gold answer, a user knows its goal), LM and human agents only read the text fields.
    ``last_move`` is the last valid move as the task parsed it (public: it is what was said), and
    ``last_invalid`` whether the latest move was unreadable; ``candidates`` how many candidate
    moves this turn should list (CGI), 0 for a real move.
    """

    __slots__ = (
        "role", "rng", "world", "last_move", "last_invalid", "candidates", "feedback_kinds", "paraphrase",
        "_log", "_since", "_transcript",
    )

    def __init__(
        self, role, rng, world, log, since, feedback_kinds, last_move=None, last_invalid=False, candidates=0,
        paraphrase="random",
    ):
        self.role = role
        self.rng: np.random.Generator = rng
        self.world: Instance = world
        self.last_move: Parsed | None = last_move
        self.last_invalid: bool = last_invalid
        self.candidates: int = candidates
        self.feedback_kinds: tuple[str, ...] = feedback_kinds
        self.paraphrase: str | int = paraphrase  # the scenario's choice of paraphrase
        self._log: list[Message] = log
        self._since = since
        self._transcript: str | None = None

    @property
    def instruction(self) -> str:
        return self.world.instruction

    @property
    def private(self) -> str:
        """What this role may additionally know ('' for the actor)."""
        return self.world.private_view(self.role)

    @property
    def messages(self) -> list[tuple[str, str, str]]:
        """The visible log as (role, kind, text) triples."""
        return [(m.role, m.kind, m.text) for m in self._log]

    @property
    def transcript(self) -> str:
        """The visible log formatted for this role (built only when an agent asks for it)."""
        if self._transcript is None:
            self._transcript = render_transcript(self._log)
        return self._transcript

    @property
    def new(self) -> list[tuple[str, str, str]]:
        """Messages since this role last spoke."""
        return [(m.role, m.kind, m.text) for m in self._log[self._since :]]

    @property
    def feedback(self) -> str:
        """The feedback messages since this role last spoke, joined ('' if none)."""
        return "\n".join(m.text for m in self._log[self._since :] if m.kind == "feedback")

    def last(self, role: str, kinds: Sequence[str] | None = None) -> str | None:
        for m in reversed(self._log):
            if m.role == role and (kinds is None or m.kind in kinds):
                return m.text
        return None


def as_text(action: Any) -> "str | Utterance":
    """An action from outside as the engine takes it: text or an Utterance as is, bytes decoded,
    None as empty text, anything else by ``str``."""
    if isinstance(action, (str, Utterance)):
        return action
    if action is None:
        return ""
    return action.decode("utf-8", "replace") if isinstance(action, bytes) else str(action)


def render_transcript(log: Sequence[Message]) -> str:
    return "\n".join(f"{m.role}: {m.text}" for m in log)


class StepResult(NamedTuple):
    message: Message
    rewards: dict[str, float]
    terminated: bool
    truncated: bool


class Episode:
    """One episode of a scenario. ``submit(role, text)`` is the only way anything happens."""

    def __init__(self, scenario: "Scenario", seed: int, agents: Mapping[str, "Agent"] | None = None):
        from feedbackgym.envs.rewards import REWARDS, Scheme
        from feedbackgym.envs.tasks import TASKS
        from feedbackgym.envs.tasks.base import Instance as BaseInstance

        self.scenario = scenario
        self.seed = int(seed)
        roles = list(scenario.roles)
        # One independent stream per consumer, so that who plays a role never shifts another's draws.
        streams = np.random.SeedSequence(self.seed).spawn(1 + len(roles))
        self.task_rng = np.random.default_rng(streams[0])
        self.rngs = {role: np.random.default_rng(s) for role, s in zip(roles, streams[1:])}
        task = TASKS[scenario.task.family]
        self.instance: Instance = task.sample(self.task_rng, task.Params(**scenario.task.params))
        self.movers = task.movers
        # hooks a task may override, called only where it does (they sit on the hot path)
        self._skips = type(self.instance).skips is not BaseInstance.skips
        self.agents = dict(agents or {})
        self.log: list[Message] = []
        schemes = {role: REWARDS[name](role) for role, name in scenario.rewards.items()}
        # only the schemes that reward individual messages are called per message
        self._per_message = [(r, sc) for r, sc in schemes.items() if type(sc).on_message is not Scheme.on_message]
        self._at_end = [(r, sc) for r, sc in schemes.items() if type(sc).on_end is not Scheme.on_end]
        self.pending: dict[str, float] = {role: 0.0 for role in roles}
        self.returns: dict[str, float] = {role: 0.0 for role in roles}
        self.actor_turns = 0
        self._max_turns = scenario.protocol.max_turns
        self._max_turns_terminates = scenario.protocol.max_turns_terminates
        self._order = tuple(scenario.protocol.order)
        self._final = tuple(scenario.protocol.final)
        self._rounds = scenario.protocol.rounds
        self._kinds = tuple(scenario.feedback.kinds)
        self._paraphrase = scenario.feedback.paraphrase
        self._end_on_correct = scenario.protocol.end_on_correct
        self._max_proposals = scenario.protocol.max_proposals
        self._countdown = scenario.protocol.countdown
        self._candidates = scenario.protocol.candidates
        self.proposals = 0
        self._last_answer: dict[str, Any] = {}
        self._last_parsed: Parsed | None = None
        self._last_invalid = False
        self._spoke_at: dict[str, int] = {role: 0 for role in roles}
        self._round = 0
        self._pos = 0
        self._in_final = False
        self._current: str | None = self._order[0]
        self.terminated = False
        self.truncated = False
        self.terminate_reason: str | None = None
        if self._countdown:
            self.log.append(Message(0, "env", self.countdown_line(), "env", None, {}))

    # ------------------------------------------------------------------ schedule
    def current_role(self) -> str | None:
        """Whose turn it is, or None once the episode is over."""
        return self._current

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def _next_slot(self) -> None:
        """Advance the schedule to the next slot the task does not skip; end the episode when the
        schedule or the budget runs out."""
        while True:
            self._pos += 1
            if not self._in_final:
                if self._pos >= len(self._order):
                    self._round += 1
                    self._pos = 0
                    if self._rounds is not None and self._round >= self._rounds:
                        self._in_final = True
            if self._in_final:
                if self._pos >= len(self._final):
                    return self._end(True, "protocol_end")
                self._current = self._final[self._pos]
            else:
                self._current = self._order[self._pos]
            if not self._skips or not self.instance.skips(self._current, self.log):
                break
        if self._current in self.movers:
            if self.actor_turns >= self._max_turns:
                self._end(self._max_turns_terminates, "max_turns")
            elif self._countdown:
                self.log.append(Message(len(self.log), "env", self.countdown_line(), "env", None, {}))

    def countdown_line(self) -> str:
        """MINT's reminder of the budget left."""
        steps = self._max_turns - self.actor_turns
        line = f"You have {steps} step{'s' if steps != 1 else ''} left"
        if self._max_proposals is None:
            return line + "."
        left = self._max_proposals - self.proposals
        return line + f" and {left} chance{'s' if left != 1 else ''} to propose solution left."

    def truncate(self, reason: str) -> None:
        """End the episode from outside (a face's own step cap)."""
        if self._current is not None:
            self._end(False, reason)

    def _end(self, terminated: bool, reason: str) -> None:
        self.terminated, self.truncated = terminated, not terminated
        self.terminate_reason = reason
        self._current = None

    # ------------------------------------------------------------------ views
    def view(self, role: str) -> View:
        return View(
            role, self.rngs[role], self.instance, self.log, self._spoke_at.get(role, 0), self._kinds,
            self._last_parsed, self._last_invalid, self._candidates and role == self._current and self.candidates_due(),
            self._paraphrase,
        )

    # ------------------------------------------------------------------ moves
    def submit(self, role: str, text: str | Utterance, source: str | None = None) -> StepResult:
        """Append ``role``'s utterance, score it, advance the schedule and hand out rewards."""
        if role != self._current:
            if self._current is None:
                raise RuntimeError("the episode is over; reset before submitting")
            raise ValueError(f"it is {self._current!r}'s turn, not {role!r}'s")
        fb, leaves = None, False
        if type(text) is not str:
            if isinstance(text, Utterance):
                text, fb, leaves = text
            else:
                text = str(text)
        log = self.log
        moved = role in self.movers
        if moved:
            msg = self._move(len(log), role, text, source)
        else:
            msg = self._feedback_move(len(log), role, text, fb, source)
            if leaves:
                msg.labels["leaves"] = True
        log.append(msg)
        self._spoke_at[role] = len(log)
        if msg.kind == "invalid":
            # The env says why; the turn is spent and passes on, like any other.
            log.append(Message(len(log), "env", f"Invalid move: {msg.labels['reason']}", "env", None, {}))
            self._next_slot()
        elif moved and msg.labels["solved"]:
            self._end(True, "success")
        elif moved and self._max_proposals is not None and self.proposals >= self._max_proposals:
            self._end(True, "proposals_exhausted")
        elif leaves:
            self._end(True, f"{role}_left")
        else:
            self._next_slot()
        rewards: dict[str, float] = {}
        for r, scheme in self._per_message:
            v = scheme.on_message(self, msg)
            if v:
                rewards[r] = v
        if self._current is None:
            for r, scheme in self._at_end:
                v = scheme.on_end(self)
                if v:
                    rewards[r] = rewards.get(r, 0.0) + v
        for r, v in rewards.items():
            self.pending[r] += v
            self.returns[r] += v
        return StepResult(msg, rewards, self.terminated, self.truncated)

    def take_reward(self, role: str) -> float:
        """The reward accrued for ``role`` since it last took it (the Gymnasium per-step reward)."""
        r = self.pending[role]
        self.pending[role] = 0.0
        return r

    def candidates_due(self) -> int:
        """How many candidates the current mover lists now (CGI), or 0 for a real move."""
        return self._candidates if self._candidates and self._pos == 0 and not self._in_final else 0

    def _move(self, turn: int, role: str, text: str, source: str | None) -> Message:
        """A move by one of the task's moving roles: parsed, scored and labelled. A CGI candidate
        list is read line by line, neither scored nor counted against the budget."""
        m = self._candidates and self.candidates_due()
        if m:
            parsed = self.instance.read_candidates(role, text, m)
        else:
            self.actor_turns += 1
            parsed = self.instance.parse(role, text)
        self._last_invalid = not parsed.valid
        if not parsed.valid:
            labels = {"valid": False, "reason": parsed.reason}
        elif m:
            labels = {"valid": True, "is_correct": None, "solved": False, "candidates": [line for line, _ in parsed.value]}
            self._last_parsed = parsed
        else:
            verdict = self.instance.score(parsed)
            solved = verdict.solved or (self._end_on_correct and verdict.is_correct is True)
            labels = {"valid": True, "is_correct": verdict.is_correct, "solved": solved}
            if parsed.kind != "question":
                self.proposals += 1
                labels["answer_norm"] = parsed.value
                before = self._last_answer.get(role)
                labels["answer_changed"] = before is not None and parsed.value != before
                self._last_answer[role] = parsed.value
            self._last_parsed = parsed
        if source:
            labels["source"] = source
        return Message(turn, role, text, parsed.kind if parsed.valid else "invalid", None, labels)

    def _feedback_move(self, turn: int, role: str, text: str, fb: Feedback | None, source: str | None) -> Message:
        if fb is None:
            if role == self.instance.reply_role:  # an oracle-style reply (twenty questions' answerer)
                return Message(turn, role, text, "reply", None, {"source": source} if source else {})
            fb = Feedback(self._kinds[0], text, None, {})
        labels = fb.labels
        if "source_role" not in labels or "truthful" not in labels or "suggested_answer" not in labels or source:
            labels = dict(labels)
            labels.setdefault("source_role", role)
            if source:
                labels["source"] = source
            if "truthful" not in labels or "suggested_answer" not in labels:
                reading = read_feedback(text, self.instance, self._last_parsed)
                labels.setdefault("suggested_answer", _plain(reading.suggestion))
                labels.setdefault("truthful", self.instance.is_truthful(reading, self._last_parsed))
        if labels is not fb.labels or text is not fb.text:
            fb = Feedback(fb.kind, text, fb.score, labels)
        return Message(turn, role, text, "feedback", fb, {"to": "actor"})

    # ------------------------------------------------------------------ driving
    def play_until(self, stop: str | Collection[str] | None = None) -> None:
        """Let the built-in agents act until it is the turn of ``stop`` (a role or several), or the end."""
        stop = {stop} if isinstance(stop, str) else set(stop or ())
        while self._current is not None and self._current not in stop:
            current = self._current
            agent = self.agents.get(current)
            if agent is None:
                raise RuntimeError(f"no agent plays {current!r} and it is not the caller's role")
            self.submit(current, agent.act(self.view(current)), getattr(agent, "source", None))

    def metrics(self) -> dict[str, Any]:
        from feedbackgym.feedback.metrics import episode_metrics

        return episode_metrics(self)

    def hidden(self) -> dict[str, Any]:
        """The hidden truth of the instance (for info, records and the TUI; never for agents)."""
        return _plain(self.instance.hidden())
