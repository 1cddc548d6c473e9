"""Both env faces under hostile text, vector envs, specs and resets (issue 13, the faces' part).

- every observation lies in its declared space, in both faces and both obs formats, whatever
  any seat says (control characters, lone surrogates, emoji, CJK, bidi marks, 1 MB);
- a reset never hands out a finished episode, and stays deterministic;
- `gym.make_vec` sync and async (shared memory, gymnasium's default) run on every id with
  hostile actions, observations in their space, each info key of one type, async equal to sync;
- `spec.to_json()` round-trips for every id and every scenario;
- `is_parallelizable` is claimed only where PettingZoo's `aec_to_parallel` holds.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from pettingzoo.test import parallel_api_test
from pettingzoo.utils.conversions import aec_to_parallel

import feedbackgym
from feedbackgym.agents import agents_for
from feedbackgym.core import SCRIPTED, check_spec
from feedbackgym.envs import pettingzoo as multi
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.gym import CHARSET, MAX_OBS_CHARS, InfoMapping, shown
from feedbackgym.envs.registration import ENV_IDS, MULTIAGENT_IDS

MB = "Ω" * 1_000_000
HOSTILE = [
    "\x00\x07\x1b[2J\r\x7f",  # control characters
    "\ud800 alone \udfff",  # lone surrogates
    "😀🎉 emoji 👍🏽",
    "中文的答案是 B",
    "\u202eB si rewsna ehT\u202c \u200f\u200b",  # a right-to-left override, marks, zero width
    MB,  # 1 MB
    "The answer is A." + "\ud83d" + "\n" * 3,
]


def stand_in(role: str, family: str) -> str:
    """A scripted agent for the seat the learner left (the first that plays there)."""
    return next(f"scripted:{n}" for r, n in sorted(SCRIPTED) if r == role and check_spec(f"scripted:{n}", role, family) is None)


def seat_roles(scenario: str, seat: str) -> dict[str, str]:
    sc = feedbackgym.load_scenario(scenario)
    roles = {seat: "learner"}
    if sc.learner_role not in (None, seat):
        roles[sc.learner_role] = stand_in(sc.learner_role, sc.task.family)
    return roles


SEATS = [(env_id, seat) for env_id, sc in sorted(ENV_IDS.items()) for seat in feedbackgym.load_scenario(sc).roles]


class Hostile:
    """A seat's agent that says the hostile texts in turn (the other seats' text in an observation)."""

    source = "test"

    def __init__(self):
        self.i = 0

    def act(self, view):
        self.i += 1
        return HOSTILE[self.i % len(HOSTILE)]

    def act_batch(self, views):
        return [self.act(v) for v in views]


# ------------------------------------------------------------------------- the rendering rule
def test_shown_escapes_what_the_charset_lacks_and_keeps_head_and_tail():
    assert shown("a\x07\u202eb") == "a\x07\u202eb"  # control characters and bidi marks are in the charset
    assert shown("中😀\ud800") == "\\u4e2d\\U0001f600\\ud800"
    assert shown("ok") == "ok"
    text = "HEAD" + "x" * 300 + "TAIL"
    cut = shown(text, 100)
    assert len(cut) <= 100 and cut.startswith("HEAD") and cut.endswith("TAIL")
    assert f"[... {len(text) - (100 - 48)} characters cut ...]" in cut
    for t in HOSTILE:
        once = shown(t)
        assert len(once) <= MAX_OBS_CHARS and set(once) <= set(CHARSET)
        assert shown(once) == once and shown(t) == once  # deterministic, and a shown text shows as itself


# ------------------------------------------------------------------------- observations in their spaces
@pytest.mark.parametrize("obs_format", ["dict", "messages"])
@pytest.mark.parametrize("env_id,seat", SEATS)
def test_gym_observations_stay_in_their_space(env_id, seat, obs_format):
    """The learner in every seat says the hostile texts, and every other seat says them too."""
    env = gym.make(env_id, obs_format=obs_format, **seat_roles(ENV_IDS[env_id], seat))
    space = env.observation_space
    base = env.unwrapped
    for role in base.agents:
        base.agents[role] = Hostile()
    seen = 0
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        assert space.contains(obs)
        for text in HOSTILE:
            obs, _, term, trunc, _ = env.step(text)
            assert space.contains(obs), f"{env_id} {seat} after {text[:20]!r}"
            seen += 1
            if term or trunc:
                break
    assert seen >= 2


@pytest.mark.parametrize("obs_format", ["dict", "messages"])
@pytest.mark.parametrize("env_id", sorted(MULTIAGENT_IDS))
def test_pettingzoo_observations_stay_in_their_space(env_id, obs_format):
    """Every agent says the hostile texts; every agent's observation stays in its space."""
    env = feedbackgym.make_multiagent(env_id, obs_format=obs_format)
    env.reset(seed=0)
    i = 0
    for _ in env.agent_iter(max_iter=3 * len(HOSTILE)):
        for a in env.agents:
            assert env.observation_space(a).contains(env.observe(a)), (env_id, a, i)
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else HOSTILE[i % len(HOSTILE)])
        i += 1
    assert i > len(HOSTILE) // 2


# ------------------------------------------------------------------------- reset
GUESS_USER = {"user": "learner", "actor": "scripted:evidence_weigher"}
EARLY = [42, 63, 140, 277]  # seeds where the actor guesses right before the user's first turn


def test_the_early_seeds_do_end_before_the_users_turn():
    """The raw engine: on these seeds the built-in actor ends the episode before the user speaks."""
    sc = feedbackgym.load_scenario("guess_number").with_roles(**GUESS_USER)
    agents = {k: v for k, v in agents_for(sc).items() if v is not None}
    for seed in EARLY + [0, 1]:
        ep = Episode(sc, seed, agents)
        play(ep, "user")
        assert ep.done == (seed in EARLY)


def test_gym_reset_never_hands_out_a_finished_episode_and_stays_deterministic():
    env, again = (gym.make("feedbackgym/GuessNumber-v0", **GUESS_USER) for _ in range(2))
    for seed in EARLY:
        obs, info = env.reset(seed=seed)
        ep = env.unwrapped.episode
        assert not ep.done and ep.current_role() == "user" and ep.seed != seed
        env.step("Too low.")  # the next step works
        obs2, info2 = again.reset(seed=seed)
        assert (obs2, again.unwrapped.episode.seed) == (obs, ep.seed)
    env.reset(seed=0)
    assert env.unwrapped.episode.seed == 0  # a seed whose episode starts is played as it is


def test_pettingzoo_reset_redraws_by_the_same_rule():
    env = multi.env(scenario="guess_number", external=["user"], actor="scripted:evidence_weigher")
    genv = gym.make("feedbackgym/GuessNumber-v0", **GUESS_USER)
    for seed in EARLY[:2]:
        env.reset(seed=seed)
        assert env.agent_selection == "user_0" and not any(env.terminations.values())
        genv.reset(seed=seed)
        assert env.unwrapped.episode.seed == genv.unwrapped.episode.seed != seed
        assert [m.to_dict() for m in env.unwrapped.episode.log] == [m.to_dict() for m in genv.unwrapped.episode.log]


def test_a_seat_that_never_acts_is_refused_clearly():
    d = feedbackgym.load_scenario("guess_number").model_dump()
    d["protocol"].update(order=["actor", "actor", "user"], max_turns=1)  # the budget always ends it before the user
    d["roles"].update(actor={"agent": "scripted:expert"}, user={"agent": "learner"})
    with pytest.raises(RuntimeError, match=r"'guess_number'.*before \['user'\] had a turn.*never gets to act"):
        feedbackgym.make(d).reset(seed=0)


# ------------------------------------------------------------------------- vector envs
PIECES = ["\x00", "\x07", "\r", "\u200b", "\u202e", "\ud800", "\udfff", "😀", "中文", "שלום", "A", "B", "C",
          "The answer is ", "50", "25", "Is it alive?", "Is it a hammer?", "step 2", "no error", "deal", "$15", "9" * 40]  # fmt: skip


def hostile_actions(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        text = "".join(PIECES[i] for i in rng.integers(len(PIECES), size=rng.integers(1, 5)))
        out.append(text * 30_000 if rng.random() < 0.003 else text)
    return out


def run_vector(env_id: str, mode: str, steps: int, n: int = 3, seed: int = 0) -> tuple[list, dict[str, set[str]]]:
    """``steps`` steps of ``n`` envs with hostile actions: each step's (obs, rewards, ends), and the
    types each info key took (over every env where its mask is set)."""
    envs = gym.make_vec(env_id, n, vectorization_mode=mode)
    space, rng, trace, types = envs.single_observation_space, np.random.default_rng(seed), [], {}
    try:
        obs, infos = envs.reset(seed=seed)
        for _ in range(steps):
            obs, rewards, term, trunc, infos = envs.step(hostile_actions(rng, n))
            rows = [{k: obs[k][i] for k in obs} for i in range(n)]
            assert all(space.contains(o) for o in rows), env_id
            trace.append((rows, rewards.tolist(), (term | trunc).tolist()))
            for key, values in infos.items():
                if not key.startswith("_"):
                    assert isinstance(values, np.ndarray), f"{key} batched as {type(values).__name__}"
                    mask = infos[f"_{key}"]
                    kinds = {type(v).__name__ for v, m in zip(values, mask) if m} if values.dtype == object else {values.dtype.name}
                    types.setdefault(key, set()).update(kinds)
    finally:
        envs.close()
    return trace, types


TYPES = {"messages": {"list"}, "turn": {"int64"}, "success": {"bool"}, "labels": {"InfoMapping"},
         "invalid_reason": {"str"}, "terminate_reason": {"str"}, "metrics": {"InfoMapping"}, "hidden": {"InfoMapping"}}  # fmt: skip


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_make_vec_sync_and_async_agree_with_info_of_one_type(env_id):
    sync, types = run_vector(env_id, "sync", 60)
    assert {k: v for k, v in types.items()} == {k: TYPES[k] for k in types}
    assert {"messages", "turn", "labels", "terminate_reason", "metrics"} <= set(types)
    asyn, _ = run_vector(env_id, "async", 60)
    assert asyn == sync  # the Text fields through shared memory are the envs' own, every step
    assert sum(sum(done) for _, _, done in sync) > 0  # episodes ended and were reset inside the run


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_make_vec_ten_thousand_steps(env_id, mode):
    _, types = run_vector(env_id, mode, 10_000, n=4)
    assert {k: v for k, v in types.items()} == {k: TYPES[k] for k in types}


def test_a_label_none_stays_none_in_a_vector_env():
    """Gymnasium batched labels by key, typed by the first env: a question's is_correct None
    beside a guess's False became False. Each env's labels now come whole."""
    envs = gym.make_vec("feedbackgym/TwentyQuestions-v0", 2, vectorization_mode="sync")
    envs.reset(seed=0)
    _, _, _, _, infos = envs.step(["Is it a hammer?", "Is it alive?"])
    assert infos["labels"][0]["is_correct"] is False and infos["labels"][1]["is_correct"] is None
    envs.close()


def test_messages_format_async_needs_shared_memory_off():
    env_id = "feedbackgym/GuessNumber-v0"
    with pytest.raises(TypeError, match="disable `shared_memory`"):
        gym.make_vec(env_id, 2, vectorization_mode="async", obs_format="messages")
    envs = gym.make_vec(env_id, 2, vectorization_mode="async", vector_kwargs={"shared_memory": False}, obs_format="messages")
    obs, _ = envs.reset(seed=0)
    assert obs[0][-1]["role"] == "user" and envs.single_observation_space.contains(obs[1])
    envs.close()


def test_info_mappings_read_like_dicts_and_refuse_changes():
    labels = InfoMapping({"is_correct": None, "valid": True})
    assert labels == {"is_correct": None, "valid": True} and dict(labels)["is_correct"] is None
    assert not isinstance(labels, dict)  # what keeps a vector env from batching its values
    with pytest.raises(TypeError):
        labels["valid"] = False  # type: ignore[index]
    import pickle

    assert pickle.loads(pickle.dumps(labels)) == labels  # AsyncVectorEnv pipes infos


# ------------------------------------------------------------------------- specs
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_registered_spec_round_trips_through_json(env_id):
    spec = EnvSpec.from_json(gym.spec(env_id).to_json())
    assert spec == gym.spec(env_id)
    assert gym.make(spec).unwrapped.scenario == gym.make(env_id).unwrapped.scenario


@pytest.mark.parametrize("scenario", feedbackgym.list_scenarios())
def test_every_scenarios_spec_round_trips_through_json(scenario):
    env = feedbackgym.make(scenario)
    rebuilt = gym.make(EnvSpec.from_json(env.spec.to_json()))
    assert rebuilt.unwrapped.scenario == env.unwrapped.scenario


def test_a_scenario_object_with_roles_round_trips_through_json():
    sc = feedbackgym.load_scenario("judged_qa").with_roles(judge="scripted:malicious")
    env = feedbackgym.make(sc, obs_format="messages")
    rebuilt = gym.make(EnvSpec.from_json(env.spec.to_json()))
    assert rebuilt.unwrapped.scenario == sc and rebuilt.unwrapped.obs_format == "messages"


# ------------------------------------------------------------------------- is_parallelizable
def _drive_parallel(par, seed: int) -> None:
    """The parallel env played by the scenario's scripted agents: each agent's action is asked
    for when the conversion reaches it (so it sees the cycle's earlier moves)."""
    par.reset(seed=seed)
    raw = par.unwrapped
    policies = agents_for(raw.scenario)

    class Actions(dict):
        def __missing__(self, agent):
            return policies[multi.role_of(agent)].act(raw.view(agent))

    while par.agents:
        par.step(Actions())


def _forced(scenario):
    raw = multi.raw_env(scenario=scenario)
    raw.metadata = {**raw.metadata, "is_parallelizable": True}
    return aec_to_parallel(raw)


@pytest.mark.parametrize("scenario", feedbackgym.list_scenarios())
def test_is_parallelizable_is_claimed_only_where_aec_to_parallel_holds(scenario):
    raw = multi.raw_env(scenario=scenario)
    assert raw.metadata["is_parallelizable"] == multi.parallelizable(raw.scenario)
    if raw.metadata["is_parallelizable"]:
        parallel_api_test(aec_to_parallel(raw), num_cycles=20)


@pytest.mark.parametrize("env_id", ["feedbackgym/JudgedQA-v0", "feedbackgym/Negotiation-v0", "feedbackgym/GuessNumber-v0"])
def test_where_not_claimed_aec_to_parallel_breaks_in_play(env_id):
    """Forced, the conversion breaks: JudgedQA's final answer and Negotiation's coach fall out
    of the cycle, and a right guess ends GuessNumber before the user's reply (random text never
    guesses right, so PettingZoo's own test passes there: the claim rests on play)."""
    sc = feedbackgym.load_scenario(MULTIAGENT_IDS[env_id])
    role = sc.learner_role
    expert = "scripted:expert" if check_spec("scripted:expert", role, sc.task.family) is None else stand_in(role, sc.task.family)
    sc = sc.with_roles(**{role: expert})
    assert not multi.raw_env(scenario=sc).metadata["is_parallelizable"]
    with pytest.raises(AssertionError, match="Parallel environment wrapper expects"):
        for seed in range(5):
            _drive_parallel(_forced(sc), seed)


def test_a_one_role_scenario_claims_it_and_passes():
    sc = feedbackgym.load_scenario("guess_number").with_roles(user=None, actor="scripted:expert")
    raw = multi.raw_env(scenario=sc)
    assert raw.metadata["is_parallelizable"]
    parallel_api_test(aec_to_parallel(raw), num_cycles=20)
    for seed in range(3):
        _drive_parallel(aec_to_parallel(multi.raw_env(scenario=sc)), seed)
    assert not multi.raw_env(scenario=sc, max_steps=3).metadata["is_parallelizable"]
