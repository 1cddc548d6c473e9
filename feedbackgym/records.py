"""The episode record: one JSON line per episode, appended and flushed at once.

A line holds the schema version, the whole scenario, the seed, every message with its hidden
labels, the returns and the metrics. `RecordWriter` is the one writer: the command line, the
terminal UI, the learners and the `RecordEpisodes` wrappers of both faces append through it.
Besides finished episodes it writes *journal* lines: the episode so far, each time a person has
said something, so that what they typed survives a terminal closed mid-episode. A journal line
is provisional: a later line of the same episode (same scenario and seed, its messages extending
the journal's) replaces it; one that nothing replaces comes back as an episode ended
``"aborted"``.

`read_records` loads a file, reporting every line it cannot use with its line number and skipping
it; `rebuild` replays a record through a fresh engine, so the episode comes back step by step
with its state (and proves the record is faithful).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
from pettingzoo.utils import BaseWrapper

from feedbackgym.core import Message, StepResult, Utterance, plain
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import Scenario, ScenarioError, validate

SCHEMA_VERSION = 1
#: The ``terminate_reason`` of an episode recorded before it ended (left, or journaled and never finished).
ABORTED = "aborted"


@dataclass
class Record:
    scenario: Scenario
    seed: int
    messages: list[Message]
    returns: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    hidden: dict[str, Any] = field(default_factory=dict)
    terminate_reason: str | None = None
    line: int | None = None  # where it was read from
    journal: bool = False  # a journal line: the episode so far, replaced by a later line of it
    usage: list[dict[str, Any]] = field(default_factory=list)
    """what served models' turns cost (`Episode.usage`: turn, role, token counts, latency)"""

    @classmethod
    def of(cls, ep: Episode, journal: bool = False) -> Record:
        """The record of ``ep``; one that has not ended is recorded as `ABORTED`."""
        metrics, reason = ep.metrics(), ep.terminate_reason
        if not ep.done:
            # only ``success`` reads the reason, and neither None nor ABORTED is a success
            reason = metrics["terminate_reason"] = ABORTED
        return cls(
            ep.scenario, ep.seed, list(ep.log), dict(ep.returns), metrics, ep.hidden(), reason, journal=journal, usage=list(ep.usage)
        )

    def to_json(self) -> str:
        data = {
            "schema": SCHEMA_VERSION,
            "scenario": self.scenario.model_dump(mode="json"),
            "seed": self.seed,
            "messages": [m.to_dict() for m in self.messages],
            "returns": plain(self.returns),
            "metrics": plain(self.metrics),
            "hidden": plain(self.hidden),
            "terminate_reason": self.terminate_reason,
        }
        if self.journal:
            data["journal"] = True
        if self.usage:  # only where a served model took a turn: other records stay as they were
            data["usage"] = plain(self.usage)
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (a Text action may carry one): escape it, keep it
            line = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
        return line

    @classmethod
    def from_json(cls, line: str, lineno: int | None = None) -> Record:
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        if d.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"schema {d.get('schema')!r}: expected {SCHEMA_VERSION}")
        missing = {"scenario", "seed", "messages"} - set(d)
        if missing:
            raise ValueError(f"missing field(s) {sorted(missing)}")
        return cls(
            scenario=validate(d["scenario"], source=f"record line {lineno}"),
            seed=int(d["seed"]),
            messages=[Message.from_dict(m) for m in d["messages"]],
            returns=dict(d.get("returns") or {}),
            metrics=dict(d.get("metrics") or {}),
            hidden=dict(d.get("hidden") or {}),
            terminate_reason=d.get("terminate_reason"),
            line=lineno,
            journal=bool(d.get("journal")),
            usage=_usage(d.get("usage"), lineno),
        )

    def steps(self) -> Iterator[list[Message]]:
        """The log as it grew: after the first message, after the second, ..."""
        for i in range(1, len(self.messages) + 1):
            yield self.messages[:i]

    def continues(self, journal: Record) -> bool:
        """Is this a later line of the episode ``journal`` was written from?"""
        n = len(journal.messages)
        return (
            self.seed == journal.seed
            and self.scenario == journal.scenario
            and len(self.messages) >= n
            and self.messages[:n] == journal.messages
        )


def _usage(value: Any, lineno: int | None) -> list[dict[str, Any]]:
    """A record's ``usage`` list (absent in records without served seats)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(u, dict) for u in value):
        raise ValueError(f"usage: expected a list of objects, got {type(value).__name__}")
    return value


class RecordWriter:
    """Appends one line per episode to ``path`` and flushes it, so a crash loses at most the
    episode in flight (and, with `journal`, not even what a person said in it). The file is
    opened on the first line (nothing is created until something is written) and never
    truncated; the writer may be shared between threads and between envs (a vector env's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0  # episodes written (journal lines not counted)
        self._f: IO[str] | None = None
        self._lock = threading.Lock()
        self._written: weakref.WeakSet[Episode] = weakref.WeakSet()

    def write(self, ep_or_record: Episode | Record) -> None:
        """Append an episode (one that has not ended is recorded as `ABORTED`) or a record."""
        if isinstance(ep_or_record, Record):
            self._append(ep_or_record)
        else:
            self._append(Record.of(ep_or_record))
            self._written.add(ep_or_record)

    def write_once(self, ep: Episode) -> bool:
        """`write` ``ep`` unless this writer already has; True if it wrote it now."""
        with self._lock:
            if ep in self._written:
                return False
            self._written.add(ep)
        self.write(ep)
        return True

    def journal(self, ep: Episode) -> None:
        """Append ``ep`` as it stands, provisionally (see the module's doc): call it after each
        move that could not be played again from the seed (a person's)."""
        self._append(Record.of(ep, journal=True))

    def _append(self, record: Record) -> None:
        line = record.to_json() + "\n"
        with self._lock:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "a", encoding="utf-8")
            self._f.write(line)
            self._f.flush()
            self.count += not record.journal

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: str | Path, on_error: Callable[[int, str], None] | None = None) -> list[Record]:
    """Every usable record in ``path``, in file order; each unusable line is reported as (line
    number, why). A journal line that a later line of its episode replaces is left out; one that
    nothing replaces is kept (ended `ABORTED`, ``journal`` set)."""
    records: list[Record | None] = []
    journals: dict[tuple[str, int], list[int]] = {}  # (scenario name, seed) -> indexes of journal lines not yet replaced
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = Record.from_json(line, lineno)
            except (ValueError, KeyError, TypeError, ScenarioError) as e:
                why = "; ".join(part.strip() for part in str(e).splitlines()) or type(e).__name__
                if on_error is not None:
                    on_error(lineno, why)
                continue
            key = (rec.scenario.name, rec.seed)
            pending = journals.get(key, [])
            for i in [i for i in pending if rec.continues(records[i])]:
                records[i] = None
                pending.remove(i)
            if rec.journal:
                journals.setdefault(key, []).append(len(records))
            records.append(rec)
    return [r for r in records if r is not None]


def resubmit(ep: Episode, messages: Sequence[Message]) -> Iterator[StepResult]:
    """Submit recorded messages to ``ep`` again, in order, yielding each step's result: every
    utterance for its role (feedback with its recorded kind and labels, a user's leaving too);
    the env's own notes are regenerated."""
    for m in messages:
        if m.role == "env":
            continue
        leaves = bool(m.labels.get("leaves"))
        text: str | Utterance = Utterance(m.text, m.feedback, leaves) if m.feedback or leaves else m.text
        yield ep.submit(m.role, text, source=m.labels.get("source"))


def rebuild(record: Record) -> Episode:
    """Replay a record through a fresh engine (which proves the record is faithful)."""
    ep = Episode(record.scenario, record.seed)
    for _ in resubmit(ep, record.messages):
        pass
    return ep


# ---------------------------------------------------------------------- the faces' wrappers
class _Recorded:
    """What both faces' wrappers do: hold the writer, append the wrapped env's episode once it
    has ended, and close the writer with the env when they opened it."""

    def _record_to(self, record: RecordWriter | str | Path) -> None:
        self._owns = not isinstance(record, RecordWriter)
        self.writer = RecordWriter(record) if self._owns else record

    def _settle(self) -> None:
        ep = self.env.unwrapped.episode
        if ep is not None and ep.done:
            self.writer.write_once(ep)

    def close(self) -> None:
        super().close()
        if self._owns:
            self.writer.close()


class RecordEpisodes(_Recorded, gym.Wrapper):
    """Appends each episode of a `FeedbackEnv` (``feedbackgym.make``'s env) to a record once it
    has ended, and only then: an episode left by ``reset`` before its end is not written.

        env = RecordEpisodes(feedbackgym.make("feedbackgym/JudgedQA-v0"), "runs/episodes.jsonl")
        envs = gym.make_vec("feedbackgym/JudgedQA-v0", 4, "sync", wrappers=[lambda e: RecordEpisodes(e, writer)])

    ``record``: a path (the wrapper opens it and closes it with the env) or a `RecordWriter` to
    share (between the envs of a vector env; its owner closes it). Observations, rewards and
    infos pass through unchanged; `read_records` and `rebuild` bring the episodes back."""

    def __init__(self, env: gym.Env, record: RecordWriter | str | Path):
        super().__init__(env)
        self._record_to(record)

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._settle()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._settle()
        return out


class RecordAECEpisodes(_Recorded, BaseWrapper):
    """`RecordEpisodes` for the PettingZoo face (``feedbackgym.make_multiagent``'s AEC env):
    each episode is appended once it has ended, and only then.

        env = RecordAECEpisodes(feedbackgym.make_multiagent("feedbackgym/JudgedQA-v0"), "runs/episodes.jsonl")
    """

    def __init__(self, env, record: RecordWriter | str | Path):
        super().__init__(env)
        self._record_to(record)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        super().reset(seed=seed, options=options)
        self._settle()

    def step(self, action) -> None:
        super().step(action)
        self._settle()
