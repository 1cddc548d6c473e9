"""What the screens show, computed from a message log or a record: who spoke, the per-turn table,
the R->W turns, one row per recorded episode and the replay filters. No widgets, no engine.

Two names that are easy to confuse, each with one meaning here: **C->I** is the episode metric
`flip_c2i` (the first answer right, the last one wrong; `feedback.metrics`), shown in the
episode table's column and kept by the ``flip_c2i`` filter; an **R->W turn** is one actor answer
that is wrong right after a right one (`right_to_wrong`), where the replay browser's ``]`` and
``[`` jump. Every C->I episode has an R->W turn; an R->W turn can be undone later (right, wrong,
right: no C->I)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


def right_to_wrong(messages: Sequence[Message]) -> list[int]:
    """The R->W turns: the turns (indexes into the log) of the actor answers that are wrong right
    after a right one, by the same correctness the metrics read (`metrics.correctness`)."""
    answers, correct = answer_moves(messages), correctness(messages)
    return [m.turn for m, before, now in zip(answers[1:], correct, correct[1:]) if before and not now]


def turn_rows(messages: Sequence[Message], rewards: Mapping[int, Mapping[str, float]]) -> list[dict[str, Any]]:
    """`turn_metrics` rows (one per actor move), each with ``reward``: per role, everything handed
    out from that move up to the next one (so the rows add up to the returns)."""
    rows = turn_metrics(messages)
    starts = [r["turn"] for r in rows]
    for row, start, end in zip(rows, starts, starts[1:] + [float("inf")]):
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


EPISODE_COLUMNS = ("#", "scenario", "seed", "turns", "end", "first", "last", "C→I", "I→C", "returns", "person")


def episode_row(index: int, record: Record) -> tuple[str, ...]:
    """One line of the replay browser's episode table."""
    m = record.metrics
    return (
        str(index),
        record.scenario.name,
        str(record.seed),
        str(m.get("n_turns", "-")),
        record.terminate_reason or "-",
        mark(m.get("initial_correct")),
        mark(m.get("final_correct")),
        mark(m.get("flip_c2i")),
        mark(m.get("flip_i2c")),
        signed(record.returns),
        mark(person_spoke(record.messages)),
    )


#: The replay browser's filters, in the order the filter key cycles through them: name -> (label, keep?).
FILTERS: dict[str, tuple[str, Callable[[Record], bool]]] = {
    "all": ("all episodes", lambda r: True),
    "flip_c2i": ("C→I: right first, wrong last", lambda r: bool(r.metrics.get("flip_c2i"))),
    "flip_i2c": ("I→C: wrong first, right last", lambda r: bool(r.metrics.get("flip_i2c"))),
    "oscillated": ("oscillating", lambda r: bool(r.metrics.get("oscillated"))),
    "person": ("a person spoke", lambda r: person_spoke(r.messages)),
}


def labels_of(m: Message) -> dict[str, Any]:
    """The hidden labels a message carries (its feedback's, for feedback)."""
    return dict(m.feedback.labels) if m.feedback else dict(m.labels)


def tag_of(m: Message) -> str:
    """The bracketed kind: the feedback kind for feedback, else the message kind."""
    return f"[{m.feedback.kind}]" if m.feedback else f"[{m.kind}]"
