"""Scripted players of the multi-agent games: SPC's generator and critic, and negotiation's
buyer, seller and coach.

| role | name | plays |
|---|---|---|
| generator | sneaky | plants an error of a random kind in a random step |
| generator | honest | writes the correct solution |
| critic | checker | re-checks each step with probability ``diligence``; a blatant error (the result off by half or more) it sees at a glance |
| seller | conceding | opens at the asking price, concedes a step a turn to a floor; advice makes it firmer |
| buyer | conceding | opens low, raises a step a turn up to its hidden budget, walks away rather than overpay |
| critic | coach | one piece of advice on selling higher between games |
| critic | constant | the control: the same encouragement, no advice |
"""

from __future__ import annotations

import re

from feedbackgym.agents.base import ScriptedAgent, register
from feedbackgym.envs.protocol import Utterance
from feedbackgym.envs.tasks.spc import ERRORS, _STEP, _holds, render_steps, sneaky
from feedbackgym.feedback.types import Feedback


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


# ---------------------------------------------------------------------------------------------
# Negotiation (Fu et al., 2023)

#: A seller's coach's advice: how to sell at a higher price, never a specific price.
COACH_TIPS = (
    "Hold your price longer: concede in smaller steps than last time.",
    "Open high and give ground slowly; the buyer has more room than they admit.",
    "Stay firm after the first counter-offer; small concessions signal a high floor.",
    "Don't rush to close: let the buyer come up to you before you come down.",
    "Concede less each round, and make the buyer work for every dollar.",
    "Anchor on the value of the item, not on the buyer's first offer; hold firm.",
)
#: Advice a scripted seller can act on (the constant control message has none).
_STRATEGY = re.compile(r"\b(?:hold|slowly|smaller|firm|concede less|come up to you|anchor)\b", re.I)


class _Bargainer(ScriptedAgent):
    def game(self, view):
        return view.world.games(view._log)[-1]


@register("seller", "conceding", ("negotiation",))
class ConcedingSeller(_Bargainer):
    """Opens at the asking price and concedes ``step`` a turn down to ``floor``; each piece of
    strategic advice from the critic halves its step and raises its floor by a dollar."""

    name = "conceding"

    def __init__(self, step: float = 2.0, floor: float = 11.0):
        self.step, self.floor = step, floor

    def act(self, view):
        p, game = view.world.p, self.game(view)
        advice = sum(1 for m in view._log if m.role == "critic" and _STRATEGY.search(m.text))
        step, floor = self.step / (1 + advice), self.floor + advice
        mine, theirs = game["offers"].get("seller"), game["offers"].get("buyer")
        ask = p.seller_open if mine is None else round(max(floor, mine - step), 2)
        if theirs is not None and theirs >= ask:
            return f"Deal at ${theirs:g}."
        return f"I can let it go for ${ask:g}."


@register("buyer", "conceding", ("negotiation",))
class ConcedingBuyer(_Bargainer):
    """Opens low and raises ``step`` a turn up to its hidden budget; takes any price within its
    current bid, or at its last chance any price within its budget, and otherwise walks away."""

    name = "conceding"

    def __init__(self, step: float = 1.5):
        self.step = step

    def act(self, view):
        w, game = view.world, self.game(view)
        mine, theirs = game["offers"].get("buyer"), game["offers"].get("seller")
        bid = w.p.buyer_open if mine is None else min(w.budget, mine + self.step)
        last_chance = game["moves"] >= 2 * w.p.exchanges - 2
        if theirs is not None and (theirs <= bid or (last_chance and theirs <= w.budget)):
            return f"Deal, ${theirs:g} it is."
        if last_chance:
            return "No deal, I'll walk away."
        return f"I can offer ${bid:g}."


@register("critic", "coach", ("negotiation",))
class Coach(ScriptedAgent):
    """Between games, one piece of advice to the seller on selling higher (the paper's critic)."""

    name = "coach"

    def act(self, view):
        text = COACH_TIPS[int(view.rng.random() * len(COACH_TIPS))]
        return Utterance(text, Feedback("fp", text, None, {"case": "coach", "truthful": None, "suggested_answer": None, "source_role": "critic"}))


@register("critic", "constant", ("negotiation",))
class ConstantFeedback(ScriptedAgent):
    """The paper's control: the same encouragement after every game, with no advice in it."""

    name = "constant"

    def act(self, view):
        text = "Good game. Let's play another round; see if you can beat your last price."
        return Utterance(text, Feedback("r", text, None, {"case": "constant", "truthful": None, "suggested_answer": None, "source_role": "critic"}))
