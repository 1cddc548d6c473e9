"""SPC reads numbers within bounds: a step with huge operands is an invalid move with a reason,
never a crash of the checker that reads it (it used to divide the product as a float)."""

from __future__ import annotations

import pytest

from feedbackgym.agents import agents_for
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.envs.tasks.spc import MAX_DIGITS


@pytest.mark.parametrize("digits", [MAX_DIGITS + 1, 200, 900])
@pytest.mark.parametrize("seat", ["generator", "critic"])
def test_a_move_with_a_huge_number_is_invalid_with_a_reason(digits, seat):
    other = "critic" if seat == "generator" else "generator"
    sc = load_scenario("spc").with_roles(**{seat: "learner", other: "scripted:checker" if other == "critic" else "scripted:sneaky"})
    agents = {k: v for k, v in agents_for(sc).items() if v is not None}
    for seed in range(3):
        ep = Episode(sc, seed, agents)
        play(ep, seat)
        big = "9" * digits
        steps = [f"1. {big} * {big} = 5"] + [f"{i}. 1 + 1 = 2" for i in range(2, len(ep.instance.steps) + 1)]
        text = "\n".join(steps) if seat == "generator" else f"Step 1 is wrong: {big} is not {big}."
        result = ep.submit(seat, text)
        assert result.message.kind == "invalid" and f"more than {MAX_DIGITS} digits" in result.message.labels["reason"]
        play(ep, seat)  # the other seat answers the invalid move without crashing


def test_the_largest_allowed_numbers_are_read():
    sc = load_scenario("spc").with_roles(generator="learner", critic="scripted:checker")
    agents = {k: v for k, v in agents_for(sc).items() if v is not None}
    ep = Episode(sc, 0, agents)
    play(ep, "generator")
    big = "9" * MAX_DIGITS
    steps = [f"1. {big} * {big} = 5"] + [f"{i}. {a} {op} {b} = {r}" for i, (a, op, b, r) in enumerate(ep.instance.steps[1:], 2)]
    ep.submit("generator", "\n".join(steps))
    play(ep, "generator")  # the checker compares a 30-digit product exactly
    assert ep.log[-1].role == "critic" or ep.done
