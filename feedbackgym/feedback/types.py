"""What is said and what it secretly means: the `Feedback` type.

A feedback message has a *kind* (the LLF-Bench kinds plus the forms the anchor papers use), the
text an agent reads, an optional scalar reading, and hidden *labels* that only `info`, records
and metrics ever see: was it truthful, who said it, with which intent and knowledge, citing which
evidence.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

#: Every feedback kind, with what it means.
FEEDBACK_KINDS: dict[str, str] = {
    "r": "textualised reward (LLF-Bench)",
    "hp": "hindsight positive: why what was done was right (LLF-Bench)",
    "hn": "hindsight negative: why what was done was wrong (LLF-Bench)",
    "fp": "future positive: what to do next (LLF-Bench)",
    "fn": "future negative: what to avoid next (LLF-Bench)",
    "unary": "a bare 'try again' carrying no information (UFO)",
    "binary": "GOOD / BAD (MINT)",
    "critique": "an assessment with a revision, possibly deceptive (WAFER-QA, Critique-GRPO)",
    "followup": "pressure after an answer: closed, open or leading (Ask-Again)",
}

#: The hidden labels a feedback message may carry. Unknown label names are refused so that a typo
#: never silently produces a label no metric reads.
FEEDBACK_LABELS = frozenset(
    {
        "truthful",  # bool | None: does what it asserts about the answer hold?
        "source_role",  # str: the role that said it
        "intent",  # constructive | hypercritical | malicious (judges)
        "knowledge",  # none | parametric | grounded (judges)
        "evidence_ids",  # list[str]: passages cited
        "suggested_answer",  # the answer the feedback pushes, normalised, or None
        "case",  # which bank case produced it (positive, too_low, disagree_cite, ...)
        "intervened",  # bool: did the judge attack / intervene
        "annotator_id",  # noisy annotator pools
        "label_flipped",
        "source",  # "scripted" | "human" | "lm"
    }
)


class Feedback(NamedTuple):
    """One piece of feedback: ``kind``, the visible ``text``, a scalar reading and hidden labels.

    Immutable (a named tuple: cheap to build, compare and pickle); `make` validates."""

    kind: str
    text: str
    score: float | None = None
    labels: Mapping[str, Any] = {}

    @classmethod
    def make(cls, kind: str, text: str, score: float | None = None, labels: Mapping[str, Any] | None = None):
        """Build with checks: the kind must be known and every label name must be one metrics read."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"feedback kind {kind!r} is not one of {sorted(FEEDBACK_KINDS)}")
        labels = dict(labels or {})
        unknown = set(labels) - FEEDBACK_LABELS
        if unknown:
            raise ValueError(f"unknown feedback labels {sorted(unknown)}; known: {sorted(FEEDBACK_LABELS)}")
        return cls(kind, text, score, labels)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "score": self.score, "labels": _plain(self.labels)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Feedback":
        return cls.make(d["kind"], d["text"], d.get("score"), d.get("labels"))


def _plain(obj: Any) -> Any:
    """A JSON-safe deep copy (mappings -> dict, sequences -> list, numpy scalars -> python)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj
