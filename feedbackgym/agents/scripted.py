"""Scripted actors: seeded, named behaviours towards feedback (Ask-Again, WAFER-QA).

Each actor has its own way of making a fresh move (the task's expert with probability ``skill``,
otherwise an uninformed move) and its own way of taking feedback, which it reads only from the
text, through `feedbackgym.feedback.parse`:

| name | fresh move | takes feedback |
|---|---|---|
| expert | always the expert's | ignores it (it already knows) |
| sycophant | expert w.p. skill | adopts any answer the feedback suggests; on bare criticism switches to another option |
|  |  | (not one the feedback rules out by name: ``Reading.ruled_out``) |
| stubborn | expert w.p. skill | never revises an answer it has given |
| evidence_weigher | expert w.p. skill | adopts a suggested answer only when the feedback cites a passage that states it plainly |
|  |  | (not as hearsay: "some say", "a ballad claims") |
| persuadable | expert w.p. skill | yields with a probability set by how persuasive the feedback is: cited evidence > a specific claim > bare doubt |
|  |  | (on bare doubt it switches as the sycophant does) |
| random | uniform | ignores it |

In CGI (``protocol.candidates``) each lists its candidates, its own move first, and then picks:
the best-graded (the stubborn actor its first, the random actor any, the sycophant the critic's
revision whenever there is one).

In "answer" tasks (judged QA) a move restates an answer, so "keeping" means repeating it; in
"search" tasks (twenty questions, guess the number) every move is new, so the actor's own policy
continues, and only a suggestion (a number, a question) can be adopted.
"""

from __future__ import annotations

import re

from feedbackgym.agents.base import ScriptedAgent, check_range, register
from feedbackgym.feedback.parse import hedged, read_feedback

GRADE_RANK = {"Very Poor": 0, "Poor": 1, "Neutral": 2, "Good": 3, "Excellent": 4}
_GRADE = re.compile(r"Candidate (\d+)\b.*?Grade: (Very Poor|Poor|Neutral|Good|Excellent)", re.I)
_REVISION = re.compile(r'Revision: consider "(.+?)"', re.I)


def read_grades(text: str) -> dict:
    """{candidate number: grade rank, "revision": the suggested move} from a CGI critique."""
    grades: dict = {int(n): GRADE_RANK[g.title()] for n, g in _GRADE.findall(text)}
    m = _REVISION.search(text)
    if m:
        grades["revision"] = m.group(1)
    return grades


class ScriptedActor(ScriptedAgent):
    def __init__(self, name: str, skill: float = 0.7):
        check_range(skill=skill)
        self.name, self.skill = name, skill

    # -- fresh moves
    def own_move(self, view) -> str:
        w = view.world
        return w.expert(view) if view.rng.random() < self.skill else w.noisy(view, view.rng)

    def act(self, view) -> str:
        w = view.world
        last = view.last_move
        if view.candidates:  # CGI: list candidates, our own move first
            moves = [self.own_move(view)] + [w.noisy(view, view.rng) for _ in range(3 * view.candidates)]
            listed = list(dict.fromkeys(moves))[: view.candidates]
            return "\n".join(f"{i}. {m}" for i, m in enumerate(listed, 1))
        if last is not None and last.kind == "candidates":  # the critic has graded them
            return self.choose(view, last.value, read_grades(view.feedback))
        if w.mode == "answer":
            if last is None:
                return self.own_move(view)
            reading = read_feedback(view.feedback, w, last)
            return self.revise(view, last, reading)
        reading = read_feedback(view.feedback, w, last) if last is not None else None
        if reading is not None and reading.suggestion is not None and self.adopts(view, reading):
            return w.state(reading.suggestion)
        return self.own_move(view)

    # -- taking feedback; subclasses override
    def choose(self, view, candidates, grades) -> str:
        """After a critique of our candidates (CGI): the best-graded one, or the critic's
        revision when none of ours was graded Good."""
        best = max(range(len(candidates)), key=lambda i: (grades.get(i + 1, -1), -i))
        if grades.get(best + 1, -1) < GRADE_RANK["Good"] and grades.get("revision"):
            return grades["revision"]
        return candidates[best][0]

    def revise(self, view, last, reading) -> str:
        return view.world.state(last.value)

    def adopts(self, view, reading) -> bool:
        return False

    @staticmethod
    def switch(view, last, reading) -> str:
        """Another answer, drawn at random among the options the feedback does not rule out
        ("X is wrong, and so is Y": neither X nor Y), or among all the others if it rules out
        every one; the current answer if there is no other."""
        w = view.world
        others = [v for v in w.answer_values() if v != last.value]
        left = [v for v in others if v not in reading.ruled_out] or others
        return w.state(left[int(view.rng.random() * len(left))]) if left else w.state(last.value)


@register("actor", "expert")
class Expert(ScriptedActor):
    def __init__(self, skill: float = 1.0):
        super().__init__("expert", skill)

    def revise(self, view, last, reading):
        return view.world.expert(view)


@register("actor", "stubborn")
class Stubborn(ScriptedActor):
    def __init__(self, skill: float = 0.7):
        super().__init__("stubborn", skill)

    def choose(self, view, candidates, grades):
        return candidates[0][0]


@register("actor", "sycophant")
class Sycophant(ScriptedActor):
    def __init__(self, skill: float = 0.7):
        super().__init__("sycophant", skill)

    def adopts(self, view, reading):
        return True

    def choose(self, view, candidates, grades):
        return grades.get("revision") or super().choose(view, candidates, grades)

    def revise(self, view, last, reading):
        w = view.world
        if reading.suggestion is not None:
            return w.state(reading.suggestion)
        if reading.polarity < 0:
            return self.switch(view, last, reading)
        return w.state(last.value)


@register("actor", "evidence_weigher")
class EvidenceWeigher(ScriptedActor):
    def __init__(self, skill: float = 0.7):
        super().__init__("evidence_weigher", skill)

    def adopts(self, view, reading):
        """Checkable evidence: a cited passage whose quoted text itself states the suggestion,
        as a matter of record rather than hearsay."""
        s = str(reading.suggestion).lower()
        return any(s in quote.lower() and not hedged(quote) for _, quote in reading.evidence)

    def revise(self, view, last, reading):
        if reading.suggestion is not None and self.adopts(view, reading):
            return view.world.state(reading.suggestion)
        return view.world.state(last.value)


@register("actor", "persuadable")
class Persuadable(ScriptedActor):
    """Yields in proportion to persuasiveness, read from the feedback's form: it cites passages
    (grounded), it asserts a specific alternative (parametric), or it only doubts (none). Under
    bare doubt it switches to another option; otherwise it adopts the suggestion."""

    def __init__(self, skill: float = 0.7, grounded: float = 0.8, parametric: float = 0.45, none: float = 0.15):
        super().__init__("persuadable", skill)
        check_range(grounded=grounded, parametric=parametric, none=none)
        self.yields = {"grounded": grounded, "parametric": parametric, "none": none}

    @staticmethod
    def persuasiveness(reading) -> str | None:
        if reading.suggestion is not None:
            return "grounded" if reading.evidence else "parametric"
        return "none" if reading.polarity < 0 else None

    def adopts(self, view, reading):
        level = self.persuasiveness(reading)
        return level is not None and view.rng.random() < self.yields[level]

    def revise(self, view, last, reading):
        if not self.adopts(view, reading):
            return view.world.state(last.value)
        if reading.suggestion is not None:
            return view.world.state(reading.suggestion)
        return self.switch(view, last, reading)


@register("actor", "random")
class Random(ScriptedActor):
    def __init__(self, skill: float = 0.0):
        super().__init__("random", skill)

    def own_move(self, view):
        w = view.world
        values = w.answer_values()
        if w.mode == "answer" and values:
            return w.state(values[int(view.rng.random() * len(values))])
        return w.noisy(view, view.rng)

    def revise(self, view, last, reading):
        return self.own_move(view)

    def choose(self, view, candidates, grades):
        return candidates[int(view.rng.random() * len(candidates))][0]
