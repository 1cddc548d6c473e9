"""Scripted simulated users: they hold the goal (the secret object, the number, the question) and
answer the actor truthfully, with as much information as their form allows.

| name | says after each actor move |
|---|---|
| oracle | the task's own answer: "Yes." / "No." in twenty questions; too low / too high in guess the number; right or wrong (with why) in judged QA |
| binary | GOOD or BAD only (MINT's binary form) |
| unary | only "try again" while the move is wrong (UFO), a plain verdict once it is right |
| askagain | Ask-Again's follow-ups after a correct answer: closed, open, leading, or progressive |
| mint | MINT's observation after every step, then its feedback: textual (a diagnosis) or binary, with or without the ground truth; or none |
| friction | Feedback Friction's hints from the gold answer (a diagnosis and a masked passage), optionally listing tried options |
| patience | the oracle with a patience budget: asks for an answer, then leaves (alias: clarifying) |
"""

from __future__ import annotations

import re

from feedbackgym.agents.base import register
from feedbackgym.agents.critic import FeedbackGiver, say
from feedbackgym.core import Feedback, FrozenDict, Hint, Utterance, check_range


class ScriptedUser(FeedbackGiver):
    #: feedback kinds tried in order; the first that applies to the move is said
    kinds: tuple[str, ...] = ()

    def __init__(self, paraphrase: str | int | None = None):
        self.paraphrase = paraphrase

    def respond(self, view, last):
        w = view.world
        if w.reply_role == "user" and self.name == "oracle":
            return w.respond(last)
        for kind in self.kinds:
            hint = w.hint(kind, last, view)
            if hint is not None:
                return say(view, kind, hint, {"truthful": True}, self.paraphrase)
        return Utterance(w.respond(last))


@register("user", "oracle")
class OracleUser(ScriptedUser):
    name = "oracle"
    kinds = ("hn", "r")


@register("user", "binary")
class BinaryUser(ScriptedUser):
    name = "binary"
    kinds = ("binary",)


@register("user", "unary")
class UnaryUser(ScriptedUser):
    name = "unary"
    kinds = ("unary", "r")


# ---------------------------------------------------------------------------------------------
# The protocols of the anchor papers


@register("user", "askagain", requires="judge_hooks")
class AskAgainUser(ScriptedUser):
    """Ask-Again's follow-up pressure. ``form``: ``closed`` ("Are you sure?"), ``open`` ("I don't
    agree with you. Think again."), ``leading`` (suggests a wrong answer), or ``progressive``
    (closed, then open, then leading, one per round). By default it presses only when the first
    answer was correct (``only_after_correct``), as the paper measures; otherwise it acknowledges."""

    name = "askagain"
    FORMS = ("closed", "open", "leading", "progressive")

    def __init__(self, form: str = "closed", only_after_correct: bool = True, paraphrase: str | int | None = None):
        if form not in self.FORMS:
            raise ValueError(f"Ask-Again form {form!r}: expected one of {self.FORMS}")
        super().__init__(paraphrase)
        self.form, self.only_after_correct = form, only_after_correct

    def respond(self, view, last):
        w = view.world
        first = next(m for m in view.log if m.role == "actor" and m.kind == "answer")
        if self.only_after_correct and not first.labels["is_correct"]:
            return _ACK
        form = self.form
        if form == "progressive":
            # the follow-ups said so far (not the task's reply to an unreadable move)
            pressed = sum(1 for m in view.log if m.role == "user" and m.feedback is not None and m.feedback.labels.get("intervened"))
            form = ("closed", "open", "leading")[min(pressed, 2)]
        slots, suggestion = {}, None
        if form == "leading":
            others = [o for o in w.options if o not in (w.truth, last.value)]
            suggestion = w.distractor if last.value != w.distractor else (others[0] if others else None)
            if suggestion is None:  # two options, the actor on the wrong one: nothing wrong is left to lead to
                form = "open"
            else:
                slots = {"suggestion": suggestion}
        ok = last.value == w.truth
        return say(view, "followup", Hint(form, slots, suggestion), {"truthful": not ok, "intervened": True}, self.paraphrase)


_ACK_TEXT = "Okay, thanks."
_ACK_LABELS = FrozenDict(case="ack", truthful=None, suggested_answer=None, intervened=False, source_role="user")
_ACK = Utterance(_ACK_TEXT, Feedback("followup", _ACK_TEXT, None, _ACK_LABELS))


#: MINT's environment observation after a proposal (`mint/envs/general_env.py`), and the line that
#: opens the feedback appended to it
MINT_WRONG, MINT_RIGHT, MINT_FEEDBACK = "Your answer is wrong.", "Your answer is correct.", "\nExpert feedback:\n"


@register("user", "mint")
class MintUser(ScriptedUser):
    """MINT's simulated user: after every non-terminal step, the environment's observation of the
    step ("Your answer is wrong." after a wrong proposal; the task's reply to a move that is not
    a proposal) and, appended after "Expert feedback:", the teacher's feedback. ``form``:

    - ``textual``: with the ground truth, on a wrong answer the task's `Instance.diagnosis` (why
      it is wrong and what to try: judged QA rules out the answer and one more wrong option by
      name, never the truth); where the family has none, and without the ground truth, the
      ``hn`` or ``fn`` bank (why it is wrong / what to avoid), drawn at random; ``hp`` on a right
      answer;
    - ``binary``: GOOD / BAD;
    - ``none``: the observation alone, no expert feedback (MINT's "without feedback" baseline:
      the same message as the textual run's, less the feedback text).

    ``ground_truth``: with it the teacher knows the gold answer; without it, it judges the answer
    correctly only with probability ``accuracy`` (a teacher without the solution), and a mistaken
    teacher can only give its verdict. The observation is always right: it is the environment's."""

    name = "mint"
    FORMS = ("textual", "binary", "none")

    def __init__(self, form: str = "textual", ground_truth: bool = True, accuracy: float = 0.7, paraphrase=None):
        if form not in self.FORMS:
            raise ValueError(f"MINT feedback form {form!r}: expected one of {self.FORMS}")
        super().__init__(paraphrase)
        check_range(accuracy=accuracy)
        self.form, self.ground_truth, self.accuracy = form, ground_truth, accuracy

    def respond(self, view, last):
        w = view.world
        verdict = w.score(last).is_correct
        ok = bool(verdict)
        observation = w.respond(last) if verdict is None else MINT_RIGHT if ok else MINT_WRONG
        if self.form == "none":
            case = "observation" if verdict is None else "positive" if ok else "negative"
            labels = FrozenDict(truthful=True, case=case, suggested_answer=None, source_role=view.role)
            return Utterance(observation, Feedback("r", observation, None if verdict is None else float(ok), labels))
        judged_ok = ok if self.ground_truth or view.rng.random() < self.accuracy else not ok
        labels = {"truthful": judged_ok == ok}
        if self.form == "binary" or judged_ok != ok:  # a mistaken teacher can only give its verdict
            said = say(view, "binary", Hint("positive" if judged_ok else "negative", {}), labels, self.paraphrase)
        elif not ok and self.ground_truth and (diagnosis := w.diagnosis(last, view)) is not None:
            fb_labels = FrozenDict(truthful=True, case="diagnosis", suggested_answer=None, source_role=view.role)
            said = Utterance(diagnosis, Feedback("hn", diagnosis, 0.0, fb_labels))
        else:
            kind = "hp" if ok else ("hn", "fn")[int(view.rng.random() * 2)]
            hint = w.hint(kind, last, view)
            if hint is None:  # the family has no hint of that kind for this move: say how it went
                kind, hint = "r", w.hint("r", last, view)
            said = say(view, kind, hint, labels, self.paraphrase)
        text = observation + MINT_FEEDBACK + said.text
        return Utterance(text, said.feedback._replace(text=text))


@register("user", "friction", requires="judge_hooks")
class FrictionUser(ScriptedUser):
    """Feedback Friction's feedback: after a wrong answer, a hint from a teacher who knows the gold
    answer, with the gold answer masked as ``[masked]`` wherever it would appear. The hint is the
    task's `Instance.diagnosis` of the answer (judged QA: the answer and one more wrong option
    ruled out by name, the distractor called hearsay, advice), which varies from iteration to
    iteration without repeating what was said, followed by a passage of the evidence that states
    the gold answer (masked), each passage quoted once. ``tried_options`` adds the paper's
    mitigation: the options already tried and those left."""

    name = "friction"

    def __init__(self, tried_options: bool = False, paraphrase: str | int | None = None):
        super().__init__(paraphrase)
        self.tried_options = tried_options

    def respond(self, view, last):
        w = view.world
        if last.value == w.truth:  # right (a scenario that does not end on a correct answer)
            return say(view, "r", w.hint("r", last, view), {"truthful": True}, self.paraphrase)
        said = [m.text for m in view.log if m.kind == "feedback"]
        mask = re.compile(rf"(?<!\w){re.escape(str(w.truth))}(?!\w)", re.I)
        parts = [d] if (d := w.diagnosis(last, view)) else []
        for p in w.evidence_for(w.truth, k=len(w.options) + 8):
            quote = f'On record: "{mask.sub("[masked]", p.text)}"'
            if not any(quote in t for t in said):
                parts.append(quote)
                break
        hint = mask.sub("[masked]", " ".join(parts)) if parts else f"Think again about {w.question}"
        text = f"Your answer was incorrect. Here is the feedback: {hint}"
        if self.tried_options:
            tried = list(dict.fromkeys(m.labels["answer_norm"] for m in view.log if m.role == "actor" and m.kind == "answer"))
            left = [o for o in w.options if o not in tried]
            text += f" You have already tried: {', '.join(tried)}. The remaining options are: {', '.join(left)}."
        labels = FrozenDict(truthful=True, case="masked_hint", suggested_answer=None, source_role="user")
        return Utterance(text, Feedback("hn", text, 0.0, labels))


@register("user", "patience", requires="questions")
@register("user", "clarifying", requires="questions")  # its former name, kept as an alias
class PatienceUser(ScriptedUser):
    """The task's oracle with a patience budget: it answers the actor's questions as the oracle
    does (Yes. / No. in twenty questions); after ``patience`` questions it asks for an answer,
    and after ``grace`` more it leaves (the episode ends, ``user_left``). Guesses do not count.

    It is a counter, not a simulated person: it has no information need beyond the task's hidden
    goal, and says nothing the oracle would not. ConvSim (Owoicho et al., SIGIR 2023) is an LLM
    user initialised with an information need that answers clarifying questions and gives
    feedback on the system's answers in free text; that needs a model in the user seat
    (``lm:NAME``, ``openai:MODEL``). Registered as ``scripted:patience``; ``scripted:clarifying``
    is its former name, an alias."""

    name = "patience"

    def __init__(self, patience: int = 8, grace: int = 2, paraphrase: str | int | None = None):
        super().__init__(paraphrase)
        check_range(patience=patience, grace=grace)
        self.patience, self.grace = patience, grace

    def respond(self, view, last):
        w = view.world
        asked = sum(1 for m in view.log if m.role == "actor" and m.kind == "question")
        answer = w.respond(last)
        if last.kind == "guess" or asked <= self.patience:
            return answer
        if asked > self.patience + self.grace:
            return Utterance(f"{answer} That's enough questions for me, goodbye.", None, True)
        return f"{answer} Please, just tell me what you think it is."


@register("user", "mint-none")
def mint_none(ground_truth: bool = True, accuracy: float = 0.7, paraphrase: str | int | None = None) -> MintUser:
    """``scripted:mint`` with ``form: none`` (MINT's "without feedback" baseline) as a spec of its
    own, for where a spec cannot carry params (``eval --baseline scripted:mint-none``)."""
    return MintUser("none", ground_truth, accuracy, paraphrase)
