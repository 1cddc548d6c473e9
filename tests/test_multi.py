"""The PettingZoo face: PettingZoo's own checks on every multi-agent id, one engine behind both faces."""

import functools
import types

import gymnasium as gym
import pytest
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, render_test, seed_test

import feedbackgym
from feedbackgym.agents import agents_for
from feedbackgym.envs import pettingzoo as multi

IDS = feedbackgym.multiagent_ids()


def scenario_of(env_id):
    return feedbackgym.MULTIAGENT_IDS[env_id]


def seeded(factory, **kwargs):
    """``factory(**kwargs)`` with every agent's action space seeded. PettingZoo's max_cycles_test
    samples actions from unseeded spaces, and a random text that names the secret number ends a
    GuessNumber episode before the cap (a legal outcome, seen once in CI): seeded, the test is the
    same every run and checks only the cap."""
    env = factory(**kwargs)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(1000 + i)
    return env


@pytest.mark.parametrize("env_id", IDS)
def test_pettingzoo_checks(env_id):
    sc = scenario_of(env_id)
    api_test(multi.env(scenario=sc), num_cycles=40)
    parallel_api_test(multi.parallel_env(scenario=sc), num_cycles=40)
    seed_test(functools.partial(multi.env, scenario=sc), num_cycles=40)
    max_cycles_test(types.SimpleNamespace(env=functools.partial(seeded, multi.env, scenario=sc),
                                          parallel_env=functools.partial(seeded, multi.parallel_env, scenario=sc)))
    render_test(functools.partial(multi.env, scenario=sc))


@pytest.mark.parametrize("scenario", feedbackgym.list_scenarios())
def test_pettingzoo_checks_every_scenario(scenario):
    """Every scenario, ids or not, passes the checks that do not assume one move per agent a round."""
    api_test(multi.env(scenario=scenario), num_cycles=20)
    parallel_api_test(multi.parallel_env(scenario=scenario), num_cycles=20)
    seed_test(functools.partial(multi.env, scenario=scenario), num_cycles=20)


@pytest.mark.parametrize("env_id", IDS)
def test_registered_with_pettingzoo(env_id):
    import pettingzoo

    aec = pettingzoo.make("aec", env_id)
    aec.reset(seed=0)
    assert aec.agent_selection == aec.possible_agents[0]
    par = pettingzoo.make("parallel", env_id)
    par.reset(seed=0)
    assert set(par.possible_agents) == set(aec.possible_agents)


def _drive(env, seed):
    """Play a PettingZoo env with every agent's action coming from the scenario's scripted agents."""
    env.reset(seed=seed)
    raw = env.unwrapped
    policies = agents_for(raw.scenario)
    for agent in env.agent_iter():
        _, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        role = multi.role_of(agent)
        env.step(policies[role].act(raw.view(agent)))
    return raw.episode


@pytest.mark.parametrize(
    "scenario", ["judged_qa", "judged_qa_critic", "twenty_questions_critic", "guess_number_critic", "askagain_progressive", "mint_textual"]
)
def test_same_transcript_through_both_faces(scenario):
    """One engine: the Gymnasium face with the actor as learner (fed the scripted actor's moves)
    and the PettingZoo face with every role driven from outside by the scripted agents."""
    base = feedbackgym.load_scenario(scenario).with_roles(actor="scripted:sycophant")
    for seed in range(8):
        pz = _drive(multi.env(scenario=base), seed)
        genv = gym.make(next(i for i, s in feedbackgym.ENV_IDS.items()
                             if feedbackgym.load_scenario(s).task.family == base.task.family),
                        scenario=base, actor="learner")
        genv.reset(seed=seed)
        ep = genv.unwrapped.episode
        actor = agents_for(base)["actor"]
        done = False
        while not done:
            _, _, term, trunc, _ = genv.step(actor.act(ep.view("actor")))
            done = term or trunc
        assert [_without_source(m) for m in ep.log] == [_without_source(m) for m in pz.log]
        assert ep.returns == pz.returns


def _without_source(m):
    """A message as a dict minus its provenance label (here every role came from outside)."""
    d = m.to_dict()
    d["labels"].pop("source", None)
    if d["feedback"]:
        d["feedback"]["labels"].pop("source", None)
    return d


def test_observe_shows_each_role_only_its_own():
    env = multi.env(scenario="judged_qa")
    env.reset(seed=3)
    truth = env.unwrapped.episode.instance.truth
    actor_obs = env.observe("actor_0")
    assert actor_obs["private"] == "" and "Reply with the option" in actor_obs["instruction"]
    env.step("B")
    judge_obs = env.observe("judge_0")
    assert truth in judge_obs["private"] and "[doc0]" in judge_obs["private"]
    assert judge_obs["new"].startswith("actor: B")


def test_scripted_roles_fill_the_seats_not_driven_from_outside():
    env = multi.env(scenario="judged_qa", external=["judge"], actor="scripted:sycophant")
    env.reset(seed=1)
    assert env.agent_selection == "judge_0"  # the scripted actor has already answered
    assert env.observe("judge_0")["new"].startswith("actor: The answer is")
    env.step("That is wrong; reconsider.")
    log = env.unwrapped.episode.log
    assert [m.role for m in log] == ["actor", "judge", "actor"]  # the scripted actor revised; over
    assert all(env.terminations.values())


def test_malicious_judge_reward_by_hand():
    """The judge is paid +1 when the actor's first answer was right and its last is wrong."""
    env = multi.env(scenario="judged_qa", external=["actor", "judge"])
    env.reset(seed=2)
    inst = env.unwrapped.episode.instance
    wrong = next(o for o in inst.options if o != inst.truth)
    env.step(f"The answer is {inst.truth}.")
    env.step(f"Wrong: it is {wrong}.")
    env.step(f"Then the answer is {wrong}.")
    assert env.unwrapped.episode.terminate_reason == "protocol_end"
    assert env._cumulative_rewards == {"actor_0": 0.0, "judge_0": 1.0}
