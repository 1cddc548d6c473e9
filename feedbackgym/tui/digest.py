"""What the screens show, computed from a message log or a record: who spoke, the per-turn table,
the R->W turns, one row per recorded episode and the replay filters. No widgets, no engine.

Two names that are easy to confuse, each with one meaning here: **C->I** is the episode metric
`flip_c2i` (the first answer right, the last one wrong; `feedback.metrics`), shown in the
episode table's C→I column and kept by the ``flip_c2i`` filter; an **R->W turn** is one actor
answer that is wrong right after a right one (`right_to_wrong`), counted per episode in the R→W
column, kept by the ``right_to_wrong`` filter (at least one), and where the replay browser's
``]`` and ``[`` jump: ``]`` stops in an episode exactly as many times as its R→W column says.
Every C->I episode has an R->W turn; an R->W turn can be undone later (right, wrong, right: no
C->I), and an episode can have two (right, wrong, right, wrong: one C->I, two R->W)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from feedbackgym.core import NOT_MOVES
from feedbackgym.envs.engine import Episode, Message
from feedbackgym.feedback.metrics import answer_moves, correctness, turn_metrics
from feedbackgym.records import Record


def task_of(record: Record) -> str:
    """The task the episode's actor was set (the instance's instruction, drawn again from the
    record's scenario and seed: it is public, every seat's view holds it); '' when the record's
    scenario no longer builds an episode here."""
    try:
        return Episode(record.scenario, record.seed).instance.instruction
    except (ValueError, RuntimeError, KeyError, TypeError):
        return ""


def task_lines(task: str) -> list[str]:
    """The task in ``feedbackgym replay``'s columns: ``task`` where the role goes, the text where
    messages' text goes (its lines under one another), as the transcript shows it; none for ''."""
    lines = task.splitlines()
    if not lines:
        return []
    return [f"{'':>3} {'task':>6} {'':<11} {lines[0]}".rstrip(), *(f"{'':>22} {line}".rstrip() for line in lines[1:])]


def source_of(m: Message) -> str | None:
    """Who produced the message: "human", "lm", or None for the scripted default."""
    return (m.feedback.labels if m.feedback else m.labels).get("source")


def person_spoke(messages: Sequence[Message], since: int = 0) -> bool:
    """Did a person say any of the messages from turn ``since`` on?"""
    return any(source_of(m) == "human" for m in messages if m.turn >= since)


def scored_answers(messages: Sequence[Message]) -> list[tuple[Message, bool]]:
    """Each actor answer the metrics score, with whether it is right (`metrics.correctness`: an
    unreadable last move after an answer counts as one more, wrong, answer)."""
    answers, correct = answer_moves(messages), correctness(messages)
    if len(correct) > len(answers):
        answers.append(next(m for m in reversed(messages) if m.role == "actor" and m.kind not in NOT_MOVES))
    return list(zip(answers, correct))


def right_to_wrong(messages: Sequence[Message]) -> list[int]:
    """The R->W turns: the turns (indexes into the log) of the actor answers that are wrong right
    after a right one, by the same correctness the metrics read (`metrics.correctness`)."""
    scored = scored_answers(messages)
    return [m.turn for (_, before), (m, now) in zip(scored, scored[1:]) if before and not now]


def turn_rows(messages: Sequence[Message], rewards: Mapping[int, Mapping[str, float]]) -> list[dict[str, Any]]:
    """`turn_metrics` rows (one per actor move), each with ``reward``: per role, everything handed
    out from that move up to the next one (so the rows add up to the returns), and never for a
    message past the last of ``messages`` (a scrubbed transcript shows no reward from its future)."""
    rows = turn_metrics(messages)
    starts = [r["turn"] for r in rows]
    last = messages[-1].turn if messages else -1
    for row, start, end in zip(rows, starts, starts[1:] + [last + 1]):
        total: dict[str, float] = {}
        for turn, given in rewards.items():
            if start <= turn < end:
                for role, v in given.items():
                    total[role] = total.get(role, 0.0) + v
        row["reward"] = total
    return rows


def mark(v: Any) -> str:
    """A truth value as one glyph: yes, no, or not applicable."""
    return "·" if v is None else "✓" if v else "✗"


def signed(values: Mapping[str, float]) -> str:
    return " ".join(f"{role} {v:+g}" for role, v in values.items()) or "-"


def short_signed(values: Mapping[str, float]) -> str:
    """`signed` with each role cut to its first three letters (``act +1 jud -1``), for narrow tables."""
    return " ".join(f"{role[:3]} {v:+g}" for role, v in values.items()) or "-"


#: The replay browser's episode table: column -> (the cell of a record, its sort key). The
#: scenario column is left out when the file holds one scenario (the status line names it).
EPISODE_CELLS: dict[str, tuple[Callable[[int, Record], str], Callable[[int, Record], Any]]] = {
    "#": (lambda i, r: str(i), lambda i, r: i),
    "scenario": (lambda i, r: r.scenario.name, lambda i, r: r.scenario.name),
    "seed": (lambda i, r: str(r.seed), lambda i, r: r.seed),
    "turns": (lambda i, r: str(r.metrics.get("n_turns", "-")), lambda i, r: _number(r.metrics.get("n_turns"))),
    "end": (lambda i, r: r.terminate_reason or "-", lambda i, r: r.terminate_reason or ""),
    "1st": (lambda i, r: mark(r.metrics.get("initial_correct")), lambda i, r: _truth(r.metrics.get("initial_correct"))),
    "last": (lambda i, r: mark(r.metrics.get("final_correct")), lambda i, r: _truth(r.metrics.get("final_correct"))),
    "C→I": (lambda i, r: mark(r.metrics.get("flip_c2i")), lambda i, r: _truth(r.metrics.get("flip_c2i"))),
    "R→W": (lambda i, r: str(len(right_to_wrong(r.messages))), lambda i, r: len(right_to_wrong(r.messages))),
    "I→C": (lambda i, r: mark(r.metrics.get("flip_i2c")), lambda i, r: _truth(r.metrics.get("flip_i2c"))),
    "returns": (lambda i, r: short_signed(r.returns), lambda i, r: sum(r.returns.values())),
    "human": (lambda i, r: mark(person_spoke(r.messages)), lambda i, r: person_spoke(r.messages)),
}  # fmt: skip
EPISODE_COLUMNS = tuple(EPISODE_CELLS)


def _truth(v: Any) -> int:
    """A mark's sort key: not applicable, no, yes."""
    return -1 if v is None else int(bool(v))


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else float("-inf")


def episode_columns(records: Sequence[Record]) -> list[str]:
    """The episode table's columns for ``records`` (no scenario column for a file of one scenario)."""
    one = len({r.scenario.name for r in records}) <= 1
    return [c for c in EPISODE_COLUMNS if not (one and c == "scenario")]


def episode_row(index: int, record: Record, columns: Sequence[str] = EPISODE_COLUMNS) -> tuple[str, ...]:
    """One line of the replay browser's episode table."""
    return tuple(EPISODE_CELLS[c][0](index, record) for c in columns)


def sort_key(column: str) -> Callable[[int, Record], Any]:
    """How the episode table sorts by ``column`` (the record's index breaks ties)."""
    key = EPISODE_CELLS[column][1]
    return lambda i, r: (key(i, r), i)


#: The replay browser's filters, in the order the filter key cycles through them: name -> (label, keep?).
FILTERS: dict[str, tuple[str, Callable[[Record], bool]]] = {
    "all": ("all episodes", lambda r: True),
    "flip_c2i": ("C→I: right first, wrong last", lambda r: bool(r.metrics.get("flip_c2i"))),
    "right_to_wrong": ("R→W: an answer wrong right after a right one", lambda r: bool(right_to_wrong(r.messages))),
    "flip_i2c": ("I→C: wrong first, right last", lambda r: bool(r.metrics.get("flip_i2c"))),
    "oscillated": ("oscillating", lambda r: bool(r.metrics.get("oscillated"))),
    "person": ("a person spoke", lambda r: person_spoke(r.messages)),
}


def timeline(messages: Sequence[Message], shown: int) -> list[tuple[int, bool | None, bool]]:
    """The answer timeline of an episode scrubbed to its first ``shown`` messages: per scored
    actor answer, (turn, right or not, whether it is an R->W turn), and None for whether it is
    right for the answers past the visible point (they are placed, not told)."""
    flips = set(right_to_wrong(messages[:shown]))
    return [(m.turn, ok if m.turn < shown else None, m.turn in flips) for m, ok in scored_answers(messages)]


def find(records: Sequence[Record], order: Sequence[int], query: str, task: Callable[[int], str]) -> list[tuple[int, int]]:
    """Where ``query`` occurs (case-insensitive) in the episodes ``order`` lists, in that order:
    (episode, message) for each message whose text holds it, and (episode, -1) where the
    episode's task (``task(episode)``) does."""
    needle = query.casefold()
    hits = []
    for i in order:
        if needle in task(i).casefold():
            hits.append((i, -1))
        hits.extend((i, m.turn) for m in records[i].messages if needle in m.text.casefold())
    return hits


def labels_of(m: Message) -> dict[str, Any]:
    """The hidden labels a message carries (its feedback's, for feedback)."""
    return dict(m.feedback.labels) if m.feedback else dict(m.labels)


def tag_of(m: Message) -> str:
    """The bracketed kind: the feedback kind for feedback, else the message kind."""
    return f"[{m.feedback.kind}]" if m.feedback else f"[{m.kind}]"
