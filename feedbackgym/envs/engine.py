"""The dialogue engine: roles, a turn schedule, a typed message log and episode state.

One `Episode` is one run of a scenario with one seed (and a ``member``: episodes of one seed
with different members share the task instance, while every seat draws afresh; GRPO's groups).
Everything that happens is a `Message` appended to ``episode.log``; every face (Gymnasium, PettingZoo, the TUI, records) is a view of
that log. The engine never imports gymnasium or pettingzoo.

The schedule: ``protocol.order`` is one round (it opens with a moving role); it repeats
``protocol.rounds`` times (forever if None), then each role in ``protocol.final`` speaks once.
With ``protocol.refine`` (Critique-GRPO's refinement step) each actor move is a *draft* first:
the refining role critiques it and the actor speaks again, and only that refinement counts.
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

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from feedbackgym.core import (
    ATOMS,
    EMPTY,
    REWARDS,
    TASKS,
    Agent,
    Feedback,
    FrozenDict,
    Message,
    StepResult,
    Utterance,
    View,
    freeze,
    plain,
    whole_text,
)  # fmt: skip
from feedbackgym.envs import rewards as _rewards  # noqa: F401  (registers the reward schemes)
from feedbackgym.envs import tasks as _tasks  # noqa: F401  (registers the shipped task families)
from feedbackgym.envs.rewards import Scheme
from feedbackgym.envs.scenario import Scenario
from feedbackgym.envs.tasks.base import Instance, Parsed
from feedbackgym.feedback.metrics import log_metrics
from feedbackgym.feedback.parse import read_feedback


class Episode:
    """One episode of a scenario. ``submit(role, text)`` is the only way anything happens."""

    def __init__(self, scenario: Scenario, seed: int, agents: Mapping[str, Agent] | None = None, member: int = 0):
        self.scenario = scenario
        self.seed, self.member = int(seed), int(member)
        if self.member < 0:
            raise ValueError(f"member must be >= 0, got {member}")
        roles = list(scenario.roles)
        # One independent stream per consumer, so that who plays a role never shifts another's draws.
        streams = np.random.SeedSequence(self.seed).spawn(1 + len(roles))
        if self.member:  # another member of the seed's group: the same task instance, fresh draws in every seat
            streams = streams[:1] + np.random.SeedSequence([self.seed, self.member]).spawn(len(roles))
        self.task_rng = np.random.default_rng(streams[0])
        self.rngs = {role: np.random.default_rng(s) for role, s in zip(roles, streams[1:])}
        task = TASKS[scenario.task.family]
        self.instance: Instance = task.sample(self.task_rng, task.Params(**scenario.task.params))
        self.movers = task.movers
        # hooks a task may override, called only where it does (they sit on the hot path)
        self._skips = type(self.instance).skips is not Instance.skips
        self.agents = dict(agents or {})
        self.log: list[Message] = []
        #: what each served model's turn cost ({"turn", "role", "prompt_tokens", "completion_tokens",
        #: "latency_s"}): written to the record beside the log, never part of a view or ``info``
        self.usage: list[dict[str, Any]] = []
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
        self._refine = scenario.protocol.refine
        self._queue: list[str] = []  # slots put in after a draft: the critique, then the refinement
        self._refining = False
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
            self.log.append(Message(0, "env", self.countdown_line(), "env"))

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
        if self._queue:  # the draft's critique, then its refinement: in no round, under no budget
            self._current = self._queue.pop(0)
            self._refining = not self._queue
            return
        self._refining = False
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
                self.log.append(Message(len(self.log), "env", self.countdown_line(), "env"))

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
            self._paraphrase, role in self.movers, self._in_final and role == self._current,
            self._refining and role == self._current,
        )

    # ------------------------------------------------------------------ moves
    def submit(self, role: str, text: str | Utterance, source: str | None = None) -> StepResult:
        """Append ``role``'s utterance, score it, advance the schedule and hand out rewards."""
        if role != self._current:
            if self._current is None:
                raise RuntimeError("the episode is over; reset before submitting")
            raise ValueError(f"it is {self._current!r}'s turn, not {role!r}'s")
        fb, leaves = None, False
        log = self.log
        if type(text) is not str:
            if isinstance(text, Utterance):
                text, fb, leaves, usage = text
                if usage is not None:
                    self.usage.append({"turn": len(log), "role": role, **usage})
            else:
                text = str(text)
        if not text.isascii():  # surrogate pairs joined: every text the engine holds records as is
            text = whole_text(text)
        moved = role in self.movers
        if moved and self._refine is not None and role == "actor" and not self._refining:
            return self._draft(role, text, source)
        if moved:
            msg = self._move(len(log), role, text, source)
        else:
            msg = self._feedback_move(len(log), role, text, fb, source, leaves)
        log.append(msg)
        self._spoke_at[role] = len(log)
        if msg.kind == "invalid":
            # The env says why; the turn is spent and passes on, like any other.
            log.append(Message(len(log), "env", f"Invalid move: {msg.labels['reason']}", "env"))
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
        return _new(StepResult, (msg, rewards, self.terminated, self.truncated))

    def _draft(self, role: str, text: str, source: str | None) -> StepResult:
        """The actor's draft (``protocol.refine``): read and given the task's verdict (so that a
        learner can compare it with its refinement), then handed to the refining role. It spends
        no turn, no proposal and no reward, and cannot solve the task."""
        log = self.log
        parsed = self.instance.parse(role, text)
        self._last_invalid = not parsed.valid
        if parsed.valid:
            self._last_parsed = parsed
            labels = {"valid": True, "is_correct": self.instance.score(parsed)[0]}
        else:
            labels = {"valid": False, "reason": parsed.reason}
        if source:
            labels["source"] = source
        msg = Message(len(log), role, text, "draft", None, FrozenDict(labels))
        log.append(msg)
        self._spoke_at[role] = len(log)
        if not parsed.valid:
            log.append(Message(len(log), "env", f"Invalid move: {parsed.reason}", "env"))
        self._queue = [self._refine, role]
        self._next_slot()
        return _new(StepResult, (msg, {}, False, False))

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
        if not parsed.valid:
            self._last_invalid = True
            kind = "invalid"
            labels = {"valid": False, "reason": parsed.reason}
        else:
            self._last_invalid = False
            self._last_parsed = parsed
            kind = parsed.kind
            if m:
                labels = {"valid": True, "is_correct": None, "solved": False, "candidates": tuple(line for line, _ in parsed.value)}
            else:
                is_correct, solved = self.instance.score(parsed)
                solved = solved or (self._end_on_correct and is_correct is True)
                if kind == "question":
                    labels = {"valid": True, "is_correct": is_correct, "solved": solved}
                else:
                    self.proposals += 1
                    value = parsed.value
                    before = self._last_answer.get(role)
                    self._last_answer[role] = value
                    labels = {
                        "valid": True, "is_correct": is_correct, "solved": solved,
                        "answer_norm": value if type(value) in ATOMS else freeze(value),
                        "answer_changed": before is not None and value != before,
                    }  # fmt: skip
        if source:
            labels["source"] = source
        return _new(Message, (turn, role, text, kind, None, FrozenDict(labels)))

    def _feedback_move(
        self, turn: int, role: str, text: str, fb: Feedback | None, source: str | None, leaves: bool = False
    ) -> Message:
        if fb is None:
            if role == self.instance.reply_role:  # an oracle-style reply (twenty questions' answerer)
                labels = {"source": source} if source else {}
                if leaves:
                    labels["leaves"] = True
                return Message(turn, role, text, "reply", None, FrozenDict(labels) if labels else EMPTY)
            fb = Feedback(self._kinds[0], text, None, EMPTY)
        labels = fb.labels
        # The scripted givers hand frozen labels that already say who spoke, whether it holds and
        # what it suggests: taken as they are. Anything else is completed and frozen here.
        if (
            source or text is not fb.text or type(labels) is not FrozenDict
            or "source_role" not in labels or "truthful" not in labels or "suggested_answer" not in labels
        ):  # fmt: skip
            fb = self._completed(role, text, fb, source)
        return _new(Message, (turn, role, text, "feedback", fb, _LEAVES if leaves else _TO_ACTOR))

    def _completed(self, role: str, text: str, fb: Feedback, source: str | None) -> Feedback:
        """``fb`` with the message's text and frozen labels that say who said it (``source_role``,
        ``source``) and, where the agent did not say them: ``suggested_answer``, the one answer
        the text names other than the current one and those it rules out (`read_feedback`, over
        the task's `answer_values`), and ``truthful`` None, unknown: free text (a model's, a
        learner's, a person's) is not judged true or false; only a source that knows, a scripted
        giver, declares it."""
        labels = fb.labels
        if "source_role" not in labels or "truthful" not in labels or "suggested_answer" not in labels or source:
            labels = dict(labels)
            labels.setdefault("source_role", role)
            if source:
                labels["source"] = source
            labels.setdefault("truthful", None)
            if "suggested_answer" not in labels:
                reading = read_feedback(text, self.instance, self._last_parsed)
                labels["suggested_answer"] = plain(reading.suggestion)
        if labels is not fb.labels or text is not fb.text or type(labels) is not FrozenDict:
            fb = Feedback(fb.kind, text, fb.score, freeze(labels))
        return fb

    # ------------------------------------------------------------------ public state
    @property
    def last_parsed(self) -> Parsed | None:
        """The last valid move as the task parsed it (None before the first)."""
        return self._last_parsed

    def spoke_at(self, role: str) -> int:
        """The length of the log just after ``role`` last spoke (0 if it has not)."""
        return self._spoke_at.get(role, 0)

    def metrics(self) -> dict[str, Any]:
        """The per-episode metrics (`feedback.metrics`) plus the task's own (a deal price, SPC's
        detection...) and, with ``protocol.refine``, ``draft_correct``: whether the first draft
        was right (aggregated as ``draft_correct_rate``)."""
        out = {**log_metrics(self.log, self.terminate_reason, self.instance.mode), **self.instance.extra_metrics(self.log)}
        if self._refine is not None:  # the first draft's verdict, beside the refinement's (final_correct)
            draft = next((m for m in self.log if m.kind == "draft"), None)
            if draft is not None:
                out["draft_correct"] = bool(draft.labels.get("is_correct"))
        return out

    def hidden(self) -> dict[str, Any]:
        """The hidden truth of the instance (for info, records and the TUI; never for agents)."""
        return plain(self.instance.hidden())


#: ``_new(Message, fields)`` is ``Message(*fields)`` without the named tuple's Python ``__new__``
#: (the same object; every field must be given): how the moves' hot path builds its messages
_new = tuple.__new__
_TO_ACTOR = FrozenDict({"to": "actor"})
_LEAVES = FrozenDict({"to": "actor", "leaves": True})


# ---------------------------------------------------------------------- the one driver
def act(agent: Any, views: Sequence[View]) -> list:
    """One call for all ``views``: Generations (text, token ids, log-probs) from an agent that
    has ``generate`` (an LM agent), else what ``act_batch`` returns (text or typed utterances)."""
    return agent.generate(views) if hasattr(agent, "generate") else agent.act_batch(views)


def step(episode: Episode, agents: Mapping[str, Any] | None = None) -> StepResult | None:
    """One move of the driver: ask whoever's turn it is once and submit what it says (None if the
    episode is over). ``agents`` (role -> agent) default to the episode's own."""
    role = episode._current
    if role is None:
        return None
    agent = (episode.agents if agents is None else agents).get(role)
    if agent is None:
        raise RuntimeError(f"no agent plays {role!r} and it is not the caller's role")
    return episode.submit(role, agent.act(episode.view(role)), getattr(agent, "source", None))


def play(episode: Episode, stop: str | Collection[str] | None = None, agents: Mapping[str, Any] | None = None) -> None:
    """The driver: move (as `step` does) until a role in ``stop`` is due or the episode ends. Every face, the
    CLI, the TUI, `rollout` and the learners move episodes with this, `step` or `play_batch`."""
    stop = {stop} if isinstance(stop, str) else set(stop or ())
    agents = episode.agents if agents is None else agents
    while (role := episode._current) is not None and role not in stop:
        agent = agents.get(role)
        if agent is None:
            raise RuntimeError(f"no agent plays {role!r} and it is not the caller's role")
        episode.submit(role, agent.act(episode.view(role)), getattr(agent, "source", None))  # `step`, inlined: the hot path


def play_batch(
    episodes: Mapping[Any, Episode],
    stop: str | Collection[str] | None = None,
    on_turn=None,
) -> None:
    """`play` for many episodes at once, one `act` call per agent and round for every episode
    waiting on it (an LM agent that plays seats in several episodes batches them).

    ``episodes`` maps a key to an episode (each with its own ``agents``); ``on_turn(key, role,
    view, out)`` is called for each output of ``act`` and returns what to submit (default: the
    text of ``out``); it is where a rollout records the learner's generations. Runs until every
    episode is over or waiting on a role in ``stop``."""
    stop = {stop} if isinstance(stop, str) else set(stop or ())
    live = {k: ep for k, ep in episodes.items() if ep.current_role() is not None and ep.current_role() not in stop}
    while live:
        waiting: dict[int, list[tuple[Any, str]]] = {}  # id(agent) -> (key, role) waiting on it
        for k, ep in live.items():
            role = ep.current_role()
            agent = ep.agents.get(role)
            if agent is None:
                raise RuntimeError(f"no agent plays {role!r} and it is not the caller's role")
            waiting.setdefault(id(agent), []).append((k, role))
        for seats in waiting.values():
            first = live[seats[0][0]]
            who = first.agents[seats[0][1]]
            views = [live[k].view(role) for k, role in seats]
            for (k, role), view, out in zip(seats, views, act(who, views)):
                said = on_turn(k, role, view, out) if on_turn is not None else None
                if said is None:
                    said = out.text if hasattr(out, "token_ids") else out
                if type(out) is not str and type(said) is str and getattr(out, "usage", None) is not None:  # a served model's
                    said = Utterance(said, usage=out.usage)
                live[k].submit(role, said, getattr(who, "source", None))
        live = {k: ep for k, ep in live.items() if ep.current_role() is not None and ep.current_role() not in stop}
