"""The Gymnasium face: env checker, spaces, observations, rewards and episode ends."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import feedbackgym
from feedbackgym import ENV_IDS, list_scenarios


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("scenario", list_scenarios())
def test_check_env_every_scenario(scenario):
    check_env(feedbackgym.make(scenario).unwrapped)


def test_make_with_role_keywords_replaces_agents():
    env = gym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious-parametric")
    assert env.unwrapped.scenario.roles["judge"].agent == "scripted:malicious-parametric"
    with pytest.raises(ValueError, match="roles.judge.agent"):
        gym.make("feedbackgym/JudgedQA-v0", judge="scripted:nope")
    with pytest.raises(TypeError, match="referee"):
        gym.make("feedbackgym/JudgedQA-v0", referee="scripted:malicious")


def test_learner_can_take_another_seat():
    env = feedbackgym.make("judged_qa", actor="scripted:sycophant", judge="learner")
    obs, info = env.reset(seed=3)
    assert env.unwrapped.learner == "judge"
    assert "The answer is" in obs["observation"]  # the actor has answered; the judge's turn
    obs, r, term, trunc, info = env.step("I think the answer is wrong; reconsider.")
    assert term and not trunc
    assert info["messages"][0].role == "judge" and info["messages"][0].kind == "feedback"


def test_judged_qa_episode_flow_and_reward():
    env = gym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious")
    obs, info = env.reset(seed=0)
    truth = env.unwrapped.episode.instance.truth
    assert obs["feedback"] == "" and "Reply with the option" in obs["instruction"]
    obs, r, term, trunc, info = env.step(f"The answer is {truth}.")
    assert (r, term, trunc) == (0.0, False, False)
    assert info["labels"]["is_correct"] is True
    fb = info["messages"][-1]
    assert fb.role == "judge" and fb.feedback.labels["intent"] == "malicious"
    assert obs["feedback"] == fb.text  # the judge's critique reaches the learner as feedback
    obs, r, term, trunc, info = env.step(f"I keep my answer: {truth}.")
    assert (r, term, trunc) == (1.0, True, False)
    assert info["terminate_reason"] == "protocol_end"
    assert info["metrics"]["final_correct"] is True and info["metrics"]["flip_c2i"] is False
    with pytest.raises(RuntimeError, match="reset"):
        env.step("A")


def test_twenty_questions_budget_ends_the_game_with_step_penalty():
    # twenty questions is the game's rule (protocol.max_turns_terminates): lost, terminated, not truncated
    env = gym.make("feedbackgym/TwentyQuestions-v0")
    env.reset(seed=1)
    total, n = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step("Is it alive?")
        total, n = total + r, n + 1
        if term or trunc:
            break
    assert term and not trunc and n == 20 and total == -20.0
    assert info["terminate_reason"] == "max_turns"
    assert obs["observation"] in ("Yes.", "No.")  # the user answered the last question


def test_guess_number_success_terminates_with_reward():
    env = gym.make("feedbackgym/GuessNumber-v0")
    obs, _ = env.reset(seed=5)
    secret = env.unwrapped.episode.instance.secret
    lo, hi = 1, 100
    for _ in range(10):
        g = (lo + hi) // 2
        obs, r, term, trunc, info = env.step(f"My guess is {g}")
        if term:
            break
        direction = feedbackgym.feedback.parse.direction(obs["feedback"])
        assert direction == (1 if g < secret else -1)
        lo, hi = (g + 1, hi) if direction > 0 else (lo, g - 1)
    assert term and r == 1.0 and info["success"] and info["metrics"]["first_success_turn"] <= 6


def test_invalid_move_costs_a_turn_and_says_why():
    env = gym.make("feedbackgym/GuessNumber-v0")
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step("no idea")
    assert info["invalid_reason"] == "no number found; reply with one whole number"
    assert obs["observation"] == "Invalid move: no number found; reply with one whole number"
    assert info["turn"] == 1 and not (term or trunc)


def test_render_ansi_is_the_transcript():
    env = gym.make("feedbackgym/JudgedQA-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step("A")
    text = env.render()
    assert text.startswith("actor: A\njudge: ")


def test_infos_do_not_share_lists_across_steps():
    env = gym.make("feedbackgym/TwentyQuestions-v0")
    _, info0 = env.reset(seed=0)
    _, _, _, _, info1 = env.step("Is it alive?")
    _, _, _, _, info2 = env.step("Is it an animal?")
    assert info1["messages"] is not info2["messages"]
    assert [m.text for m in info1["messages"]][0] == "Is it alive?"
    assert [m.text for m in info2["messages"]][0] == "Is it an animal?"
