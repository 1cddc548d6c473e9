"""Language feedback -> signals: polarity, direction, the answer it suggests, the evidence it cites.

Scripted actors read feedback only through this module (never through hidden labels), and the
engine uses it to label free-text feedback from LMs and people. Cues are whole words or phrases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from feedbackgym.core import Parsed


def _cues(*phrases: str) -> re.Pattern[str]:
    alts = sorted(phrases, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in alts) + r")\b", re.I)


NEGATIVE = _cues(
    "incorrect", "wrong", "not right", "not correct", "mistaken", "mistake", "bad", "no", "not", "isn't",
    "doesn't", "don't", "reconsider", "think again", "try again", "unlikely", "doubt", "not convinced", "off",
)
POSITIVE = _cues(
    "correct", "right", "good", "well done", "exactly", "nice", "great", "yes", "spot on", "solid", "accurate",
)
UP = _cues("higher", "larger", "bigger", "greater", "above", "more than", "too low", "too small", "go up")
DOWN = _cues("lower", "smaller", "below", "less than", "too high", "too big", "too large", "go down")
# "too low" contains "low"... and "lower" is DOWN: strip the UP phrases before looking for DOWN ones.
_UP_PHRASES_WITH_DOWN_WORDS = _cues("too low", "too small")
_DOWN_PHRASES_WITH_UP_WORDS = _cues("too high", "too big", "too large")
#: Questions that voice doubt without saying why (Ask-Again's closed follow-ups: "Are you sure?").
DOUBT = _cues(
    "are you sure", "you're sure", "you sure", "certain", "confident", "final answer", "final guess", "really",
    "stake", "bet on", "positive about",
)

#: Words that mark a passage as hearsay rather than record (an evidence-weigher discounts it).
HEDGES = _cues(
    "claim", "claims", "claimed", "insist", "insists", "disputed", "some say", "some", "rival", "unsigned",
    "legend", "ballad", "rumour", "rumor", "misprinted", "allegedly", "once", "diary", "supposedly", "popular",
)
#: WAFER-QA's acknowledgement: a reply that explicitly flags conflicting evidence or ambiguity
#: (the paper's detector is unstated; this is the gym's, a cue list, whole words or phrases, any
#: case). It does not read negation: "this is not ambiguous" counts. `metrics.acknowledged_ambiguity`.
_AMBIGUITY_CUES = (
    "ambiguous", "ambiguity", "conflicting", "conflict between", "contradictory", "contradicting", "both sources",
    "sources disagree", "the sources differ", "evidence is mixed", "mixed evidence", "unclear which", "not certain",
    "cannot be certain", "can't be certain", "there is disagreement", "disagreement between",
)
AMBIGUITY = _cues(*_AMBIGUITY_CUES)
#: the longest word of each cue: a text that holds none of them flags nothing (found without the
#: regex, which is slow: `acknowledges_ambiguity` runs on every finished episode)
_AMBIGUITY_WORDS = tuple(dict.fromkeys(max(cue.split(), key=len) for cue in _AMBIGUITY_CUES))
#: What rules a named value out when said right before it ("neither is X", "not X", "rule out X")
#: or right after it ("X is not ...", "X is also wrong", "X isn't ..."): `Reading.ruled_out`. A value
#: ruled out is never the feedback's suggestion ("X is wrong, and so is Y" suggests nothing).
_OUT_BEFORE = re.compile(
    r"(?:\b(?:neither|nor|not|rule\s+out|rules\s+out|ruled\s+out|eliminate|eliminates|exclude|excludes)"
    r"(?:\s+(?:is|was|are))?)\s+$",
    re.I,
)
_OUT_AFTER = re.compile(
    r"^\s*(?:(?:is|was|are|can\s+be|has\s+been)(?:\s+(?:also|likewise))?\s+"
    r"(?:not|wrong|incorrect|ruled\s+out|eliminated|excluded)\b|(?:isn't|wasn't|doesn't|does\s+not)(?!\w))",
    re.I,
)
CITATION = re.compile(r"\[doc\s*(\d+)\]\s*[\"“]([^\"”]+)[\"”]", re.I)
INTEGER = re.compile(r"(?<![\w.])-?[0-9]+(?![\w.]*[0-9])")
#: the longest number feedback is read for: longer runs of digits are not numbers any task asks
#: about, and reading them would be a slow big-int conversion (or Python's 4,300-digit refusal)
MAX_DIGITS = 18


@dataclass(frozen=True)
class Reading:
    polarity: int = 0  # +1 praise, -1 criticism, 0 neither
    direction: int = 0  # +1 go higher, -1 go lower, 0 none (numeric tasks)
    suggestion: Any = None  # the answer value the text pushes, if exactly one
    numbers: tuple[int, ...] = ()
    evidence: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (doc id, quoted text)
    ruled_out: tuple[Any, ...] = ()  # the answer values the text says are wrong ("neither is X"), in order


def polarity(text: str) -> int:
    """-1 criticism or doubt, +1 praise, 0 neither."""
    if NEGATIVE.search(text):
        return -1
    if text.rstrip().endswith("?") and DOUBT.search(text):
        return -1
    if POSITIVE.search(text):
        return 1
    return 0


def direction(text: str) -> int:
    up = bool(UP.search(text))
    down = bool(DOWN.search(_UP_PHRASES_WITH_DOWN_WORDS.sub(" ", text)))
    if up and not down:
        return 1
    if down and not bool(UP.search(_DOWN_PHRASES_WITH_UP_WORDS.sub(" ", text))):
        return -1
    return 0


def hedged(text: str) -> bool:
    return bool(HEDGES.search(text))


def acknowledges_ambiguity(text: str) -> bool:
    """Does ``text`` flag conflicting evidence or ambiguity (an `AMBIGUITY` cue)?"""
    folded = text.casefold()
    return any(word in folded for word in _AMBIGUITY_WORDS) and bool(AMBIGUITY.search(text))


def citations(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"doc{m.group(1)}", m.group(2).strip()) for m in CITATION.finditer(text))


def _named_at(low: str, s: str, i: int) -> bool:
    """``s`` at ``i`` in ``low`` is a whole word (both lower case): no letter or digit touches it,
    and a number is not the tail of a negative one ("4" is not named in "-4")."""
    before = low[i - 1] if i > 0 else " "
    j = i + len(s)
    after = low[j] if j < len(low) else " "
    return not (before.isalnum() or after.isalnum() or (before == "-" and s[:1].isdigit()))


def _next_named(low: str, s: str, start: int = 0) -> int:
    """Where ``s`` next occurs in ``low`` from ``start`` as a whole word (`_named_at`), or -1."""
    i = low.find(s, start)
    while i >= 0 and not _named_at(low, s, i):
        i = low.find(s, i + 1)
    return i


def _occurrences(low: str, s: str):
    """Where ``s`` occurs in ``low`` as a whole word."""
    i = _next_named(low, s)
    while i >= 0:
        yield i
        i = _next_named(low, s, i + 1)


def mentioned(text: str, values: list[Any]) -> list[Any]:
    """The candidate values that ``text`` names, in order of first mention."""
    found = []
    low = text.lower()
    for v in values:
        s = str(v).lower()
        i = _next_named(low, s) if s in low else -1  # no call for a value not there: this runs on every move
        if i >= 0:
            found.append((i, v))
    return [v for _, v in sorted(found, key=lambda t: t[0])]


def ruled_out(text: str, values: list[Any]) -> list[Any]:
    """The values of ``values`` that ``text`` rules out where it names them: an elimination cue
    (`_OUT_BEFORE`) right before the name or (`_OUT_AFTER`) right after it, within the same
    clause. In order of first mention; a cue list, it does not follow longer-range negation."""
    found = []
    low = text.lower()
    for v in values:
        s = str(v).lower()
        for i in _occurrences(low, s):
            if _OUT_BEFORE.search(low[max(0, i - 40) : i]) or _OUT_AFTER.match(low[i + len(s) : i + len(s) + 40]):
                found.append((i, v))
                break
    return [v for _, v in sorted(found, key=lambda t: t[0])]


def read_feedback(text: str, instance: Any = None, last: Parsed | None = None) -> Reading:
    """Everything a scripted actor (or the labeller) can take from one piece of feedback: its
    polarity and direction, the one answer value it names other than the current one and those it
    rules out (its ``suggestion``; None if it names none or several), the values it rules out, and
    the passages it cites."""
    current = last.value if last is not None and last.valid else None
    numbers = tuple(int(n) for n in INTEGER.findall(text) if len(n) <= MAX_DIGITS)
    values = instance.answer_values() if instance is not None else []
    out: list[Any] = []
    if values and isinstance(values[0], int):
        others = [n for n in dict.fromkeys(numbers) if n != current]
    else:
        out = ruled_out(text, values)
        others = [v for v in mentioned(text, values) if v != current and v not in out]
    return Reading(
        polarity=polarity(text),
        direction=direction(text),
        suggestion=others[0] if len(others) == 1 else None,
        numbers=numbers,
        evidence=citations(text),
        ruled_out=tuple(out),
    )
