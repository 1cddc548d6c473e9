"""Who speaks: scripted behaviours per role (the offline default), people, and language models
(``lm:PATH``), served models (``openai:MODEL``). Importing this package registers every scripted
behaviour and the ``lm`` and ``openai`` spec kinds in `feedbackgym.core`, where scenario validation
looks them up."""

import importlib.util

from feedbackgym.agents import critic, judge, scripted, user  # noqa: F401  (register their behaviours)
from feedbackgym.agents.base import Agent, ScriptedAgent, agents_for, make_agent
from feedbackgym.agents.models import missing_model
from feedbackgym.core import AGENT_KINDS, check_spec, scripted_names


def _check_lm(name: str) -> str | None:
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        return "the lm extra for lm:NAME agents (pip install 'feedbackgym[lm]')"
    return missing_model(name)


def _check_openai(name: str) -> str | None:
    from feedbackgym.agents.served import check_model

    return check_model(name)


AGENT_KINDS["lm"] = _check_lm
AGENT_KINDS["openai"] = _check_openai

__all__ = ["Agent", "ScriptedAgent", "agents_for", "check_spec", "make_agent", "scripted_names"]
