"""Peak memory of a long episode and of a long `feedbackgym run`, for this tree and another one.

    python benchmarks/memory.py                                   # the table, this tree only
    python benchmarks/memory.py --before /tmp/h5-before           # ... and a worktree of an older commit beside it
    python benchmarks/memory.py --turns 1000000 --episodes 10000,100000,1000000 --json out.json

Each figure is measured in a fresh Python process (the same interpreter, ``PYTHONPATH`` set to
the tree measured) so that one measurement's garbage never inflates the next:

- **episode**: one guess_number episode of ``--turns`` actor turns (range 1..10^9, the scripted
  random actor, the scripted oracle user: two messages a turn), built and played through the
  engine (`Episode`, `play`). ``held/turn`` is what the finished episode holds (tracemalloc's
  current size after the episode, minus before it) over its turns; ``text/turn`` the size of the
  turn's two texts as Python strings (`sys.getsizeof`), the floor any log of them costs. It is
  measured at two lengths: a per-turn figure that grew with the length would show a copy per turn.
- **run**: ``feedbackgym run guess_number --actor scripted:expert --episodes N --quiet`` in the
  process (`cli.main`), its peak resident memory (``ru_maxrss``) and the peak's growth per
  episode between the run sizes given.

Peak RSS includes the interpreter and the imported packages (about 100 MB, the same in every
row); tracemalloc counts only Python allocations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EPISODE = """
import gc, json, sys, tracemalloc
from feedbackgym.agents import agents_for
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import load_scenario, validate

turns = {turns}
data = load_scenario("guess_number").with_roles(actor="scripted:random").model_dump()
data["task"]["params"] = {{"low": 1, "high": 10**9}}
data["protocol"]["max_turns"] = turns
sc = validate(data, source="benchmark")
agents = agents_for(sc)
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
ep = Episode(sc, 0, agents)
play(ep)
gc.collect()
held, peak = tracemalloc.get_traced_memory()
text = sum(sys.getsizeof(m.text) for m in ep.log)
print(json.dumps({{"turns": ep.actor_turns, "messages": len(ep.log), "held": held - before, "peak": peak - before, "text": text}}))
"""

RUN = """
import io, json, resource, sys
from contextlib import redirect_stdout
from feedbackgym.cli import main

with redirect_stdout(io.StringIO()) as out:
    code = main(["run", "guess_number", "--actor", "scripted:expert", "--episodes", "{episodes}", "--quiet"])
assert code == 0, out.getvalue()
print(json.dumps({{"episodes": {episodes}, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def measure(tree: Path, code: str) -> dict:
    """Run ``code`` in a fresh interpreter with ``tree`` first on the path; its last line, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", default="100000,1000000", help="episode lengths in actor turns, comma-separated")
    p.add_argument("--episodes", default="10000,100000", help="run sizes, comma-separated")
    p.add_argument("--before", type=Path, help="another tree (a git worktree of an older commit) measured beside this one")
    p.add_argument("--before-episodes", help="run sizes for --before (default: --episodes)")
    p.add_argument("--only", choices=("after", "before"), help="measure one of the two trees (run both at once in two processes)")
    p.add_argument("--json", type=Path, help="write the measurements here as well")
    args = p.parse_args(argv)
    trees = [("after", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    trees = [t for t in trees if args.only in (None, t[0])]
    results: list[dict] = []
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'tree':<7} {'what':<8} {'size':>9} {'held MB':>9} {'held/turn B':>12} {'text/turn B':>12} {'peak RSS MB':>12} {'growth B/ep':>12}")
    for name, tree in trees:
        for turns in (int(t) for t in args.turns.split(",") if t):
            r = {"tree": name, "what": "episode", **measure(tree, EPISODE.format(turns=turns))}
            results.append(r)
            per_turn = f"{r['held'] / r['turns']:>12.0f} {r['text'] / r['turns']:>12.0f}"
            print(f"{name:<7} {'episode':<8} {r['turns']:>9} {r['held'] / 1e6:>9.1f} {per_turn} {'':>12} {'':>12}", flush=True)
        sizes = args.before_episodes if name == "before" and args.before_episodes else args.episodes
        prev = None
        for n in (int(e) for e in sizes.split(",") if e):
            r = {"tree": name, "what": "run", **measure(tree, RUN.format(episodes=n))}
            growth = (r["peak_rss"] - prev["peak_rss"]) / (n - prev["episodes"]) if prev else None
            r["growth_per_episode"] = growth
            results.append(r)
            shown = f"{growth:>12.1f}" if growth is not None else f"{'':>12}"
            print(f"{name:<7} {'run':<8} {n:>9} {'':>9} {'':>12} {'':>12} {r['peak_rss'] / 1e6:>12.1f} {shown}", flush=True)
            prev = r
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
