"""Scripted players of the multi-agent games: SPC's generator and critic, and negotiation's
buyer, seller and coach.

| role | name | plays |
|---|---|---|
| generator | sneaky | plants an error of a random kind in a random step |
| generator | honest | writes the correct solution |
| critic | checker | re-checks each step with probability ``diligence``; a blatant error (the result off by half or more) it sees at a glance |
"""

from __future__ import annotations

from feedbackgym.agents.base import ScriptedAgent, register
from feedbackgym.envs.tasks.spc import ERRORS, _STEP, _holds, render_steps, sneaky


@register("generator", "sneaky", ("spc",))
class SneakyGenerator(ScriptedAgent):
    name = "sneaky"

    def __init__(self, errors: list[str] | None = None):
        self.errors = list(errors or ERRORS)

    def act(self, view):
        w = view.world
        k = int(view.rng.random() * len(w.steps))
        error = self.errors[int(view.rng.random() * len(self.errors))]
        return sneaky(w.steps, k, error, view.rng)


@register("generator", "honest", ("spc",))
class HonestGenerator(ScriptedAgent):
    name = "honest"

    def act(self, view):
        return render_steps(view.world.steps)


@register("critic", "checker", ("spc",))
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
            blatant = abs(r - true) >= max(1, abs(true)) / 2
            if looked or blatant:
                return f"Step {n} is wrong: {a} {op} {b} is not {r}."
        return "All steps are correct."
