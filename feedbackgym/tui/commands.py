"""The terminal UI's commands: ``tui``, ``play`` and the terminal face of ``replay``.

    feedbackgym tui [--scenario S] [--replay PATH] [--record PATH]
    feedbackgym play judged_qa_critic --as critic [--seed N] [--record PATH]
    feedbackgym replay runs/a.jsonl        (on a terminal; --plain prints text)

Played episodes are appended to ``--record`` (default ``runs/tui.jsonl``; ``none`` keeps nothing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feedbackgym.envs.scenario import ROLES, ScenarioError, load_scenario
from feedbackgym.records import read_records

DEFAULT_RECORD = "runs/tui.jsonl"


def add_parsers(sub: "argparse._SubParsersAction") -> None:
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


def _record_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", metavar="PATH", default=DEFAULT_RECORD, help=f"append played episodes here (default {DEFAULT_RECORD}; 'none': keep nothing)")


def _recorder(path: str):
    from feedbackgym.tui.session import Recorder

    return Recorder(None if path == "none" else path)


def cmd_tui(args) -> int:
    from feedbackgym.tui.app import FeedbackGymApp

    if args.scenario:
        load_scenario(args.scenario)  # refuse an unknown name before the screen opens
    if args.replay:
        return open_replay(args.replay, recorder=_recorder(args.record), scenario=args.scenario)
    FeedbackGymApp(_recorder(args.record), args.scenario).run()
    return 0


def cmd_play(args) -> int:
    from feedbackgym.tui.app import FeedbackGymApp
    from feedbackgym.tui.live import LiveScreen
    from feedbackgym.tui.session import Setup

    sc = load_scenario(args.scenario)
    speaking = set(sc.protocol.order) | set(sc.protocol.final)
    if args.role not in speaking:
        raise ScenarioError(f"scenario {sc.name!r} has no {args.role} turn; its roles: {', '.join(sorted(speaking))}")
    recorder = _recorder(args.record)
    screen = LiveScreen(Setup.of(sc, args.seed, {args.role: "human"}), recorder)
    FeedbackGymApp(recorder, sc.name, first=screen).run()
    return 0


def open_replay(path: str | Path, episode: int | None = None, **app_args) -> int:
    """Browse the recording at ``path`` (opening ``episode``); 1 if it holds no episode, 2 if
    ``episode`` is out of range. ``app_args`` go to `FeedbackGymApp` (episodes played from its
    home screen are recorded to the default record unless ``recorder`` says otherwise)."""
    from feedbackgym.tui.app import FeedbackGymApp
    from feedbackgym.tui.replay import ReplayScreen

    try:
        records = read_records(path, on_error=lambda n, why: print(f"{path}:{n}: skipped: {why}", file=sys.stderr))
    except OSError as e:
        print(f"{path}: cannot read ({e.strerror})", file=sys.stderr)
        return 1
    if not records:
        print(f"{path}: no episodes to replay", file=sys.stderr)
        return 1
    if episode is not None and not -len(records) <= episode < len(records):
        print(f"episode {episode}: the file has {len(records)} episodes (0..{len(records) - 1})", file=sys.stderr)
        return 2
    app_args.setdefault("recorder", _recorder(DEFAULT_RECORD))
    FeedbackGymApp(first=ReplayScreen(path, records, episode), **app_args).run()
    return 0
