"""The journal of a person's turns: one JSON line per submitted turn, appended and flushed to the
disk (``os.fsync``) before the episode moves on, so that nothing a person said is lost to a
closed terminal, a SIGTERM or a SIGKILL.

The journal lies beside the record (``runs/tui.jsonl`` -> ``runs/tui.journal.jsonl``). Each line
stands on its own: the set-up (the whole scenario, its seats, the seed), the branch it belongs
to, the person's turn (its role, the turn it answers, when it was shown and when it was
submitted, as Unix times) and ``messages``, every message of the branch since the branch's
previous line, the person's last. A branch is one episode as played: a fresh one on start,
restart or new seed (``parent`` None), or one that a rewind started from ``parent``, keeping its
messages before ``fork_turn`` (they open the new branch's first line). The messages of a
branch's lines, in order, are its log up to the person's last turn: `rebuild_journal` resubmits them
through a fresh engine (`records.rebuild`), so recovery needs no agent, model or server, and
proves the journal faithful. Wall-clock times belong here and in the record (`Record.people`),
never in an env's ``info``.

    feedbackgym recover runs/tui.journal.jsonl     # append what the record lacks, as aborted
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from feedbackgym.envs.engine import Episode
from feedbackgym.records import Record, RecordError, RecordWriter, read_records, rebuild

#: The schema of a journal line.
JOURNAL_VERSION = 1
#: A record's ``abort_cause`` when it was rebuilt from the journal alone.
RECOVERED = "recovered"


def journal_path(record: str | Path) -> Path:
    """Where the journal of ``record`` lies: beside it, ``NAME.journal.jsonl``."""
    record = Path(record)
    stem = record.name.removesuffix(".jsonl")
    return record.with_name(f"{stem}.journal.jsonl")


def record_path(journal: str | Path) -> Path:
    """The record a journal lies beside (`journal_path`'s inverse)."""
    journal = Path(journal)
    return journal.with_name(journal.name.removesuffix(".journal.jsonl") + ".jsonl")


@dataclass(frozen=True)
class Turn:
    """What the journal says of one of a person's turns, besides the messages."""

    turn: int
    role: str
    target_turn: int | None
    """the turn it answers: the latest message before it by another role, not the env's (None: none)"""
    shown_at: float | None
    """when the request for it was on screen (Unix time)"""
    submitted_at: float | None
    """when the person said it (Unix time)"""
    branch: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn, "role": self.role, "target_turn": self.target_turn,
            "shown_at": self.shown_at, "submitted_at": self.submitted_at, "branch": self.branch,
        }  # fmt: skip


class Journal:
    """Appends one line per person's turn to ``path``, flushed and fsynced before it returns.
    The file is opened on the first line (nothing is created before a person speaks)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f: IO[str] | None = None
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}  # branch -> messages of it already in the journal

    def add(self, ep: Episode, turn: Turn, parent: str | None = None, fork_turn: int | None = None) -> None:
        """Journal ``turn`` (the person's message ending ``ep.log``) with the branch's messages
        since its previous line."""
        start = self._written.get(turn.branch, 0)
        line = {
            "journal": JOURNAL_VERSION,
            **turn.to_dict(),
            "parent": parent,
            "fork_turn": fork_turn,
            "seed": ep.seed,
            "seats": {role: spec.agent for role, spec in ep.scenario.roles.items()},
            "scenario": ep.scenario.model_dump(mode="json"),
            "messages": [m.to_dict() for m in ep.log[start:]],
        }
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, kept (as the record does)
            text = json.dumps(line, ensure_ascii=True, separators=(",", ":"))
        with self._lock:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "a", encoding="utf-8")
            self._f.write(text + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
            self._written[turn.branch] = len(ep.log)

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None


# ---------------------------------------------------------------------- reading it back
@dataclass
class Branch:
    """One branch as the journal holds it: its set-up, messages and a person's turns."""

    id: str
    parent: str | None
    fork_turn: int | None
    scenario: dict[str, Any]
    seed: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    broken: str | None = None
    """why the branch stops early (a line that does not follow the one before), or None"""


def read_journal(path: str | Path, on_error: Callable[[int, str], None] | None = None) -> list[Branch]:
    """The branches of the journal at ``path``, in the order they began. A line that is not a
    journal line (a torn last line after a kill, another file's) is skipped and reported to
    ``on_error`` as (line number, why); a branch whose line does not continue it stops there."""
    branches: dict[str, Branch] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                d = json.loads(text)
                if not isinstance(d, dict) or d.get("journal") != JOURNAL_VERSION:
                    raise ValueError(f'not a journal line (expected "journal": {JOURNAL_VERSION})')
                b = branches.setdefault(d["branch"], Branch(d["branch"], d.get("parent"), d.get("fork_turn"), d["scenario"], d["seed"]))
                messages = d["messages"]
                turn = {k: d[k] for k in ("turn", "role", "target_turn", "shown_at", "submitted_at", "branch")}
            except (ValueError, KeyError, TypeError) as e:
                if on_error is not None:
                    on_error(lineno, f"{type(e).__name__}: {e}")
                continue
            if b.broken:
                continue
            first = messages[0].get("turn") if messages and isinstance(messages[0], dict) else None
            if first != len(b.messages) or turn["turn"] != len(b.messages) + len(messages) - 1 - _trailing_env(messages):
                b.broken = f"line {lineno} does not continue the branch (its messages start at turn {first})"
                continue
            b.messages += messages
            b.turns.append(turn)
    return list(branches.values())


def _trailing_env(messages: Sequence[dict[str, Any]]) -> int:
    """How many env notes follow the person's message at the end of a line (an invalid move's)."""
    n = 0
    for m in reversed(messages):
        if m.get("role") != "env":
            break
        n += 1
    return n


def rebuild_branch(branch: Branch) -> Episode:
    """The episode of ``branch`` up to its person's last turn, replayed through a fresh engine
    (`records.rebuild`); `RecordError` if the journal's messages do not replay."""
    line = json.dumps({"schema": 1, "scenario": branch.scenario, "seed": branch.seed, "messages": branch.messages})
    record = Record.from_json(line)
    try:
        return rebuild(record)
    except (ValueError, RuntimeError) as e:
        raise RecordError(f"branch {branch.id}: the journal's messages do not replay: {e}") from None


def rebuild_journal(branch_or_path: Branch | str | Path) -> list[Record]:
    """The record of every branch of a journal (or of one branch), each rebuilt through a fresh
    engine; an unfinished one is `ABORTED` with ``abort_cause`` `RECOVERED`, and every record
    carries its person's turns (`Record.people`)."""
    branches = [branch_or_path] if isinstance(branch_or_path, Branch) else read_journal(branch_or_path)
    out = []
    for b in branches:
        out.append(Record.of(rebuild_branch(b), abort_cause=RECOVERED, people=b.turns))
    return out


def recover(journal: str | Path, record: str | Path | None = None) -> list[tuple[Branch, Record, bool]]:
    """Rebuild every branch of ``journal`` and append to ``record`` (default: the record it lies
    beside) each one the record does not hold yet, as `ABORTED` (`RECOVERED`); a branch the
    record already holds (a line of it continues the branch's messages) is left. Returns
    (branch, its record, whether it was appended now) per branch."""
    record = record_path(journal) if record is None else Path(record)
    held = read_records(record) if record.is_file() else []
    results = []
    with RecordWriter(record) as writer:
        for b in read_journal(journal):
            rec = Record.of(rebuild_branch(b), abort_cause=RECOVERED, people=b.turns)
            new = not any(r.continues(rec) for r in held)
            if new:
                writer.write(rec)
            results.append((b, rec, new))
    return results
