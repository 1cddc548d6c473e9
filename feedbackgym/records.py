"""The episode record: one JSON line per finished episode, appended and flushed at once.

A line holds the schema version, the whole scenario, the seed, every message with its hidden
labels, the returns and the metrics. `read_records` loads a file, reporting every line it cannot
use with its line number and skipping it; `rebuild` replays a record through a fresh engine, so
the episode comes back step by step with its state (and proves the record is faithful).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from feedbackgym.core import Message, StepResult, Utterance
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import Scenario, ScenarioError, validate
from feedbackgym.core import plain

SCHEMA_VERSION = 1


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

    @classmethod
    def of(cls, ep: Episode) -> "Record":
        return cls(ep.scenario, ep.seed, list(ep.log), dict(ep.returns), ep.metrics(), ep.hidden(), ep.terminate_reason)

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema": SCHEMA_VERSION,
                "scenario": self.scenario.model_dump(mode="json"),
                "seed": self.seed,
                "messages": [m.to_dict() for m in self.messages],
                "returns": plain(self.returns),
                "metrics": plain(self.metrics),
                "hidden": plain(self.hidden),
                "terminate_reason": self.terminate_reason,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str, lineno: int | None = None) -> "Record":
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
        )

    def steps(self) -> Iterator[list[Message]]:
        """The log as it grew: after the first message, after the second, ..."""
        for i in range(1, len(self.messages) + 1):
            yield self.messages[:i]


class RecordWriter:
    """Appends one line per episode and flushes it, so a crash loses at most the episode in flight."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] = open(self.path, "a", encoding="utf-8")

    def write(self, ep_or_record: Episode | Record) -> None:
        rec = ep_or_record if isinstance(ep_or_record, Record) else Record.of(ep_or_record)
        self._f.write(rec.to_json() + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: str | Path, on_error: Callable[[int, str], None] | None = None) -> list[Record]:
    """Every usable record in ``path``; each unusable line is reported as (line number, why)."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(Record.from_json(line, lineno))
            except (ValueError, KeyError, TypeError, ScenarioError) as e:
                why = "; ".join(part.strip() for part in str(e).splitlines()) or type(e).__name__
                if on_error is not None:
                    on_error(lineno, why)
    return records


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
