"""Who speaks: scripted behaviours per role (the offline default), people, and later LMs."""

from feedbackgym.agents.base import Agent, ScriptedAgent, agents_for, check_spec, make_agent, scripted_names

__all__ = ["Agent", "ScriptedAgent", "agents_for", "check_spec", "make_agent", "scripted_names"]
