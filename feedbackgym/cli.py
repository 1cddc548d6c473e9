"""The `feedbackgym` command: list | run | eval | report | replay | tui | play | bootstrap | train.

    feedbackgym list
    feedbackgym run judged_qa --actor scripted:sycophant --judge scripted:malicious --episodes 20 --record runs/a.jsonl
    feedbackgym eval judged_qa --actors scripted:sycophant,scripted:stubborn --judges scripted:constructive,scripted:malicious --json runs/m.json
    feedbackgym eval askagain_leading --actors scripted:sycophant,scripted:persuadable --users scripted:askagain,none
    feedbackgym report runs/m.json                   # the markdown table (intervals, n) and the heatmap
    feedbackgym replay runs/a.jsonl --episode 0      # the replay browser on a terminal, text when piped
    feedbackgym play judged_qa_critic --as critic    # a person in a role, in the terminal UI
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
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
from feedbackgym.feedback import report
from feedbackgym.feedback.metrics import Tally, pair, paired_tally, report_of
from feedbackgym.records import RecordWriter
from feedbackgym.rollout import played
from feedbackgym.tracking import Reporter, parse_report_to
from feedbackgym.tui.commands import add_parsers as add_tui_parsers
from feedbackgym.tui.commands import open_replay, read_recording
from feedbackgym.tui.digest import labels_of, tag_of, task_lines, task_of

ROLE_FLAGS = ROLES
#: the eval table's columns with a judge seat (`report.COLUMNS` has the user seat's too)


def progress(total: int, desc: str, quiet: bool) -> tqdm:
    """One bar per command on stderr; hidden when asked, or when stderr is not a terminal."""
    return tqdm(total=total, desc=desc, unit="ep", disable=True if quiet else None, file=sys.stderr, leave=False)


def run_many(scenario: Scenario, seed: int, episodes: int, bar: tqdm | None = None, writer=None, in_flight: int = 16, workers: int = 1):
    """Play seeds ``seed .. seed+episodes-1``, ``in_flight`` at a time; the per-episode metrics, in order."""
    return list(played_rows(scenario, seed, episodes, bar, writer, in_flight, workers))


def played_rows(scenario: Scenario, seed: int, episodes: int, bar: tqdm | None = None, writer=None, in_flight: int = 16, workers: int = 1):
    """`run_many`'s rows one at a time, each episode recorded (``writer``) and dropped as it is
    yielded: no more than ``in_flight`` episodes are alive at once (``workers`` > 1: on Ray
    actors, at most two chunks of them a worker; `feedbackgym.rollout.on_workers`)."""
    for record, row in played(scenario, range(seed, seed + episodes), in_flight, workers, record=writer is not None):
        if writer is not None:
            writer.write(record)
        if bar is not None:
            bar.update()
        yield row


def tally_many(scenario: Scenario, seed: int, episodes: int, bar: tqdm | None = None, writer=None, in_flight: int = 16, workers: int = 1) -> Tally:
    """`run_many` folded into a `Tally` as each episode ends (what `run` prints): a run's memory
    does not grow with its episodes."""
    return Tally().fold(played_rows(scenario, seed, episodes, bar, writer, in_flight, workers))


def console(width: int = 200) -> Console:
    """A console that does not squeeze tables into 80 columns when output is piped (``width``
    columns then, at least 200)."""
    c = Console()
    return c if c.is_terminal else Console(width=max(200, width))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _over_task(args, base: Scenario) -> Scenario:
    """``base`` over ``--task FAMILY`` with ``--task-params JSON`` (`Scenario.with_task`), or as it is."""
    if not getattr(args, "task", None):
        if getattr(args, "task_params", None):
            raise ValueError("--task-params needs --task FAMILY")
        return base
    try:
        params = json.loads(args.task_params) if args.task_params else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--task-params: {args.task_params!r} is not JSON ({e})") from None
    if not isinstance(params, dict):
        raise ValueError(f"--task-params: expected a JSON object, got {args.task_params!r}")
    return base.with_task(args.task, params)


def _scenario_with(args, base: Scenario) -> Scenario:
    base = _over_task(args, base)
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
                tally = tally_many(sc, args.seed, args.episodes, bar, writer, args.in_flight, args.workers)
            except ServedError as e:  # the episode in flight is not recorded; the finished ones are
                n = writer.count if writer is not None else 0
                kept = f" ({n} finished episode{'s' * (n != 1)} recorded to {args.record})" if writer is not None else ""
                print(f"feedbackgym run: {e}{kept}", file=sys.stderr)
                return 1
    agg = report_of(tally, ci=True)
    out = console()
    over = f" over task {sc.task.family}" if args.task else ""
    t = Table(title=f"{sc.name}{over}: {args.episodes} episodes from seed {args.seed}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("95% interval", justify="right")
    t.add_column("n", justify="right")
    for k, v in agg.items():
        if k.endswith(("_ci", "_n")):
            continue
        ci = agg.get(f"{k}_ci")
        t.add_row(k, _fmt(v), f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "", _fmt(agg.get(f"{k}_n", "")))
    out.print(t)
    if args.record:
        out.print(f"recorded {args.episodes} episodes to {args.record}")
    return 0


def cmd_eval(args) -> int:
    base = _over_task(args, load_scenario(args.scenario))
    backends = parse_report_to(args.report_to)  # before the episodes: a bad value costs nothing
    seat = "judge" if args.judges is not None else "user"
    actors = [a for a in args.actors.split(",") if a]
    givers = [g for g in (args.judges if seat == "judge" else args.users).split(",") if g]
    if not actors or not givers:
        print(f"feedbackgym eval: name at least one actor and one {seat} (comma-separated specs; 'none' for no {seat})", file=sys.stderr)
        return 2
    if seat not in base.roles and (givers or args.baseline != "none"):
        raise ScenarioError(f"scenario {base.name!r} has no {seat} role; pick a scenario with a {seat}")
    try:
        rows = evaluate(base, actors, givers, args.episodes, args.seed, args.quiet, args.in_flight, seat=seat, baseline=args.baseline,
                        workers=args.workers)  # fmt: skip
    except ServedError as e:
        print(f"feedbackgym eval: {e}", file=sys.stderr)
        return 1
    full, bare = _eval_table(rows, seat, args.baseline, base.name)
    out = console(_width(full))
    fits = _width(full) <= out.width
    out.print(full if fits else bare)
    against = f"the {seat} removed" if args.baseline == "none" else f"{args.baseline} in the {seat}'s seat"
    note = "each cell: the value, its 95% bootstrap interval below" if fits else (
        f"intervals left out: {out.width} columns are fewer than the {_width(full)} they need (see --json, or feedbackgym report)"
    )  # fmt: skip
    out.print(f"{note}; baseline: {against}, the same seeds", markup=False, highlight=False)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        out.print(f"wrote {len(rows)} rows to {args.json}")
    if backends:
        log_dir = Path(args.log_dir) if args.log_dir else Path(args.json).with_suffix("") if args.json else Path("runs") / f"eval-{base.name}"
        config = {"scenario": base.name, "actors": actors, seat + "s": givers, "baseline": args.baseline, "episodes": args.episodes, "seed": args.seed}
        with Reporter(backends, log_dir, log_dir.name, config) as reporter:
            reporter.rows(rows)
        out.print(f"logged {len(rows)} rows to {', '.join(backends)} under {log_dir}")
    heatmap = args.heatmap or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if heatmap and rows:
        report.heatmap_png(rows, heatmap, title=report.title(rows))
        out.print(f"wrote the heatmap to {heatmap}")
    return 0


def _eval_table(rows: list[dict[str, Any]], seat: str, baseline: str, name: str) -> tuple[Table, Table]:
    """The eval table twice: each cell its value with its interval below (`report.cell`), the
    headers wrapped to the columns; and the values alone (for a terminal too narrow for the first)."""
    cols = report.COLUMNS[seat]
    heads = [report.header(c, seat, baseline) for c in cols]
    cells = [[report.cell(r, c).replace(" [", "\n[") for c in cols] for r in rows]
    widths = [max(len(w) for w in [*heads[k].split(), *(line for row in cells for line in row[k].splitlines())]) for k in range(len(cols))]
    full, bare = (Table(title=report.title(rows) if rows else name) for _ in range(2))
    for t in (full, bare):
        t.add_column("actor", no_wrap=True)
        t.add_column(seat, no_wrap=True)
    for head, width in zip(heads, widths):
        full.add_column(textwrap.fill(head, width), justify="right", width=width)
        bare.add_column(head, justify="right")
    for r, row in zip(rows, cells):
        full.add_row(report.short(r["actor"]), report.short(r[seat]), *row)
        bare.add_row(report.short(r["actor"]), report.short(r[seat]), *(v.split("\n")[0] for v in row))
    return full, bare


def _width(t: Table) -> int:
    """How many columns ``t`` takes (its columns' fixed widths, the name columns' longest entry)."""
    names = [max(len(str(c.header)), *(len(str(v)) for v in c.cells)) for c in t.columns[:2]]
    return sum(w + 3 for w in (*names, *(c.width for c in t.columns[2:]))) + 1


def evaluate(
    base: Scenario, actors: list[str], judges: list[str], episodes: int, seed: int, quiet: bool = True, in_flight: int = 16,
    seat: str = "judge", baseline: str | None = "none", workers: int = 1,
):  # fmt: skip
    """One row per (actor, giver in ``seat``): `report.row_of`, the aggregates with their
    intervals against the baseline run of the same actor on the same seeds, with ``baseline`` in
    the seat ('none' or None: the seat removed). A giver equal to the baseline reuses its episodes.
    Each actor's runs are played side by side, seed by seed (``in_flight`` at a time each), and
    every episode is folded into the tallies as it ends: memory does not grow with ``episodes``."""
    baseline = None if baseline in (None, "none") else baseline
    rows: list[dict[str, Any]] = []
    about = {"scenario": base.name, "task": base.task.family, "seed": seed}
    with progress(len(actors) * (len(judges) + 1) * episodes, f"eval {base.name}", quiet) as bar:
        for actor in actors:
            own = {None if g == "none" else g for g in judges} - {baseline}  # givers with episodes of their own
            specs = [baseline, *dict.fromkeys(g for g in (None if j == "none" else j for j in judges) if g in own)]
            runs = [played_rows(base.with_roles(actor=actor, **{seat: g}), seed, episodes, bar, in_flight=in_flight, workers=workers) for g in specs]
            tallies = {g: Tally() for g in specs}
            paired = {g: paired_tally() for g in specs}
            for seed_rows in zip(*runs):
                alone = seed_rows[0]
                for g, r in zip(specs, seed_rows):
                    tallies[g].add(r)
                    paired[g].add(pair(r, alone))
            bar.update(episodes * (len(judges) + 1 - len(specs)))  # the givers that reused the baseline's episodes
            base_agg = report_of(tallies[baseline], ci=True)
            for giver in judges:
                g = None if giver == "none" else giver
                agg = base_agg if g == baseline else report_of(tallies[g], ci=True)
                rows.append(report.row_of(actor, seat, giver, baseline, agg, paired[g].result(ci=True), base_agg, **about))
    return rows


def cmd_report(args) -> int:
    md, png, text = report.write_report(args.path, args.out)
    print(text, end="")
    print(f"\nwrote {md} and {png}")
    return 0


def format_transcript(record, show_labels: bool = False) -> str:
    lines = [f"# {record.scenario.name}  seed={record.seed}  end={record.terminate_reason}"]
    lines += task_lines(task_of(record))
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
    text = "\n\n".join(format_transcript(r, args.labels) for r in chosen)
    encoding = sys.stdout.encoding or "utf-8"  # what the terminal cannot show (a lone surrogate) as its escape
    print(text.encode(encoding, "backslashreplace").decode(encoding))
    return 0


IN_FLIGHT = "episodes played at once: a model in a seat answers them in one call (default 16; the episodes are the same for any N)"
WORKERS = ("processes that play the episodes: N > 1 plays them on N Ray actors (the ray extra; a local cluster, or the one "
           "RAY_ADDRESS names), with the same episodes and records as one (default 1: this process, no Ray)")  # fmt: skip


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {text}")
    return n


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
    add_task_flags(r)
    r.add_argument("--in-flight", type=int, default=16, metavar="N", help=IN_FLIGHT)
    r.add_argument("--workers", type=positive, default=1, metavar="N", help=WORKERS)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("eval", help="the actors x judges (or x users) robustness matrix, with 95%% intervals")
    e.add_argument("scenario")
    e.add_argument("--actors", required=True, help="comma-separated actor specs")
    givers = e.add_mutually_exclusive_group(required=True)
    givers.add_argument("--judges", help="comma-separated judge specs ('none': no judge)")
    givers.add_argument("--users", help="comma-separated simulated-user specs ('none': no user)")
    e.add_argument("--baseline", default="none", metavar="SPEC",
                   help="the agent in the judge's (user's) seat for the baseline run that delta_feedback and the "
                        "baseline columns compare with, on the same seeds (default none: the seat removed)")  # fmt: skip
    add_task_flags(e)
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", metavar="PATH", help="write the rows as JSON (and the heatmap beside it as .png)")
    e.add_argument("--heatmap", metavar="PATH", help="write the heatmap PNG here (misled / recovery for judges)")
    e.add_argument("--in-flight", type=int, default=16, metavar="N", help=IN_FLIGHT)
    e.add_argument("--workers", type=positive, default=1, metavar="N", help=WORKERS)
    e.add_argument("--report-to", default="none", metavar="BACKENDS",
                   help="also log the rows to tensorboard, wandb (offline unless WANDB_MODE says otherwise) or both, "
                        "comma-separated (default none)")  # fmt: skip
    e.add_argument("--log-dir", metavar="DIR", help="where --report-to writes (default: the --json path without its "
                   "suffix, else runs/eval-SCENARIO)")  # fmt: skip
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    rep = sub.add_parser("report", help="an eval JSON as a markdown table (intervals, n) and a heatmap PNG")
    rep.add_argument("path", metavar="EVAL.json", help="the rows `feedbackgym eval --json` wrote")
    rep.add_argument("--out", metavar="DIR", help="where EVAL.md and EVAL.png go (default: beside the JSON)")
    rep.set_defaults(func=cmd_report)

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
    lazy(sub, "export", "feedbackgym.export", "records as a dataset: hf, parquet, chat (SFT) or minari")
    return p


def add_task_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", metavar="FAMILY", help="play the scenario's protocol over this task family (Scenario.with_task)")
    p.add_argument("--task-params", metavar="JSON", help="the family's params, a JSON object (with --task)")


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
