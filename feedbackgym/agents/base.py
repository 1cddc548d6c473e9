"""Who speaks: one `Agent` interface and one registry that turns spec strings into agents.

Specs are ``KIND:NAME`` strings: ``scripted:sycophant``, ``scripted:malicious-grounded``,
``human``, ``lm:PATH``, ``openai:MODEL``; ``learner`` marks the seat that the Gymnasium face's caller fills.
"""

from __future__ import annotations

from typing import Any

from feedbackgym.core import SCRIPTED, Agent, ScriptedAgent, check_range, check_spec, register_scripted

__all__ = ["Agent", "ScriptedAgent", "agents_for", "check_range", "make_agent", "register"]


#: ``@register(role, name, families)``: a scripted behaviour, registered in `feedbackgym.core.SCRIPTED`
register = register_scripted


def make_agent(spec: str, role: str, params: dict[str, Any] | None = None, family: str | None = None):
    """The agent for ``spec`` in ``role``; None for ``learner`` (the caller plays it)."""
    err = check_spec(spec, role, family)
    if err:
        raise ValueError(f"agent spec {spec!r} for role {role!r}: expected {err}")
    if spec == "learner":
        return None
    if spec == "human":
        from feedbackgym.agents.human import ConsoleHuman

        return ConsoleHuman(role)
    if spec.startswith("lm:"):
        from feedbackgym.agents.lm import LMAgent

        return LMAgent.from_pretrained(spec.removeprefix("lm:"), **(params or {}))
    if spec.startswith("openai:"):
        from feedbackgym.agents.served import ServedAgent

        return ServedAgent.from_params(spec.removeprefix("openai:"), **(params or {}))
    _, _, name = spec.partition(":")
    return SCRIPTED[(role, name)].factory(**(params or {}))


def agents_for(scenario) -> dict[str, Any]:
    """The agent of every seat of ``scenario`` (None for the learner's seat)."""
    family = scenario.task.family
    return {role: make_agent(s.agent, role, s.params, family) for role, s in scenario.roles.items()}
