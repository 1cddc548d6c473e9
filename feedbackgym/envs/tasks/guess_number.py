"""guess_number: the user holds a secret integer; the actor guesses; feedback says how it went.

How much the feedback tells is the user's choice (``directional``: too low / too high,
``binary``: good / bad, ``unary``: try again), and a critic may add LLF-Bench hints, which is
what makes this the smallest family on which feedback measurably helps.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from feedbackgym.core import register_task
from feedbackgym.envs.tasks.base import Hint, Instance, Params, Parsed, Task, Verdict, invalid, precheck
from feedbackgym.feedback.parse import read_feedback

_INT = re.compile(r"(?<![\w.])-?[0-9]{1,12}(?![\w.]*[0-9])")


class GuessNumberParams(Params):
    low: int = Field(default=1, description="smallest possible secret")
    high: int = Field(default=100, description="largest possible secret")

    @model_validator(mode="after")
    def _range(self):
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must exceed low ({self.low})")
        return self


class GuessNumberInstance(Instance):
    move_form = "one number"
    family = "guess_number"
    mode = "search"
    invalid_reply = "That is not a guess I can use; say one whole number."

    def __init__(self, secret: int, low: int, high: int):
        self.secret, self.low, self.high = secret, low, high
        self.instruction = (
            f"I am thinking of a whole number between {low} and {high}. Guess it: reply with one number."
        )
        # The expert's information state, advanced incrementally over the log (see ``expert``).
        self._seen = 0
        self._lo, self._hi = low, high
        self._tried: set[int] = set()
        self._last_guess: int | None = None

    def private_view(self, role: str) -> str:
        if role in ("user", "critic", "judge"):
            return f"The secret number is {self.secret}."
        return ""

    def parse(self, role: str, text: str) -> Parsed:
        bad = precheck(text)
        if bad:
            return bad
        nums = _INT.findall(text)
        if not nums:
            return invalid("no number found; reply with one whole number")
        if len(set(nums)) > 1:
            return invalid(f"several numbers ({', '.join(dict.fromkeys(nums))}); guess one")
        g = int(nums[0])
        if not self.low <= g <= self.high:
            return invalid(f"{g} is outside the range {self.low}..{self.high}")
        return Parsed(True, "guess", g)

    def score(self, parsed: Parsed) -> Verdict:
        ok = parsed.value == self.secret
        return Verdict(is_correct=ok, solved=ok)

    def respond(self, parsed: Parsed) -> str:
        if parsed.value == self.secret:
            return "correct"
        return "higher" if parsed.value < self.secret else "lower"

    def state(self, value: Any) -> str:
        return str(value)

    def candidates(self) -> list[str]:
        return [self.state(n) for n in range(self.low, self.high + 1)]

    def answer_values(self) -> list[Any]:
        return [self.low]  # marks the answer space as numeric for the feedback parser

    def solution(self) -> int:
        return self.secret

    def hidden(self) -> dict[str, Any]:
        return {"secret": self.secret, "low": self.low, "high": self.high}

    # -- policies
    def _update(self, view) -> None:
        """Narrow [lo, hi] from the feedback seen since the last call (the log only grows)."""
        log = view.log
        if self._seen > len(log):  # a new episode reuses nothing
            self._seen, self._lo, self._hi, self._tried, self._last_guess = 0, self.low, self.high, set(), None
        for m in log[self._seen :]:
            if m.role == "actor" and m.kind == "guess":
                self._last_guess = m.labels["answer_norm"]
                self._tried.add(self._last_guess)
            elif m.kind == "feedback" and self._last_guess is not None:
                r = read_feedback(m.text)
                g = self._last_guess
                if r.direction > 0:
                    self._lo = max(self._lo, g + 1)
                elif r.direction < 0:
                    self._hi = min(self._hi, g - 1)
                else:
                    others = [n for n in r.numbers if n != g]
                    if len(others) == 2:  # "it lies between {low} and {high}"
                        self._lo, self._hi = max(self._lo, min(others)), min(self._hi, max(others))
        self._seen = len(log)

    def expert(self, view) -> str:
        """Bisect the interval that the feedback so far allows, never repeating a guess."""
        self._update(view)
        lo, hi = self._lo, self._hi
        if lo > hi:  # contradictory feedback: fall back to the full range
            lo, hi = self.low, self.high
        mid = (lo + hi) // 2
        for d in range(0, hi - lo + 1):
            for g in (mid - d, mid + d):
                if lo <= g <= hi and g not in self._tried:
                    return str(g)
        return str(mid)

    def noisy(self, view, rng: np.random.Generator) -> str:
        return str(int(rng.integers(self.low, self.high + 1)))

    # -- material for feedback givers
    def hint(self, kind: str, last: Parsed, view) -> Hint | None:
        g = last.value
        if g == self.secret:
            return {"r": Hint("positive", {"guess": g}), "binary": Hint("positive", {})}.get(kind)
        side = "too_low" if g < self.secret else "too_high"
        if kind == "r":
            return Hint("negative", {"guess": g})
        if kind in ("hn", "fn"):
            return Hint(side, {"guess": g})
        guesses = [m.labels["answer_norm"] for m in view.log if m.role == "actor" and m.kind == "guess"]
        lo, hi = self.bounds_after(guesses)
        if kind == "fp":
            if view.rng.random() < 0.5:
                return Hint("range", {"low": lo, "high": hi})
            return Hint("suggest", {"suggestion": (lo + hi) // 2}, (lo + hi) // 2)
        if kind == "unary":
            return Hint("default", {})
        if kind == "binary":
            return Hint("negative", {})
        if kind == "critique":
            return Hint("disagree_suggest", {"guess": g, "suggestion": (lo + hi) // 2}, (lo + hi) // 2)
        return None

    def quality(self, move: Parsed, log) -> float:
        """1 for the secret; otherwise how close the guess is to the middle of what is still
        possible (bisection is best)."""
        if move.value == self.secret:
            return 1.0
        guesses = [m.labels["answer_norm"] for m in log if m.role == "actor" and m.kind == "guess"]
        lo, hi = self.bounds_after(guesses)
        if not lo <= move.value <= hi:
            return 0.0
        return 1.0 - abs(move.value - (lo + hi) / 2) / max(1.0, (hi - lo) / 2 + 1)

    def bounds_after(self, guesses: list[int]) -> tuple[int, int]:
        """The interval consistent with truthful directional answers to ``guesses``."""
        lo, hi = self.low, self.high
        for g in guesses:
            if g < self.secret:
                lo = max(lo, g + 1)
            elif g > self.secret:
                hi = min(hi, g - 1)
        return lo, hi


@register_task
class GuessNumber(Task):
    """Guess the secret integer of a range; feedback says higher, lower or right."""
    hints = True
    name = "guess_number"
    Params = GuessNumberParams

    def sample(self, rng: np.random.Generator, params: GuessNumberParams) -> GuessNumberInstance:
        return GuessNumberInstance(int(rng.integers(params.low, params.high + 1)), params.low, params.high)
