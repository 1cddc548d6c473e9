"""The ids of both faces and the functions that open an env by id or by scenario.

Importing this module registers every id with Gymnasium (``gym.make("feedbackgym/JudgedQA-v0")``)
and with PettingZoo's registry; ``feedbackgym`` imports it, so ``import feedbackgym`` is enough.
"""

from __future__ import annotations

from pathlib import PurePath

import gymnasium as gym
from gymnasium.envs.registration import register as _register
from pettingzoo import register as _pz_register

from feedbackgym.envs import pettingzoo as multi
from feedbackgym.envs.scenario import load_scenario

#: Gymnasium id -> the scenario it opens by default (any scenario can be passed as `scenario=`).
ENV_IDS: dict[str, str] = {
    "feedbackgym/JudgedQA-v0": "judged_qa",
    "feedbackgym/TwentyQuestions-v0": "twenty_questions",
    "feedbackgym/GuessNumber-v0": "guess_number",
    "feedbackgym/SelfPlayCritic-v0": "spc",
    "feedbackgym/Negotiation-v0": "negotiation",
    "feedbackgym/Arithmetic-v0": "arithmetic",
}

#: PettingZoo id -> the scenario it opens by default: every role an agent.
MULTIAGENT_IDS: dict[str, str] = {**ENV_IDS}

for _id, _scenario in ENV_IDS.items():
    _register(id=_id, entry_point="feedbackgym.envs.gym:FeedbackEnv", kwargs={"scenario": _scenario})
for _id, _scenario in MULTIAGENT_IDS.items():
    _pz_register("aec", _id, entry_point="feedbackgym.envs.pettingzoo:env", kwargs={"scenario": _scenario})
    _pz_register("parallel", _id, entry_point="feedbackgym.envs.pettingzoo:parallel_env", kwargs={"scenario": _scenario})


def multiagent_ids() -> list[str]:
    """The ids of the PettingZoo face."""
    return sorted(MULTIAGENT_IDS)


def make_multiagent(env_id_or_scenario: str, parallel: bool = False, **kwargs):
    """The PettingZoo env (AEC, or the turn-based parallel view) for an id or any scenario."""
    scenario = env_id_or_scenario
    if isinstance(scenario, str):
        scenario = MULTIAGENT_IDS.get(scenario, scenario)
    return (multi.parallel_env if parallel else multi.env)(scenario=scenario, **kwargs)


def make(env_id_or_scenario, **kwargs):
    """``gymnasium.make`` for a registered id, or for any scenario (by name, path, dict or
    `Scenario`) through the id of its task family, so that every env comes with Gymnasium's
    spec and checks. A family without a registered id (one defined in a user's own module) opens
    the generic `FeedbackEnv` entry point under its scenario's name.

    The spec holds the scenario as JSON (its name or path as given, a `Scenario` as its plain
    dict), so ``env.spec.to_json()`` and ``gymnasium.make(EnvSpec.from_json(...))`` rebuild the
    same env."""
    if isinstance(env_id_or_scenario, str) and env_id_or_scenario in ENV_IDS:
        return gym.make(env_id_or_scenario, **kwargs)
    sc = load_scenario(env_id_or_scenario)
    given = env_id_or_scenario
    scenario = str(given) if isinstance(given, (str, PurePath)) else sc.model_dump(mode="json")
    family_ids = [i for i, default in ENV_IDS.items() if load_scenario(default).task.family == sc.task.family]
    if family_ids:
        return gym.make(family_ids[0], scenario=scenario, **kwargs)
    spec = gym.envs.registration.EnvSpec(id=f"feedbackgym/{sc.name}", entry_point="feedbackgym.envs.gym:FeedbackEnv")
    return gym.make(spec, scenario=scenario, **kwargs)
