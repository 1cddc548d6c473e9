"""spc: the Self-Play Critic game (Chen et al., 2025). A sneaky generator writes out a worked
arithmetic solution with one step made subtly wrong; a critic must name the wrong step.

The instance is a word problem with a correct step-by-step solution (shown only to the
generator). The generator's move is a whole solution, one step per line (`2. 36 - 7 = 29`); the
env re-evaluates every step symbolically: the move is a valid sneaky solution when exactly one
step's arithmetic is wrong (later steps may carry its wrong result forward). The critic's move
names a step ("Step 2 is wrong") or none ("All steps are correct"). Zero-sum, with the `task`
reward: critic +1 and generator -1 when the critic's verdict is right (the tampered step, or "no
error" for an honest or invalid solution), -1 / +1 otherwise.

The game's own scripted players live at the end of this module:

| role | name | plays |
|---|---|---|
| generator | sneaky | plants an error of a random kind in a random step |
| generator | honest | writes the correct solution |
| critic | checker | re-checks each step with probability ``diligence``; a blatant error (the result off by half or more) it sees at a glance |
"""

from __future__ import annotations

import operator
import re
from typing import Any

import numpy as np
from pydantic import Field

from feedbackgym.core import ScriptedAgent, register_scripted, register_task
from feedbackgym.envs.tasks.base import Instance, Params, Parsed, Task, Verdict, invalid, precheck

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}
_STEP = re.compile(r"^\s*(?:step\s*)?(\d+)\s*[.):]\s*(-?\d+)\s*([-+*/x×])\s*(-?\d+)\s*=\s*(-?\d+)\s*$", re.I | re.M)
#: the longest number a move may hold: reading is bounded (no big-int conversion, no float overflow)
MAX_DIGITS = 15
_LONG_NUMBER = re.compile(rf"\d{{{MAX_DIGITS + 1}}}")
_NAMES_STEP = re.compile(r"\bstep\s*(\d+)\b", re.I)
_NO_ERROR = re.compile(r"\b(?:all (?:the )?steps? (?:are )?(?:correct|right|fine)|no (?:error|mistake)s?|(?:is|looks) (?:all )?correct)\b", re.I)

#: Error kinds a scripted or learning generator can apply to a step's result.
ERRORS = {"off_by_one": lambda v, rng: v + (1 if rng.random() < 0.5 else -1), "off_by_ten": lambda v, rng: v + 10,
          "doubled": lambda v, rng: v * 2, "digit_swap": lambda v, rng: int(str(v)[::-1]) if v > 9 and str(v)[::-1] != str(v) else v + 2}


class SPCParams(Params):
    steps: int = Field(default=4, ge=2, le=6, description="steps in the worked solution")


def render_steps(steps: list[tuple[int, str, int, int]]) -> str:
    return "\n".join(f"{i + 1}. {a} {op} {b} = {r}" for i, (a, op, b, r) in enumerate(steps))


class SPCInstance(Instance):
    family = "spc"
    mode = "answer"
    invalid_reply = "That is not a solution I can check: one step per line, like '2. 36 - 7 = 29'."

    def __init__(self, problem: str, steps: list[tuple[int, str, int, int]]):
        self.problem, self.steps = problem, steps
        self.instruction = (
            f"Problem: {problem}\nThe generator writes a worked solution, one step per line; "
            "the critic names the step whose arithmetic is wrong, or says all steps are correct."
        )
        self.solution = render_steps(steps)
        self.tampered: int | None = None  # set when the generator's solution is read

    def private_view(self, role: str) -> str:
        return f"A correct solution:\n{self.solution}" if role == "generator" else ""

    def parse(self, role: str, text: str) -> Parsed:
        bad = precheck(text)
        if bad:
            return bad
        if _LONG_NUMBER.search(text):
            return invalid(f"a number of more than {MAX_DIGITS} digits; the steps are small sums and products")
        if role == "generator":
            rows = _STEP.findall(text)
            if len(rows) != len(self.steps):
                return invalid(f"expected {len(self.steps)} steps like '2. 36 - 7 = 29', found {len(rows)}")
            if [int(r[0]) for r in rows] != list(range(1, len(self.steps) + 1)):
                return invalid("number the steps 1, 2, 3, ... in order")
            wrong = [int(n) for n, a, op, b, r in rows if not _holds(int(a), op, int(b), int(r))]
            if len(wrong) > 1:
                return invalid(f"steps {', '.join(map(str, wrong))} are all wrong; a sneaky solution has one wrong step")
            return Parsed(True, "solution", wrong[0] if wrong else 0)
        m = _NAMES_STEP.search(text)
        if m and not _NO_ERROR.search(text):
            k = int(m.group(1))
            if not 1 <= k <= len(self.steps):
                return invalid(f"there is no step {k}; the solution has {len(self.steps)}")
            return Parsed(True, "verdict", k)
        if _NO_ERROR.search(text):
            return Parsed(True, "verdict", 0)
        return invalid("name the wrong step ('Step 2 is wrong') or say 'All steps are correct'")

    def score(self, parsed: Parsed) -> Verdict:
        if parsed.kind == "solution":
            self.tampered = parsed.value
            return Verdict(is_correct=parsed.value > 0, solved=False)  # a sneaky error was planted
        return Verdict(is_correct=parsed.value == (self.tampered or 0), solved=False)

    def respond(self, parsed: Parsed) -> str:
        return "Correct." if self.score(parsed).is_correct else "Incorrect."

    def state(self, value: Any) -> str:
        return f"Step {value} is wrong." if value else "All steps are correct."

    def expert(self, view) -> str:
        """The critic's expert checks every step; the generator's plants an off-by-one error."""
        if view.role == "generator":
            return sneaky(self.steps, len(self.steps) // 2, "off_by_one", view.rng)
        return self.state(check(view.last("generator", ("solution",)) or ""))

    def noisy(self, view, rng: np.random.Generator) -> str:
        if view is not None and view.role == "generator":
            return sneaky(self.steps, int(rng.random() * len(self.steps)), list(ERRORS)[int(rng.random() * len(ERRORS))], rng)
        return self.state(int(rng.random() * (len(self.steps) + 1)))

    def hint(self, kind, last, view):
        return None

    def hidden(self) -> dict[str, Any]:
        return {"problem": self.problem, "solution": self.solution, "tampered": self.tampered}

    def extra_metrics(self, log) -> dict[str, Any]:
        sol = next((m for m in log if m.role == "generator" and m.kind == "solution"), None)
        verdict = next((m for m in log if m.role == "critic" and m.kind == "verdict"), None)
        return {
            "sneaky_valid": bool(sol and sol.labels["answer_norm"]),
            "critic_detected": bool(verdict and verdict.labels["is_correct"] and sol and sol.labels["answer_norm"]),
            "critic_win": bool(verdict and verdict.labels["is_correct"]),
        }

    def role_reward(self, role: str, log) -> float:
        win = self.extra_metrics(log)["critic_win"]
        return {"critic": 1.0 if win else -1.0, "generator": -1.0 if win else 1.0}.get(role, 0.0)


def _holds(a: int, op: str, b: int, r: int) -> bool:
    op = "*" if op in "x×" else op
    if op == "/" and (b == 0 or a % b):
        return False
    return OPS[op](a, b) == r


def check(solution: str, steps_to_check: set[int] | None = None) -> int:
    """The first wrong step among those checked (all by default), or 0."""
    for n, a, op, b, r in _STEP.findall(solution):
        if (steps_to_check is None or int(n) in steps_to_check) and not _holds(int(a), op, int(b), int(r)):
            return int(n)
    return 0


def sneaky(steps: list[tuple[int, str, int, int]], k: int, error: str, rng: np.random.Generator) -> str:
    """The solution with step k (0-based) given a wrong result by ``error``; later steps carry
    the wrong value forward, so only step k's own arithmetic is wrong."""
    out, carry = [], None
    for i, (a, op, b, r) in enumerate(steps):
        if carry is not None:
            a = carry
            r = OPS[op](a, b)
        if i == k:
            wrong = ERRORS[error](r, rng)
            r = wrong if wrong != r else r + 1
        out.append((a, op, b, r))
        carry = r
    return render_steps(out)


_NAMES = ["Tom", "Ana", "Ravi", "Mei", "Omar", "Lena", "Jonas", "Sade"]
_ITEMS = ["pencils", "apples", "stickers", "marbles", "cards", "shells"]


@register_task
class SPC(Task):
    """Self-play critic: a generator writes a step-by-step solution, possibly with a planted error,
    and a critic must find the wrong step (zero-sum)."""
    name = "spc"
    Params = SPCParams
    movers = ("generator", "critic")

    def sample(self, rng: np.random.Generator, params: SPCParams) -> SPCInstance:
        name, item = _NAMES[int(rng.integers(len(_NAMES)))], _ITEMS[int(rng.integers(len(_ITEMS)))]
        boxes, per = int(rng.integers(2, 10)), int(rng.integers(3, 13))
        total = boxes * per
        steps = [(boxes, "*", per, total)]
        story = [f"{name} buys {boxes} boxes of {per} {item}."]
        value = total
        while len(steps) < params.steps:
            choice = len(steps) % 3
            if choice == 1:
                gone = int(rng.integers(1, max(2, value // 2)))
                steps.append((value, "-", gone, value - gone))
                story.append(f"{name} gives away {gone}.")
                value -= gone
            elif choice == 2:
                more = int(rng.integers(2, 20))
                steps.append((value, "+", more, value + more))
                story.append(f"A friend adds {more} more.")
                value += more
            else:
                extra = int(rng.integers(2, 4))
                steps.append((value, "*", extra, value * extra))
                story.append(f"Then the pile grows {extra}-fold.")
                value *= extra
        problem = " ".join(story) + f" How many {item} are there at the end?"
        return SPCInstance(problem, steps)


# ---------------------------------------------------------------------------------------------
# The scripted players of this game

@register_scripted("generator", "sneaky", ("spc",))
class SneakyGenerator(ScriptedAgent):
    name = "sneaky"

    def __init__(self, errors: list[str] | None = None):
        self.errors = list(errors or ERRORS)

    def act(self, view):
        w = view.world
        k = int(view.rng.random() * len(w.steps))
        error = self.errors[int(view.rng.random() * len(self.errors))]
        return sneaky(w.steps, k, error, view.rng)


@register_scripted("generator", "honest", ("spc",))
class HonestGenerator(ScriptedAgent):
    name = "honest"

    def act(self, view):
        return render_steps(view.world.steps)


@register_scripted("critic", "checker", ("spc",))
class Checker(ScriptedAgent):
    """Re-checks each step with probability ``diligence``; catches blatant errors anyway."""

    name = "checker"

    def __init__(self, diligence: float = 0.6):
        self.diligence = diligence

    def act(self, view):
        solution = view.last("generator", ("solution",)) or ""
        for n, a, op, b, r in _STEP.findall(solution):
            a, b, r = int(a), int(b), int(r)
            looked = view.rng.random() < self.diligence
            if _holds(a, op, b, r):
                continue
            true = {"+": a + b, "-": a - b, "*": a * b}.get(op, r)
            blatant = 2 * abs(r - true) >= max(1, abs(true))  # in integers: no float overflow
            if looked or blatant:
                return f"Step {n} is wrong: {a} {op} {b} is not {r}."
        return "All steps are correct."
