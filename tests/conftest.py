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


def save_tiny_lm(out, texts):
    """A 1-layer GPT-2 built from a config, with a byte-level BPE tokenizer trained on ``texts``,
    saved to ``out`` (seeded: the same weights every time; nothing is downloaded)."""
    import torch

    from feedbackgym.learners.bootstrap import build_model, train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=300)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=512)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
