"""Scripted judges: WAFER-QA's taxonomy, intent x knowledge, as named behaviours.

*Intent* decides whether the judge intervenes and which answer it pushes:

| intent | intervenes on | pushes |
|---|---|---|
| constructive | wrong answers only | the true answer |
| hypercritical | every answer | a plausible wrong answer |
| malicious | correct answers only | the plausible distractor the corpus was seeded with |

*Knowledge* decides how it argues: ``none`` with generic doubt and no alternative, ``parametric``
with a specific but fabricated-sounding assertion, ``grounded`` by quoting passages of the task's
evidence corpus that state the pushed answer. When it does not intervene, the judge agrees.
Every critique carries hidden labels: truthful, intent, knowledge, evidence ids, intervened.

Specs: ``scripted:<intent>-<knowledge>`` (nine), plus ``scripted:constructive`` and
``scripted:malicious`` for the grounded ones.
"""

from __future__ import annotations

from feedbackgym.agents.base import ScriptedAgent, register
from feedbackgym.agents.critic import say
from feedbackgym.envs.protocol import Utterance
from feedbackgym.envs.tasks.base import Hint

INTENTS = ("constructive", "hypercritical", "malicious")
KNOWLEDGE = ("none", "parametric", "grounded")
FAMILIES = ("judged_qa",)


class Judge(ScriptedAgent):
    def __init__(self, intent: str, knowledge: str, paraphrase: str | int = "random"):
        if intent not in INTENTS or knowledge not in KNOWLEDGE:
            raise ValueError(f"judge intent must be one of {INTENTS} and knowledge one of {KNOWLEDGE}")
        self.intent, self.knowledge, self.paraphrase = intent, knowledge, paraphrase
        self.name = f"{intent}-{knowledge}"

    def act(self, view):
        w = view.world
        last = view.last_move
        if last is None:
            return Utterance("There is no answer to judge yet.")
        ok = last.value == w.truth
        intervene = {"constructive": not ok, "hypercritical": True, "malicious": ok}[self.intent]
        labels = {"intent": self.intent, "knowledge": self.knowledge, "intervened": intervene}
        if not intervene:
            return say(view, "critique", Hint("agree", {"answer": last.value}), {**labels, "truthful": ok}, self.paraphrase)
        target = w.truth if self.intent == "constructive" else self._wrong(w, last.value, view.rng)
        base = {"answer": last.value}
        if self.knowledge == "none":
            hint = Hint("disagree_generic", base)
            return say(view, "critique", hint, {**labels, "truthful": not ok}, self.paraphrase)
        truthful = target == w.truth
        passages = w.evidence_for(target, k=1) if self.knowledge == "grounded" else []
        if passages:
            p = passages[0]
            citation = f'[{p.id}] "{p.text}"'
            hint = Hint("disagree_cite", {**base, "suggestion": target, "citation": citation}, target)
            labels["evidence_ids"] = [p.id]
        else:
            claim = w.claim_for(target, view.rng)
            hint = Hint("disagree_claim", {**base, "suggestion": target, "claim": claim}, target)
        return say(view, "critique", hint, {**labels, "truthful": truthful}, self.paraphrase)

    @staticmethod
    def _wrong(w, current, rng):
        """The answer to push instead of ``current``: the seeded distractor unless that is the
        current answer, then another wrong option."""
        if current != w.distractor:
            return w.distractor
        others = [o for o in w.options if o not in (w.truth, current)]
        return others[int(rng.random() * len(others))] if others else w.truth


def _factory(intent: str, knowledge: str):
    def make(paraphrase: str | int = "random") -> Judge:
        return Judge(intent, knowledge, paraphrase)

    return make


for _i in INTENTS:
    for _k in KNOWLEDGE:
        register("judge", f"{_i}-{_k}", FAMILIES)(_factory(_i, _k))
register("judge", "constructive", FAMILIES)(_factory("constructive", "grounded"))
register("judge", "malicious", FAMILIES)(_factory("malicious", "grounded"))
