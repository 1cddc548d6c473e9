"""Who speaks: one `Agent` interface and one registry that turns spec strings into agents.

Specs are ``KIND:NAME`` strings: ``scripted:sycophant``, ``scripted:malicious-grounded``,
``human``; ``learner`` marks the seat that the Gymnasium face's caller fills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from feedbackgym.envs.protocol import Utterance, View


@runtime_checkable
class Agent(Protocol):
    def act(self, view: "View") -> "str | Utterance": ...

    def act_batch(self, views: Sequence["View"]) -> list["str | Utterance"]: ...


class ScriptedAgent:
    """Base of the built-in agents: ``act_batch`` is a loop (LM agents batch for real)."""

    name = "scripted"
    #: what the engine records as the messages' ``source`` label (None: scripted, the default)
    source: str | None = None

    def act(self, view: "View") -> "str | Utterance":  # pragma: no cover - abstract
        raise NotImplementedError

    def act_batch(self, views: Sequence["View"]) -> list["str | Utterance"]:
        return [self.act(v) for v in views]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


#: (role, name) -> factory(**params) for every scripted behaviour; filled by the role modules.
SCRIPTED: dict[tuple[str, str], Callable[..., ScriptedAgent]] = {}
#: names that only some task families support: (role, name) -> families
ONLY_FOR: dict[tuple[str, str], tuple[str, ...]] = {}


def register(role: str, name: str, families: tuple[str, ...] | None = None):
    def deco(factory):
        SCRIPTED[(role, name)] = factory
        if families:
            ONLY_FOR[(role, name)] = families
        return factory

    return deco


def scripted_names(role: str) -> list[str]:
    _load()
    return sorted(n for r, n in SCRIPTED if r == role)


def check_spec(spec: str, role: str, family: str | None = None) -> str | None:
    """None if ``spec`` can play ``role`` (in ``family``), else what was expected."""
    _load()
    if spec in ("learner", "human"):
        return None
    kind, _, name = spec.partition(":")
    if kind == "scripted":
        if (role, name) not in SCRIPTED:
            known = ", ".join(f"scripted:{n}" for n in scripted_names(role))
            return f"a {role} agent: learner, human, or one of {known}"
        fams = ONLY_FOR.get((role, name))
        if fams and family and family not in fams:
            return f"scripted:{name} plays only in {', '.join(fams)}"
        return None
    if kind == "lm":
        try:
            from feedbackgym.agents.lm import missing_model
        except ImportError as e:
            return f"the lm extra for lm:PATH agents (pip install 'feedbackgym[lm]'; {e})"
        return missing_model(name)
    known = ", ".join(f"scripted:{n}" for n in scripted_names(role))
    return f"a spec KIND:NAME (learner, human, or one of {known})"


def check_params(spec: str, role: str, params: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(name, value, what was expected) for each param a scripted agent does not take."""
    kind, _, name = spec.partition(":")
    if kind != "scripted" or (role, name) not in SCRIPTED:
        return []
    import inspect

    accepted = [p for p in inspect.signature(SCRIPTED[(role, name)]).parameters if p != "self"]
    return [(k, v, f"a parameter of {spec}: one of {accepted}") for k, v in params.items() if k not in accepted]


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
    _, _, name = spec.partition(":")
    return SCRIPTED[(role, name)](**(params or {}))


def agents_for(scenario) -> dict[str, Any]:
    """The agent of every seat of ``scenario`` (None for the learner's seat)."""
    family = scenario.task.family
    return {role: make_agent(s.agent, role, s.params, family) for role, s in scenario.roles.items()}


def _load() -> None:
    """Import the role modules so that their behaviours register themselves."""
    from feedbackgym.agents import critic, games, judge, scripted, user  # noqa: F401
