"""The episode record: one JSON line per episode, appended and flushed at once.

A line holds the schema version, the whole scenario, the seed, every message with its hidden
labels, the returns and the metrics. `RecordWriter` is the one writer: the command line, the
terminal UI, the learners and the `RecordEpisodes` wrappers of both faces append through it.
Besides finished episodes it writes *journal* lines: the episode so far, each time a person has
said something, so that what they typed survives a terminal closed mid-episode. A journal line
is provisional: a later line of the same episode (same scenario and seed, its messages extending
the journal's) replaces it; one that nothing replaces comes back as an episode ended
``"aborted"``.

A record also says what made it (``provenance``: the package version, the scenario's sha256,
each seat's spec with an ``lm:`` model's file hash or an ``openai:`` model's id and base URL);
records written before it was kept read as they are. Every text the env accepted is written
(a lone surrogate as its JSON escape) and reads back byte for byte.

`read_records` loads a file from anywhere: each line is checked whole, and one it cannot use
(not UTF-8, not JSON, of any wrong shape, too long, nested too deep) is skipped and reported with
its line number and why (`Records.skipped`); `rebuild` replays a record through a fresh engine,
so the episode comes back step by step with its state (and proves the record is faithful).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import gymnasium as gym
from pettingzoo.utils import BaseWrapper
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from feedbackgym.agents.models import ModelNotFound, model_digest
from feedbackgym.core import Feedback, Message, StepResult, Utterance, freeze, plain
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import RoleSpec, Scenario, validate

SCHEMA_VERSION = 1
#: The ``terminate_reason`` of an episode recorded before it ended (left, or journaled and never finished).
ABORTED = "aborted"
#: A longer line is skipped unread (a record of a long served-model episode is a few hundred kB).
MAX_LINE_BYTES = 64 << 20
#: How deep a record's values may nest (a record's own data nests 7 deep; JSON nested 100,000
#: deep would exhaust the stack of whatever walks it).
MAX_DEPTH = 32


class RecordError(ValueError):
    """A line that is not a record; the message says where in it and what was expected."""


@dataclass
class Record:
    scenario: Scenario
    seed: int
    messages: list[Message]
    returns: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    hidden: dict[str, Any] = field(default_factory=dict)
    terminate_reason: str | None = None
    line: int | None = None  # where it was read from
    journal: bool = False  # a journal line: the episode so far, replaced by a later line of it
    usage: list[dict[str, Any]] = field(default_factory=list)
    """what served models' turns cost (`Episode.usage`: turn, role, token counts, latency)"""
    provenance: dict[str, Any] | None = None
    """what made the episode (`provenance`): package version, scenario hash, each seat's model;
    None in records written before it was kept"""
    abort_cause: str | None = None
    """why an `ABORTED` episode was left, where the writer knew (``quit``, ``home``, ``restart``,
    ``rewind``, ``SIGTERM``, ``SIGHUP``, ``recovered``: rebuilt from a journal); None otherwise"""
    member: int = 0
    """the episode's member of its seed's group (`Episode`'s ``member``; 0 unless a grouped rollout played it)"""
    people: list[dict[str, Any]] = field(default_factory=list)
    """one entry per message a person said (the terminal UI's journal entries: turn, role, the
    turn it answers, when it was shown and submitted, the branch): wall-clock times live here
    and in the journal, never in ``info``"""

    @classmethod
    def of(
        cls, ep: Episode, journal: bool = False, abort_cause: str | None = None, people: Sequence[dict[str, Any]] = ()
    ) -> Record:
        """The record of ``ep``; one that has not ended is recorded as `ABORTED` (``abort_cause``:
        why, kept only then); ``people``: the timing of a person's messages (`Record.people`)."""
        metrics, reason = ep.metrics(), ep.terminate_reason
        if not ep.done:
            # only ``success`` reads the reason, and neither None nor ABORTED is a success
            reason = metrics["terminate_reason"] = ABORTED
        return cls(
            ep.scenario, ep.seed, list(ep.log), dict(ep.returns), metrics, ep.hidden(), reason, journal=journal,
            usage=list(ep.usage), provenance=provenance(ep.scenario),
            abort_cause=abort_cause if not ep.done else None, people=[dict(p) for p in people], member=ep.member,
        )  # fmt: skip

    def to_json(self) -> str:
        """One line of JSON; valid UTF-8 whatever the texts hold (a lone surrogate, which a Text
        action may carry, is written as its ``\\udXXX`` escape, which JSON reads back as it was)."""
        data = {
            "schema": SCHEMA_VERSION,
            "scenario": self.scenario.model_dump(mode="json"),
            "seed": self.seed,
            "messages": [m.to_dict() for m in self.messages],
            "returns": plain(self.returns),
            "metrics": plain(self.metrics),
            "hidden": plain(self.hidden),
            "terminate_reason": self.terminate_reason,
        }
        if self.journal:
            data["journal"] = True
        if self.usage:  # only where a served model took a turn: other records stay as they were
            data["usage"] = plain(self.usage)
        if self.provenance is not None:
            data["provenance"] = plain(self.provenance)
        if self.abort_cause is not None:  # only where known: other records stay as they were
            data["abort_cause"] = self.abort_cause
        if self.people:
            data["people"] = plain(self.people)
        if self.member:  # only in a grouped rollout's records: other records stay as they were
            data["member"] = self.member
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (a Text action may carry one): escape it, keep it
            line = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
        return line

    @classmethod
    def from_json(cls, line: str, lineno: int | None = None) -> Record:
        """The record on one line; `RecordError` (a ValueError) saying what is wrong with it:
        every field is checked here, so what reads a record gets the types it expects."""
        try:
            d = json.loads(line)
        except RecursionError:
            raise RecordError(f"JSON nested too deeply to read, expected at most {MAX_DEPTH} levels") from None
        except json.JSONDecodeError as e:
            raise RecordError(f"not JSON: {e.msg} (column {e.colno})") from None
        except ValueError as e:  # Python reads no integer of more than 4,300 digits
            raise RecordError(f"not readable: {str(e).split(';')[0]} (at most 4300 digits expected)") from None
        if not isinstance(d, dict):
            raise RecordError(f"expected a JSON object, got {_excerpt(d)}")
        if d.get("schema") != SCHEMA_VERSION:
            raise RecordError(f"schema {_excerpt(d.get('schema'))}: expected {SCHEMA_VERSION}")
        missing = {"scenario", "seed", "messages"} - set(d)
        if missing:
            raise RecordError(f"missing field(s) {sorted(missing)}")
        deep = _too_deep(d)
        if deep is not None:
            raise RecordError(f"{deep}: nested more than {MAX_DEPTH} levels deep")
        try:
            r = _RecordLine.model_validate(d)
        except ValidationError as e:
            raise RecordError(_explain(e)) from None
        messages = []
        for i, m in enumerate(r.messages):
            if m.turn != i:
                raise RecordError(f"messages.{i}.turn: got {m.turn}, expected {i} (its place in the log)")
            fb = m.feedback
            try:
                feedback = Feedback.make(fb.kind, fb.text, fb.score, fb.labels) if fb is not None else None
            except ValueError as e:
                raise RecordError(f"messages.{i}.feedback: {e}") from None
            messages.append(Message(m.turn, m.role, m.text, m.kind, feedback, freeze(m.labels)))
        return cls(
            scenario=_scenario(r.scenario, lineno),
            seed=r.seed,
            messages=messages,
            returns=r.returns,
            metrics=r.metrics,
            hidden=r.hidden,
            terminate_reason=r.terminate_reason,
            line=lineno,
            journal=r.journal,
            usage=r.usage,
            provenance=d.get("provenance"),  # checked above; kept as written
            abort_cause=r.abort_cause,
            people=r.people,
            member=r.member,
        )

    def steps(self) -> Iterator[list[Message]]:
        """The log as it grew: after the first message, after the second, ..."""
        for i in range(1, len(self.messages) + 1):
            yield self.messages[:i]

    def continues(self, journal: Record) -> bool:
        """Is this a later line of the episode ``journal`` was written from?"""
        n = len(journal.messages)
        return (
            self.seed == journal.seed
            and self.member == journal.member
            and self.scenario == journal.scenario
            and len(self.messages) >= n
            and self.messages[:n] == journal.messages
        )


def _scenario(data: dict[str, Any], lineno: int | None) -> Scenario:
    """The validated scenario of a line; the lines of one file mostly share one, validated once."""
    key = json.dumps(data, sort_keys=True)
    with _lock:
        held = _scenarios.get(key)
    if held is None:
        held = _validate_elsewhere(data, f"record line {lineno}")
        with _lock:
            if len(_scenarios) >= 64:
                _scenarios.clear()
            _scenarios[key] = held
    return held


_scenarios: dict[str, Scenario] = {}  # canonical JSON -> the scenario (frozen: shared safely)
#: seats whose model is checked where it is loaded (a file, a folder, a server): not where a record is read
MODEL_KINDS = ("lm", "openai")


def _validate_elsewhere(data: dict[str, Any], source: str) -> Scenario:
    """A record's scenario, validated as a scenario file is, except that a model seat (`MODEL_KINDS`)
    is taken as written: the record was made where its model was, and reading or replaying it
    needs no model (nor torch, nor a server's client) here."""
    roles = data.get("roles")
    models = {
        role: seat for role, seat in roles.items()
        if isinstance(seat, dict) and set(seat) <= {"agent", "params"} and isinstance(seat.get("agent"), str)
        and isinstance(seat.get("params", {}), dict) and seat["agent"].partition(":")[0] in MODEL_KINDS
    } if isinstance(roles, dict) else {}  # fmt: skip
    if not models:
        return validate(data, source=source)
    stand_ins = {role: {"agent": "human"} for role in models}  # a person may sit in any seat
    scenario = validate({**data, "roles": {**roles, **stand_ins}}, source=source)
    seats = {role: RoleSpec(agent=seat["agent"], params=seat.get("params", {})) for role, seat in models.items()}
    return scenario.model_copy(update={"roles": {role: seats.get(role, spec) for role, spec in scenario.roles.items()}})


# ---------------------------------------------------------------------- provenance
def provenance(scenario: Scenario) -> dict[str, Any]:
    """What made an episode of ``scenario``: the feedbackgym version, the sha256 of the scenario's
    canonical JSON, and each seat: its spec, plus for ``lm:NAME`` the sha256 over the model's
    files (`models.model_digest`, kept per file's path, size and mtime, so it is hashed once) and
    for ``openai:MODEL`` the model id and base URL asked. Nothing in it changes between runs of
    the same scenario on the same installation (no time, no host)."""
    seats = {}
    for role, spec in scenario.roles.items():
        kind, _, name = spec.agent.partition(":")
        seat: dict[str, Any] = {"agent": spec.agent}
        if kind == "lm":
            try:
                seat["sha256"] = model_digest(name)
            except (ModelNotFound, OSError):  # recorded elsewhere, replayed here: no files to hash
                seat["sha256"] = None
        elif kind == "openai":
            seat["model"] = name
            seat["base_url"] = str(spec.params.get("base_url") or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/") or None
        seats[role] = seat
    return {"feedbackgym": _version(), "scenario_sha256": scenario_digest(scenario), "seats": seats}


def scenario_digest(scenario: Scenario) -> str:
    """The sha256 (hex) of ``scenario``'s canonical JSON (keys sorted, no spaces, ASCII)."""
    with _lock:
        held = _digests.get(id(scenario))
    if held is not None and held[0] is scenario:
        return held[1]
    canonical = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()
    with _lock:
        if len(_digests) >= 256:
            _digests.clear()
        _digests[id(scenario)] = (scenario, digest)  # the scenario is held, so its id is not reused
    return digest


_digests: dict[int, tuple[Scenario, str]] = {}  # id -> (the frozen scenario, its digest)
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        return metadata.version("feedbackgym")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# ---------------------------------------------------------------------- what a line must hold
Finite = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _FeedbackLine(_Strict):
    kind: str
    text: str
    score: Finite | None = None
    labels: dict[str, JsonValue] = {}


class _MessageLine(_Strict):
    turn: Count
    role: str
    text: str
    kind: str
    feedback: _FeedbackLine | None = None
    labels: dict[str, JsonValue] = {}


class _SeatLine(_Strict):
    agent: str
    sha256: str | None = None
    model: str | None = None
    base_url: str | None = None


class _ProvenanceLine(_Strict):
    feedbackgym: str
    scenario_sha256: str
    seats: dict[str, _SeatLine]


class _RecordLine(_Strict):
    schema_: Literal[1] = Field(alias="schema")
    scenario: dict[str, JsonValue]
    seed: Count
    messages: list[_MessageLine]
    returns: dict[str, Finite] = {}
    metrics: dict[str, JsonValue] = {}
    hidden: dict[str, JsonValue] = {}
    terminate_reason: str | None = None
    journal: bool = False
    usage: list[dict[str, JsonValue]] = []
    provenance: _ProvenanceLine | None = None
    abort_cause: str | None = None
    people: list[dict[str, JsonValue]] = []
    member: Count = 0


def _too_deep(obj: Any) -> str | None:
    """Where ``obj`` nests past `MAX_DEPTH` (a dotted path), or None; level by level, without
    recursion (the path is looked for only when there is one)."""
    level, depth = [obj], 1
    while level:
        inner = [x for v in level for x in (v.values() if type(v) is dict else v) if type(x) is dict or type(x) is list]
        if inner and depth >= MAX_DEPTH:
            return _path(_deep_path(obj, depth))
        level, depth = inner, depth + 1
    return None


def _deep_path(obj: Any, depth: int) -> list[Any]:
    """The keys down to a container ``depth`` levels below ``obj`` (one that `_too_deep` found)."""
    path: list[Any] = []
    for _ in range(depth):
        for key, v in obj.items() if type(obj) is dict else enumerate(obj):
            if (type(v) is dict or type(v) is list) and _reaches(v, depth - len(path) - 1):
                path.append(key)
                obj = v
                break
    return path


def _reaches(obj: Any, depth: int) -> bool:
    level = [obj]
    for _ in range(depth):
        level = [x for v in level for x in (v.values() if type(v) is dict else v) if type(x) is dict or type(x) is list]
        if not level:
            return False
    return True


def _excerpt(value: Any) -> str:
    """A short description of a value read from a line (never the whole of a long one)."""
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object with {len(value)} field{'s' * (len(value) != 1)}"
    text = repr(value)
    return text[:40] + "..." if len(text) > 40 else text


def _explain(e: ValidationError) -> str:
    """A line's first problems, each as 'field: got what, expected what'."""
    errors = e.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        loc = _path(err["loc"]) or "the line"
        if err["type"] == "extra_forbidden":
            expected = "no such field in a record"
        elif err["type"] == "model_type":
            expected = "an object"
        else:
            expected = err["msg"].removeprefix("Input should be ")
        parts.append(f"{loc}: got {_excerpt(err.get('input'))}, expected {expected}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _path(keys: Sequence[Any]) -> str:
    """A dotted path, its middle elided past six keys."""
    keys = [str(k) for k in keys]
    return ".".join(keys if len(keys) <= 6 else [*keys[:4], "…", keys[-1]])


class RecordWriter:
    """Appends one line per episode to ``path`` and flushes it, so a crash loses at most the
    episode in flight (and, with `journal`, not even what a person said in it). The file is
    opened on the first line (nothing is created until something is written) and never
    truncated; the writer may be shared between threads and between envs (a vector env's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0  # episodes written (journal lines not counted)
        self._f: IO[str] | None = None
        self._lock = threading.Lock()
        self._written: weakref.WeakSet[Episode] = weakref.WeakSet()

    def write(self, ep_or_record: Episode | Record, **extra: Any) -> None:
        """Append an episode (one that has not ended is recorded as `ABORTED`) or a record;
        ``extra``: `Record.of`'s ``abort_cause`` and ``people``, for an episode."""
        if isinstance(ep_or_record, Record):
            self._append(ep_or_record)
        else:
            self._append(Record.of(ep_or_record, **extra))
            self._written.add(ep_or_record)

    def write_once(self, ep: Episode, **extra: Any) -> bool:
        """`write` ``ep`` unless this writer already has; True if it wrote it now."""
        with self._lock:
            if ep in self._written:
                return False
            self._written.add(ep)
        self.write(ep, **extra)
        return True

    def journal(self, ep: Episode, **extra: Any) -> None:
        """Append ``ep`` as it stands, provisionally (see the module's doc): call it after each
        move that could not be played again from the seed (a person's). ``extra``: as `write`'s."""
        self._append(Record.of(ep, journal=True, **extra))

    def _append(self, record: Record) -> None:
        line = record.to_json() + "\n"
        with self._lock:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "a", encoding="utf-8")
            self._f.write(line)
            self._f.flush()
            self.count += not record.journal

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Records(list):
    """What `read_records` returns: the records (a list), and ``skipped``, the (line number, why)
    of every line that could not be used."""

    skipped: list[tuple[int, str]]

    def __init__(self, records: Sequence[Record] = (), skipped: Sequence[tuple[int, str]] = ()):
        super().__init__(records)
        self.skipped = list(skipped)


def read_records(path: str | Path, on_error: Callable[[int, str], None] | None = None) -> Records:
    """Every usable record in ``path``, in file order; each unusable line (not UTF-8, not JSON,
    not a record of the expected shape, longer than `MAX_LINE_BYTES`, nested past `MAX_DEPTH`)
    is skipped, reported as (line number, why) to ``on_error`` and kept in the result's
    ``skipped``. A UTF-8 byte-order mark before a line is ignored. A journal line that a later
    line of its episode replaces is left out; one that nothing replaces is kept (ended `ABORTED`,
    ``journal`` set)."""
    records: list[Record | None] = []
    skipped: list[tuple[int, str]] = []
    journals: dict[tuple[str, int], list[int]] = {}  # (scenario name, seed) -> indexes of journal lines not yet replaced
    with open(path, "rb") as f:
        for lineno, raw in _lines(f):
            try:
                text = _decode(raw)
                if not text.strip():
                    continue
                rec = Record.from_json(text, lineno)
            except ValueError as e:  # RecordError, ScenarioError
                why = "; ".join(part.strip() for part in str(e).splitlines()) or type(e).__name__
                skipped.append((lineno, why))
                if on_error is not None:
                    on_error(lineno, why)
                continue
            key = (rec.scenario.name, rec.seed)
            pending = journals.get(key, [])
            for i in [i for i in pending if rec.continues(records[i])]:
                records[i] = None
                pending.remove(i)
            if rec.journal:
                journals.setdefault(key, []).append(len(records))
            records.append(rec)
    return Records([r for r in records if r is not None], skipped)


def _lines(f: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each line of ``f``; None for a line longer than `MAX_LINE_BYTES`,
    which is passed over in pieces, never held whole."""
    lineno = 0
    while line := f.readline(MAX_LINE_BYTES + 1):
        lineno += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield lineno, None
        else:
            yield lineno, line


def _decode(raw: bytes | None) -> str:
    if raw is None:
        raise RecordError(f"line longer than {MAX_LINE_BYTES} bytes, passed over unread")
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"not UTF-8 text: byte 0x{raw[e.start]:02x} at column {e.start + 1}") from None


def resubmit(ep: Episode, messages: Sequence[Message]) -> Iterator[StepResult]:
    """Submit recorded messages to ``ep`` again, in order, yielding each step's result: every
    utterance for its role (feedback with its recorded kind and labels, a user's leaving too);
    the env's own notes are regenerated."""
    for m in messages:
        if m.role == "env":
            continue
        leaves = bool(m.labels.get("leaves"))
        text: str | Utterance = Utterance(m.text, m.feedback, leaves) if m.feedback or leaves else m.text
        yield ep.submit(m.role, text, source=m.labels.get("source"))


def rebuild(record: Record) -> Episode:
    """Replay a record through a fresh engine (which proves the record is faithful)."""
    ep = Episode(record.scenario, record.seed, member=record.member)
    for _ in resubmit(ep, record.messages):
        pass
    return ep


# ---------------------------------------------------------------------- the faces' wrappers
class _Recorded:
    """What both faces' wrappers do: hold the writer, append the wrapped env's episode once it
    has ended, and close the writer with the env when they opened it."""

    def _record_to(self, record: RecordWriter | str | Path) -> None:
        self._owns = not isinstance(record, RecordWriter)
        self.writer = RecordWriter(record) if self._owns else record

    def _settle(self) -> None:
        ep = self.env.unwrapped.episode
        if ep is not None and ep.done:
            self.writer.write_once(ep)

    def close(self) -> None:
        super().close()
        if self._owns:
            self.writer.close()


class RecordEpisodes(_Recorded, gym.Wrapper):
    """Appends each episode of a `FeedbackEnv` (``feedbackgym.make``'s env) to a record once it
    has ended, and only then: an episode left by ``reset`` before its end is not written.

        env = RecordEpisodes(feedbackgym.make("feedbackgym/JudgedQA-v0"), "runs/episodes.jsonl")
        envs = gym.make_vec("feedbackgym/JudgedQA-v0", 4, "sync", wrappers=[lambda e: RecordEpisodes(e, writer)])

    ``record``: a path (the wrapper opens it and closes it with the env) or a `RecordWriter` to
    share (between the envs of a vector env; its owner closes it). Observations, rewards and
    infos pass through unchanged; `read_records` and `rebuild` bring the episodes back."""

    def __init__(self, env: gym.Env, record: RecordWriter | str | Path):
        super().__init__(env)
        self._record_to(record)

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._settle()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._settle()
        return out


class RecordAECEpisodes(_Recorded, BaseWrapper):
    """`RecordEpisodes` for the PettingZoo face (``feedbackgym.make_multiagent``'s AEC env):
    each episode is appended once it has ended, and only then.

        env = RecordAECEpisodes(feedbackgym.make_multiagent("feedbackgym/JudgedQA-v0"), "runs/episodes.jsonl")
    """

    def __init__(self, env, record: RecordWriter | str | Path):
        super().__init__(env)
        self._record_to(record)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        super().reset(seed=seed, options=options)
        self._settle()

    def step(self, action) -> None:
        super().step(action)
        self._settle()
