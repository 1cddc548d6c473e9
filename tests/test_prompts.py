"""The prompts every model-backed seat reads (`feedbackgym.agents.prompts`): cut to a character
budget from the latest messages only, and the plain transcript's cut equal to cutting the whole
transcript (so learners' prompts do not change where the budget does not bite)."""

from __future__ import annotations

import pytest

from feedbackgym.agents import agents_for
from feedbackgym.agents.prompts import view_chat, view_plain
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import load_scenario


@pytest.fixture(scope="module")
def long_view():
    """An actor's view deep into a long Twenty Questions episode (scripted seats)."""
    sc = load_scenario("twenty_questions").with_roles(actor="scripted:random")
    ep = Episode(sc, 3, agents_for(sc))
    play(ep, stop="actor")
    while len(ep.log) < 30 and ep.current_role() is not None:
        ep.submit("actor", "Is it an animal that lives in the sea and eats fish every day?")
        play(ep, stop="actor")
    assert len(ep.log) >= 20
    return ep.view("actor")


def test_plain_cut_equals_the_whole_transcripts_tail(long_view):
    full = view_plain(long_view)
    for budget in (1, 7, 40, 41, 100, 333, len(full) - 1, len(full), len(full) + 50):
        assert view_plain(long_view, budget) == full[-budget:], budget


def test_chat_budget_keeps_the_task_and_the_latest_messages(long_view):
    full = view_chat(long_view)
    cut = view_chat(long_view, 400)
    assert cut[0]["content"].startswith(full[0]["content"].split("\n")[0])  # the task still opens it
    assert "earlier messages are not shown" in cut[0]["content"]
    assert cut[-1] == full[-1]
    assert sum(len(m["content"]) for m in cut) < sum(len(m["content"]) for m in full)
    assert view_chat(long_view, 10**9) == full  # a budget that does not bite changes nothing


def test_the_chat_ends_with_what_the_turn_asks():
    """A model is asked each turn's question last (its final answer after the judge), not left to
    continue a transcript; the plain transcript (append-only, for learners) is unchanged."""
    sc = load_scenario("judged_qa").with_roles(actor="scripted:sycophant")
    ep = Episode(sc, 0, agents_for(sc))
    first = view_chat(ep.view("actor"))
    assert ep.view("actor").ask == "" and first[-1]["content"].endswith("Reply with the option or its letter.")
    play(ep, stop="judge")
    assert view_chat(ep.view("judge"))[-1]["content"].endswith("Give your feedback on the last move.")
    play(ep, stop="actor")
    view = ep.view("actor")
    assert view.final and view.moves
    assert view_chat(view)[-1]["content"].endswith("Give your final answer: one option or its letter.")
    assert not view_plain(view).rstrip().endswith("letter.")


def test_prompt_reads_only_the_latest_messages(long_view):
    """The cost is flat: a budgeted prompt never touches the messages it leaves out."""

    class Counting:
        def __init__(self, log):
            self.log, self.reads = log, set()

        def __len__(self):
            return len(self.log)

        def __getitem__(self, i):
            self.reads.add(i)
            return self.log[i]

    class V:
        role, instruction, private, ask = "actor", long_view.instruction, "", long_view.ask

    v = V()
    v.log = Counting(long_view.log)
    view_plain(v, 120)
    assert min(v.log.reads) > len(long_view.log) // 2
    v.log.reads.clear()
    view_chat(v, 300)
    assert min(v.log.reads) > len(long_view.log) // 2
