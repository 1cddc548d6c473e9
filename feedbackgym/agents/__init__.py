"""Who speaks: scripted behaviours per role (the offline default), people, and language models
(``lm:PATH``). Importing this package registers every scripted behaviour and the ``lm`` spec kind
in `feedbackgym.core`, where scenario validation looks them up."""

from feedbackgym.agents import critic, judge, scripted, user  # noqa: F401  (register their behaviours)
from feedbackgym.agents.base import Agent, ScriptedAgent, agents_for, make_agent
from feedbackgym.core import AGENT_KINDS, check_spec, scripted_names


def _check_lm(name: str) -> str | None:
    try:
        from feedbackgym.agents.lm import missing_model
    except ImportError as e:
        return f"the lm extra for lm:PATH agents (pip install 'feedbackgym[lm]'; {e})"
    return missing_model(name)


AGENT_KINDS["lm"] = _check_lm

__all__ = ["Agent", "ScriptedAgent", "agents_for", "check_spec", "make_agent", "scripted_names"]
