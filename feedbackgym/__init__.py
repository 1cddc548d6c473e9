"""feedbackgym: multi-turn language tasks where an actor, a critic, a possibly deceptive judge and
a simulated user exchange natural-language feedback.

    import gymnasium as gym, feedbackgym
    env = gym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious")
    aec = feedbackgym.make_multiagent("feedbackgym/JudgedQA-v0")   # every role an agent

Importing the package registers every env id with Gymnasium and PettingZoo. This file only
re-exports: the package's own modules never import it (see docs/contributing.md for the layers).
"""

from __future__ import annotations

from feedbackgym.envs.registration import ENV_IDS, MULTIAGENT_IDS, make, make_multiagent, multiagent_ids
from feedbackgym.envs.scenario import Scenario, ScenarioError, list_scenarios, load_scenario

__version__ = "0.1.0"

__all__ = [
    "ENV_IDS", "MULTIAGENT_IDS", "Scenario", "ScenarioError", "list_scenarios", "load_scenario", "make",
    "make_multiagent", "multiagent_ids",
]
