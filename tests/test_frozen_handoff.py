"""The scripted givers hand the engine frozen, complete feedback labels that it takes as they are;
any other agent's feedback is still completed and frozen; `View.log` is a read-only view, not a
copy, of the log as it was when read."""

from __future__ import annotations

import pytest

import feedbackgym
from feedbackgym.agents import agents_for
from feedbackgym.core import Feedback, FrozenDict, LogView, Utterance
from feedbackgym.envs.engine import Episode, play


def test_scripted_feedback_is_handed_frozen_and_taken_as_is():
    sc = feedbackgym.load_scenario("guess_number").with_roles(actor="scripted:random")
    ep = Episode(sc, 0, agents_for(sc))
    play(ep)
    assert any(m.kind == "feedback" for m in ep.log)
    for m in ep.log:
        if m.kind == "feedback":
            assert type(m.feedback.labels) is FrozenDict
            assert {"source_role", "truthful", "suggested_answer"} <= set(m.feedback.labels)


class _PlainCritic:
    """An arbitrary agent: typed feedback with a plain dict missing what the engine adds."""

    def act(self, view):
        return Utterance("Too low.", Feedback("hn", "Too low.", None, {"case": "x", "evidence_ids": ["a"]}))

    def act_batch(self, views):
        return [self.act(v) for v in views]


@pytest.mark.parametrize("source", [None, "lm"])
def test_any_agents_feedback_is_completed_and_frozen(source):
    sc = feedbackgym.load_scenario("guess_number").with_roles(actor="scripted:random")
    ep = Episode(sc, 0)
    ep.submit("actor", "50")
    ep.submit("user", _PlainCritic().act(ep.view("user")), source)
    labels = ep.log[-1].feedback.labels
    assert type(labels) is FrozenDict and labels["evidence_ids"] == ("a",)
    assert labels["source_role"] == "user" and labels["truthful"] is None and labels["suggested_answer"] is None
    assert labels.get("source") == source


@pytest.mark.parametrize(
    "say",
    ["Excellent, that is exactly right!", "qwzx vvk plo", "That is wrong.", "{wrong} is wrong; it is {truth}.",
     "{wrong} is wrong; go with {other}.", "Not {wrong}, and neither is {other}."],
)
def test_free_text_feedback_is_labelled_only_with_what_is_known(say):
    """Free text (a learner's, a model's, a person's) is not judged: ``truthful`` is None whatever
    it says (praise of a wrong answer, gibberish, the truth); ``suggested_answer`` is the one
    option it names besides the answer and those it rules out, as the task's reader finds it."""
    sc = feedbackgym.load_scenario("judged_qa").with_roles(actor="scripted:random")
    for seed in range(10):
        ep = Episode(sc, seed)
        inst = ep.instance
        wrong, other = [o for o in inst.options if o != inst.truth][:2]
        ep.submit("actor", inst.state(wrong))
        ep.submit("judge", say.format(wrong=wrong, truth=inst.truth, other=other), "learner")
        labels = ep.log[-1].feedback.labels
        assert labels["truthful"] is None and labels["source"] == "learner" and labels["source_role"] == "judge"
        named = {"{truth}": inst.truth, "go with {other}": other}
        want = next((v for k, v in named.items() if k in say), None)
        assert labels["suggested_answer"] == want, (say, labels)


def test_a_declared_truthful_label_is_kept():
    sc = feedbackgym.load_scenario("guess_number").with_roles(actor="scripted:random")
    ep = Episode(sc, 0)
    ep.submit("actor", "50")
    ep.submit("user", Utterance("Too low.", Feedback("hn", "Too low.", None, {"truthful": False})), "lm")
    labels = ep.log[-1].feedback.labels
    assert labels["truthful"] is False and labels["source"] == "lm" and labels["suggested_answer"] is None


def test_view_log_is_a_read_only_snapshot_without_a_copy():
    ep = Episode(feedbackgym.load_scenario("guess_number").with_roles(actor="scripted:random"), 0)
    ep.submit("actor", "50")
    log = ep.view("actor").log
    assert isinstance(log, LogView) and len(log) == 1 and log[0] is ep.log[0] and log[-1] is ep.log[0]
    assert log[:] == (ep.log[0],) and list(reversed(log)) == [ep.log[0]]
    ep.submit("user", "Higher.")
    assert len(log) == 1 and list(log) == ep.log[:1] and log[0:5] == tuple(ep.log[:1])  # as it was
    with pytest.raises(IndexError):
        log[1]
    with pytest.raises(TypeError):
        log[0] = None
    assert not hasattr(log, "append")
