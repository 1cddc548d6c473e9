"""Hidden labels never appear in what an agent observes: not in the learner's observation, and
not in any view an agent is given."""

import gymnasium as gym
import pytest

import feedbackgym
from feedbackgym import list_scenarios
from feedbackgym.envs.engine import Episode

# Words that only hidden labels carry; they never occur in bank or task text.
LEAK_MARKERS = (
    "truthful", "intervened", "malicious", "hypercritical", "parametric", "grounded", "evidence_ids", "is_correct",
    "answer_norm", "suggested_answer", "'intent'", "label_flipped",
)


@pytest.mark.parametrize("scenario", list_scenarios())
def test_no_label_in_observations(scenario):
    for actor in ("scripted:sycophant", "scripted:random"):
        from conftest import scripted

        from feedbackgym.rollout import play_scenario as play

        base = feedbackgym.load_scenario(scenario)
        sc = scripted(base.with_roles(actor=actor) if "actor" in base.roles else base)

        for seed in range(15):
            ep = play(sc, seed)
            # every view any role could have been shown, at every point of the episode
            for cut in range(len(ep.log) + 1):
                view_log = ep.log[:cut]
                shadow = Episode(sc, seed)
                shadow.log = list(view_log)
                for role in sc.roles:
                    v = shadow.view(role)
                    seen = "\n".join([v.instruction, v.transcript, v.feedback, v.private if role != "actor" else ""])
                    for marker in LEAK_MARKERS:
                        assert marker not in seen.lower(), (scenario, role, marker)
                    if role == "actor":
                        assert v.private == ""


@pytest.mark.parametrize("env_id", sorted(feedbackgym.ENV_IDS))
def test_gym_observations_carry_no_labels(env_id):
    env = gym.make(env_id)
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        hidden = env.unwrapped.episode.hidden()
        secret = str(hidden.get("secret", hidden.get("object", hidden.get("truth"))))
        done = False
        while not done:
            text = " ".join(obs.values()).lower()
            for marker in LEAK_MARKERS:
                assert marker not in text
            if env_id.endswith("TwentyQuestions-v0") or env_id.endswith("GuessNumber-v0"):
                assert secret.lower() not in text.split()  # the goal is never shown to the actor
            ep = env.unwrapped.episode
            learner = env.unwrapped.learner
            obs, _, term, trunc, info = env.step(ep.instance.noisy(ep.view(learner), ep.rngs[learner]))
            done = term or trunc
