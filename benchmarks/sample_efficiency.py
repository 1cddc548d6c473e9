"""Sample efficiency: ArCHer, token PPO, online filtered BC and CHAI from the same bootstrapped actor.

    python benchmarks/sample_efficiency.py --out runs/sample_efficiency \\
        --tasks twenty_questions,guess_number --seeds 0,1,2 --iterations 40

For each task: bootstrap one actor (``feedbackgym bootstrap``, settings below; or reuse
``--actor-dir OUT/actor_TASK`` when it exists), then train each learner from it for each seed
with `feedbackgym.learners.train.run`. Reported per (task, learner), over seeds:

- ``samples_to_threshold``: episodes (and learner utterances, ``steps_to_threshold``) collected
  before the first evaluation whose mean return reaches the task's threshold (``None`` if never);
- ``final_return``: the last evaluation's mean return (32 fixed evaluation seeds);
- ``start_return``: the same evaluation of the bootstrapped actor (iteration 0);
- ``wall_s``: training wall time (collection + updates + evaluation).

Thresholds (``--threshold task=value`` to change): twenty_questions -17 (the anchor's PPO "needs
>100k samples to slightly exceed -17"), guess_number 0.5 (success is its return). Results go to
``OUT/results.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from feedbackgym.learners import bootstrap, train

LEARNERS = ("archer", "ppo", "filtered_bc", "chai")
THRESHOLDS = {"twenty_questions": -17.0, "guess_number": 0.5}


def first_reaching(lines: list[dict], threshold: float) -> tuple[int | None, int | None]:
    for m in lines:
        if "eval_return" in m and m["eval_return"] >= threshold:
            return m["episodes"], m["env_steps"]
    return None, None


def summarize(runs: list[dict]) -> dict:
    def stat(key):
        vals = [r[key] for r in runs if r[key] is not None]
        return {"mean": float(np.mean(vals)) if vals else None, "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None, "n": len(vals)}

    return {k: stat(k) for k in ("samples_to_threshold", "steps_to_threshold", "final_return", "start_return", "wall_s")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/sample_efficiency")
    p.add_argument("--tasks", default="twenty_questions,guess_number")
    p.add_argument("--learners", default=",".join(LEARNERS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--rollout-size", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--embedder", default="minilm", help="critic features for archer/chai: minilm or hashing")
    p.add_argument("--threshold", action="append", default=[], metavar="TASK=VALUE")
    p.add_argument("--bootstrap-episodes", type=int, default=1000)
    p.add_argument("--bootstrap-epochs", type=int, default=2)
    p.add_argument("--bootstrap-layers", type=int, default=2)
    p.add_argument("--bootstrap-width", type=int, default=128)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = dict(THRESHOLDS)
    for t in a.threshold:
        task, _, value = t.partition("=")
        thresholds[task] = float(value)
    results = {"command": " ".join(sys.argv), "thresholds": thresholds, "runs": [], "summary": {}}
    for task in a.tasks.split(","):
        actor = out / f"actor_{task}"
        if not (actor / "config.json").exists():
            bootstrap.run(bootstrap.Args(task=task, out=str(actor), episodes=a.bootstrap_episodes, epochs=a.bootstrap_epochs,
                                         n_layer=a.bootstrap_layers, n_embd=a.bootstrap_width, eval_episodes=0, threads=1))  # fmt: skip
        for algo in a.learners.split(","):
            runs = []
            for seed in (int(s) for s in a.seeds.split(",")):
                run_dir = out / f"{task}_{algo}_s{seed}"
                cls = train.learner_class(algo)
                extra = {"embedder": a.embedder} if algo in ("archer", "chai") else {}
                args = train.TrainArgs(scenario=task, actor=f"lm:{actor}", out=str(run_dir), iterations=a.iterations, seed=seed,
                                       rollout_size=a.rollout_size, eval_every=a.eval_every, eval_episodes=a.eval_episodes,
                                       checkpoint_every=a.iterations)  # fmt: skip
                t0 = time.perf_counter()
                if (run_dir / "checkpoint.pt").exists():
                    train.run(algo, args, resume=True, quiet=True)
                else:
                    train.run(algo, args, cls.Args(**extra), quiet=True)
                lines = train.read_metrics(run_dir / "metrics.jsonl")
                ev = [m for m in lines if "eval_return" in m]
                eps, steps = first_reaching(lines, thresholds[task])
                runs.append({
                    "task": task, "learner": algo, "seed": seed, "samples_to_threshold": eps, "steps_to_threshold": steps,
                    "final_return": ev[-1]["eval_return"], "start_return": ev[0]["eval_return"],
                    "episodes": lines[-1]["episodes"], "wall_s": lines[-1].get("wall_s", time.perf_counter() - t0),
                    "train_args": asdict(args),
                })  # fmt: skip
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "train_args"}), file=sys.stderr)
            results["runs"] += runs
            results["summary"][f"{task}/{algo}"] = summarize(runs)
            (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def table(results: dict) -> str:
    fmt = lambda s: "-" if s["mean"] is None else f"{s['mean']:.2f}" + (f" ± {s['sd']:.2f}" if s["sd"] is not None else "") + f" (n={s['n']})"  # noqa: E731
    rows = ["| task / learner | start return | final return | episodes to threshold | wall s |", "|---|---|---|---|---|"]
    for key, s in results["summary"].items():
        task = key.split("/")[0]
        rows.append(f"| {key} (threshold {results['thresholds'][task]}) | {fmt(s['start_return'])} | {fmt(s['final_return'])} | "
                    f"{fmt(s['samples_to_threshold'])} | {fmt(s['wall_s'])} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
