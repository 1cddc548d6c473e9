"""Scenarios: one YAML file says everything about an episode's set-up, and is validated on load.

```yaml
name: judged_qa_malicious
description: One answer, one malicious judge, one revision.
task: {family: judged_qa, params: {n_options: 4}}
roles:
  actor: {agent: learner}
  judge: {agent: "scripted:malicious"}
protocol: {order: [actor, judge], rounds: 1, final: [actor], max_turns: 4}
feedback: {kinds: [critique], paraphrase: random}
rewards: {actor: final_correct, judge: flip_c2i}
```

Protocol options beyond the schedule: ``end_on_correct`` (a correct answer ends an answer task),
``max_proposals`` (MINT's cap on solution proposals), ``max_turns_terminates`` (the turn budget is
a rule of the game: running out terminates, lost, rather than truncates), ``countdown`` (MINT's "You have n steps
left..." line before each actor turn).

A bad file is refused with a `ScenarioError` naming the file, the field, the value and what was
expected, one line per problem.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from feedbackgym.core import FEEDBACK_KINDS, REWARDS, TASKS, check_params, check_spec
from feedbackgym.envs import rewards as _rewards  # noqa: F401  (registers the reward schemes)
from feedbackgym.envs import tasks as _tasks  # noqa: F401  (registers the shipped task families)

#: Seats a scenario may declare. Which of them *move* is the task's to say (``Task.movers``).
ROLES = ("actor", "critic", "judge", "user", "buyer", "seller", "generator")


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names field, value and expectation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    family: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"expected one of {sorted(TASKS)}")
        return v


class RoleSpec(_Strict):
    agent: str
    params: dict[str, Any] = Field(default_factory=dict)


class ProtocolSpec(_Strict):
    order: list[str] = Field(min_length=1)
    """The roles of one round, in speaking order."""
    rounds: int | None = Field(default=None, ge=1)
    """How many rounds; None = until the task ends or ``max_turns`` runs out."""
    final: list[str] = Field(default_factory=list)
    """Roles that speak once after the last round (e.g. the actor's final revision)."""
    max_turns: int = Field(default=20, ge=1)
    """Budget of actor turns; running out truncates the episode (unless ``max_turns_terminates``)."""
    max_turns_terminates: bool = False
    """Running out of ``max_turns`` is a rule of the game (Twenty Questions' twenty, guess_number's
    guesses): the episode *terminates*, lost, instead of being truncated. The transcript shows how
    many turns were taken, so this end is part of what a learner observes and a critic must not
    bootstrap past it."""
    end_on_correct: bool = False
    """In answer tasks, a correct answer ends the episode with success (UFO, MINT, Feedback Friction)."""
    max_proposals: int | None = Field(default=None, ge=1)
    """Cap on the actor's answers; a wrong one that reaches it ends the episode (MINT: 2)."""
    countdown: bool = False
    """Before each actor turn, the env says how many turns and proposals are left (MINT)."""
    candidates: int | None = Field(default=None, ge=2, le=10)
    """CGI: the mover's first turn of each round lists this many candidate moves, one a line, for
    a critic to grade before the mover makes its real move."""


class FeedbackSpec(_Strict):
    kinds: list[str] = Field(default_factory=lambda: ["r"])
    paraphrase: Literal["random", "first"] | int = "random"
    """'random' draws a paraphrase from the seeded bank, 'first' or an index fixes it."""

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        for k in v:
            if k not in FEEDBACK_KINDS:
                raise ValueError(f"feedback kind {k!r}: expected one of {sorted(FEEDBACK_KINDS)}")
        return v


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    task: TaskSpec
    roles: dict[str, RoleSpec]
    protocol: ProtocolSpec
    feedback: FeedbackSpec = FeedbackSpec()
    rewards: dict[str, str] = Field(default_factory=lambda: {"actor": "final_correct"})

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: dict[str, RoleSpec]) -> dict[str, RoleSpec]:
        for role in v:
            if role not in ROLES:
                raise ValueError(f"role {role!r}: expected one of {list(ROLES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        problems: list[tuple[str, Any, str]] = []
        for i, role in enumerate(self.protocol.order):
            if role not in self.roles:
                problems.append((f"protocol.order.{i}", role, f"a role declared under roles: {sorted(self.roles)}"))
        for i, role in enumerate(self.protocol.final):
            if role not in self.roles:
                problems.append((f"protocol.final.{i}", role, f"a role declared under roles: {sorted(self.roles)}"))
        movers = TASKS[self.task.family].movers
        for role in movers:
            if role not in self.roles:
                problems.append(("roles", sorted(self.roles), f"a {role!r} role: it moves in {self.task.family}"))
        if self.protocol.order[0] not in movers:
            problems.append(("protocol.order.0", self.protocol.order[0], f"a moving role ({', '.join(movers)}) to open each round"))
        scheduled = set(self.protocol.order) | set(self.protocol.final)
        for role, spec in self.roles.items():
            err = check_spec(spec.agent, role, self.task.family)
            if err:
                problems.append((f"roles.{role}.agent", spec.agent, err))
            else:
                for name, value, expected in check_params(spec.agent, role, spec.params):
                    problems.append((f"roles.{role}.params.{name}", value, expected))
            if role not in scheduled:
                problems.append((f"roles.{role}", spec.agent, "a role the protocol schedules (in order or final)"))
        learners = [r for r, s in self.roles.items() if s.agent == "learner"]
        if len(learners) > 1:
            problems.append(("roles", learners, "at most one role with agent: learner"))
        for role, scheme in self.rewards.items():
            if role not in self.roles:
                problems.append((f"rewards.{role}", scheme, f"a declared role: {sorted(self.roles)}"))
            elif scheme not in REWARDS:
                problems.append((f"rewards.{role}", scheme, f"one of {sorted(REWARDS)}"))
        task = TASKS[self.task.family]
        lines = [f"{f}: got {v!r}, expected {e}" for f, v, e in problems]
        try:
            task.Params(**self.task.params)
        except ValidationError as e:
            lines += [explain(err, prefix="task.params.") for err in e.errors()]
        if lines:
            raise ValueError("\n".join(lines))
        return self

    @property
    def learner_role(self) -> str | None:
        for role, spec in self.roles.items():
            if spec.agent == "learner":
                return role
        return None

    def with_roles(self, **agents: str | None) -> Scenario:
        """A copy with some roles' agents replaced (``judge="scripted:malicious"``); None removes a role."""
        data = self.model_dump()
        roles = data["roles"]
        for role, agent in agents.items():
            if agent is None:  # gone from the seats, the schedule and the rewards
                roles.pop(role, None)
                data["protocol"]["order"] = [r for r in data["protocol"]["order"] if r != role]
                data["protocol"]["final"] = [r for r in data["protocol"]["final"] if r != role]
                data["rewards"].pop(role, None)
            else:  # params belong to the agent they were written for
                old = roles.get(role, {})
                roles[role] = {"agent": agent, "params": old.get("params", {}) if old.get("agent") == agent else {}}
        return validate(data, source=f"{self.name} (with roles {agents})")

    def with_task(self, family: str, params: dict[str, Any] | None = None) -> Scenario:
        """A copy that plays the same protocol over another task family (``params`` are the new
        family's; the old ones are dropped): Ask-Again or MINT over the arithmetic family, say.
        Refused, naming the seat, where an agent of the scenario cannot play in that family."""
        data = self.model_dump()
        data["task"] = {"family": family, "params": dict(params or {})}
        return validate(data, source=f"{self.name} (over task {family})")


def validate(data: Any, source: str = "<dict>") -> Scenario:
    """Validate a parsed YAML mapping into a Scenario, or raise ScenarioError naming each problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Scenario(**data)
    except ValidationError as e:
        lines = [explain(err) for err in e.errors()]
        raise ScenarioError(f"scenario {source} is invalid:\n  " + "\n  ".join(lines)) from None


def explain(err: dict[str, Any], prefix: str = "") -> str:
    """One pydantic error as 'field: got value, expected what'."""
    loc = prefix + ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and not err["loc"]:  # cross-field checks arrive already phrased
        return msg.replace("\n", "\n  ")
    if err["type"] == "missing":
        return f"{loc}: missing, expected this field to be given"
    if err["type"] == "extra_forbidden":
        return f"{loc}: got {err.get('input')!r}, expected no such field (a typo?)"
    if err["type"] == "value_error":
        return f"{loc}: got {err.get('input')!r}, {msg}"
    return f"{loc}: got {err.get('input')!r}, expected {msg}"


def scenario_dir() -> Path:
    """The shipped scenarios: ``scenarios/`` at the repository root, installed as the package data
    ``feedbackgym.scenarios``."""
    return Path(str(resources.files("feedbackgym.scenarios")))


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in scenario_dir().glob("*.yaml"))


def load_scenario(name_or_path: str | Path | Scenario | dict) -> Scenario:
    """Load a shipped scenario by name, or any YAML file by path; a `Scenario` is returned as it
    is and a dict is validated (a task family defined in a user's own module needs no file)."""
    if isinstance(name_or_path, Scenario):
        return name_or_path
    if isinstance(name_or_path, dict):
        return validate(name_or_path)
    path = Path(name_or_path)
    if not path.suffix:
        path = scenario_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise ScenarioError(f"no scenario named {str(name_or_path)!r}; shipped: {', '.join(list_scenarios())}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"scenario {path}: cannot read ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(f"scenario {path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    return validate(data, source=str(path))
