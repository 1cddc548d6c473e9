"""Whatever an agent says, the env never raises: unreadable text is an invalid move with a reason."""

import gymnasium as gym
import pytest
from hypothesis import given
from hypothesis import strategies as st

import feedbackgym
from feedbackgym import ENV_IDS

#: Tasks where any non-empty text of sensible length is a valid move (talk).
FREE_TALK = {"feedbackgym/Negotiation-v0"}
SPECIAL = ["", "   ", "\n\t", "x" * 100_000, "日本語の答え", "🤖🤖🤖", "\x00\x01\x02", "é" * 3000, "ÅÄÖ? ¿Qué?"]


def _step(env, action):
    obs, r, term, trunc, info = env.step(action)
    assert isinstance(r, float)
    assert env.observation_space.contains(obs)
    return obs, info


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
@pytest.mark.parametrize("action", SPECIAL, ids=["empty", "spaces", "whitespace", "100kB", "japanese", "emoji", "control", "long-accented", "accented"])
def test_special_actions_are_invalid_moves(env_id, action):
    env = gym.make(env_id)
    env.reset(seed=0)
    obs, info = _step(env, action)
    if env_id in FREE_TALK and action.strip() and len(action) <= 2000:
        assert info["labels"]["valid"] is True  # any words are talk in a negotiation
        return
    assert info["labels"]["valid"] is False
    assert info["invalid_reason"]
    assert obs["observation"].startswith("Invalid move: ")


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
@given(text=st.text(max_size=300))
def test_arbitrary_text_never_raises(env_id, text):
    env = gym.make(env_id)
    env.reset(seed=1)
    obs, info = _step(env, text)
    if not info["labels"]["valid"]:
        assert info["invalid_reason"] and obs["observation"].startswith("Invalid move: ")


@given(text=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200), seed=st.integers(0, 50))
def test_gibberish_in_every_seat_never_raises(text, seed):
    """A learner in the judge's seat may say anything too; the episode still ends cleanly."""
    env = feedbackgym.make("judged_qa", actor="scripted:sycophant", judge="learner")
    env.reset(seed=seed)
    obs, r, term, trunc, info = env.step(text)
    assert term and info["messages"][0].feedback is not None


def test_non_string_actions_are_read_as_text():
    env = gym.make("feedbackgym/GuessNumber-v0")
    env.reset(seed=0)
    _, info = _step(env, 50)
    assert info["labels"]["valid"] is True
    _, info = _step(env, b"\xff\xfe")
    assert info["labels"]["valid"] is False
