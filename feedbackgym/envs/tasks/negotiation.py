"""negotiation: a buyer and a seller bargain over an item, game after game, and a critic coaches
the seller between games (Fu, Peng, Khot and Lapata, 2023).

Each round of the scenario is one game: up to ``exchanges`` buyer-seller exchanges, closed early
by a deal or a walk-away, then the critic's feedback. A scripted moderator reads every move: the
last price it names is an offer; "deal", "accept", "I'll take it" accept the other side's last
offer; "no deal", "walk away" end the game without one. A deal counts only at a price within
[``low``, ``high``] (the paper's $10-$20 for a balloon that cost the seller $8). The buyer's
budget is hidden from the seller. With the ``task`` reward the seller earns the deal prices,
the buyer minus them, and the critic the rise of the seller's deal price after its first advice.

The game's own scripted players live at the end of this module:

| role | name | plays |
|---|---|---|
| seller | conceding | opens at the asking price, concedes a step a turn to a floor; advice makes it firmer |
| buyer | conceding | opens low, raises a step a turn up to its hidden budget, walks away rather than overpay |
| critic | coach | one piece of advice on selling higher between games |
| critic | constant | the control: the same encouragement, no advice |
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import Field

from feedbackgym.core import Feedback, FrozenDict, ScriptedAgent, Utterance, register_scripted, register_task
from feedbackgym.envs.tasks.base import Instance, Params, Parsed, Task, Verdict, precheck

_PRICE = re.compile(r"\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:dollars|bucks|\$)", re.I)
_ACCEPT = re.compile(r"\b(?:deal|accept(?:ed)?|agreed?|i'?ll take it|sold|you'?ve got a deal)\b", re.I)
_REFUSED = re.compile(r"\b(?:can'?t|cannot|won'?t|will not|do not|don'?t|not)\s+(?:accept|agree|take)\b", re.I)
_WALK = re.compile(r"\b(?:no deal|walk away|walking away|not interested|goodbye|i pass)\b", re.I)


class NegotiationParams(Params):
    item: str = "balloon"
    cost: float = Field(default=8.0, description="what the item cost the seller")
    seller_open: float = Field(default=20.0, description="the seller's opening price")
    buyer_open: float = Field(default=10.0, description="the buyer's opening offer")
    low: float = Field(default=10.0, description="lowest price at which a deal counts")
    high: float = Field(default=20.0, description="highest price at which a deal counts")
    exchanges: int = Field(default=5, ge=1, le=10, description="buyer-seller exchanges per game at most")


class NegotiationInstance(Instance):
    family = "negotiation"
    mode = "search"
    invalid_reply = "Say something to the other side."

    def __init__(self, params: NegotiationParams, budget: float):
        self.p, self.budget = params, budget
        self.instruction = (
            f"A buyer and a seller negotiate the price of a {params.item}. The seller asks ${params.seller_open:g} "
            f"to begin with; name prices with a dollar sign, say 'deal' to accept the other side's last offer, "
            f"or 'no deal' to walk away. A deal counts between ${params.low:g} and ${params.high:g}."
        )

    def private_view(self, role: str) -> str:
        if role == "seller":
            return f"The {self.p.item} cost you ${self.p.cost:g}. Sell it for as much as you can."
        if role == "buyer":
            return f"You can spend at most ${self.budget:g}. Buy it for as little as you can."
        return ""

    def parse(self, role: str, text: str) -> Parsed:
        bad = precheck(text)
        if bad:
            return bad
        if _WALK.search(text):
            return Parsed(True, "walk", None)
        prices = [float(a or b) for a, b in _PRICE.findall(text)]
        if _ACCEPT.search(_REFUSED.sub(" ", text)):
            return Parsed(True, "accept", prices[-1] if prices else None)
        if prices:
            return Parsed(True, "offer", prices[-1])
        return Parsed(True, "talk", None)

    def score(self, parsed: Parsed) -> Verdict:
        return Verdict(is_correct=None, solved=False)

    def respond(self, parsed: Parsed) -> str:
        return "Noted."

    def state(self, value: Any) -> str:
        return f"How about ${value:g}?"

    def expert(self, view) -> str:
        return self.state(self.p.seller_open if view.role == "seller" else self.p.buyer_open)

    def noisy(self, view, rng: np.random.Generator) -> str:
        return self.state(round(self.p.low + rng.random() * (self.p.high - self.p.low)))

    def hidden(self) -> dict[str, Any]:
        return {"budget": self.budget, "cost": self.p.cost, "low": self.p.low, "high": self.p.high}

    # -- the moderator
    def games(self, log) -> list[dict[str, Any]]:
        """Each game so far: its moves, whether it closed, and the deal price if one was struck."""
        games, current = [], _new_game()
        for m in log:
            if m.role == "critic":
                games.append(current)
                current = _new_game()
            elif m.role in ("buyer", "seller") and m.kind != "invalid":
                current["moves"] += 1
                kind, value = m.kind, m.labels.get("answer_norm")
                if current["closed"]:
                    continue
                if kind == "offer":
                    current["offers"][m.role] = value
                elif kind == "accept":
                    other = "seller" if m.role == "buyer" else "buyer"
                    price = current["offers"].get(other) if value is None else value
                    if price is not None and self.p.low <= price <= self.p.high:
                        current["price"] = price
                    current["closed"] = True
                elif kind == "walk":
                    current["closed"] = True
                if current["moves"] >= 2 * self.p.exchanges:
                    current["closed"] = True
        games.append(current)
        return games

    def skips(self, role: str, log) -> bool:
        return role in ("buyer", "seller") and self.games(log)[-1]["closed"]

    def extra_metrics(self, log) -> dict[str, Any]:
        games = [g for g in self.games(log) if g["moves"]]
        prices = [g["price"] for g in games if g["price"] is not None]
        out: dict[str, Any] = {
            "deal_rate": len(prices) / len(games) if games else None,
            "deal_price": sum(prices) / len(prices) if prices else None,
        }
        for i, g in enumerate(games):
            out[f"price_game_{i + 1}"] = g["price"]
        if len(games) > 1 and games[0]["price"] is not None and games[-1]["price"] is not None:
            out["delta_price"] = games[-1]["price"] - games[0]["price"]
        return out

    def role_reward(self, role: str, log) -> float:
        games = self.games(log)
        prices = [g["price"] for g in games if g["price"] is not None]
        if role == "seller":
            return float(sum(prices))
        if role == "buyer":
            return -float(sum(prices))
        if role == "critic" and len(games) > 1 and games[0]["price"] is not None:
            later = [g["price"] for g in games[1:] if g["price"] is not None]
            return (sum(later) / len(later) - games[0]["price"]) if later else 0.0
        return 0.0


def _new_game() -> dict[str, Any]:
    return {"offers": {}, "closed": False, "price": None, "moves": 0}


@register_task
class Negotiation(Task):
    """A buyer and a seller bargain over an item for several games; a critic coaches the seller
    between games (Fu et al., 2023)."""
    name = "negotiation"
    Params = NegotiationParams
    movers = ("buyer", "seller")

    def sample(self, rng: np.random.Generator, params: NegotiationParams) -> NegotiationInstance:
        budget = round(params.low + 2 + rng.random() * (params.high - params.low - 3), 1)
        return NegotiationInstance(params, budget)


# ---------------------------------------------------------------------------------------------
# The scripted players of this game

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
        return view.world.games(view.log)[-1]


@register_scripted("seller", "conceding", ("negotiation",))
class ConcedingSeller(_Bargainer):
    """Opens at the asking price and concedes ``step`` a turn down to ``floor``; each piece of
    strategic advice from the critic halves its step and raises its floor by a dollar."""

    name = "conceding"

    def __init__(self, step: float = 2.0, floor: float = 11.0):
        self.step, self.floor = step, floor

    def act(self, view):
        p, game = view.world.p, self.game(view)
        advice = sum(1 for m in view.log if m.role == "critic" and _STRATEGY.search(m.text))
        step, floor = self.step / (1 + advice), self.floor + advice
        mine, theirs = game["offers"].get("seller"), game["offers"].get("buyer")
        ask = p.seller_open if mine is None else round(max(floor, mine - step), 2)
        if theirs is not None and theirs >= ask:
            return f"Deal at ${theirs:g}."
        return f"I can let it go for ${ask:g}."


@register_scripted("buyer", "conceding", ("negotiation",))
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


@register_scripted("critic", "coach", ("negotiation",))
class Coach(ScriptedAgent):
    """Between games, one piece of advice to the seller on selling higher (the paper's critic)."""

    name = "coach"

    def act(self, view):
        text = COACH_TIPS[int(view.rng.random() * len(COACH_TIPS))]
        return Utterance(text, Feedback("fp", text, None, _COACH_LABELS))


_COACH_LABELS = FrozenDict(case="coach", truthful=None, suggested_answer=None, source_role="critic")


@register_scripted("critic", "constant", ("negotiation",))
class ConstantFeedback(ScriptedAgent):
    """The paper's control: the same encouragement after every game, with no advice in it."""

    name = "constant"

    def act(self, view):
        return _CONSTANT


_CONSTANT_TEXT = "Good game. Let's play another round; see if you can beat your last price."
_CONSTANT_LABELS = FrozenDict(case="constant", truthful=None, suggested_answer=None, source_role="critic")
_CONSTANT = Utterance(_CONSTANT_TEXT, Feedback("r", _CONSTANT_TEXT, None, _CONSTANT_LABELS))
