"""feedbackgym: multi-turn language tasks where an actor, a critic, a possibly deceptive judge and
a simulated user exchange natural-language feedback.

    import gymnasium as gym, feedbackgym
    env = gym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious")

Importing the package registers every env id with Gymnasium.
"""

from __future__ import annotations

from gymnasium.envs.registration import register as _register

from feedbackgym.envs.scenario import Scenario, ScenarioError, list_scenarios, load_scenario

__version__ = "0.1.0"

#: Gymnasium id -> the scenario it opens by default (any scenario can be passed as `scenario=`).
ENV_IDS: dict[str, str] = {
    "feedbackgym/JudgedQA-v0": "judged_qa",
    "feedbackgym/TwentyQuestions-v0": "twenty_questions",
    "feedbackgym/GuessNumber-v0": "guess_number",
}

for _id, _scenario in ENV_IDS.items():
    _register(id=_id, entry_point="feedbackgym.envs.single:FeedbackEnv", kwargs={"scenario": _scenario})


def make(env_id_or_scenario: str, **kwargs):
    """``gymnasium.make`` for a registered id, or for any scenario (by name or path) through the id
    of its task family, so that every env comes with Gymnasium's spec and checks."""
    import gymnasium as gym

    if env_id_or_scenario in ENV_IDS:
        return gym.make(env_id_or_scenario, **kwargs)
    sc = load_scenario(env_id_or_scenario)
    env_id = next(i for i, default in ENV_IDS.items() if load_scenario(default).task.family == sc.task.family)
    return gym.make(env_id, scenario=sc, **kwargs)


__all__ = ["ENV_IDS", "Scenario", "ScenarioError", "list_scenarios", "load_scenario", "make"]
