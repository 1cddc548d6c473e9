import os

import pytest

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def scripted(scenario):
    """``scenario`` with every learner seat given the first scripted behaviour that can play it."""
    from feedbackgym.agents import check_spec, scripted_names

    family = scenario.task.family
    fill = {
        role: next(f"scripted:{n}" for n in scripted_names(role) if check_spec(f"scripted:{n}", role, family) is None)
        for role, spec in scenario.roles.items()
        if spec.agent == "learner"
    }
    return scenario.with_roles(**fill) if fill else scenario


@pytest.fixture
def play():
    """Play a whole scripted episode of a scenario with role overrides (learner seats filled)."""
    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.rollout import play_scenario as _play

    def run(name, seed=0, **roles):
        sc = load_scenario(name)
        roles = {r: a for r, a in roles.items() if r in sc.roles}  # a role the game lacks is not added
        return _play(scripted(sc.with_roles(**roles) if roles else sc), seed)

    return run
