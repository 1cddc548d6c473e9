import os

import pytest

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture
def play():
    """Play a whole scripted episode of a scenario with role overrides."""
    from feedbackgym.cli import play as _play
    from feedbackgym.envs.scenario import load_scenario

    def run(name, seed=0, **roles):
        return _play(load_scenario(name).with_roles(**roles), seed)

    return run
