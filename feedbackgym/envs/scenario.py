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
expected, one line per problem. A file is untrusted input: it is read only up to
`MAX_SCENARIO_BYTES`, must be UTF-8, and may not use merge keys or duplicate keys, nor nest
deeper than `MAX_SCENARIO_DEPTH` or hold more than `MAX_SCENARIO_NODES` values (an alias counting
as the values it repeats); each of these is refused naming the file, the line and column, and the reason. Messages
quote at most a short excerpt (`EXCERPT_CHARS`) of any value, and list at most `MAX_PROBLEMS`
problems.
"""

from __future__ import annotations

import functools
import inspect
import reprlib
import typing
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_serializer, model_validator

from feedbackgym.core import FEEDBACK_KINDS, REWARDS, SCRIPTED, TASKS, check_params, check_spec
from feedbackgym.envs import rewards as _rewards  # noqa: F401  (registers the reward schemes)
from feedbackgym.envs import tasks as _tasks  # noqa: F401  (registers the shipped task families)

#: Seats a scenario may declare. Which of them *move* is the task's to say (``Task.movers``).
ROLES = ("actor", "critic", "judge", "user", "buyer", "seller", "generator")


#: Largest scenario file read, in bytes (a shipped one is about 1 KB); a larger one is refused unread.
MAX_SCENARIO_BYTES = 64 * 1024
#: Deepest nesting of mappings and lists in a scenario file (a shipped one nests 4 deep).
MAX_SCENARIO_DEPTH = 32
#: Most values (scalars, lists and mappings, keys included) in a scenario file (a shipped one has
#: about 50): reading one costs tens of microseconds, so this bounds the time a file may take.
MAX_SCENARIO_NODES = 5_000
#: Longest excerpt of a value that an error message quotes.
EXCERPT_CHARS = 80
#: Longest "expected ..." an error message gives (our own words, which may hold the value).
_EXPECTED_CHARS = 12 * EXCERPT_CHARS
#: Most problems one error message lists (the rest are counted).
MAX_PROBLEMS = 20


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names field, value and expectation."""


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 6
_REPR.maxlevel = 3


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (cheap even for a huge value)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text: str, limit: int = 2 * EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that a scenario file may not use (an alias, a duplicate key, ...)."""


class _ScenarioLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for untrusted files. Anchors and aliases are read (PyYAML's own
    ``safe_dump`` writes them for any value used twice), but every alias counts as the values it
    stands for, so a "billion laughs" file is refused after `MAX_SCENARIO_NODES` values, long
    before anything expands, and an alias inside its own anchor's value is refused. Also refused:
    merge keys, duplicate keys (YAML would keep the last silently), nesting deeper than
    `MAX_SCENARIO_DEPTH` (checked while composing, before any recursion can run deep); a scalar
    that cannot be constructed (an integer of 5000 digits, the 13th month) is refused at its line
    instead of escaping as a bare ValueError."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._open: set[str] = set()  # anchors whose values are being composed
        self._counted: dict[str, int] = {}  # anchor -> the values its value stands for

    def _count(self, n: int, mark) -> None:
        self._nodes += n
        if self._nodes > MAX_SCENARIO_NODES:
            raise _Refused(
                problem=f"more than {MAX_SCENARIO_NODES} values in one file (an alias counts as the values it repeats), expected a short scenario",
                problem_mark=mark,
            )

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                what = f"an alias (*{_clip(event.anchor, 40)}) inside the value of its own anchor"
                raise _Refused(problem=f"{what}: a value cannot contain itself", problem_mark=event.start_mark)
            self._count(self._counted.get(event.anchor, 1), event.start_mark)
            return super().compose_node(parent, index)  # YAML names an undefined alias
        before = self._nodes
        self._count(1, event.start_mark)
        nested = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if nested:
            self._depth += 1
            if self._depth > MAX_SCENARIO_DEPTH:
                raise _Refused(problem=f"lists and mappings nested more than {MAX_SCENARIO_DEPTH} deep", problem_mark=event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= nested
            self._open.discard(anchor)
        if anchor is not None:
            self._counted[anchor] = self._nodes - before
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as e:
            what = excerpt(node.value) if isinstance(node, yaml.ScalarNode) else f"a {node.id}"
            raise _Refused(problem=f"{what} cannot be read as {node.tag.rpartition(':')[2]}: {_clip(str(e))}", problem_mark=node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused(problem="a merge key (<<): not allowed in a scenario file; write the keys out", problem_mark=key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the constructor below says so
                    continue
                if earlier is not key_node:
                    raise _Refused(
                        problem=f"duplicate key {excerpt(key)} (first at line {earlier.start_mark.line + 1}): a key may appear once in a mapping",
                        problem_mark=key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def parse_yaml(raw: bytes, source: str) -> Any:
    """The one YAML document in ``raw``, read as an untrusted scenario file, or a `ScenarioError`
    naming ``source``, the line and column, and what is wrong."""
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"scenario {source}: {len(raw)} bytes or more, expected at most {MAX_SCENARIO_BYTES} (a scenario is a short YAML file)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ScenarioError(
            f"scenario {source}: not UTF-8 text at line {line}, column {column} (byte {e.start}: {raw[e.start : e.start + 4]!r}), "
            "expected a UTF-8 encoded YAML file"
        ) from None
    loader = None
    try:
        loader = _ScenarioLoader(text)  # checks every character first
        return loader.get_single_data()
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, most control characters)
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        char = chr(e.character) if isinstance(e.character, int) else e.character
        raise ScenarioError(f"scenario {source}: not valid YAML at line {line}, column {column}: character {excerpt(char)} is not allowed in YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        verdict = "refused" if isinstance(e, _Refused) else "not valid YAML"
        raise ScenarioError(f"scenario {source}: {verdict}{where}: {_clip(str(getattr(e, 'problem', None) or e))}") from None
    finally:
        if loader is not None:
            loader.dispose()


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
    refine: str | None = None
    """Critique-guided refinement (Critique-GRPO): a role (a critic, a judge) that critiques each
    of the actor's moves before it counts. The actor's move is first a *draft* (kind ``draft``:
    parsed and given the task's verdict, never counted against ``max_turns`` or ``max_proposals``,
    never solving the task); then this role speaks; then the actor writes its refinement, the move
    that counts. Usable in any scenario whose task the actor moves in."""
    candidates: int | None = Field(default=None, ge=2, le=10)
    """CGI: the mover's first turn of each round lists this many candidate moves, one a line, for
    a critic to grade before the mover makes its real move."""

    @model_serializer(mode="wrap")
    def _unset_refine_left_out(self, handler):
        """``refine`` came after records were first written: left out when unset, so that a
        scenario without it dumps (into records, their hashes, journals) as it always did."""
        data = handler(self)
        if isinstance(data, dict) and data.get("refine") is None:
            data.pop("refine", None)
        return data


class FeedbackSpec(_Strict):
    kinds: list[str] = Field(default_factory=lambda: ["r"])
    paraphrase: Literal["random", "first"] | int = "random"
    """'random' draws a paraphrase from the seeded bank, 'first' or an index fixes it."""

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        for k in v:
            if k not in FEEDBACK_KINDS:
                raise ValueError(f"feedback kind {excerpt(k)}: expected one of {sorted(FEEDBACK_KINDS)}")
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
                raise ValueError(f"role {excerpt(role)}: expected one of {list(ROLES)}")
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
        refine = self.protocol.refine
        if refine is not None:
            if refine not in self.roles:
                problems.append(("protocol.refine", refine, f"a role declared under roles: {sorted(self.roles)}"))
            elif refine in movers:
                problems.append(("protocol.refine", refine, "a role that gives feedback, not one that moves"))
            if "actor" not in movers:
                problems.append(("protocol.refine", refine, f"a task the actor moves in ({self.task.family}'s movers: {', '.join(movers)})"))
            if self.protocol.candidates is not None:
                problems.append(("protocol.refine", refine, "no protocol.candidates beside it (one preliminary message a move)"))
        scheduled = set(self.protocol.order) | set(self.protocol.final) | ({refine} if refine else set())
        for role, spec in self.roles.items():
            try:
                err = check_spec(spec.agent, role, self.task.family)
            except OSError as e:  # lm:NAME is looked up on disk: a name too long for a path, say
                err = f"an agent spec that can be checked ({e.strerror})"
            if err:
                problems.append((f"roles.{role}.agent", spec.agent, err))
            else:
                named = check_params(spec.agent, role, spec.params)
                for name, value, expected in named:
                    problems.append((f"roles.{role}.params.{name}", value, expected))
                if not named:
                    problems += _agent_param_problems(spec.agent, role, spec.params)
            if role not in scheduled:
                problems.append((f"roles.{role}", spec.agent, "a role the protocol schedules (in order, final or refine)"))
        learners = [r for r, s in self.roles.items() if s.agent == "learner"]
        if len(learners) > 1:
            problems.append(("roles", learners, "at most one role with agent: learner"))
        for role, scheme in self.rewards.items():
            if role not in self.roles:
                problems.append((f"rewards.{role}", scheme, f"a declared role: {sorted(self.roles)}"))
            elif scheme not in REWARDS:
                problems.append((f"rewards.{role}", scheme, f"one of {sorted(REWARDS)}"))
        task = TASKS[self.task.family]
        lines = [f"{_clip(f)}: got {excerpt(v)}, expected {_clip(e, _EXPECTED_CHARS)}" for f, v, e in problems]
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
                if data["protocol"].get("refine") == role:  # no critique: each move is written once
                    data["protocol"]["refine"] = None
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


@functools.cache
def _signature_model(factory: Callable) -> type[BaseModel]:
    """A strict pydantic model of a scripted agent's constructor parameters, from its annotations
    (a parameter without one takes anything)."""
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except Exception:  # an annotation that does not resolve checks nothing rather than everything
        hints = {}
    fields: dict[str, Any] = {}
    for name, p in inspect.signature(factory).parameters.items():
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            fields[name] = (hints.get(name, Any), ... if p.default is p.empty else p.default)
    config = ConfigDict(strict=True, extra="ignore", arbitrary_types_allowed=True)
    return create_model(f"{getattr(factory, '__name__', 'agent')}_params", __config__=config, **fields)


def _agent_param_problems(spec: str, role: str, params: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(field, value, expected) for each param value a scripted agent would refuse when an episode
    starts: a value of the wrong type for its annotation, a missing required one, or one its
    constructor refuses (Ask-Again's ``form: bogus``). Constructing a scripted agent is cheap and
    has no effects; only what it says when refusing is kept."""
    kind, _, name = spec.partition(":")
    entry = SCRIPTED.get((role, name)) if kind == "scripted" else None
    if entry is None:
        return []
    try:
        _signature_model(entry.factory).model_validate(params)
    except ValidationError as e:
        return [(f"roles.{role}.params.{'.'.join(map(str, err['loc']))}", err.get("input"), err["msg"]) for err in e.errors()]
    try:
        entry.factory(**params)
    except (ValueError, TypeError, OverflowError) as e:
        return [(f"roles.{role}.params", params, f"parameters {spec} accepts ({e})")]
    return []


def validate(data: Any, source: str = "<dict>") -> Scenario:
    """Validate a parsed YAML mapping into a Scenario, or raise ScenarioError naming each problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        lines = [line.strip() for err in e.errors() for line in explain(err).split("\n")]
        if len(lines) > MAX_PROBLEMS:
            lines = [*lines[:MAX_PROBLEMS], f"... and {len(lines) - MAX_PROBLEMS} more problems"]
        raise ScenarioError(f"scenario {source} is invalid:\n  " + "\n  ".join(lines)) from None


def explain(err: dict[str, Any], prefix: str = "") -> str:
    """One pydantic error as 'field: got value, expected what'."""
    loc = prefix + ".".join(_clip(str(p), EXCERPT_CHARS) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and not err["loc"]:  # cross-field checks arrive already phrased
        return msg.replace("\n", "\n  ")
    if err["type"] == "missing":
        return f"{loc}: missing, expected this field to be given"
    if err["type"] == "extra_forbidden":
        return f"{loc}: got {excerpt(err.get('input'))}, expected no such field (a typo?)"
    if err["type"] == "value_error":
        return f"{loc}: got {excerpt(err.get('input'))}, {_clip(msg, _EXPECTED_CHARS)}"
    return f"{loc}: got {excerpt(err.get('input'))}, expected {_clip(msg, _EXPECTED_CHARS)}"


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
            raise ScenarioError(f"no scenario named {excerpt(str(name_or_path))}; shipped: {', '.join(list_scenarios())}")
    try:
        size = path.stat().st_size
        if size > MAX_SCENARIO_BYTES:  # refused unread
            raise ScenarioError(f"scenario {path}: {size} bytes, expected at most {MAX_SCENARIO_BYTES} (a scenario is a short YAML file)")
        with path.open("rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)  # a device or a pipe may say size 0 and never end
    except OSError as e:
        raise ScenarioError(f"scenario {path}: cannot read ({e.strerror})") from None
    return validate(parse_yaml(raw, str(path)), source=str(path))
