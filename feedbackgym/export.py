"""Records as datasets that training tools read: Hugging Face datasets, Parquet, chat for SFT, Minari.

    feedbackgym export runs/a.jsonl --to hf runs/a_hf              # datasets.load_dataset("runs/a_hf")
    feedbackgym export runs/a.jsonl --to parquet runs/a.parquet    # pyarrow.parquet.read_table(...)
    feedbackgym export runs/a.jsonl --to chat runs/a_chat.jsonl    # TRL's SFT "messages" format
    feedbackgym export runs/a.jsonl --to minari feedbackgym/guess_number/expert-v0   # minari.load_dataset(...)

A records file may mix task families, whose params, metrics and hidden state differ in shape;
``datasets.load_dataset("json")`` on the records themselves then fails. ``hf`` and ``parquet``
write one row per episode under one fixed schema (`arrow_schema`, the same for every family):
what varies in shape (task params, labels, metrics, hidden state, usage) is JSON text, messages
are a list of structs with fixed fields, returns a list of (role, value). ``hf`` is a folder:
``episodes.jsonl`` and a dataset card (``README.md``) that declares those features, so that
``load_dataset(OUT)`` reads the declared types instead of guessing them (a column null in every
row of one file would otherwise come back of type null); ``parquet`` is one file written by
pyarrow with the schema.

``chat`` replays each episode through a fresh engine (`records.resubmit`) and, at each turn a
seat spoke, takes the chat a model in that seat was prompted with (`prompts.view_chat`: the
same for an embedded LM, a served model and ``obs_format="messages"``), followed by what the
seat said as the assistant's message: one JSON object per line with a ``messages`` key, TRL's
conversational format. ``--per episode`` writes one conversation per (episode, seat) instead.

``minari`` replays each episode through the Gymnasium face with one seat as the learner, in the
candidate-action view (`CandidateActions`: action ``i`` says the ``i``-th candidate; a move said
in other words is the candidate the task reads as the same move), and writes the observations,
actions and rewards as a Minari dataset (arrow storage; text observations, or ``--embed
hashing`` for `EmbedObservation`'s arrays). An episode whose learner said something no candidate
means, whose other seats are not scripted (they are replayed by playing them again from the
seed), or whose replay departs from the record is skipped with the reason.

Lines of the records file that cannot be read are skipped and reported with their line numbers
(`records.read_records`); so is every skipped episode. The optional packages come with the
``export`` extra (``pip install 'feedbackgym[export]'``) and are imported only when used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedbackgym.agents.prompts import view_chat
from feedbackgym.core import TASKS, plain
from feedbackgym.encoders import HashingEmbedder
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.registration import make
from feedbackgym.envs.wrappers import CandidateActions, EmbedObservation
from feedbackgym.learners.args import field_docs
from feedbackgym.records import Record, read_records, resubmit

FORMATS = ("hf", "parquet", "chat", "minari")
#: the files of an ``hf`` export folder
HF_DATA, HF_CARD = "episodes.jsonl", "README.md"
#: the per-episode metrics that every family reports, kept as typed columns besides ``metrics``
COMMON_METRICS = {"success": bool, "n_turns": int, "n_invalid": int}


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says what to do instead."""


@dataclass
class Args:
    """`export`'s arguments (the command line's flags)."""

    records: str
    """the records file (JSON Lines, as `run --record`, `train` and the terminal UI write)"""
    to: str
    """the format: hf, parquet, chat or minari"""
    out: str
    """the folder (hf), the file (parquet, chat) or the Minari dataset id (minari)"""
    force: bool = False
    """replace OUT if it exists (hf: its two files; minari: the dataset of that id)"""
    seats: tuple[str, ...] = ()
    """chat: the seats to write (default every seat that spoke); minari: the learner's seat (default the actor)"""
    per: str = "turn"
    """chat: one conversation per seat turn ('turn') or per episode and seat ('episode')"""
    embed: str = "none"
    """minari: 'none' (text observations) or 'hashing' (`EmbedObservation` over `HashingEmbedder`)"""
    embed_dim: int = 256
    """minari: the embedding size with --embed hashing"""


@dataclass
class Report:
    """What an export wrote and what it left out."""

    out: str
    written: int = 0
    """rows (hf, parquet), conversations (chat) or episodes (minari) written"""
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, why) of each line of the records file that could not be read"""
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """(line number, why) of each episode read but not exported"""


def export(args: Args, on_error=None) -> Report:
    """Write ``args.records`` to ``args.out`` in ``args.to``'s format; ``on_error(line, why)``
    hears each unreadable line as it is met."""
    if args.to not in FORMATS:
        raise ExportError(f"unknown format {args.to!r}: expected one of {', '.join(FORMATS)}")
    if args.per not in ("turn", "episode"):
        raise ExportError(f"--per {args.per!r}: expected turn or episode")
    if args.embed not in ("none", "hashing"):
        raise ExportError(f"--embed {args.embed!r}: expected none or hashing")
    if args.to == "minari" and len(args.seats) > 1:
        raise ExportError(f"--seat given {len(args.seats)} times: a Minari dataset has one learner seat")
    if args.to != "minari":
        _check_out(Path(args.out), args.force, folder=args.to == "hf")
    records = read_records(args.records, on_error)
    report = Report(args.out, bad_lines=list(records.skipped))
    if args.to == "hf":
        report.written = write_hf(map(episode_row, records), Path(args.out))
    elif args.to == "parquet":
        report.written = write_parquet(map(episode_row, records), Path(args.out))
    elif args.to == "chat":
        report.written = write_jsonl(chat_rows(records, args.seats, args.per, report.skipped), Path(args.out))
    else:
        report.written = write_minari(records, args, report.skipped)
    return report


def _check_out(out: Path, force: bool, folder: bool) -> None:
    if folder:
        if out.exists() and not out.is_dir():
            raise ExportError(f"{out} is a file; the hf format writes a folder")
        taken = [p.name for p in (out / HF_DATA, out / HF_CARD) if p.exists()]
        if taken and not force:
            raise ExportError(f"{out} already holds {', '.join(taken)}: pass --force to replace them")
    elif out.is_dir():
        raise ExportError(f"{out} is a folder; this format writes one file")
    elif out.exists() and not force:
        raise ExportError(f"{out} exists: pass --force to replace it")


# ---------------------------------------------------------------------- one row per episode
def arrow_schema():
    """The schema of an episode row (`episode_row`), the same for every task family."""
    pa = _need("pyarrow")
    text, jsontext = pa.string(), pa.string()
    feedback = pa.struct([("kind", text), ("text", text), ("score", pa.float64()), ("labels", jsontext)])
    message = pa.struct([
        ("turn", pa.int32()), ("role", text), ("kind", text), ("text", text), ("labels", jsontext), ("feedback", feedback),
    ])  # fmt: skip
    seat = pa.struct([("role", text), ("agent", text), ("sha256", text), ("model", text), ("base_url", text)])
    provenance = pa.struct([("feedbackgym", text), ("scenario_sha256", text), ("seats", pa.list_(seat))])
    return pa.schema([
        ("record_schema", pa.int32()), ("line", pa.int64()), ("scenario", text), ("family", text),
        ("task_params", jsontext), ("scenario_json", jsontext), ("seed", pa.int64()),
        ("messages", pa.list_(message)), ("returns", pa.list_(pa.struct([("role", text), ("value", pa.float64())]))),
        ("terminate_reason", text), ("success", pa.bool_()), ("n_turns", pa.int64()), ("n_invalid", pa.int64()),
        ("metrics", jsontext), ("hidden", jsontext), ("usage", jsontext), ("people", jsontext),
        ("journal", pa.bool_()), ("abort_cause", text), ("provenance", provenance),
    ])  # fmt: skip


def features():
    """`arrow_schema` as `datasets.Features` (``load_dataset("json", data_files=..., features=features())``)."""
    return _need("datasets").Features.from_arrow_schema(arrow_schema())


def episode_row(rec: Record) -> dict[str, Any]:
    """One episode as a row of `arrow_schema`: plain Python values, every string valid UTF-8."""
    sc = rec.scenario
    prov = rec.provenance
    if prov is not None:
        seats = [{"role": r, **{k: s.get(k) for k in ("agent", "sha256", "model", "base_url")}} for r, s in prov["seats"].items()]
        prov = {"feedbackgym": prov["feedbackgym"], "scenario_sha256": prov["scenario_sha256"], "seats": seats}
    row = {
        "record_schema": 1,
        "line": rec.line,
        "scenario": sc.name,
        "family": sc.task.family,
        "task_params": _json(sc.task.params),
        "scenario_json": _json(sc.model_dump(mode="json")),
        "seed": rec.seed,
        "messages": [_message(m.to_dict()) for m in rec.messages],
        "returns": [{"role": r, "value": float(v)} for r, v in rec.returns.items()],
        "terminate_reason": rec.terminate_reason,
        **{k: _typed(rec.metrics.get(k), t) for k, t in COMMON_METRICS.items()},
        "metrics": _json(rec.metrics),
        "hidden": _json(rec.hidden),
        "usage": _json(rec.usage),
        "people": _json(rec.people),
        "journal": rec.journal,
        "abort_cause": rec.abort_cause,
        "provenance": prov,
    }
    return _utf8(row)


def _message(d: dict[str, Any]) -> dict[str, Any]:
    fb = d["feedback"]
    if fb is not None:
        fb = {"kind": fb["kind"], "text": fb["text"], "score": fb["score"], "labels": _json(fb["labels"])}
    return {"turn": d["turn"], "role": d["role"], "kind": d["kind"], "text": d["text"], "labels": _json(d["labels"]), "feedback": fb}


def _typed(value: Any, kind: type) -> Any:
    """``value`` if it is of ``kind`` (an int is no bool here), else None."""
    return value if type(value) is kind else None


def _json(value: Any) -> str:
    """JSON text of a value whose shape varies by family (keys sorted); a lone surrogate, which
    a Text action may carry, is written as its escape (JSON reads it back as it was)."""
    try:
        return json.dumps(plain(value), ensure_ascii=False, sort_keys=True).encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(plain(value), ensure_ascii=True, sort_keys=True)


def _utf8(obj: Any) -> Any:
    """``obj`` with every string made valid UTF-8: a lone surrogate becomes its ``\\udXXX``
    escape as text (Arrow strings are UTF-8; JSON text fields keep theirs, see `_json`)."""
    if isinstance(obj, str):
        return obj if obj.isascii() or not _has_surrogate(obj) else obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(obj, dict):
        return {k: _utf8(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_utf8(v) for v in obj]
    return obj


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def write_jsonl(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """One JSON object per line, to ``out`` (written beside it, then moved in place); the count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, out)
    return n


def write_hf(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """A Hugging Face dataset folder: ``episodes.jsonl`` and a card declaring `features`."""
    n = write_jsonl(rows, out / HF_DATA)
    (out / HF_CARD).write_text(dataset_card(), encoding="utf-8")
    return n


def dataset_card() -> str:
    """The ``README.md`` of an hf export: YAML metadata (the features, the one split) and what the columns hold."""
    hub = _need("huggingface_hub")
    ds = _need("datasets")
    data = hub.DatasetCardData()
    ds.info.DatasetInfosDict({"default": ds.DatasetInfo(features=features())}).to_dataset_card_data(data)
    ds.utils.metadata.MetadataConfigs({"default": {"data_files": [{"split": "train", "path": HF_DATA}]}}).to_dataset_card_data(data)
    return (
        f"---\n{data.to_yaml()}\n---\n# feedbackgym episodes\n\n"
        "One row per recorded episode, exported by `feedbackgym export --to hf`. The schema is the same for "
        "every task family: task params, labels, metrics, hidden state, usage and people are JSON text; see "
        "docs/export.md in feedbackgym.\n"
    )


def write_parquet(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """One Parquet file under `arrow_schema`; the count of rows."""
    pa = _need("pyarrow")
    pq = _need("pyarrow.parquet")
    table = pa.Table.from_pylist(list(rows), schema=arrow_schema())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return table.num_rows


# ---------------------------------------------------------------------- chat (SFT)
def chat_rows(records: Sequence[Record], seats: Sequence[str], per: str, skipped: list[tuple[int, str]]) -> Iterator[dict[str, Any]]:
    """The conversations of `export`'s ``chat`` format, each episode replayed; an episode that
    cannot be replayed goes to ``skipped`` as (line, why)."""
    for rec in records:
        try:
            turns = seat_chats(rec)
        except ReplayError as e:
            skipped.append((rec.line, str(e)))
            continue
        chosen = [t for t in turns if not seats or t[0] in seats]
        if per == "episode":  # the seat's last chat holds every earlier utterance of it
            last = {role: (role, turn, chat) for role, turn, chat in chosen}
            chosen = list(last.values())
        for role, turn, chat in chosen:
            yield _utf8({
                "messages": chat, "seat": role, "agent": rec.scenario.roles[role].agent, "turn": turn,
                "scenario": rec.scenario.name, "family": rec.scenario.task.family, "seed": rec.seed, "line": rec.line,
                "seat_return": float(rec.returns.get(role, 0.0)), "success": _typed(rec.metrics.get("success"), bool),
            })  # fmt: skip


class ReplayError(ValueError):
    """A record whose episode does not come back as recorded."""


def seat_chats(rec: Record) -> list[tuple[str, int, list[dict[str, str]]]]:
    """(role, turn, chat) for each message a seat said in ``rec``: the chat its model would have
    been prompted with at that turn (`view_chat`), then what it said, as the assistant."""
    ep = Episode(rec.scenario, rec.seed)
    steps = resubmit(ep, rec.messages)
    out = []
    for m in rec.messages:
        if m.role == "env":
            continue
        if ep.current_role() != m.role:
            raise ReplayError(f"turn {m.turn}: recorded {m.role}, but the replay has {ep.current_role()} due")
        chat = view_chat(ep.view(m.role))
        next(steps)
        out.append((m.role, m.turn, [*chat, {"role": "assistant", "content": m.text}]))
    _same_log(ep, rec)
    return out


def _same_log(ep: Episode, rec: Record, same=None) -> None:
    """Raise `ReplayError` at the first turn where the replay's log departs from the record's;
    ``same(got, want)``: whether two messages agree (default: same role, same text)."""
    same = same or (lambda g, w: (g.role, g.text) == (w.role, w.text))
    for g, w in zip(ep.log, rec.messages):
        if not same(g, w):
            raise ReplayError(f"turn {g.turn}: the replay has {g.role} saying {g.text[:60]!r}, the record {w.role} saying {w.text[:60]!r}")
    if len(ep.log) != len(rec.messages):
        raise ReplayError(f"the replay has {len(ep.log)} messages, the record {len(rec.messages)}")


# ---------------------------------------------------------------------- minari
def write_minari(records: Sequence[Record], args: Args, skipped: list[tuple[int, str]]) -> int:
    """The candidate-action view of ``records`` as the Minari dataset ``args.out`` (under
    ``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``); the count of episodes."""
    minari = _need("minari")
    _need("pyarrow")
    try:
        _need("minari.dataset.minari_dataset").parse_dataset_id(args.out)
    except ValueError:
        raise ExportError(f"{args.out!r} is not a Minari dataset id: expected (namespace/)name-vN, a namespace of 2 or more characters") from None
    if args.out in minari.list_local_datasets():
        if not args.force:
            raise ExportError(f"the Minari dataset {args.out} exists: pass --force to replace it")
        with contextlib.redirect_stdout(sys.stderr):  # minari prints that it deleted it
            minari.delete_dataset(args.out)
    env, first, buffers, agents = None, None, [], set()
    for rec in records:
        seat = args.seats[0] if args.seats else _default_seat(rec)
        try:
            scenario = _learner_scenario(rec, seat)
            if first is None:
                first, env = (rec.line, scenario, seat), _view(scenario, args)
            elif scenario != first[1]:
                raise ReplayError(f"its scenario ({scenario.name}, seat {seat}) differs from line {first[0]}'s: a Minari dataset holds one env")
            buffers.append(_replay_candidates(env, rec, seat, len(buffers)))
            agents.add(rec.scenario.roles[seat].agent)
        except ReplayError as e:
            skipped.append((rec.line, str(e)))
            if not buffers and env is not None:  # the dataset's env is that of its first episode written
                env.close()
                first = env = None
    if not buffers:
        raise ExportError(f"no episode could be replayed in the candidate view ({len(skipped)} skipped), so no dataset was written")
    view = "CandidateActions" + (f", EmbedObservation(HashingEmbedder({args.embed_dim}))" if args.embed != "none" else "")
    about = (
        f"feedbackgym {first[1].name}: the {first[2]} seat in the candidate-action view (feedbackgym.envs.wrappers: {view}), "
        f"replayed from {Path(args.records).name}; infos['candidates'][t]: the JSON list of what each action says at step t; "
        "infos['said'][t]: what the record says"
    )
    spec = _spec(env, args)
    with warnings.catch_warnings():  # minari's advice to name an author, an e-mail, a code link: not known here
        warnings.filterwarnings("ignore", category=UserWarning, module="minari")
        minari.create_dataset_from_buffers(
            args.out, buffers, env=spec, eval_env=spec, action_space=env.action_space, observation_space=env.observation_space,
            algorithm_name=", ".join(sorted(agents)), description=about, data_format="arrow",
        )  # fmt: skip
    env.close()
    return len(buffers)


def _default_seat(rec: Record) -> str:
    movers = TASKS[rec.scenario.task.family].movers
    return "actor" if "actor" in movers else movers[0]


def _learner_scenario(rec: Record, seat: str):
    """``rec``'s scenario with ``seat`` played by the learner; every other seat must be scripted
    (replayed by playing it again from the seed)."""
    roles = rec.scenario.roles
    if seat not in roles:
        raise ReplayError(f"no {seat} seat in scenario {rec.scenario.name} (seats: {', '.join(roles)})")
    others = {r: s.agent for r, s in roles.items() if r != seat and not s.agent.startswith("scripted:")}
    if others:
        raise ReplayError(f"seat(s) {others} are not scripted: only scripted seats replay from the seed")
    return rec.scenario.with_roles(**{seat: "learner"})


def _view(scenario, args: Args):
    env = CandidateActions(make(scenario))
    return EmbedObservation(env, HashingEmbedder(args.embed_dim)) if args.embed == "hashing" else env


def _spec(env, args: Args):
    """The env spec Minari keeps (``recover_environment``): the Gymnasium face with the
    candidate view as an additional wrapper; None with embeddings (an embedder is no JSON)."""
    if args.embed != "none":
        return None
    from copy import deepcopy

    from gymnasium.envs.registration import WrapperSpec

    spec = deepcopy(env.unwrapped.spec)
    spec.additional_wrappers = (WrapperSpec("CandidateActions", f"{CandidateActions.__module__}:CandidateActions", {}),)
    return spec


def _replay_candidates(env, rec: Record, seat: str, episode_id: int):
    """``rec``'s episode played again in the candidate view, the learner in ``seat`` choosing the
    candidate it said, or else the candidate the task reads as the same move (twenty_questions'
    "Is it able to fly?" is its candidate "Can it fly?"); a `minari.EpisodeBuffer`."""
    from minari.data_collector import EpisodeBuffer

    obs, _ = env.reset(seed=rec.seed)
    base = env.unwrapped
    if base.episode.seed != rec.seed:
        raise ReplayError(f"seed {rec.seed} ends before the {seat} speaks (the face redraws it)")
    instance = base.episode.instance
    said = iter([m for m in rec.messages if m.role == seat])
    cands = env.get_wrapper_attr("candidates")
    index = _candidate_index(instance, seat, cands)
    observations, actions, rewards, terms, truncs = [obs], [], [], [], []
    infos = {"candidates": [_json(cands)], "said": [""]}
    done = False
    while not done:
        m = next(said, None)
        if m is None:
            raise ReplayError(f"the record ends ({rec.terminate_reason}) while the replay waits for the {seat}")
        action = index.get(m.text, index.get(_move(instance, seat, m.text)))
        if action is None:
            raise ReplayError(f"turn {m.turn}: the {seat} said {m.text[:60]!r}, which is not one of the {len(cands)} candidates")
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        terms.append(bool(terminated))
        truncs.append(bool(truncated))
        infos["candidates"].append(_json(cands))
        infos["said"].append(m.text)
        done = terminated or truncated

    def same(g, w):  # the seat's moves by what they mean, the others' by their words
        return g.role == w.role and (g.text == w.text or g.role == seat and _move(instance, seat, g.text) == _move(instance, seat, w.text))

    _same_log(base.episode, rec, same)
    if isinstance(obs, dict):
        observations = {k: [o[k] for o in observations] for k in obs}
    return EpisodeBuffer(
        id=episode_id, seed=rec.seed, observations=observations, actions=actions, rewards=rewards,
        terminations=terms, truncations=truncs, infos=_utf8(infos),
    )  # fmt: skip


def _move(instance, seat: str, text: str):
    """The move ``text`` makes as the task reads it (kind, value), or None for an unreadable one."""
    parsed = instance.parse(seat, text)
    return (parsed.kind, parsed.value) if parsed.valid else None


def _candidate_index(instance, seat: str, cands: Sequence[str]) -> dict:
    """Each candidate's text, and the move it makes, to its action (the first candidate of a move)."""
    index: dict = {}
    for i, c in enumerate(cands):
        index.setdefault(c, i)
        move = _move(instance, seat, c)
        if move is not None:
            index.setdefault(move, i)
    return index


# ---------------------------------------------------------------------- helpers, command line
def _need(module: str):
    """Import an optional package of the ``export`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"this format needs {module.split('.')[0]}: pip install 'feedbackgym[export]'") from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``feedbackgym export RECORDS --to FORMAT OUT [--force] [--seat ROLE] [--per turn|episode] [--embed ...]``."""
    p = subparsers.add_parser("export", help="records as a dataset: hf, parquet, chat (SFT) or minari", description=__doc__.split("\n\n")[0])
    p.add_argument("records", metavar="RECORDS", help=_doc("records"))
    p.add_argument("--to", required=True, choices=FORMATS, help=_doc("to"))
    p.add_argument("out", metavar="OUT", help=_doc("out"))
    p.add_argument("--force", action="store_true", help=_doc("force"))
    p.add_argument("--seat", dest="seats", action="append", default=[], metavar="ROLE", help=_doc("seats") + "; repeatable")
    p.add_argument("--per", choices=("turn", "episode"), default="turn", help=_doc("per"))
    p.add_argument("--embed", choices=("none", "hashing"), default="none", help=_doc("embed"))
    p.add_argument("--embed-dim", type=int, default=256, help=_doc("embed_dim"))
    p.set_defaults(func=cmd_export)
    return p


def _doc(name: str) -> str:
    return field_docs(Args).get(name, "")


def cmd_export(ns: argparse.Namespace) -> int:
    args = Args(ns.records, ns.to, ns.out, ns.force, tuple(ns.seats), ns.per, ns.embed, ns.embed_dim)
    report = export(args, on_error=lambda line, why: print(f"feedbackgym export: {args.records}:{line}: skipped: {why}", file=sys.stderr))
    for line, why in report.skipped:
        print(f"feedbackgym export: {args.records}:{line}: episode skipped: {why}", file=sys.stderr)
    what = {"chat": "conversations", "minari": "episodes"}.get(args.to, "episodes")
    left = f"; {len(report.bad_lines)} unreadable line(s) and {len(report.skipped)} episode(s) skipped" if report.bad_lines or report.skipped else ""
    print(f"wrote {report.written} {what} to {args.out} ({args.to}){left}")
    return 0
