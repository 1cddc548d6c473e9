"""Text no task expects, sent through the engine, found by the fuzz test (tests/test_fuzz.py) and
kept fixed here case by case: each is a move or a piece of feedback that used to crash or to
record differently from what the env held."""

from __future__ import annotations

import pytest

from feedbackgym.agents import agents_for
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.feedback.parse import MAX_DIGITS, read_feedback
from feedbackgym.records import Record, rebuild


def _episode(scenario: str, seat: str, seed: int = 0, **roles) -> Episode:
    sc = load_scenario(scenario).with_roles(**{seat: "learner"}, **roles)
    ep = Episode(sc, seed, {k: v for k, v in agents_for(sc).items() if v is not None})
    play(ep, seat)
    return ep


@pytest.mark.parametrize("text", ["\ud800\udc00", "a\ud83d\ude00b", "\ud800", "x\udfff\ud800y", "\udc00\ud800"])
def test_surrogates_in_a_move_record_and_replay_byte_for_byte(text):
    """JSON reads an escaped high-low pair back as one character, so the engine holds every text
    with its pairs joined; lone surrogates stay, escaped in the record, and read back as they were."""
    ep = _episode("judged_qa", "actor")
    ep.submit("actor", text)
    line = Record.of(ep).to_json()
    line.encode("utf-8")
    rec = Record.from_json(line, 1)
    assert [m.text for m in rec.messages] == [m.text for m in ep.log]
    assert [m.to_dict() for m in rebuild(rec).log] == [m.to_dict() for m in ep.log]
    held = ep.log[0].text
    assert held == text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


@pytest.mark.parametrize("digits", [MAX_DIGITS + 1, 4305, 20_000])
@pytest.mark.parametrize("scenario,seat,roles", [
    ("judged_qa", "judge", {"actor": "scripted:sycophant"}),
    ("guess_number_critic", "critic", {"actor": "scripted:persuadable"}),
])  # fmt: skip
def test_feedback_with_a_huge_number_is_read_without_it(scenario, seat, roles, digits):
    """A critic's or judge's feedback holding a run of thousands of digits used to stop the
    episode (Python refuses int() past 4,300 digits); such a run is not read as a number."""
    big = "7" * digits
    assert read_feedback(f"Try {big}, or 12.").numbers == (12,)
    ep = _episode(scenario, seat, **roles)
    ep.submit(seat, f"The answer is {big}.")
    play(ep, seat)  # the actor reads it and moves on


def test_numbers_up_to_the_bound_are_read():
    assert read_feedback("9" * MAX_DIGITS).numbers == (int("9" * MAX_DIGITS),)
