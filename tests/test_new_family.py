"""A task family defined entirely in this file (a task class, its bank cases and a scenario dict)
gets every face the shipped families get, with no package file edited: the Gymnasium env, the
PettingZoo env, the SB3 candidate-action view, a scripted critic and a scripted expert actor."""

from __future__ import annotations

import re

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test

import feedbackgym
from feedbackgym.core import TASKS, Hint, Parsed, Verdict, register_task
from feedbackgym.envs.tasks.base import Instance, Params, Task, invalid, precheck
from feedbackgym.envs.wrappers import CandidateActions
from feedbackgym.feedback import banks

COLOURS = ("red", "green", "blue", "amber", "violet")


class ColourParams(Params):
    n: int = 4


class ColourInstance(Instance):
    """Guess the hidden colour; the critic says whether the guess was right."""

    family = "colour_guess"
    mode = "search"

    def __init__(self, secret: str, options: tuple[str, ...]):
        self.secret, self.options = secret, options
        self.instruction = f"Guess my colour, one of: {', '.join(options)}. Say 'Colour: <name>'."

    def private_view(self, role):
        return f"The colour is {self.secret}." if role != "actor" else ""

    def parse(self, role, text):
        bad = precheck(text)
        if bad:
            return bad
        m = re.search(r"colour:\s*([a-z]+)", text.lower())
        if not m or m.group(1) not in self.options:
            return invalid(f"say 'Colour: <name>' with one of {list(self.options)}")
        return Parsed(True, "guess", m.group(1))

    def score(self, parsed):
        ok = parsed.value == self.secret
        return Verdict(ok, ok)

    def respond(self, parsed):
        return "Yes." if parsed.value == self.secret else "No."

    def expert(self, view):
        return self.state(self.secret)

    def noisy(self, view, rng):
        return self.state(self.options[int(rng.integers(len(self.options)))])

    def state(self, value):
        return f"Colour: {value}"

    def hidden(self):
        return {"secret": self.secret}

    def hint(self, kind, last, view):
        if kind == "r":
            return Hint("positive" if last.value == self.secret else "negative", {"guess": last.value})
        return None

    def candidates(self):
        return [self.state(c) for c in self.options]

    def answer_values(self):
        return list(self.options)


class ColourGuess(Task):
    name = "colour_guess"
    Params = ColourParams
    hints = True  # the scripted critics play here: its instances implement hint()

    def sample(self, rng, params):
        options = tuple(COLOURS[: params.n])
        return ColourInstance(options[int(rng.integers(len(options)))], options)


SCENARIO = {
    "name": "colour_guess",
    "description": "Guess a colour; a critic says right or wrong.",
    "task": {"family": "colour_guess", "params": {"n": 4}},
    "roles": {"actor": {"agent": "learner"}, "critic": {"agent": "scripted:constructive"}},
    "protocol": {"order": ["actor", "critic"], "max_turns": 6},
    "feedback": {"kinds": ["r"]},
    "rewards": {"actor": "step_penalty"},
}


@pytest.fixture(autouse=True)
def colour_family():
    register_task(ColourGuess)
    banks.add("r", "colour_guess", {"positive": ["Yes, {guess} is my colour."], "negative": ["No, not {guess}."]})
    yield
    del TASKS["colour_guess"]


def test_the_gymnasium_env_works_and_passes_the_checker():
    env = feedbackgym.make(SCENARIO)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert "Guess my colour" in obs["instruction"]
    secret = info.get("hidden", {}).get("secret") or env.unwrapped.episode.hidden()["secret"]
    wrong = next(c for c in COLOURS[:4] if c != secret)
    obs, reward, terminated, truncated, info = env.step(f"Colour: {wrong}")
    assert obs["feedback"] == f"No, not {wrong}." and reward == -1.0 and not terminated
    assert info["messages"][-1].feedback.labels["truthful"] is True
    obs, reward, terminated, truncated, info = env.step(f"Colour: {secret}")
    assert terminated and reward == 0.0 and info["metrics"]["success"]


def test_gibberish_is_an_invalid_move_with_a_reason():
    env = feedbackgym.make(SCENARIO)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("purple!!")
    assert "Colour: <name>" in info["invalid_reason"] and not terminated


def test_the_pettingzoo_env_passes_the_api_test():
    aec = feedbackgym.make_multiagent(SCENARIO, actor="scripted:random")
    api_test(aec, num_cycles=20)
    aec.reset(seed=1)
    assert aec.agents == ["actor_0", "critic_0"]


def test_the_candidate_view_steps_through_every_colour():
    env = CandidateActions(feedbackgym.make(SCENARIO))
    assert env.action_space == gym.spaces.Discrete(4)
    _, info = env.reset(seed=5)
    secret = env.unwrapped.episode.hidden()["secret"]
    i = env.get_wrapper_attr("candidates").index(f"Colour: {secret}")
    _, _, terminated, _, info = env.step(i)
    assert terminated and info["metrics"]["success"]
    assert not env.action_masks()[i]  # said once: masked in a search task


def test_scripted_expert_and_critic_play_whole_episodes_reproducibly():
    seats = {"actor": {"agent": "scripted:expert"}, "critic": {"agent": "scripted:constructive"}}
    sc = feedbackgym.load_scenario({**SCENARIO, "roles": seats})
    from feedbackgym.rollout import play_scenario

    a, b = play_scenario(sc, 7), play_scenario(sc, 7)
    assert [m.to_dict() for m in a.log] == [m.to_dict() for m in b.log]
    assert a.terminate_reason == "success" and len(a.log) == 1


def test_a_scripted_judge_is_refused_with_where_it_plays():
    bad = {**SCENARIO, "roles": {**SCENARIO["roles"], "judge": {"agent": "scripted:malicious"}}, "protocol": {"order": ["actor", "judge"]}}
    with pytest.raises(feedbackgym.ScenarioError, match="judge_hooks"):
        feedbackgym.load_scenario(bad)
