"""Seeded paraphrase banks: one YAML file per feedback kind, cases per task family.

``render("hn", "guess_number", "too_low", rng, guess=40)`` picks one template of that case with
the caller's generator (or a fixed index) and fills its slots. Families without their own entry
fall back to ``default`` when a bank provides one.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from feedbackgym.core import FEEDBACK_KINDS


@lru_cache(maxsize=None)
def bank(kind: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """{family: {case: templates}} for one kind, loaded once."""
    if kind not in FEEDBACK_KINDS:
        raise KeyError(f"no bank for feedback kind {kind!r}")
    text = (resources.files(__name__) / f"{kind}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {fam: {case: tuple(ts) for case, ts in cases.items()} for fam, cases in data["families"].items()}


def cases(kind: str, family: str) -> dict[str, tuple[str, ...]]:
    b = bank(kind)
    if family in b:
        return b[family]
    if "default" in b:
        return b["default"]
    raise KeyError(f"the {kind!r} bank has no entry for task family {family!r}")


_TEMPLATES: dict[tuple[str, str, str], tuple[str, ...]] = {}


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
