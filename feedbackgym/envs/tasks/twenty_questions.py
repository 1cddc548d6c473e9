"""twenty_questions: find a hidden object with yes/no questions (LMRL-Gym's and ArCHer's task).

A knowledge base of objects x boolean attributes (``data/twenty_questions.yaml``) replaces the
anchors' fine-tuned T5 oracle with a rule-based one: a question is matched to exactly one
attribute by keywords and answered "Yes." or "No."; "Is it a <object>?" is a guess, and the
right guess solves the task. Anything else is an invalid question (it costs the turn). With the
``step_penalty`` reward the return is -1 per question and 0 on the winning one, 20 turns.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from feedbackgym.core import register_task
from feedbackgym.envs.tasks.base import Hint, Instance, Params, Parsed, Task, Verdict, invalid, precheck

_WORD = re.compile(r"[a-z]+")
_GUESS = re.compile(r"\b(?:is\s+it|it\s+is|it's|is\s+this|are\s+you|you\s+are|are\s+they)\s+(?:an?\s+|the\s+|some\s+)?([a-z][a-z ]*?)\s*[?.!]*\s*$")


class KnowledgeBase:
    """Objects, attributes, the answer matrix, and the keyword matcher."""

    def __init__(self, data: dict[str, Any]):
        self.attributes: list[dict[str, Any]] = data["attributes"]
        self.objects: list[dict[str, Any]] = data["objects"]
        self.attr_names = [a["name"] for a in self.attributes]
        self.names = [o["name"] for o in self.objects]
        self.matrix = np.array([[bool(o["attributes"][a]) for a in self.attr_names] for o in self.objects], dtype=bool)
        self.variant_of: dict[str, int] = {}
        for i, o in enumerate(self.objects):
            for v in o["variants"]:
                self.variant_of[v.lower()] = i
        # keyword groups, indexed by each group's first word: a question's tokens look up only
        # the groups they could complete
        self._groups: dict[str, list[tuple[frozenset[str], int]]] = {}
        for i, a in enumerate(self.attributes):
            for g in a["keywords"]:
                self._groups.setdefault(g[0], []).append((frozenset(g), i))

    def match_attribute(self, question: str) -> list[int]:
        """Attributes with a keyword group whose words all occur in the question (a token also
        matches its singular or plural form)."""
        tokens = set(_WORD.findall(question.lower()))
        tokens |= {t[:-1] for t in tokens if t.endswith("s")} | {t + "s" for t in tokens}
        found = {i for t in tokens for group, i in self._groups.get(t, ()) if group <= tokens}
        return sorted(found)

    def match_object(self, question: str) -> int | None:
        m = _GUESS.search(question.lower().strip())
        if not m:
            return None
        # The whole phrase must name an object: "Is it bigger than a dog?" is no guess of "dog".
        return self.variant_of.get(m.group(1).strip())


@lru_cache(maxsize=1)
def knowledge_base() -> KnowledgeBase:
    text = (resources.files("feedbackgym.envs.tasks") / "data" / "twenty_questions.yaml").read_text(encoding="utf-8")
    # the package's own file: libyaml's safe loader where PyYAML has it (0.15 s, not 1.5 s, in every
    # process that plays its first twenty_questions episode)
    return KnowledgeBase(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


class TwentyQuestionsParams(Params):
    pass


class TwentyQuestionsInstance(Instance):
    move_form = "one yes/no question, or 'Is it a <object>?'"
    family = "twenty_questions"
    mode = "search"
    reply_role = "user"
    invalid_reply = "Invalid question."

    def __init__(self, kb: KnowledgeBase, secret: int):
        self.kb, self.secret = kb, secret
        self.object = kb.names[secret]
        self.instruction = (
            "I am thinking of an everyday object. Ask yes/no questions to find it, one per turn; "
            "when you know it, ask 'Is it a <object>?'. You have 20 questions."
        )
        self._seen = 0
        self._mask = np.ones(len(kb.names), dtype=bool)
        self._answers: list[tuple[Parsed, bool]] = []
        self._asked: set[int] = set()
        self._guessed: set[int] = set()
        self._pending: Parsed | None = None

    def private_view(self, role: str) -> str:
        return f"The object is: {self.object}." if role in ("user", "critic", "judge") else ""

    def parse(self, role: str, text: str) -> Parsed:
        bad = precheck(text)
        if bad:
            return bad
        obj = self.kb.match_object(text)
        if obj is not None:
            return Parsed(True, "guess", self.kb.names[obj])
        attrs = self.kb.match_attribute(text)
        if len(attrs) == 1:
            return Parsed(True, "question", self.kb.attr_names[attrs[0]])
        if attrs:
            names = ", ".join(self.kb.attr_names[i] for i in attrs)
            return invalid(f"Invalid question: it asks about several things at once ({names})")
        return invalid("Invalid question: not a yes/no question about a property this game knows, nor a guess")

    def score(self, parsed: Parsed) -> Verdict:
        if parsed.kind == "guess":
            ok = parsed.value == self.object
            return Verdict(is_correct=ok, solved=ok)
        return Verdict(is_correct=None, solved=False)

    def respond(self, parsed: Parsed) -> str:
        if parsed.kind == "guess":
            return "Yes." if parsed.value == self.object else "No."
        j = self.kb.attr_names.index(parsed.value)
        return "Yes." if self.kb.matrix[self.secret, j] else "No."

    def state(self, value: Any) -> str:
        return f"Is it {'an' if str(value)[:1] in 'aeiou' else 'a'} {value}?"

    def candidates(self) -> list[str]:
        kb = self.kb
        return [a["questions"][0] for a in kb.attributes] + [self.state(name) for name in kb.names]

    def solution(self) -> str:
        return self.object

    def hidden(self) -> dict[str, Any]:
        return {"object": self.object, "attributes": dict(self.kb.objects[self.secret]["attributes"])}

    # -- policies
    def _update(self, log) -> None:
        """Record every answered question or guess since the last call and narrow the candidates."""
        for m in log[self._seen :]:
            if m.role == "actor" and m.kind in ("question", "guess"):
                self._pending = self.parse("actor", m.text)
            elif m.kind == "reply" and self._pending is not None:
                move, self._pending = self._pending, None
                yes = m.text.strip().lower().startswith("yes")
                self._answers.append((move, yes))
                self._narrow(self._mask, move, yes)
                if move.kind == "guess":
                    self._guessed.add(self.kb.names.index(move.value))
                else:
                    self._asked.add(self.kb.attr_names.index(move.value))
        self._seen = len(log)

    def _narrow(self, mask: np.ndarray, move: Parsed, yes: bool) -> None:
        """Drop from ``mask`` the objects that contradict the answer ``yes`` to ``move``."""
        if move.kind == "guess":
            if not yes:
                mask[self.kb.names.index(move.value)] = False
        else:
            mask &= self.kb.matrix[:, self.kb.attr_names.index(move.value)] == yes

    def expert(self, view) -> str:
        """Ask the question that splits the remaining candidates most evenly; guess when one is left."""
        self._update(view.log)
        cand = np.flatnonzero(self._mask)
        if len(cand) == 0:  # contradictory answers: start over from everything not yet guessed
            cand = np.array([i for i in range(len(self.kb.names)) if i not in self._guessed])
        if len(cand) > 1:
            yes = self.kb.matrix[cand].sum(axis=0)
            balance = np.minimum(yes, len(cand) - yes)
            balance[list(self._asked)] = -1
            j = int(np.argmax(balance))
            if balance[j] > 0:
                return self.kb.attributes[j]["questions"][0]
        return self.state(self.kb.names[int(cand[0])])

    def noisy(self, view, rng: np.random.Generator) -> str:
        if rng.random() < 0.15:
            return self.state(self.kb.names[int(rng.integers(len(self.kb.names)))])
        a = self.kb.attributes[int(rng.integers(len(self.kb.attributes)))]
        return a["questions"][int(rng.integers(len(a["questions"])))]

    def hint(self, kind: str, last: Parsed, view) -> Hint | None:
        if last.kind == "guess" and last.value == self.object:
            return {"r": Hint("positive", {}), "binary": Hint("positive", {})}.get(kind)
        informative = last.kind == "question" and self._informative(view, last.value)
        question = view.last("actor", ("question", "guess")) or ""
        if kind == "r":
            return Hint("negative", {})
        if kind == "hp":
            return Hint("default", {"question": question}) if informative else None
        if kind in ("hn", "fn"):
            return None if informative else Hint("default", {"question": question})
        if kind == "fp":
            nxt = self.expert(view)
            return Hint("default", {"suggestion": nxt})
        if kind == "unary":
            return Hint("default", {})
        if kind == "binary":
            return Hint("positive" if informative else "negative", {})
        if kind == "critique":
            if informative:
                return Hint("agree", {"question": question})
            return Hint("disagree_suggest", {"question": question, "suggestion": self.expert(view)})
        return None

    def _informative(self, view, attribute: str) -> bool:
        """Did asking about ``attribute`` split the candidates that were left before it was asked?"""
        self._update(view.log)
        before = self._answers
        if before and before[-1][0] == view.last_move:  # the question itself has been answered already
            before = before[:-1]
        mask = np.ones(len(self.kb.names), dtype=bool)
        for move, yes in before:
            self._narrow(mask, move, yes)
        col = self.kb.matrix[mask, self.kb.attr_names.index(attribute)]
        return bool(col.any() and not col.all())

    def quality(self, move: Parsed, log) -> float:
        """1 for the right guess, 0 for a wrong one; for a question, how evenly it splits the
        objects still possible (1: in half, 0: not at all)."""
        if move.kind == "guess":
            return float(move.value == self.object)
        self._update(log)
        col = self.kb.matrix[self._mask, self.kb.attr_names.index(move.value)]
        n = len(col)
        return 2 * min(int(col.sum()), n - int(col.sum())) / n if n else 0.0

    def candidates_left(self, view) -> int:
        self._update(view.log)
        return int(self._mask.sum())


@register_task
class TwentyQuestions(Task):
    """Twenty Questions over 126 objects x 20 attributes: the actor asks, a rule oracle answers."""
    hints = True
    questions = True
    name = "twenty_questions"
    Params = TwentyQuestionsParams

    def sample(self, rng: np.random.Generator, params: TwentyQuestionsParams) -> TwentyQuestionsInstance:
        kb = knowledge_base()
        return TwentyQuestionsInstance(kb, int(rng.integers(len(kb.names))))
