"""feedbackgym: multi-turn language tasks where an actor, a critic, a possibly deceptive judge and
a simulated user exchange natural-language feedback.

    import gymnasium as gym, feedbackgym
    env = gym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious")
    aec = feedbackgym.make_multiagent("feedbackgym/JudgedQA-v0")   # every role an agent

Importing the package registers every env id with Gymnasium and PettingZoo.
"""

from __future__ import annotations

from gymnasium.envs.registration import register as _register
from pettingzoo import register as _pz_register

from feedbackgym.envs.scenario import Scenario, ScenarioError, list_scenarios, load_scenario
from feedbackgym.rollout import rollout  # feedbackgym.rollout is the function; `from feedbackgym.rollout import X` still reaches the module

__version__ = "0.1.0"

#: Gymnasium id -> the scenario it opens by default (any scenario can be passed as `scenario=`).
ENV_IDS: dict[str, str] = {
    "feedbackgym/JudgedQA-v0": "judged_qa",
    "feedbackgym/TwentyQuestions-v0": "twenty_questions",
    "feedbackgym/GuessNumber-v0": "guess_number",
    "feedbackgym/SelfPlayCritic-v0": "spc",
    "feedbackgym/Negotiation-v0": "negotiation",
}

#: PettingZoo id -> the scenario it opens by default: every role an agent.
MULTIAGENT_IDS: dict[str, str] = {
    **ENV_IDS,
}

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
    from feedbackgym.envs import pettingzoo as multi

    scenario = MULTIAGENT_IDS.get(env_id_or_scenario, env_id_or_scenario)
    return (multi.parallel_env if parallel else multi.env)(scenario=scenario, **kwargs)


def make(env_id_or_scenario: str, **kwargs):
    """``gymnasium.make`` for a registered id, or for any scenario (by name or path) through the id
    of its task family, so that every env comes with Gymnasium's spec and checks."""
    import gymnasium as gym

    if env_id_or_scenario in ENV_IDS:
        return gym.make(env_id_or_scenario, **kwargs)
    sc = load_scenario(env_id_or_scenario)
    env_id = next(i for i, default in ENV_IDS.items() if load_scenario(default).task.family == sc.task.family)
    return gym.make(env_id, scenario=sc, **kwargs)


__all__ = [
    "ENV_IDS", "MULTIAGENT_IDS", "Scenario", "ScenarioError", "list_scenarios", "load_scenario", "make",
    "make_multiagent", "multiagent_ids", "rollout",
]
