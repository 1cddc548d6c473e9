"""A live episode as the terminal UI drives it: who sits where, the episode in play, recording.

`Setup` is what the home screen decides. `LiveSession` holds the `Play` in progress and swaps it
for a fresh one on restart, on a new seed, or on going back to turn k (a fresh `Episode` that
re-submits the recorded utterances before k, through `feedbackgym.records.resubmit`). ``move``
is the only call that runs agents (through the engine's one driver, `play`); the screen calls it
from a worker thread.

Recording, through the one `records.RecordWriter`: every finished episode is appended at once.
Each of a person's moves is journaled as it is submitted, twice: a line of the journal beside
the record (`journal.Journal`: the turn with when it was shown and submitted, the turn it
answers and its branch, fsynced before the episode moves on; `journal.rebuild_journal` brings
every submitted turn back from it alone), and the episode so far as a provisional journal line
of the record. An episode left unfinished (quit, restart, rewind, back to home, SIGTERM, SIGHUP)
is appended too, with ``terminate_reason`` ``"aborted"`` and its ``abort_cause``, when a person
said something in it that would otherwise be lost; an unfinished all-scripted episode is not,
since its seed reproduces it. Every record of a person's episode carries their turns' timing
(`Record.people`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedbackgym.agents import agents_for, check_spec, scripted_names
from feedbackgym.core import StepResult
from feedbackgym.envs import engine
from feedbackgym.envs.engine import Episode, Message
from feedbackgym.envs.scenario import Scenario
from feedbackgym.records import Record, RecordWriter, resubmit
from feedbackgym.tui.digest import person_spoke, source_of
from feedbackgym.tui.journal import Journal, Turn, journal_path
from feedbackgym.tui.seat import SeatAgent, TurnBroker

#: Who takes an actor seat the scenario leaves to a learner: it follows suggestions, so feedback shows.
DEFAULT_ACTOR = "scripted:sycophant"


def default_spec(role: str, spec: str) -> str:
    """``spec``, or a scripted behaviour where the scenario leaves the seat to a learner."""
    if spec != "learner":
        return spec
    return DEFAULT_ACTOR if role == "actor" else f"scripted:{scripted_names(role)[0]}"


def check_seat(spec: str, role: str, family: str) -> str | None:
    """None if ``spec`` can sit in ``role`` in the UI, else what was expected."""
    if spec == "learner":
        return "an agent that plays by itself, or human (a learner seat is filled by code, not the UI)"
    return check_spec(spec, role, family)


@dataclass(frozen=True)
class Setup:
    """A scenario with an agent spec in every seat, and the first seed."""

    scenario: Scenario
    seed: int = 0

    @classmethod
    def of(cls, scenario: Scenario, seed: int = 0, specs: Mapping[str, str] | None = None) -> Setup:
        """The scenario with ``specs`` in their seats and the scenario's own agents elsewhere."""
        chosen = {role: default_spec(role, s.agent) for role, s in scenario.roles.items()}
        chosen.update(specs or {})
        for role, spec in chosen.items():
            err = check_seat(spec, role, scenario.task.family)
            if err:
                raise ValueError(f"{role}: {spec!r}: expected {err}")
        return cls(scenario.with_roles(**chosen), seed)

    @property
    def people(self) -> list[str]:
        """The roles a person plays."""
        return [role for role, s in self.scenario.roles.items() if s.agent == "human"]

    @property
    def seats(self) -> dict[str, str]:
        """Each role's agent spec."""
        return {role: s.agent for role, s in self.scenario.roles.items()}


@dataclass(eq=False)
class Play:
    """One episode on screen: the engine, the broker its seats ask, the reward each message
    earned; its branch in the journal (``parent`` and ``fork_turn``: the branch a rewind left,
    and the turn it went back to), and the timing of each of a person's turns in it."""

    episode: Episode
    broker: TurnBroker
    rewards: dict[int, dict[str, float]] = field(default_factory=dict)
    branch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    parent: str | None = None
    fork_turn: int | None = None
    people: list[dict[str, Any]] = field(default_factory=list)


def _taken(episode: Episode) -> dict[str, float]:
    """The rewards handed out since they were last taken: what the last move earned, per role."""
    return {role: v for role in episode.pending if (v := episode.take_reward(role))}


def record_rewards(record: Record) -> dict[int, dict[str, float]]:
    """The reward each message of ``record`` earned (empty if the record no longer replays)."""
    try:
        return {step.message.turn: step.rewards for step in resubmit(Episode(record.scenario, record.seed), record.messages)}
    except (ValueError, RuntimeError, KeyError):
        return {}


class LiveSession:
    """The episode in play for one `Setup`, and the moves that restart, rewind and record it.
    ``writer``: where episodes are appended (None: nothing is kept); ``journal``: where a
    person's turns are journaled (default: beside the writer's file, `journal.journal_path`)."""

    def __init__(self, setup: Setup, writer: RecordWriter | None = None, journal: Journal | None = None):
        self.setup = setup
        self.writer = writer
        self.journal = journal if journal is not None or writer is None else Journal(journal_path(writer.path))
        self.closed = False
        self.play = self._new_play(setup.seed)

    @property
    def current(self) -> Setup:
        """The set-up as it stands: the seats, and the seed of the episode in play."""
        return Setup(self.setup.scenario, self.play.episode.seed)

    def _new_play(self, seed: int, messages: Sequence[Message] = (), parent: Play | None = None) -> Play:
        broker = TurnBroker()
        agents = agents_for(self.setup.scenario) | {role: SeatAgent(role, broker) for role in self.setup.people}
        play = Play(Episode(self.setup.scenario, seed, agents), broker)
        if parent is not None:
            play.parent, play.fork_turn = parent.branch, len(messages)
            play.people = [p for p in parent.people if p["turn"] < len(messages)]
        for step in resubmit(play.episode, messages):
            play.rewards[step.message.turn] = _taken(play.episode)
        return play

    def move(self, play: Play) -> StepResult:
        """Let the agent whose turn it is say one thing, through the engine's driver (blocks
        while a person's seat waits; raises `SeatClosed` if the play is left meanwhile). A
        person's move is journaled at once, before this returns."""
        ep = play.episode
        said = engine.step(ep).message
        play.rewards[said.turn] = rewards = _taken(ep)
        if source_of(said) == "human":
            self._journal(play, said)
        return StepResult(said, rewards, ep.terminated, ep.truncated)

    def _journal(self, play: Play, said: Message) -> None:
        answered = next((a for a in reversed(play.broker.answered) if a.request.turn == said.turn), None)
        turn = Turn(
            said.turn, said.role, answered.request.target_turn if answered else None,
            answered.shown_at if answered else None, answered.submitted_at if answered else None, play.branch,
        )  # fmt: skip
        play.people.append(turn.to_dict())
        if self.journal is not None:
            self.journal.add(play.episode, turn, play.parent, play.fork_turn)
        if self.writer is not None:
            self.writer.journal(play.episode, people=play.people)

    def settle(self, play: Play) -> bool:
        """Record ``play`` if it has just ended; True if it was recorded now."""
        return play.episode.done and self.writer is not None and self.writer.write_once(play.episode, people=play.people)

    def restart(self, seed: int | None = None) -> Play:
        """Leave the play in progress and start the same seed again, or ``seed``."""
        old = self._leave(0, "restart")
        self.play = self._new_play(old.episode.seed if seed is None else seed)
        return self.play

    def rewind(self, turn: int) -> Play:
        """Leave the play in progress for a fresh one that has replayed every message before
        ``turn`` (a new branch of the journal, its parent the one left)."""
        old = self._leave(turn, "rewind")
        self.play = self._new_play(old.episode.seed, [m for m in old.episode.log if m.turn < turn], parent=old)
        return self.play

    def close(self, cause: str = "quit") -> None:
        """Leave the play in progress for good (``cause``: why, recorded if it is kept as
        aborted); later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        self._leave(0, cause)
        if self.journal is not None:
            self.journal.close()

    def _leave(self, kept: int, cause: str) -> Play:
        """Release the play's waiting seats; record it (`records.ABORTED`, with ``cause``) if
        unfinished and a person spoke from ``kept`` on."""
        play = self.play
        play.broker.close()
        ep = play.episode
        if not ep.done and self.writer is not None and person_spoke(ep.log, since=kept):
            self.writer.write_once(ep, abort_cause=cause, people=play.people)
        return play
