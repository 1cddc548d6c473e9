"""`benchmarks/env_speed.py` run side by side on two trees: a git ref (default e13c66f, the commit
before the layered-core redesign) against this checkout, interleaved in one run.

    python benchmarks/env_speed_compare.py                      # e13c66f against this checkout
    python benchmarks/env_speed_compare.py e13c66f --after HEAD # ... against the last commit only
    python benchmarks/env_speed_compare.py REF --rounds 9 --steps 20000 --json out.json

Each tree is a directory with a `feedbackgym/` package: the ref's tree is a git worktree (an
existing one checked out at that commit is reused, otherwise one is made in the temp folder, $TMPDIR); `--after`
is this checkout (default, uncommitted edits included), another ref (a worktree of it too) or a
path. Every measurement is a fresh subprocess of the same venv python with PYTHONPATH set to its
tree, cwd in that tree, one thread for torch/OMP/MKL; the worker checks that `feedbackgym.__file__`
lies in its tree and times one case (best of --inner runs) with that tree's own `benchmarks/env_speed.py`
(`time_steps`: the actor's moves computed before the clock starts, the loop timed whole, resets
clocked one by one), driving the env only through the public API (`gym.make(id)`,
`feedbackgym.ENV_IDS`). By default its clock is swapped for the process's CPU time (`--clock cpu`):
on cores shared with other jobs, wall time mostly measures who else ran; `--clock wall` keeps
env_speed.py's perf_counter. Before and after alternate measurement by measurement (A B, then B A the
next round, so neither always runs first), with the same seed for the pair, so both run exactly the
same moves: the steps and resets counted must agree, and a mismatch is reported.

Cases: every id both trees register, unwrapped short episodes, long episodes (the ids that
env_speed.py's CASES knows how to lengthen) and short episodes through gym.make's wrappers. Metrics:
us/step for each case, us/reset where a case resets at least 20 times. Per tree, the min over
rounds (the least-disturbed run: noise on a shared machine only ever adds time) and the median;
the ratio after/before is the ratio of the mins, with the range of the per-round paired ratios
beside it. Verdict: "SLOWER" when the ratio of mins and the ratio of medians both exceed
1 + max(--tol, noise), where noise is the larger of the two trees' (median - min) / min;
"faster" the other way round; "same" within --tol; otherwise "slower? (noise)" or "faster? (noise)":
a difference no larger than the rounds' own scatter, to be re-measured on a quieter machine or
with more rounds; with fewer than 3 rounds there is no spread and no verdict says SLOWER.

Then (``--opcodes STEPS``, default 2000; 0 skips) one traced run per tree and case counts the
Python opcodes a step and a reset execute: the same `time_steps` with its clock swapped for an
opcode counter. Deterministic, so one run is enough, and blind to work done in C inside a call;
where the timings are lost in the noise it still says whether a tree does more work. The last
lines say whether any id's step or reset is slower (exit status 1 with --fail-on-slower) and which
metrics execute more than +--tol opcodes.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
DEFAULT_REF = "e13c66f"
MIN_RESETS = 20
VARIANTS = {"short": (False, False), "long": (True, False), "short/gym.make": (False, True)}
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# ---------------------------------------------------------------- worker (runs inside one tree)


def _load_env_speed(tree: Path):
    """The tree's own benchmarks/env_speed.py (this checkout's if the tree has none), imported
    under the tree's `feedbackgym`."""
    path = tree / "benchmarks" / "env_speed.py"
    if not path.exists():
        path = HERE / "env_speed.py"
    spec = importlib.util.spec_from_file_location("_env_speed_of_tree", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, path


def _worker(tree: Path, request: dict) -> dict:
    t_import = time.perf_counter()
    import feedbackgym

    pkg = Path(feedbackgym.__file__).resolve()
    if tree.resolve() not in pkg.parents:
        raise SystemExit(f"worker for {tree} imported feedbackgym from {pkg}")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    es, es_path = _load_env_speed(tree)
    out = {"feedbackgym": str(pkg), "env_speed": str(es_path), "import_s": time.perf_counter() - t_import}
    clock = request.get("clock", "wall")
    if clock == "cpu":
        # the same time_steps, its clock swapped for this process's CPU time: time spent waiting
        # for a core that another process holds is not counted
        _set_clock(es, time.process_time)
    elif clock == "opcodes":
        # the same time_steps, its "clock" the count of Python opcodes executed so far: a
        # deterministic measure of the interpreter's work (C work inside a call is not counted)
        box = [0]
        _set_clock(es, functools.partial(operator.getitem, box, 0))  # a C callable: not traced itself
    if request["op"] == "list":
        out.update(ids=list(feedbackgym.ENV_IDS), long_ids=list(getattr(es, "CASES", {})))
        return out
    if request["op"] == "list":
        out.update(ids=list(feedbackgym.ENV_IDS), long_ids=list(getattr(es, "CASES", {})))
        return out
    long, wrapped = VARIANTS[request["variant"]]
    env_id, steps, seed = request["id"], request["steps"], request["seed"]
    if request.get("warmup"):
        es.time_steps(env_id, long, request["warmup"], seed + 1000, wrapped)  # imports, caches, first calls
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if clock == "opcodes":

        def count(frame, event, arg):
            if event == "opcode":
                box[0] += 1
            return count

        def on_call(frame, event, arg):
            frame.f_trace_opcodes = True
            return count

        sys.settrace(on_call)
        try:
            runs = [es.time_steps(env_id, long, steps, seed, wrapped)]
        finally:
            sys.settrace(None)
        for r in runs:  # time_steps scales its clock to microseconds
            r["us_per_step"] /= 1e6
            if r["us_per_reset"] is not None:
                r["us_per_reset"] /= 1e6
    else:
        runs = [es.time_steps(env_id, long, steps, seed, wrapped) for _ in range(request.get("inner", 1))]
    # best of the inner runs (same moves each time), as env_speed.py's --repeats; resets likewise
    out.update(min(runs, key=lambda r: r["us_per_step"]))
    if out["us_per_reset"] is not None:
        out["us_per_reset"] = min(r["us_per_reset"] for r in runs)
    return out


def _set_clock(es, clock) -> None:
    es.time = types.SimpleNamespace(perf_counter=clock)
    if hasattr(es, "perf_counter"):  # a copy that imported the function itself
        es.perf_counter = clock


# ---------------------------------------------------------------- driver


def _git(*args: str, cwd: Path = CHECKOUT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _worktree_for(ref: str) -> Path:
    """A worktree checked out at ref's commit: an existing one if there is one, else a new one."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = None
    for block in _git("worktree", "list", "--porcelain").split("\n\n"):
        fields = dict(line.split(" ", 1) for line in block.splitlines() if " " in line)
        tree = Path(fields.get("worktree", ""))
        if fields.get("HEAD") == sha and tree.is_dir() and tree.resolve() != CHECKOUT.resolve():
            path = tree  # (this checkout is never used as a ref's tree: it may have edits)
            break
    if path is None:
        path = Path(tempfile.gettempdir()) / f"feedbackgym-{sha[:12]}"
        if not path.exists():
            print(f"# git worktree add --detach {path} {sha[:12]}", file=sys.stderr)
            _git("worktree", "add", "--detach", str(path), sha)
    if not (path / "feedbackgym" / "__init__.py").exists():
        raise SystemExit(f"{path} (for {ref}) has no feedbackgym package")
    return path


def _tree(spec: str | None) -> Path:
    if spec is None:
        return CHECKOUT
    if Path(spec).is_dir():
        return Path(spec).resolve()
    return _worktree_for(spec)


def _describe(tree: Path) -> str:
    try:
        sha = _git("rev-parse", "--short=7", "HEAD", cwd=tree)
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "feedbackgym", "benchmarks", cwd=tree)
        return f"{sha}{' + uncommitted edits' if dirty else ''} ({tree})"
    except (subprocess.CalledProcessError, FileNotFoundError):
        return str(tree)


def _run(tree: Path, request: dict, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(THREAD_ENV, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), json.dumps(request)]
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise RuntimeError(f"worker failed in {tree} for {request}:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ops(x: float | None) -> str:
    return "-".rjust(7) if x is None else f"{x:7.0f}"


def _fmt(x: float | None, width: int = 8) -> str:
    if x is None:
        return "-".rjust(width)
    return f"{x:{width}.1f}" if x >= 100 else f"{x:{width}.2f}"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(Path(sys.argv[2]), json.loads(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref", nargs="?", default=DEFAULT_REF, help=f"the before tree's git ref (default {DEFAULT_REF})")
    ap.add_argument("--before", help="the before tree as a path (instead of ref)")
    ap.add_argument("--after", help="the after tree: a ref or a path (default: this checkout as it is)")
    ap.add_argument("--rounds", type=int, default=7, help="measurements per tree and case (default 7)")
    ap.add_argument("--steps", type=int, default=20000, help="steps per measurement (default 20000)")
    ap.add_argument("--inner", type=int, default=3, help="runs per subprocess, the best kept, as env_speed.py's --repeats (default 3)")
    ap.add_argument("--warmup", type=int, default=500, help="untimed steps first in each subprocess (default 500)")
    ap.add_argument("--ids", help="comma-separated ids (default: every id both trees register)")
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: process CPU time (default; robust to other processes on the cores); wall: env_speed.py's own perf_counter",
    )
    ap.add_argument(
        "--opcodes",
        type=int,
        default=2000,
        metavar="STEPS",
        help="also count the Python opcodes a step and a reset execute (one traced run per tree "
        "and case of STEPS steps, deterministic; default 2000, 0 to skip)",
    )
    ap.add_argument("--tol", type=float, default=0.05, help="smallest relative change called a change (default 0.05)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per measurement before giving up")
    ap.add_argument("--json", help="write every raw measurement and the table here")
    ap.add_argument("--fail-on-slower", action="store_true", help="exit status 1 if any metric is SLOWER")
    args = ap.parse_args()
    if args.rounds < 3:
        print("# note: with fewer than 3 rounds the spread is not measured: no verdict says SLOWER or faster", file=sys.stderr)

    trees = {"before": _tree(args.before) if args.before else _tree(args.ref), "after": _tree(args.after)}
    info = {k: _run(t, {"op": "list"}, args.timeout) for k, t in trees.items()}
    ids = [i for i in info["before"]["ids"] if i in info["after"]["ids"]]
    if args.ids:
        ids = [i for i in args.ids.split(",") if i in ids]
    only = {k: sorted(set(info[k]["ids"]) - set(info[o]["ids"])) for k, o in (("before", "after"), ("after", "before"))}
    cases = []
    for env_id in ids:
        for variant in VARIANTS:
            if variant == "long" and not all(env_id in info[k]["long_ids"] for k in trees):
                continue
            cases.append((env_id, variant))

    started = datetime.datetime.now(datetime.timezone.utc)
    print(
        f"# {started:%Y-%m-%d %H:%M} UTC, python {platform.python_version()} ({sys.executable}), "
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start"
    )
    for k, t in trees.items():
        print(f"# {k:6}: {_describe(t)}; feedbackgym from {info[k]['feedbackgym']}")
    for k, extra in only.items():
        if extra:
            print(f"# only in {k}: {', '.join(extra)} (not compared)")
    print(
        f"# {len(cases)} cases x {args.rounds} rounds x 2 trees, {args.steps} steps each (best of {args.inner} in each "
        f"subprocess), interleaved, "
        f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall (perf_counter)'}",
        flush=True,
    )

    raw = {(c, k): [] for c in cases for k in trees}
    loads = []
    t0 = time.time()
    for r in range(args.rounds):
        for case in cases:
            order = ("before", "after") if (r + cases.index(case)) % 2 == 0 else ("after", "before")
            for k in order:
                req = {
                    "op": "time",
                    "id": case[0],
                    "variant": case[1],
                    "steps": args.steps,
                    "seed": r,
                    "warmup": args.warmup,
                    "clock": args.clock,
                    "inner": args.inner,
                }
                raw[(case, k)].append(_run(trees[k], req, args.timeout))
        loads.append(os.getloadavg()[0])
        print(f"# round {r + 1}/{args.rounds} done, {time.time() - t0:.0f} s, load {loads[-1]:.2f}", file=sys.stderr, flush=True)

    rows, mismatches = [], []
    for case in cases:
        b, a = raw[(case, "before")], raw[(case, "after")]
        for x, y in zip(b, a):
            if (x["steps"], x["resets"]) != (y["steps"], y["resets"]):
                mismatches.append(f"{case[0]} {case[1]}: before {x['steps']} steps/{x['resets']} resets, after {y['steps']}/{y['resets']}")
                break
        metrics = [("step", "us_per_step")]
        if min(m["resets"] for m in b + a) >= MIN_RESETS:
            metrics.append(("reset", "us_per_reset"))
        for name, key in metrics:
            bv, av = [m[key] for m in b], [m[key] for m in a]
            bmin, amin, bmed, amed = min(bv), min(av), statistics.median(bv), statistics.median(av)
            noise = max((bmed - bmin) / bmin, (amed - amin) / amin)
            thr = max(args.tol, noise) if args.rounds >= 3 else float("inf")  # no spread, no SLOWER
            ratio, ratio_med = amin / bmin, amed / bmed
            paired = [y / x for x, y in zip(bv, av)]
            if ratio > 1 + thr and ratio_med > 1 + thr:
                verdict = "SLOWER"
            elif ratio < 1 - thr and ratio_med < 1 - thr:
                verdict = "faster"
            elif abs(ratio - 1) <= args.tol:
                verdict = "same"
            else:  # beyond --tol but not beyond what the rounds themselves scatter by
                verdict = "slower? (noise)" if ratio > 1 else "faster? (noise)"
            rows.append(
                {
                    "id": case[0],
                    "episode": case[1],
                    "metric": name,
                    "before_min": bmin,
                    "before_median": bmed,
                    "after_min": amin,
                    "after_median": amed,
                    "ratio": ratio,
                    "ratio_median": ratio_med,
                    "paired_lo": min(paired),
                    "paired_hi": max(paired),
                    "noise": noise,
                    "verdict": verdict,
                }
            )

    ops = {}
    if args.opcodes:
        for case in cases:
            for k in trees:
                req = {"op": "time", "id": case[0], "variant": case[1], "steps": args.opcodes, "seed": 0, "warmup": args.warmup, "clock": "opcodes"}
                ops[(case, k)] = _run(trees[k], req, args.timeout)
            x, y = ops[(case, "before")], ops[(case, "after")]
            if (x["steps"], x["resets"]) != (y["steps"], y["resets"]):
                mismatches.append(f"{case[0]} {case[1]} (opcode run): before {x['steps']} steps/{x['resets']} resets, after {y['steps']}/{y['resets']}")
        print(f"# opcodes counted, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    for row in rows:
        case, key = (row["id"], row["episode"]), "us_per_step" if row["metric"] == "step" else "us_per_reset"
        if ops:
            ob, oa = ops[(case, "before")][key], ops[(case, "after")][key]
            row.update(ops_before=ob, ops_after=oa, ops_ratio=oa / ob if ob and oa is not None else None)

    print(f"# load average during the run: {min(loads):.2f} to {max(loads):.2f}; {time.time() - t0:.0f} s")
    print("# us: min over rounds (median); ratio = after min / before min [range of the per-round paired ratios]")
    if ops:
        print(
            f"# opcodes: Python opcodes executed per step / reset, before -> after, one traced run of "
            f"{args.opcodes} steps (deterministic; C work inside calls not counted)"
        )
    head = f"{'id':32} {'episode':15} {'metric':6} {'before us':>17} {'after us':>17} {'ratio':>6} {'paired':>11} {'noise':>6}  {'verdict':15}" + (
        f" {'opcodes':>15} {'ratio':>6}" if ops else ""
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            f"{row['id']:32} {row['episode']:15} {row['metric']:6} "
            f"{_fmt(row['before_min'])} ({_fmt(row['before_median'], 6)}) "
            f"{_fmt(row['after_min'])} ({_fmt(row['after_median'], 6)}) {row['ratio']:6.2f} "
            f"{row['paired_lo']:5.2f}-{row['paired_hi']:<5.2f} {100 * row['noise']:5.0f}%  {row['verdict']:15}"
            + (f" {_ops(row['ops_before'])}->{_ops(row['ops_after'])} {row['ops_ratio']:6.2f}" if row.get("ops_ratio") is not None else "")
        )
    for m in mismatches:
        print(f"# WORK DIFFERS (the trees did not play the same episodes): {m}")
    slower = [r for r in rows if r["verdict"] == "SLOWER"]
    if slower:
        print(
            f"# RESULT: {len(slower)} of {len(rows)} metrics SLOWER: "
            + "; ".join(f"{r['id'].split('/')[-1]} {r['episode']} {r['metric']} x{r['ratio']:.2f}" for r in slower)
        )
    else:
        print(f"# RESULT: no id's step or reset slower beyond the noise ({len(rows)} metrics)")
    more = [r for r in rows if (r.get("ops_ratio") or 0) > 1 + args.tol]
    if more:
        print(
            f"# OPCODES: {len(more)} of {len(rows)} metrics execute more than +{100 * args.tol:.0f}% Python "
            "opcodes: " + "; ".join(f"{r['id'].split('/')[-1]} {r['episode']} {r['metric']} x{r['ops_ratio']:.2f}" for r in more)
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "started": started.isoformat(),
                    "trees": {k: _describe(t) for k, t in trees.items()},
                    "rows": rows,
                    "mismatches": mismatches,
                    "loads": loads,
                    "raw": [{"id": c[0], "episode": c[1], "tree": k, "runs": v} for (c, k), v in raw.items()],
                    "opcodes": [{"id": c[0], "episode": c[1], "tree": k, "run": v} for (c, k), v in ops.items()],
                },
                f,
                indent=2,
            )
    if slower and args.fail_on_slower:
        sys.exit(1)


if __name__ == "__main__":
    main()
