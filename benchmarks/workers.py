"""Episodes a second with ``--workers`` (Ray actors) against one process, and what Ray adds an episode.

    python benchmarks/workers.py                                   # judged_qa and guess_number, scripted seats
    python benchmarks/workers.py --episodes 4000 --rounds 3 --json out.json
    python benchmarks/workers.py --scenario guess_number --lm models/actor_gn   # an LM actor in the seat

For each scenario, three ways of playing the same seeds (`feedbackgym.rollout.played`, what
``run`` and ``eval`` use), measured side by side in one process, in turn, ``--rounds`` times:

- **local**: this process, no Ray (``--workers 1``);
- **ray x1**: one Ray actor: the difference from local, over the episodes, is what Ray adds an
  episode (sending seeds, sending records back, the actor's calls);
- **ray x2**: two Ray actors.

The actors are made and warmed (one chunk played) before the clock starts: starting Ray and
importing the package in each actor is a one-off cost, reported apart (``start_s``). Each
round checks that every way gave the same records. Wall-clock seconds (`time.perf_counter`);
the figure is the median round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from feedbackgym.envs.scenario import load_scenario
from feedbackgym.rollout import on_workers, played, worker_pool

SCENARIOS = {"judged_qa": {"actor": "scripted:sycophant", "judge": "scripted:malicious"}, "guess_number": {"actor": "scripted:expert"}}


def timed(scenario, seeds, in_flight, workers, ray=True) -> tuple[float, list]:
    """Seconds to play ``seeds`` on ``workers`` Ray actors (``ray`` False: in this process), and the records."""
    t0 = time.perf_counter()
    pairs = on_workers("play", scenario, seeds, in_flight, workers, record=True) if ray else played(scenario, seeds, in_flight, record=True)
    records = [r.to_json() for r, _ in pairs]
    return time.perf_counter() - t0, records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", help="scenario (repeatable; default: judged_qa and guess_number)")
    p.add_argument("--lm", metavar="DIR", help="an LM folder for the actor's seat (lm:DIR) instead of the scripted actor")
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="write the rows here too")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    worker_pool(2)
    start = time.perf_counter() - t0
    rows = []
    for name in args.scenario or list(SCENARIOS):
        roles = dict(SCENARIOS.get(name, {}))
        if args.lm:
            roles["actor"] = f"lm:{args.lm}"
        sc = load_scenario(name).with_roles(**roles)
        seeds = list(range(args.episodes))
        timed(sc, seeds[: 4 * args.in_flight * 2], args.in_flight, 2)  # warm: each actor makes its agents
        times: dict[str, list[float]] = {"local": [], "ray x1": [], "ray x2": []}
        for _ in range(args.rounds):
            seen = []
            for way, workers in (("local", 1), ("ray x1", 1), ("ray x2", 2)):
                s, recs = timed(sc, seeds, args.in_flight, workers, ray=way != "local")
                times[way].append(s)
                seen.append(recs)
            assert seen[0] == seen[1] == seen[2], "a way of playing gave other records"
        med = {w: statistics.median(v) for w, v in times.items()}
        rows.append({
            "scenario": name, "actor": roles.get("actor"), "episodes": args.episodes, "rounds": args.rounds,
            **{f"{w} ep/s": args.episodes / s for w, s in med.items()},
            "ray overhead ms/ep": 1000 * (med["ray x1"] - med["local"]) / args.episodes,
            "x2 / local": med["local"] / med["ray x2"],
        })  # fmt: skip
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; Ray start and 2 actors: {start:.1f} s")
    cols = ["scenario", "local ep/s", "ray x1 ep/s", "ray x2 ep/s", "ray overhead ms/ep", "x2 / local"]
    print("  ".join(f"{c:>18}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:>18.2f}" if isinstance(r[c], float) else f"{r[c]:>18}" for c in cols))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"start_s": start, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
