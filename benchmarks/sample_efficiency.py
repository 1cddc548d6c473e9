"""Sample efficiency: ArCHer, token PPO, online filtered BC, CHAI, GRPO and FCP from the same bootstrapped actor.

    feedbackgym bootstrap twenty_questions --out models/actor
    python benchmarks/sample_efficiency.py --out runs/sample_efficiency --tasks twenty_questions \\
        --actor twenty_questions=models/actor --seeds 0,1,2 --iterations 30 --jobs 2

For each task: the starting actor is ``--actor TASK=DIR`` when given, else ``OUT/actor_TASK``,
bootstrapped with `feedbackgym bootstrap`'s defaults when missing. Each learner trains from it
for each seed with `feedbackgym.learners.train.run` and the learner's default settings (one torch
thread a run; ``--jobs`` runs go side by side, so their wall times compare). Reported per
(task, learner), over seeds:

- ``start_return``: the starting actor's evaluation return (iteration 0; the same fixed
  evaluation seeds for every run, so the same number for every seed);
- ``final_return``: the last evaluation's mean return; ``gain_sd``: (mean final − start) / the
  standard deviation of the final return across seeds (acceptance: ArCHer's > 2);
- ``samples_to_threshold``: episodes (and learner utterances, ``steps_to_threshold``) collected
  before the first evaluation whose mean return reaches the task's threshold; a run that never
  reaches it counts as "more than the episodes it collected";
- ``wall_s``: training wall time (collection + updates + evaluation).

``--variant NAME=LEARNER:key=value,...`` defines a row ``NAME`` (listed in ``--learners`` like a
learner) that trains ``LEARNER`` with those fields changed: fields of `feedbackgym train`'s
arguments (``rollout_size``, ``temperature``, ...) or of the learner's own (``warmup_iters``,
``batch_size``, ...). So ``--variant ppo_r32=ppo:rollout_size=32 --variant archer=archer:warmup_iters=3``
adds token PPO at twice the episodes an update and gives ArCHer a warm-up sized to a short budget.

Thresholds (``--threshold task=value`` to change): twenty_questions −12.0 (the anchor's −17 is
below where our bootstrapped actor starts, about −13.6), guess_number 0.75 (success is its
return). Results go to ``OUT/results.json`` and a markdown table on stdout. A finished run is
read back, an interrupted one resumed, so the command can be run again after a stop.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from feedbackgym.learners import bootstrap, train

LEARNERS = ("archer", "ppo", "filtered_bc", "chai", "grpo", "fcp")
THRESHOLDS = {"twenty_questions": -12.0, "guess_number": 0.75}


def key_values(text: str, flag: str) -> dict:
    """``key=value,...`` as a dict, each value a number where it reads as one (8, 1e-4)."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag}: {item!r} is not key=value")
        for kind in (int, float, str):
            try:
                out[key.strip()] = kind(value.strip())
                break
            except ValueError:
                continue
    return out


def variant(text: str) -> tuple[str, str, dict, dict]:
    """``NAME=LEARNER:key=value,...`` as (name, learner, train fields, learner fields); each value a
    number where it reads as one. A key that is neither a train nor a learner field is an error."""
    name, sep, rest = text.partition("=")
    algo, _, items = rest.partition(":")
    if not sep or not name.strip() or algo.strip() not in LEARNERS:
        raise SystemExit(f"--variant {text!r}: expected NAME=LEARNER:key=value,... with LEARNER one of {', '.join(LEARNERS)}")
    algo = algo.strip()
    train_names = {f.name for f in fields(train.TrainArgs)}
    learner_names = {f.name for f in fields(train.learner_class(algo).Args)}
    given = key_values(items, f"--variant {text!r}")
    unknown = [k for k in given if k not in train_names | learner_names]
    if unknown:
        raise SystemExit(f"--variant {text!r}: {', '.join(unknown)} not a field of train or of {algo}")
    train_kw = {k: v for k, v in given.items() if k not in learner_names}
    learner_kw = {k: v for k, v in given.items() if k in learner_names}
    return name.strip(), algo, train_kw, learner_kw


def pool_for(jobs: int, device: str) -> ProcessPoolExecutor:
    """Worker processes for the runs: forked on the CPU; started afresh (``spawn``) for a GPU, as
    CUDA cannot be used in a process forked after the parent has touched it."""
    import multiprocessing

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn") if device != "cpu" else None)


def first_reaching(lines: list[dict], threshold: float) -> tuple[int | None, int | None]:
    for m in lines:
        if "eval_return" in m and m["eval_return"] >= threshold:
            return m["episodes"], m["env_steps"]
    return None, None


def train_one(algo: str, args: train.TrainArgs, learner: dict) -> list[dict]:
    """One run (resumed if interrupted, read back if finished); its metrics lines."""
    out = Path(args.out)
    lines = train.read_metrics(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else []
    if not lines or lines[-1].get("iteration") != args.iterations:
        if (out / "args.json").exists():  # interrupted: resumed, or (killed before its first checkpoint) started over
            train.run(algo, args, resume=True, quiet=True)
        else:
            train.run(algo, args, train.learner_class(algo).Args(**learner), quiet=True)
    return train.read_metrics(out / "metrics.jsonl")


def result(task: str, algo: str, seed: int, lines: list[dict], threshold: float) -> dict:
    ev = [m for m in lines if "eval_return" in m]
    eps, steps = first_reaching(lines, threshold)
    return {
        "task": task, "learner": algo, "seed": seed, "samples_to_threshold": eps, "steps_to_threshold": steps,
        "start_return": ev[0]["eval_return"], "final_return": ev[-1]["eval_return"], "final_success": ev[-1]["eval_success"],
        "episodes": lines[-1]["episodes"], "wall_s": lines[-1]["wall_s"],
    }  # fmt: skip


def t_interval(vals: list[float]) -> list[float] | None:
    """The 95% Student-t interval of the mean over the seeds (None for fewer than 2 values)."""
    if len(vals) < 2:
        return None
    from scipy import stats

    m, se = float(np.mean(vals)), float(np.std(vals, ddof=1)) / np.sqrt(len(vals))
    h = float(stats.t.ppf(0.975, len(vals) - 1)) * se
    return [m - h, m + h]


def summarize(runs: list[dict]) -> dict:
    def stat(key):
        vals = [r[key] for r in runs if r[key] is not None]
        sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        return {"mean": float(np.mean(vals)) if vals else None, "sd": sd, "n": len(vals), "ci95": t_interval(vals)}

    out = {k: stat(k) for k in ("samples_to_threshold", "steps_to_threshold", "start_return", "final_return", "wall_s")}
    final, start = out["final_return"], out["start_return"]["mean"]
    out["gain_sd"] = (final["mean"] - start) / final["sd"] if final["sd"] else None
    out["reached"] = sum(r["samples_to_threshold"] is not None for r in runs)
    out["runs"], out["max_episodes"] = len(runs), max(r["episodes"] for r in runs)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/sample_efficiency")
    p.add_argument("--tasks", default="twenty_questions,guess_number")
    p.add_argument("--learners", default=",".join(LEARNERS))
    p.add_argument("--actor", action="append", default=[], metavar="TASK=DIR", help="start from this actor instead of bootstrapping one")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--rollout-size", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=2)
    p.add_argument("--eval-episodes", type=int, default=128)
    p.add_argument("--embedder", default="hashing", help="critic features of archer/chai: hashing or minilm")
    p.add_argument("--threshold", action="append", default=[], metavar="TASK=VALUE")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=LEARNER:key=value,...", help="a row NAME: LEARNER with those fields")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, one torch thread each")
    p.add_argument("--device", default="cpu", help="where each run trains: cpu, cuda, cuda:N (feedbackgym train --device)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = {**THRESHOLDS, **{t.split("=")[0]: float(t.split("=")[1]) for t in a.threshold}}
    actors = dict(t.split("=", 1) for t in a.actor)
    tasks, algos, seeds = a.tasks.split(","), a.learners.split(","), [int(s) for s in a.seeds.split(",")]
    variants = {name: (name, {}, {}) for name in LEARNERS}
    for text in a.variant:
        name, algo, train_kw, learner_kw = variant(text)
        variants[name] = (algo, train_kw, learner_kw)
    unknown = [g for g in algos if g not in variants]
    if unknown:
        raise SystemExit(f"--learners: {', '.join(unknown)} neither a learner ({', '.join(LEARNERS)}) nor a --variant")
    for task in tasks:
        actors.setdefault(task, str(out / f"actor_{task}"))
        if not (Path(actors[task]) / "config.json").exists():
            bootstrap.run(bootstrap.Args(task=task, out=actors[task]))
    jobs = {}
    with pool_for(a.jobs, a.device) as pool:
        for task in tasks:
            for name in algos:
                algo, train_kw, learner_kw = variants[name]
                for seed in seeds:
                    args = train.TrainArgs(scenario=task, actor=f"lm:{actors[task]}", out=str(out / f"{task}_{name}_s{seed}"),
                                           iterations=a.iterations, seed=seed, rollout_size=a.rollout_size, eval_every=a.eval_every,
                                           eval_episodes=a.eval_episodes, checkpoint_every=5, threads=1, device=a.device)  # fmt: skip
                    args = replace(args, **train_kw)
                    learner = {**({"embedder": a.embedder} if algo in ("archer", "chai") else {}), **learner_kw}
                    jobs[task, name, seed] = (pool.submit(train_one, algo, args, learner), args, learner)
        runs = []
        for (task, name, seed), (job, args, learner) in jobs.items():
            row = result(task, name, seed, job.result(), thresholds[task])
            runs.append({**row, "learner_args": learner, "train_args": asdict(args)})
            print(json.dumps({k: v for k, v in runs[-1].items() if k not in ("train_args", "learner_args")}), file=sys.stderr)
    summary = {f"{t}/{g}": summarize([r for r in runs if (r["task"], r["learner"]) == (t, g)]) for t in tasks for g in algos}
    results = {"command": " ".join(["python", *sys.argv]), "thresholds": thresholds, "actors": actors, "runs": runs, "summary": summary}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def table(results: dict) -> str:
    def fmt(s, digits=2, ci=False):
        if s["mean"] is None:
            return "-"
        text = f"{s['mean']:.{digits}f}" + (f" ± {s['sd']:.{digits}f}" if s["sd"] is not None else "")
        if ci and s.get("ci95"):
            text += f" [{s['ci95'][0]:.{digits}f}, {s['ci95'][1]:.{digits}f}]"
        return text

    rows = ["| task / learner | start return | final return (mean ± sd [95% t-interval]) | gain in sd | reached threshold | "
            "episodes to threshold (mean ± sd [95% t-interval], of the seeds that reached it) | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for key, s in results["summary"].items():
        task = key.split("/")[0]
        gain = "-" if s["gain_sd"] is None else f"{s['gain_sd']:.1f}"
        reach = fmt(s["samples_to_threshold"], 0, ci=True) if s["reached"] else f"> {s['max_episodes']}"
        rows.append(f"| {key} (threshold {results['thresholds'][task]}) | {s['start_return']['mean']:.2f} | {fmt(s['final_return'], ci=True)} | "
                    f"{gain} | {s['reached']}/{s['runs']} | {reach} | {fmt(s['wall_s'], 0)} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
