"""Seeded paraphrase banks: one YAML file per feedback kind, cases per task family.

``render("hn", "guess_number", "too_low", rng, guess=40)`` picks one template of that case with
the caller's generator (or a fixed index) and fills its slots. Families without their own entry
fall back to ``default`` when a bank provides one. A task family defined outside this package
brings its own cases with ``add("r", "my_family", {"positive": [...], "negative": [...]})``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from feedbackgym.core import FEEDBACK_KINDS


@cache
def bank(kind: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """{family: {case: templates}} for one kind, loaded once."""
    if kind not in FEEDBACK_KINDS:
        raise KeyError(f"no bank for feedback kind {kind!r}")
    text = (resources.files(__name__) / f"{kind}.yaml").read_text(encoding="utf-8")
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # our own file: libyaml is 10x faster
    return {fam: {case: tuple(ts) for case, ts in cases.items()} for fam, cases in data["families"].items()}


_TEMPLATES: dict[tuple[str, str, str], tuple[str, ...]] = {}
#: (kind, family) -> cases that a family module added (checked before the shipped YAML)
_ADDED: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}


def add(kind: str, family: str, family_cases: dict[str, list[str] | tuple[str, ...]]) -> None:
    """Give ``family`` its own templates of ``kind``, case by case (a family's own module calls
    this; the shipped families' cases live in the YAML files beside this module)."""
    if kind not in FEEDBACK_KINDS:
        raise KeyError(f"no bank for feedback kind {kind!r}; known: {sorted(FEEDBACK_KINDS)}")
    _ADDED[(kind, family)] = {case: tuple(ts) for case, ts in family_cases.items()}
    for key in [k for k in _TEMPLATES if k[:2] == (kind, family)]:
        del _TEMPLATES[key]


def cases(kind: str, family: str) -> dict[str, tuple[str, ...]]:
    added = _ADDED.get((kind, family))
    if added is not None:
        return added
    b = bank(kind)
    if family in b:
        return b[family]
    if "default" in b:
        return b["default"]
    raise KeyError(f"the {kind!r} bank has no entry for task family {family!r}")


def templates(kind: str, family: str, case: str) -> tuple[str, ...]:
    key = (kind, family, case)
    found = _TEMPLATES.get(key)
    if found is None:
        cs = cases(kind, family)
        if case not in cs:
            raise KeyError(f"the {kind!r} bank has no case {case!r} for {family!r}; it has {sorted(cs)}")
        found = _TEMPLATES[key] = cs[case]
    return found


def pick(options: tuple[str, ...], rng: np.random.Generator, paraphrase: str | int = "random") -> str:
    if paraphrase == "random":
        return options[int(rng.random() * len(options))]
    if paraphrase == "first":
        return options[0]
    return options[int(paraphrase) % len(options)]


def render(
    kind: str, family: str, case: str, rng: np.random.Generator, paraphrase: str | int = "random", **slots: Any
) -> str:
    return pick(templates(kind, family, case), rng, paraphrase).format_map(slots)
