"""`obs_format="messages"`: the learner's view as OpenAI chat messages, in a declared space that
passes Gymnasium's and PettingZoo's checks for every id; and the very chat an `lm:` seat prompts
its model with, so that a model driven from the observation, with nothing of feedbackgym's but
the env, plays the episode the `lm:` seat plays."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test

import feedbackgym
from feedbackgym.envs.registration import ENV_IDS


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_messages_pass_check_env_for_every_id(env_id):
    env = gym.make(env_id, obs_format="messages")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert obs[0]["role"] == "user" and obs[-1]["role"] == "user" and {m["role"] for m in obs} <= {"user", "assistant"}
    for _ in range(3):
        obs, _, terminated, truncated, _ = env.step("The answer is C. Is it a hat? 50")
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_messages_per_agent_pass_the_pettingzoo_api_test(env_id):
    aec = feedbackgym.make_multiagent(env_id, obs_format="messages")
    api_test(aec, num_cycles=8)
    aec.reset(seed=1)
    obs = aec.observe(aec.agent_selection)
    assert aec.observation_space(aec.agent_selection).contains(obs) and obs["messages"][-1]["role"] == "user"


def test_bad_obs_format_is_refused():
    with pytest.raises(ValueError, match="obs_format 'chat'"):
        gym.make("feedbackgym/JudgedQA-v0", obs_format="chat")


def test_an_lm_driven_from_the_messages_plays_the_lm_seats_episode(tmp_path):
    """HF `generate` on the tokenizer's chat template of the observation, greedy, gives the
    episode that `lm:` in the actor's seat gives on the same seed (its own batched decoder)."""
    torch = pytest.importorskip("torch")
    from servers import save_chat_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.rollout import play_scenario

    texts = ["The answer is Voudom.", "judge: I disagree: [doc1] says Hestoth.", "Give your final answer: one option or its letter."] * 30
    folder = save_chat_lm(tmp_path / "chat_lm", texts, context=2048)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    new_tokens = 32  # LMAgent's default; its temperature comes from the model's greedy generation config
    base = load_scenario("judged_qa")

    for seed in (0, 1, 2):
        seat = play_scenario(base.with_roles(actor=f"lm:{folder}"), seed)
        env = gym.make("feedbackgym/JudgedQA-v0", obs_format="messages")
        obs, _ = env.reset(seed=seed)
        said, done = [], False
        while not done:
            ids = tokenizer.apply_chat_template(list(obs), add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).split("\n", 1)[0].strip()
            said.append(text)
            obs, _, terminated, truncated, _ = env.step(text)
            done = terminated or truncated
        assert said == [m.text for m in seat.log if m.role == "actor"], seed
        assert [(m.role, m.text) for m in env.unwrapped.episode.log] == [(m.role, m.text) for m in seat.log]
