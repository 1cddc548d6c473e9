"""A live episode as the terminal UI drives it: who sits where, the episode in play, recording.

`Setup` is what the home screen decides. `LiveSession` holds the `Play` in progress and swaps it
for a fresh one on restart, on a new seed, or on going back to turn k (a fresh `Episode` that
re-submits the recorded utterances before k, as `feedbackgym.records.rebuild` does). ``move``
is the only call that runs agents; the screen calls it from a worker thread.

Recording: every finished episode is appended to the JSONL record at once. An episode left
unfinished (quit, restart, rewind, back to home) is appended too, with ``terminate_reason``
``"aborted"``, when a person said something in it that would otherwise be lost; an unfinished
all-scripted episode is not, since its seed reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from feedbackgym.agents import agents_for, check_spec, scripted_names
from feedbackgym.envs.engine import Episode, Message, StepResult
from feedbackgym.envs.scenario import Scenario
from feedbackgym.feedback.metrics import log_metrics
from feedbackgym import records
from feedbackgym.records import Record, RecordWriter
from feedbackgym.tui.digest import person_spoke
from feedbackgym.tui.seat import SeatAgent, TurnBroker

#: The ``terminate_reason`` of an episode recorded before it ended.
ABORTED = "aborted"
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
    def of(cls, scenario: Scenario, seed: int = 0, specs: Mapping[str, str] | None = None) -> "Setup":
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


@dataclass(eq=False)
class Play:
    """One episode on screen: the engine, the broker its seats ask, the reward each message earned."""

    episode: Episode
    broker: TurnBroker
    rewards: dict[int, dict[str, float]] = field(default_factory=dict)
    recorded: bool = False


def resubmit(episode: Episode, messages: Sequence[Message], rewards: dict[int, dict[str, float]]) -> None:
    """Submit the recorded messages again (``records.resubmit``), noting each one's rewards."""
    for step in records.resubmit(episode, messages):
        rewards[step.message.turn] = step.rewards


def record_rewards(record: Record) -> dict[int, dict[str, float]]:
    """The reward each message of ``record`` earned (empty if the record no longer replays)."""
    rewards: dict[int, dict[str, float]] = {}
    try:
        resubmit(Episode(record.scenario, record.seed), record.messages, rewards)
    except (ValueError, RuntimeError, KeyError):
        return {}
    return rewards


def aborted_record(episode: Episode) -> Record:
    """The record of an episode left before its end."""
    metrics = log_metrics(episode.log, ABORTED, episode.instance.mode)
    return Record(episode.scenario, episode.seed, list(episode.log), dict(episode.returns), metrics, episode.hidden(), ABORTED)


class Recorder:
    """Appends episode records to one JSONL file (opened per record, so nothing is held open)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.count = 0

    def write(self, record: Record) -> None:
        if self.path is None:
            return
        with RecordWriter(self.path) as w:
            w.write(record)
        self.count += 1


class LiveSession:
    """The episode in play for one `Setup`, and the moves that restart, rewind and record it."""

    def __init__(self, setup: Setup, recorder: Recorder | None = None):
        self.setup = setup
        self.recorder = recorder or Recorder(None)
        self.play = self._new_play(setup.seed)

    def _new_play(self, seed: int, messages: Sequence[Message] = ()) -> Play:
        broker = TurnBroker()
        agents = agents_for(self.setup.scenario) | {role: SeatAgent(role, broker) for role in self.setup.people}
        play = Play(Episode(self.setup.scenario, seed, agents), broker)
        resubmit(play.episode, messages, play.rewards)
        return play

    def move(self, play: Play) -> StepResult:
        """Let the agent whose turn it is say one thing (blocks while a person's seat waits;
        raises `SeatClosed` if the play is left meanwhile)."""
        ep = play.episode
        role = ep.current_role()
        agent = ep.agents[role]
        step = ep.submit(role, agent.act(ep.view(role)), getattr(agent, "source", None))
        play.rewards[step.message.turn] = step.rewards
        return step

    def settle(self, play: Play) -> bool:
        """Record ``play`` if it has just ended; True if it was recorded now."""
        if not play.episode.done or play.recorded:
            return False
        play.recorded = True
        self.recorder.write(Record.of(play.episode))
        return True

    def restart(self, seed: int | None = None) -> Play:
        """Leave the play in progress and start the same seed again, or ``seed``."""
        old = self._leave(0)
        self.play = self._new_play(old.episode.seed if seed is None else seed)
        return self.play

    def rewind(self, turn: int) -> Play:
        """Leave the play in progress for a fresh one that has replayed every message before ``turn``."""
        old = self._leave(turn)
        self.play = self._new_play(old.episode.seed, [m for m in old.episode.log if m.turn < turn])
        return self.play

    def close(self) -> None:
        """Leave the play in progress for good."""
        self._leave(0)

    def _leave(self, kept: int) -> Play:
        """Release the play's waiting seats; record it if unfinished and a person spoke from ``kept`` on."""
        play = self.play
        play.broker.close()
        ep = play.episode
        if not ep.done and not play.recorded and person_spoke(ep.log, since=kept):
            play.recorded = True
            self.recorder.write(aborted_record(ep))
        return play
