"""The shared types every layer speaks, and the registries through which names are looked up.

This module imports nothing of the package: feedback, tasks, the engine, agents, faces, records,
rollouts, learners, the TUI and the CLI all stand on it. Its types are immutable: a `Message` or
a `Feedback` handed out in ``info`` cannot be changed, so nothing a user's script does to one can
rewrite the engine's log or a record (their ``labels`` are `FrozenDict`s whose sequences are tuples).

The registries (`TASKS`, `SCRIPTED`, `REWARDS`, `AGENT_KINDS`) are filled by the modules that define
the names (a task family, a scripted behaviour, a reward scheme, a learner), so that scenario
validation and the CLI look a name up instead of importing the layer that defines it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

# --------------------------------------------------------------------------- immutable values


class FrozenDict(dict):
    """A dict that refuses every change after it is built (and still pickles, copies and dumps
    to JSON as a dict)."""

    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise TypeError("labels are read-only: build a new dict (dict(labels)) to change them")

    __setitem__ = __delitem__ = __ior__ = _refuse
    update = pop = popitem = clear = setdefault = _refuse

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


EMPTY: FrozenDict = FrozenDict()


#: value types that are immutable as they are (freeze passes them through without a call)
ATOMS = frozenset({str, int, float, bool, type(None), FrozenDict})


def freeze(obj: Any) -> Any:
    """A deep read-only copy: mappings -> `FrozenDict`, lists and tuples -> tuples. (On the hot
    path: every message's labels pass through it, so atoms are passed without a call.)"""
    t = type(obj)
    if t in ATOMS:
        return obj
    if t is dict or isinstance(obj, Mapping):
        try:  # values that all hash (atoms, tuples of them) are frozen as they are: the usual labels, a flat copy in C
            hash(tuple(obj.values()))
        except TypeError:
            return FrozenDict({k: v if type(v) in ATOMS else freeze(v) for k, v in obj.items()})
        return FrozenDict(obj)
    if t is list or t is tuple:
        return tuple(v if type(v) in ATOMS else freeze(v) for v in obj)
    return obj


def plain(obj: Any) -> Any:
    """A JSON-safe deep copy (mappings -> dict, sequences -> list, numpy scalars -> python)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj


# --------------------------------------------------------------------------- feedback

#: Every feedback kind, with what it means.
FEEDBACK_KINDS: dict[str, str] = {
    "r": "textualised reward (LLF-Bench)",
    "hp": "hindsight positive: why what was done was right (LLF-Bench)",
    "hn": "hindsight negative: why what was done was wrong (LLF-Bench)",
    "fp": "future positive: what to do next (LLF-Bench)",
    "fn": "future negative: what to avoid next (LLF-Bench)",
    "unary": "a bare 'try again' carrying no information (UFO)",
    "binary": "GOOD / BAD (MINT)",
    "critique": "an assessment with a revision, possibly deceptive (WAFER-QA, Critique-GRPO)",
    "followup": "pressure after an answer: closed, open or leading (Ask-Again)",
}

#: The hidden labels a feedback message may carry. Unknown label names are refused so that a typo
#: never silently produces a label no metric reads.
FEEDBACK_LABELS = frozenset(
    {
        "truthful",  # bool | None: does what it asserts about the answer hold?
        "source_role",  # str: the role that said it
        "intent",  # constructive | hypercritical | malicious (judges)
        "knowledge",  # none | parametric | grounded (judges)
        "evidence_ids",  # tuple[str, ...]: passages cited
        "suggested_answer",  # the answer the feedback pushes, normalised, or None
        "case",  # which bank case produced it (positive, too_low, disagree_cite, ...)
        "intervened",  # bool: did the judge attack / intervene
        "annotator_id",  # noisy annotator pools
        "label_flipped",
        "source",  # "scripted" | "human" | "lm"
    }
)


class Feedback(NamedTuple):
    """One piece of feedback: ``kind``, the visible ``text``, a scalar reading and hidden labels.

    Immutable (a named tuple whose labels are frozen); `make` validates."""

    kind: str
    text: str
    score: float | None = None
    labels: Mapping[str, Any] = EMPTY

    @classmethod
    def make(cls, kind: str, text: str, score: float | None = None, labels: Mapping[str, Any] | None = None):
        """Build with checks: the kind must be known and every label name must be one metrics read."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"feedback kind {kind!r} is not one of {sorted(FEEDBACK_KINDS)}")
        labels = labels or EMPTY
        unknown = set(labels) - FEEDBACK_LABELS
        if unknown:
            raise ValueError(f"unknown feedback labels {sorted(unknown)}; known: {sorted(FEEDBACK_LABELS)}")
        return cls(kind, text, score, freeze(labels))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "score": self.score, "labels": plain(self.labels)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Feedback:
        return cls.make(d["kind"], d["text"], d.get("score"), d.get("labels"))


# --------------------------------------------------------------------------- messages

#: The kinds of message the engine itself makes; a move's kind is the task's (answer, question,
#: guess, solution, verdict, offer, accept, walk, talk ...).
ENGINE_KINDS = ("feedback", "reply", "invalid", "env", "candidates", "draft")
#: The kinds of a mover's message that are not moves: a CGI candidate list, a draft written for a
#: critique before the move that counts (``protocol.refine``)
NOT_MOVES = ("candidates", "draft")


class Message(NamedTuple):
    """One utterance in the log. ``labels`` are hidden: never rendered into any agent's view.
    Immutable: a named tuple whose labels are a `FrozenDict` (build it with `freeze`)."""

    turn: int
    role: str
    text: str
    kind: str
    feedback: Feedback | None = None
    labels: Mapping[str, Any] = EMPTY

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "role": self.role,
            "text": self.text,
            "kind": self.kind,
            "feedback": self.feedback.to_dict() if self.feedback else None,
            "labels": plain(self.labels),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Message:
        fb = d.get("feedback")
        return cls(
            turn=int(d["turn"]),
            role=str(d["role"]),
            text=str(d["text"]),
            kind=str(d["kind"]),
            feedback=Feedback.from_dict(fb) if fb else None,
            labels=freeze(d.get("labels") or {}),
        )


class Utterance(NamedTuple):
    """What an agent may return instead of a bare string: the text plus typed feedback, for a
    user whether it leaves (which ends the episode), and for a served model what the request
    cost (token counts, latency: kept in `Episode.usage` and the record, never in ``info``)."""

    text: str
    feedback: Feedback | None = None
    leaves: bool = False
    usage: Mapping[str, float] | None = None


class StepResult(NamedTuple):
    message: Message
    rewards: dict[str, float]
    terminated: bool
    truncated: bool


def render_transcript(log: Sequence[Message]) -> str:
    return "\n".join(f"{m.role}: {m.text}" for m in log)


def whole_text(text: str) -> str:
    """``text`` with each pair of surrogates joined into the character it encodes (lone ones
    stay). The engine keeps every text in this form, so that JSON, which always reads an
    escaped high-low pair as one character, gives a record back byte for byte."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def as_text(action: Any) -> str | Utterance:
    """An action from outside as the engine takes it: text or an Utterance as is, bytes decoded,
    None as empty text, anything else by ``str``."""
    if isinstance(action, (str, Utterance)):
        return action
    if action is None:
        return ""
    return action.decode("utf-8", "replace") if isinstance(action, bytes) else str(action)


# --------------------------------------------------------------------------- what tasks say of a move


class Parsed(NamedTuple):
    """An actor move as the task reads it. Invalid moves carry the reason."""

    valid: bool
    kind: str = "answer"  # answer | question | guess
    value: Any = None  # normalised answer / guessed number / matched attribute
    reason: str = ""


class Verdict(NamedTuple):
    is_correct: bool | None  # None: a question, neither right nor wrong
    solved: bool  # the task is solved: the episode ends with success


class Hint(NamedTuple):
    """What a truthful hint says: the bank case, its slots, and the answer it suggests."""

    case: str
    slots: dict[str, Any]
    suggestion: Any = None


# --------------------------------------------------------------------------- the view of one role


class LogView(Sequence):
    """The first ``n`` messages of an engine's log, read-only and without a copy (the log only
    grows, so this is the log as it was when the view was made). Indexing gives a message, a
    slice a tuple; nothing reached through it can change the log."""

    __slots__ = ("_log", "_n")

    def __init__(self, log: list[Message], n: int):
        self._log = log
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        n = self._n
        if type(i) is slice:
            return tuple(self._log[i] if n == len(self._log) else self._log[:n][i])
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("log index out of range")
        return self._log[i]

    def __iter__(self):
        return islice(self._log, self._n)  # an iterator in C, with no way back to the list

    def __reversed__(self):
        return islice(reversed(self._log), len(self._log) - self._n, None)

    def __eq__(self, other):
        if isinstance(other, (LogView, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"LogView({list(self)!r})"


class View:
    """What one role sees at its turn. Built from the log; hidden labels are never part of it.

    ``world`` is the episode's task instance: scripted agents may consult it (a judge knows the
    gold answer, a user knows its goal), LM and human agents only read the text fields.
    ``last_move`` is the last valid move as the task parsed it (public: it is what was said), and
    ``last_invalid`` whether the latest move was unreadable; ``candidates`` how many candidate
    moves this turn should list (CGI), 0 for a real move; ``moves`` whether this role's text is a
    move the task parses, ``final`` whether this is its turn in the protocol's final phase,
    ``refining`` whether this turn refines the role's draft after its critique; ``ask``
    what this turn asks of the role, in words (a model in a chat is asked it last).
    """

    __slots__ = (
        "role", "rng", "world", "last_move", "last_invalid", "candidates", "feedback_kinds", "paraphrase",
        "moves", "final", "refining", "_log", "_since", "_transcript",
    )  # fmt: skip

    def __init__(
        self, role, rng, world, log, since, feedback_kinds, last_move=None, last_invalid=False, candidates=0,
        paraphrase="random", moves=False, final=False, refining=False,
    ):  # fmt: skip
        self.role = role
        self.rng: np.random.Generator = rng
        self.world = world
        self.last_move: Parsed | None = last_move
        self.last_invalid: bool = last_invalid
        self.candidates: int = candidates
        self.feedback_kinds: tuple[str, ...] = feedback_kinds
        self.paraphrase: str | int = paraphrase  # the scenario's choice of paraphrase
        self.moves: bool = moves
        self.final: bool = final
        self.refining: bool = refining
        self._log: list[Message] = log
        self._since = since
        self._transcript: str | None = None

    @property
    def instruction(self) -> str:
        return self.world.instruction

    @property
    def ask(self) -> str:
        """What this turn asks of the role ('' when the instruction already says it): the task's
        `Instance.ask`."""
        return self.world.ask(self)

    @property
    def private(self) -> str:
        """What this role may additionally know ('' for the actor)."""
        return self.world.private_view(self.role)

    @property
    def log(self) -> LogView:
        """The log so far, as immutable messages (for agents that read the moves, not their labels):
        a read-only view, not a copy (O(1) however long the episode)."""
        return LogView(self._log, len(self._log))

    @property
    def since(self) -> int:
        """Where in the log this role last spoke (0 if it has not)."""
        return self._since

    @property
    def messages(self) -> list[tuple[str, str, str]]:
        """The visible log as (role, kind, text) triples."""
        return [(m.role, m.kind, m.text) for m in self._log]

    @property
    def transcript(self) -> str:
        """The visible log formatted for this role (built only when an agent asks for it)."""
        if self._transcript is None:
            self._transcript = render_transcript(self._log)
        return self._transcript

    @property
    def new(self) -> list[tuple[str, str, str]]:
        """Messages since this role last spoke."""
        return [(m.role, m.kind, m.text) for m in self._log[self._since :]]

    @property
    def feedback(self) -> str:
        """The feedback messages since this role last spoke, joined ('' if none)."""
        return "\n".join(m.text for m in self._log[self._since :] if m.kind == "feedback")

    def last(self, role: str, kinds: Sequence[str] | None = None) -> str | None:
        for m in reversed(self._log):
            if m.role == role and (kinds is None or m.kind in kinds):
                return m.text
        return None


# --------------------------------------------------------------------------- who speaks


@runtime_checkable
class Agent(Protocol):
    def act(self, view: View) -> str | Utterance: ...

    def act_batch(self, views: Sequence[View]) -> list[str | Utterance]: ...


class ScriptedAgent:
    """Base of the built-in agents: ``act_batch`` is a loop (LM agents batch for real). A task
    family's own scripted players (SPC's generator, negotiation's buyer) subclass it in the
    family's module and register with `register_scripted`."""

    name = "scripted"
    #: what the engine records as the messages' ``source`` label (None: scripted, the default)
    source: str | None = None

    def act(self, view: View) -> str | Utterance:  # pragma: no cover - abstract
        raise NotImplementedError

    def act_batch(self, views: Sequence[View]) -> list[str | Utterance]:
        return [self.act(v) for v in views]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_range(**params: float) -> None:
    """Refuse a scripted agent's parameter outside its range, so a scenario with ``flip: 2`` is
    refused when it loads (agents are built then) rather than behaving as ``flip: 1``. A name
    ending in ``_count`` or one of `COUNT_PARAMS` must be an int of at least its minimum; every
    other name is a probability in [0, 1]."""
    for name, value in params.items():
        least = COUNT_PARAMS.get(name)
        if least is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}={value!r}: expected an integer of at least {least}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r}: expected a probability in [0, 1]")


#: integer parameters of scripted agents and their least values (`check_range`)
COUNT_PARAMS = {"k": 1, "patience": 1, "grace": 0}


# --------------------------------------------------------------------------- registries


class Registry(dict):
    """name -> what defines it; ``register`` is a decorator. Lookups of an unknown name raise a
    KeyError that lists the known ones."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str) -> Callable:
        def deco(obj):
            self[name] = obj
            return obj

        return deco

    def __missing__(self, name):
        raise KeyError(f"unknown {self.what} {name!r}; known: {sorted(self)}")


#: task family name -> its `Task` (filled by each family's module in envs/tasks/)
TASKS: Registry = Registry("task family")
#: reward scheme name -> its `Scheme` class (filled by envs/rewards.py)
REWARDS: Registry = Registry("reward scheme")

def register_task(cls):
    """Class decorator: register a `Task` subclass under its ``name`` (one instance serves all)."""
    TASKS[cls.name] = cls()
    return cls


class ScriptedSpec(NamedTuple):
    factory: Callable[..., Any]
    families: tuple[str, ...] | None  # the task families it plays in (None: any) ...
    requires: str | None  # ... or those whose `Task` sets this capability flag true ("hints")

    def plays_in(self, family: str) -> bool:
        if self.families is not None and family not in self.families:
            return False
        return self.requires is None or bool(getattr(TASKS.get(family), self.requires, False))

    def where(self) -> str:
        """Where it plays, in words (for an error message)."""
        fams = self.families or [f for f in sorted(TASKS) if self.plays_in(f)]
        why = f" (task families whose Task sets {self.requires} = True)" if self.requires else ""
        return ", ".join(fams) + why


#: (role, name) -> the factory of a scripted behaviour (filled by agents/ and by task families)
SCRIPTED: dict[tuple[str, str], ScriptedSpec] = {}


def register_scripted(
    role: str, name: str, families: tuple[str, ...] | None = None, requires: str | None = None
) -> Callable:
    """Register a scripted behaviour for ``role`` under ``scripted:NAME``, playing only in
    ``families`` and/or in the families whose `Task` has the capability flag ``requires``."""

    def deco(factory):
        SCRIPTED[(role, name)] = ScriptedSpec(factory, families, requires)
        return factory

    return deco


#: spec kind (the part before ":") -> check(name) returning None if ``KIND:name`` can be made, else
#: what was expected (filled by agents/: ``lm``; ``scripted`` is looked up in `SCRIPTED`)
AGENT_KINDS: Registry = Registry("agent kind")


def scripted_names(role: str) -> list[str]:
    """The scripted behaviours registered for ``role``."""
    return sorted(n for r, n in SCRIPTED if r == role)


def check_spec(spec: str, role: str, family: str | None = None) -> str | None:
    """None if the agent spec ``spec`` can play ``role`` (in ``family``), else what was expected."""
    if spec in ("learner", "human"):
        return None
    kind, _, name = spec.partition(":")
    if kind == "scripted":
        entry = SCRIPTED.get((role, name))
        if entry is None:
            known = ", ".join(f"scripted:{n}" for n in scripted_names(role))
            return f"a {role} agent: learner, human, or one of {known}"
        if family and not entry.plays_in(family):
            return f"scripted:{name} plays only in {entry.where()}"
        return None
    if kind in AGENT_KINDS:
        return AGENT_KINDS[kind](name)
    known = ", ".join(f"scripted:{n}" for n in scripted_names(role))
    return f"a spec KIND:NAME (learner, human, {', '.join(f'{k}:...' for k in AGENT_KINDS)}, or one of {known})"


def check_params(spec: str, role: str, params: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(name, value, what was expected) for each param a scripted agent does not take."""
    import inspect

    kind, _, name = spec.partition(":")
    entry = SCRIPTED.get((role, name)) if kind == "scripted" else None
    if entry is None:
        return []
    accepted = [p for p in inspect.signature(entry.factory).parameters if p != "self"]
    return [(k, v, f"a parameter of {spec}: one of {accepted}") for k, v in params.items() if k not in accepted]
