"""The terminal UI's commands: ``tui``, ``play`` and the terminal face of ``replay``.

    feedbackgym tui [--scenario S] [--replay PATH] [--record PATH]
    feedbackgym play judged_qa_critic --as critic [--seed N] [--record PATH]
    feedbackgym replay runs/a.jsonl        (on a terminal; --plain prints text)
    feedbackgym recover runs/tui.journal.jsonl [--record PATH]

Played episodes are appended to ``--record`` (default ``runs/tui.jsonl``; ``none`` keeps nothing),
a person's turns to the journal beside it (`feedbackgym.tui.journal`); ``recover`` rebuilds
every branch of a journal and appends to the record those it does not hold, as aborted.
SIGTERM and SIGHUP end the UI cleanly: the episode in play is recorded as aborted with the
signal as its cause, and the terminal is restored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from feedbackgym.envs.scenario import ROLES, ScenarioError, load_scenario
from feedbackgym.records import Record, RecordWriter, read_records

DEFAULT_RECORD = "runs/tui.jsonl"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``tui`` and ``play`` to the ``feedbackgym`` command's subparsers."""
    t = sub.add_parser("tui", help="the terminal UI: play, take a seat, replay recordings")
    t.add_argument("--scenario", help="the scenario the home screen starts on")
    t.add_argument("--replay", metavar="PATH", help="open this recording")
    _record_arg(t)
    t.set_defaults(func=cmd_tui)

    p = sub.add_parser("play", help="play one role of a scenario yourself, in the terminal UI")
    p.add_argument("scenario")
    p.add_argument("--as", dest="role", required=True, choices=ROLES, help="the role you play")
    p.add_argument("--seed", type=int, default=0)
    _record_arg(p)
    p.set_defaults(func=cmd_play)

    r = sub.add_parser("recover", help="rebuild a person's episodes from a TUI journal into its record")
    r.add_argument("journal", help="the journal, e.g. runs/tui.journal.jsonl")
    r.add_argument("--record", metavar="PATH", help="append here (default: the record the journal lies beside)")
    r.set_defaults(func=cmd_recover)


def _record_arg(parser: argparse.ArgumentParser) -> None:
    help = f"append played episodes here (default {DEFAULT_RECORD}; 'none': keep nothing)"
    parser.add_argument("--record", metavar="PATH", default=DEFAULT_RECORD, help=help)


@contextmanager
def recording(path: str) -> Iterator[RecordWriter | None]:
    """The writer for ``--record PATH`` (None for ``none``), closed when the UI is left."""
    writer = None if path == "none" else RecordWriter(path)
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()


def cmd_tui(args) -> int:
    from feedbackgym.tui.app import FeedbackGymApp

    if args.scenario:
        load_scenario(args.scenario)  # refuse an unknown name before the screen opens
    if args.replay:
        return open_replay(args.replay, record=args.record, scenario=args.scenario)
    with recording(args.record) as writer:
        return _run(FeedbackGymApp(writer, args.scenario))


def cmd_play(args) -> int:
    from feedbackgym.tui.app import FeedbackGymApp
    from feedbackgym.tui.live import LiveScreen
    from feedbackgym.tui.session import Setup

    sc = load_scenario(args.scenario)
    speaking = set(sc.protocol.order) | set(sc.protocol.final)
    if args.role not in speaking:
        raise ScenarioError(f"scenario {sc.name!r} has no {args.role} turn; its roles: {', '.join(sorted(speaking))}")
    with recording(args.record) as writer:
        screen = LiveScreen(Setup.of(sc, args.seed, {args.role: "human"}), writer)
        return _run(FeedbackGymApp(writer, sc.name, first=screen))


def _run(app) -> int:
    """Run ``app``; its exit status (128 + the signal's number after a SIGTERM or SIGHUP)."""
    app.run()
    return app.return_code or 0


def cmd_recover(args) -> int:
    from feedbackgym.tui.journal import read_journal, record_path, recover

    path = Path(args.journal)
    if not path.is_file():
        print(f"{path}: no such journal", file=sys.stderr)
        return 1
    read_journal(path, on_error=lambda n, why: print(f"{path}:{n}: skipped: {why}", file=sys.stderr))
    record = Path(args.record) if args.record else record_path(path)
    results = recover(path, record)
    for branch, rec, new in results:
        people = len(branch.turns)
        state = "appended" if new else "already in the record"
        why = f", {branch.broken}" if branch.broken else ""
        print(f"branch {branch.id}: seed {rec.seed}, {len(rec.messages)} messages, {people} by a person{why}: {state}")
    print(f"{sum(new for *_, new in results)} of {len(results)} branches appended to {record}")
    return 0


def read_recording(path: str | Path, episode: int | None = None) -> tuple[list[Record], int]:
    """The records of ``path`` and 0, each line that cannot be used reported on stderr, then how
    many there were (the records keep them, `Records.skipped`, for the replay browser); or no
    records and the exit status that says why there is nothing to show: 1 (unreadable, or no
    episode in it), 2 (``episode`` is out of range)."""
    try:
        records = read_records(path, on_error=lambda n, why: print(f"{path}:{n}: skipped: {why}", file=sys.stderr))
    except OSError as e:
        print(f"{path}: cannot read ({e.strerror})", file=sys.stderr)
        return [], 1
    if records.skipped:  # the count last, where it is seen after the lines it sums up
        print(f"{path}: {len(records.skipped)} line{'s' * (len(records.skipped) != 1)} skipped", file=sys.stderr)
    if not records:
        print(f"{path}: no episodes to replay", file=sys.stderr)
        return [], 1
    if episode is not None and not -len(records) <= episode < len(records):
        print(f"episode {episode}: the file has {len(records)} episodes (0..{len(records) - 1})", file=sys.stderr)
        return [], 2
    return records, 0


def open_replay(path: str | Path, episode: int | None = None, record: str = DEFAULT_RECORD, scenario: str | None = None) -> int:
    """Browse the recording at ``path`` (opening ``episode``); the exit status of
    `read_recording` if there is nothing to show. Episodes played from the app's home screen
    (its highlighted ``scenario``) are appended to ``record`` (``none``: kept nowhere)."""
    from feedbackgym.tui.app import FeedbackGymApp
    from feedbackgym.tui.replay import ReplayScreen

    records, status = read_recording(path, episode)
    if status:
        return status
    with recording(record) as writer:
        return _run(FeedbackGymApp(writer, scenario, first=ReplayScreen(path, records, episode)))
