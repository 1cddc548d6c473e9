"""Registry-wide: every id and every scenario, run twice with one seed, gives identical records;
the Gymnasium face reproduces obs, rewards and infos."""

import gymnasium as gym
import pytest

import feedbackgym
from feedbackgym import ENV_IDS, list_scenarios
from feedbackgym.records import Record

ACTORS = ("scripted:expert", "scripted:sycophant", "scripted:stubborn", "scripted:evidence_weigher", "scripted:random")


@pytest.mark.parametrize("scenario", list_scenarios())
@pytest.mark.parametrize("actor", ACTORS)
def test_same_seed_same_record(play, scenario, actor):
    for seed in (0, 1, 17):
        a = Record.of(play(scenario, seed, actor=actor)).to_json()
        b = Record.of(play(scenario, seed, actor=actor)).to_json()
        assert a == b


@pytest.mark.parametrize("scenario", list_scenarios())
def test_different_seeds_differ(play, scenario):
    runs = {Record.of(play(scenario, s, actor="scripted:random")).to_json() for s in range(5)}
    assert len(runs) > 1


def _trace(env, seed, actions):
    out = [env.reset(seed=seed)]
    for a in actions:
        step = env.step(a)
        out.append(step)
        if step[2] or step[3]:
            break
    return repr(out)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_gym_face_is_reproducible(env_id):
    actions = ["A", "Is it alive?", "50", "The answer is B", "Does it have wheels?", "25", "asdf", ""] * 3
    a = _trace(gym.make(env_id), 42, actions)
    b = _trace(gym.make(env_id), 42, actions)
    assert a == b


def test_reset_without_seed_continues_the_seeded_stream():
    e1, e2 = gym.make("feedbackgym/GuessNumber-v0"), gym.make("feedbackgym/GuessNumber-v0")
    e1.reset(seed=7)
    e2.reset(seed=7)
    secrets1 = [e1.reset()[0] and e1.unwrapped.episode.instance.secret for _ in range(5)]
    secrets2 = [e2.reset()[0] and e2.unwrapped.episode.instance.secret for _ in range(5)]
    assert secrets1 == secrets2 and len(set(secrets1)) > 1


def test_gym_seed_matches_cli_seed(play):
    """reset(seed=s) opens the same episode that `feedbackgym run --seed s` plays."""
    env = feedbackgym.make("guess_number")
    env.reset(seed=11)
    assert env.unwrapped.episode.instance.secret == play("guess_number", 11, actor="scripted:expert").instance.secret
