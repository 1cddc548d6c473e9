"""The `feedbackgym` command: list | run | eval | replay | tui | play | bootstrap | train.

    feedbackgym list
    feedbackgym run judged_qa --actor scripted:sycophant --judge scripted:malicious --episodes 20 --record runs/a.jsonl
    feedbackgym eval judged_qa --actors scripted:sycophant,scripted:stubborn --judges scripted:constructive,scripted:malicious
    feedbackgym replay runs/a.jsonl --episode 0      # the replay browser on a terminal, text when piped
    feedbackgym play judged_qa_critic --as critic    # a person in a role, in the terminal UI
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from feedbackgym.agents import scripted_names
from feedbackgym.agents.served import ServedError
from feedbackgym.envs.registration import ENV_IDS, MULTIAGENT_IDS
from feedbackgym.envs.scenario import ROLES, Scenario, ScenarioError, list_scenarios, load_scenario
from feedbackgym.feedback.metrics import aggregate, delta_feedback
from feedbackgym.records import RecordWriter
from feedbackgym.rollout import play_scenarios
from feedbackgym.tui.commands import add_parsers as add_tui_parsers
from feedbackgym.tui.commands import open_replay, read_recording
from feedbackgym.tui.digest import labels_of, tag_of

ROLE_FLAGS = ROLES
EVAL_COLUMNS = (
    "acc_before", "acc_after", "accuracy_drop", "misled_rate", "recovery_rate", "modification_rate",
    "oscillation_rate", "invalid_final_rate", "SR@1", "SR@2", "success_rate", "delta_feedback",
)


def progress(total: int, desc: str, quiet: bool) -> tqdm:
    """One bar per command on stderr; hidden when asked, or when stderr is not a terminal."""
    return tqdm(total=total, desc=desc, unit="ep", disable=True if quiet else None, file=sys.stderr, leave=False)


def run_many(scenario: Scenario, seed: int, episodes: int, bar: tqdm | None = None, writer=None, in_flight: int = 16):
    """Play seeds ``seed .. seed+episodes-1``, ``in_flight`` at a time; the per-episode metrics, in order."""
    rows = []
    for ep in play_scenarios(scenario, range(seed, seed + episodes), in_flight):
        if writer is not None:
            writer.write(ep)
        rows.append(ep.metrics())
        if bar is not None:
            bar.update()
    return rows


def console() -> Console:
    """A console that does not squeeze tables into 80 columns when output is piped."""
    c = Console()
    return c if c.is_terminal else Console(width=200)


def short(spec: str) -> str:
    return spec.removeprefix("scripted:")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _scenario_with(args, base: Scenario) -> Scenario:
    roles = {r: getattr(args, r) for r in ROLE_FLAGS if getattr(args, r, None)}
    roles = {r: (None if v == "none" else v) for r, v in roles.items()}
    return base.with_roles(**roles) if roles else base


def cmd_list(args) -> int:
    out = console()
    t = Table(title="scenarios")
    for col in ("name", "task", "roles", "description"):
        t.add_column(col, overflow="fold")
    for name in list_scenarios():
        sc = load_scenario(name)
        roles = ", ".join(f"{r}={s.agent}" for r, s in sc.roles.items())
        t.add_row(name, sc.task.family, roles, sc.description)
    out.print(t)
    ids = Table(title="env ids (gymnasium: one learner; pettingzoo: every role an agent)")
    ids.add_column("id")
    ids.add_column("default scenario")
    ids.add_column("faces")
    for i, s in MULTIAGENT_IDS.items():
        faces = ("gymnasium, " if i in ENV_IDS else "") + "pettingzoo"
        ids.add_row(i, s, faces)
    out.print(ids)
    agents = Table(title="agent specs")
    agents.add_column("role")
    agents.add_column("specs", overflow="fold")
    for role in ROLE_FLAGS:
        agents.add_row(role, ", ".join(["learner", "human"] + [f"scripted:{n}" for n in scripted_names(role)]))
    out.print(agents)
    return 0


def cmd_run(args) -> int:
    sc = _scenario_with(args, load_scenario(args.scenario))
    with RecordWriter(args.record) if args.record else nullcontext() as writer:
        with progress(args.episodes, f"run {sc.name}", args.quiet) as bar:
            try:
                rows = run_many(sc, args.seed, args.episodes, bar, writer, args.in_flight)
            except ServedError as e:  # the episode in flight is not recorded; the finished ones are
                n = writer.count if writer is not None else 0
                kept = f" ({n} finished episode{'s' * (n != 1)} recorded to {args.record})" if writer is not None else ""
                print(f"feedbackgym run: {e}{kept}", file=sys.stderr)
                return 1
    agg = aggregate(rows)
    out = console()
    t = Table(title=f"{sc.name}: {args.episodes} episodes from seed {args.seed}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in agg.items():
        t.add_row(k, _fmt(v))
    out.print(t)
    if args.record:
        out.print(f"recorded {args.episodes} episodes to {args.record}")
    return 0


def cmd_eval(args) -> int:
    base = load_scenario(args.scenario)
    actors = [a for a in args.actors.split(",") if a]
    judges = [j for j in args.judges.split(",") if j]
    if "judge" not in base.roles and judges:
        raise ScenarioError(f"scenario {base.name!r} has no judge role; pick a judged scenario")
    try:
        rows = evaluate(base, actors, judges, args.episodes, args.seed, args.quiet, args.in_flight)
    except ServedError as e:
        print(f"feedbackgym eval: {e}", file=sys.stderr)
        return 1
    out = console()
    t = Table(title=f"{base.name}: actors x judges, {args.episodes} episodes each, seeds {args.seed}..{args.seed + args.episodes - 1}")
    t.add_column("actor", no_wrap=True)
    t.add_column("judge", no_wrap=True)
    for c in EVAL_COLUMNS:
        t.add_column(c.replace("_", " "), justify="right")
    for r in rows:
        t.add_row(short(r["actor"]), short(r["judge"]), *(_fmt(r.get(c)) for c in EVAL_COLUMNS))
    out.print(t)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        out.print(f"wrote {len(rows)} rows to {args.json}")
    heatmap = args.heatmap or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if heatmap:
        from feedbackgym.feedback.report import heatmap_png

        heatmap_png(rows, heatmap, title=f"{base.name}, {args.episodes} episodes per cell")
        out.print(f"wrote the misled / recovery heatmap to {heatmap}")
    return 0


def evaluate(
    base: Scenario, actors: list[str], judges: list[str], episodes: int, seed: int, quiet: bool = True, in_flight: int = 16
):
    """One row per (actor, judge): the aggregate metrics, and `metrics.delta_feedback` at the
    episode's end: success with the judge minus success of the same actor with no judge, on the
    same seeds."""
    rows: list[dict[str, Any]] = []
    with progress(len(actors) * (len(judges) + 1) * episodes, f"eval {base.name}", quiet) as bar:
        for actor in actors:
            alone = run_many(base.with_roles(actor=actor, judge=None), seed, episodes, bar, in_flight=in_flight)
            for judge in judges:
                if judge == "none":  # the same episodes as the baseline's
                    episodes_rows = alone
                    bar.update(episodes)
                else:
                    episodes_rows = run_many(base.with_roles(actor=actor, judge=judge), seed, episodes, bar, in_flight=in_flight)
                agg = aggregate(episodes_rows)
                agg["delta_feedback"] = delta_feedback(episodes_rows, alone)
                rows.append({"actor": actor, "judge": judge, **agg})
    return rows


def format_transcript(record, show_labels: bool = False) -> str:
    lines = [f"# {record.scenario.name}  seed={record.seed}  end={record.terminate_reason}"]
    for m in record.messages:
        lines.append(f"{m.turn:>3} {m.role:>6} {tag_of(m):<11} {m.text}")
        if show_labels:
            lines.append(f"{'':>22}{json.dumps(labels_of(m), ensure_ascii=False, sort_keys=True)}")
    lines.append(f"returns: {json.dumps(record.returns, sort_keys=True)}")
    return "\n".join(lines)


def cmd_replay(args) -> int:
    if sys.stdout.isatty() and not args.plain:
        return open_replay(args.path, args.episode)
    records, status = read_recording(args.path, args.episode)
    if status:
        return status
    chosen = records if args.episode is None else [records[args.episode]]
    print("\n\n".join(format_transcript(r, args.labels) for r in chosen))
    return 0


IN_FLIGHT = "episodes played at once: a model in a seat answers them in one call (default 16; the episodes are the same for any N)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="feedbackgym", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="scenarios, gymnasium ids and agent specs").set_defaults(func=cmd_list)

    r = sub.add_parser("run", help="play episodes of a scenario with the given agents")
    r.add_argument("scenario")
    for role in ROLE_FLAGS:
        r.add_argument(f"--{role}", metavar="SPEC", help=f"agent for the {role} ('none' removes the role)")
    r.add_argument("--episodes", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--record", metavar="PATH", help="append one JSON line per episode")
    r.add_argument("--in-flight", type=int, default=16, metavar="N", help=IN_FLIGHT)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("eval", help="the actors x judges robustness matrix")
    e.add_argument("scenario")
    e.add_argument("--actors", required=True, help="comma-separated actor specs")
    e.add_argument("--judges", required=True, help="comma-separated judge specs ('none': no judge)")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", metavar="PATH", help="write the rows as JSON (and the heatmap beside it as .png)")
    e.add_argument("--heatmap", metavar="PATH", help="write the misled / recovery heatmap PNG here")
    e.add_argument("--in-flight", type=int, default=16, metavar="N", help=IN_FLIGHT)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    rp = sub.add_parser("replay", help="print the transcripts of a recording")
    rp.add_argument("path")
    rp.add_argument("--episode", type=int, help="only this episode (0-based)")
    rp.add_argument("--labels", action="store_true", help="show the hidden labels too")
    rp.add_argument("--plain", action="store_true", help="print text even on a terminal (the default when piped)")
    rp.set_defaults(func=cmd_replay)

    add_tui_parsers(sub)
    lazy(sub, "bootstrap", "feedbackgym.learners.bootstrap", "train a small actor from scripted episodes (behaviour cloning)")
    learners = "archer, chai, ppo, filtered_bc, bc, sb3_ppo, maskable_ppo"
    lazy(sub, "train", "feedbackgym.learners.train", f"train the learner seat of a scenario ({learners})")
    return p


def lazy(sub, name: str, module: str, help: str) -> None:
    """A subcommand whose module (torch and all) is imported only when it runs, so that the other
    commands start at once; its own parser then reads the arguments."""
    p = sub.add_parser(name, help=help, add_help=False, prefix_chars="\0")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: _run_lazy(name, module, args.argv))


def _run_lazy(name: str, module: str, argv: list[str]) -> int:
    import importlib

    parser = argparse.ArgumentParser(prog="feedbackgym")
    importlib.import_module(module).add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([name, *argv])
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ScenarioError, ValueError) as e:
        print(f"feedbackgym {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): not an error; keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        print(f"feedbackgym {args.command}: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
