"""Learning from what is said: FCP against GRPO and filtered BC, which feedback kinds FCP learns
from, and whether a deceptive judge's feedback poisons it.

    feedbackgym bootstrap guess_number --out models/actor_gn
    feedbackgym bootstrap judged_qa --out models/actor_qa
    python benchmarks/language_feedback.py equal --out runs/lf --actor models/actor_gn --seeds 0,1,2
    python benchmarks/language_feedback.py equal --scenario judged_qa --out runs/lf --actor models/actor_qa --seeds 0,1,2
    python benchmarks/language_feedback.py kinds --out runs/lf --actor models/actor_gn --seeds 0,1,2
    python benchmarks/language_feedback.py deception --out runs/lf_smol --actor smollm2 --lora 8 --temperature 0.7 \
        --iterations 8 --eval-every 8 --eval-episodes 64 --seeds 0,1,2 \
        --learner batch_size=8,grad_accum=1,actor_steps=4,learning_rate=5e-4   # the CPU configuration

Experiments (every run is `feedbackgym train` with the learner's defaults unless said, from the
one actor given, ``--iterations`` (30) of 16 episodes, evaluated every ``--eval-every`` (10)
iterations on ``--eval-episodes`` (256) fixed seeds; ``--jobs`` runs side by side, one torch
thread each):

- ``equal``: fcp, grpo and filtered_bc at equal episodes on ``--scenario`` (guess_number, or
  judged_qa, the knowledge task, with its judge constructive and FCP's positive condition the
  judge's approval): FCP reads only the other seats' words and the ending, GRPO and filtered BC
  only the return;
- ``kinds``: FCP on guess_number_critic (a unary user, so that only the critic informs) with
  the critic giving one LLF-Bench kind each (r, hp, hn, fp, fn) and with no critic at all:
  which kind carries the most learning signal to a feedback-conditional learner;
- ``deception``: FCP on judged_qa (answer, the judge's critique, final answer) with the judge
  ``--judges`` (constructive, malicious-grounded: quotes the evidence corpus to attack,
  malicious-none: no evidence), its positive condition the judge's approval: does a deceptive
  judge's feedback poison what FCP learns, and does evidence make it worse?

Each prints a table (final evaluation return: mean ± sd over seeds, its 95% t-interval, the
start, and the gain), then the episode metrics of the first and last evaluations where the task
reports them (judged_qa: ``initial_correct``, the first answer, given before any feedback, so
independent of the judge in the seat; ``final_correct``; ``adopted``, the final answer is the
judge's suggestion), and writes ``OUT/EXPERIMENT.json``. ``--lora``, ``--temperature``,
``--rollout-size`` and ``--learner key=value,...`` set every cell's run alike (a pretrained
actor such as the embedded ``smollm2`` trains through LoRA adapters). Finished runs are read back and
interrupted ones resumed, so a command can be run again after a stop.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from sample_efficiency import key_values, pool_for, t_interval, train_one

from feedbackgym.envs.scenario import load_scenario
from feedbackgym.learners import train

KINDS = ("r", "hp", "hn", "fp", "fn")
#: FCP's positive condition in judged_qa: a judge's approval (the first answer's feedback; the
#: final answer's ending is always protocol_end)
APPROVAL = "judge: Having checked it, that looks right to me. Keep it."


def kind_scenario(out: Path, kind: str | None) -> str:
    """guess_number_critic with its critic giving only ``kind`` (None: no critic), as a YAML file."""
    data = load_scenario("guess_number_critic").model_dump(mode="json")
    data["name"] = f"guess_number_critic_{kind or 'none'}"
    if kind is None:
        del data["roles"]["critic"]
        data["protocol"]["order"] = [r for r in data["protocol"]["order"] if r != "critic"]
    else:
        data["feedback"]["kinds"] = [kind]
    path = out / "scenarios" / f"{data['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


#: episode metrics averaged over the first and the last evaluation (judged_qa's: the first answer
#: is given before any feedback, so its accuracy does not depend on the judge in the seat)
EPISODE_METRICS = ("initial_correct", "final_correct", "adopted", "n_invalid")


def first_and_last(folder: Path, n: int) -> dict:
    """``start_M`` and ``final_M`` for each of `EPISODE_METRICS` the episodes report: the means
    over the first and the last ``n`` evaluation records in ``folder/eval.jsonl``."""
    recs = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines() if line.strip()]
    out = {}
    for key in EPISODE_METRICS:
        for label, block in (("start", recs[:n]), ("final", recs[-n:])):
            vals = [float(r["metrics"][key]) for r in block if r["metrics"].get(key) is not None]
            if vals:
                out[f"{label}_{key}"] = float(np.mean(vals))
    return out


def episode_cell(v: dict | None) -> str:
    if v is None:
        return "-"
    ci = f" [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]" if v["ci95"] else ""
    return f"{v['start']:.2f} -> {v['final']:.2f}{ci}"


def cells(a) -> list[tuple[str, str, str, dict]]:
    """(cell name, algo, scenario, extra train/learner fields) of the experiment."""
    if a.experiment == "equal":
        extra = {}
        if load_scenario(a.scenario).task.family == "judged_qa":  # the knowledge task, its judge constructive
            extra = {"seats": "judge=scripted:constructive"}
        return [(algo, algo, a.scenario, {**extra, **({"positive": APPROVAL} if algo == "fcp" and extra else {})})
                for algo in ("fcp", "grpo", "filtered_bc")]  # fmt: skip
    if a.experiment == "kinds":
        return [(f"fcp/{k or 'no critic'}", "fcp", kind_scenario(Path(a.out), k), {}) for k in (*KINDS, None)]
    return [(f"fcp/{j}", "fcp", "judged_qa", {"seats": f"judge=scripted:{j}", "positive": APPROVAL}) for j in a.judges.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=("equal", "kinds", "deception"))
    p.add_argument("--out", default="runs/lf")
    p.add_argument("--actor", required=True, help="the starting actor (a folder of feedbackgym bootstrap)")
    p.add_argument("--scenario", default="guess_number", help="the equal experiment's scenario")
    p.add_argument("--judges", default="constructive,malicious-grounded,malicious-none")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=256)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--lora", type=int, default=0, help="LoRA rank (a pretrained actor such as smollm2: 8)")
    p.add_argument("--rollout-size", type=int, default=16)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--learner", default="", help="learner fields for every cell, e.g. batch_size=8,grad_accum=1")
    p.add_argument("--device", default="cpu", help="where each run trains: cpu, cuda, cuda:N (feedbackgym train --device)")
    a = p.parse_args(argv)
    out = Path(a.out)
    experiment = a.experiment if a.experiment != "equal" else f"equal_{Path(a.scenario).stem}"
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    jobs = {}
    with pool_for(a.jobs, a.device) as pool:
        for name, algo, scenario, extra in cells(a):
            learner = {**key_values(a.learner, "--learner"), **{k: v for k, v in extra.items() if k != "seats"}}
            for seed in seeds:
                folder = out / experiment / f"{name.replace('/', '_').replace(' ', '_')}_s{seed}"
                args = train.TrainArgs(scenario=scenario, actor=f"lm:{a.actor}", out=str(folder), iterations=a.iterations,
                                       seed=seed, eval_every=a.eval_every, eval_episodes=a.eval_episodes, checkpoint_every=5,
                                       threads=1, seats=extra.get("seats", ""), lora=a.lora, rollout_size=a.rollout_size,
                                       temperature=a.temperature, device=a.device)  # fmt: skip
                jobs[name, seed] = folder, pool.submit(train_one, algo, args, learner)
        runs = []
        for (name, seed), (folder, job) in jobs.items():
            ev = [m for m in job.result() if "eval_return" in m]
            runs.append({"cell": name, "seed": seed, "start": ev[0]["eval_return"], "final": ev[-1]["eval_return"],
                         "final_success": ev[-1]["eval_success"], "episodes": ev[-1]["episodes"],
                         **first_and_last(folder, a.eval_episodes)})  # fmt: skip
            print(json.dumps(runs[-1]), file=sys.stderr)
    rows = ["| cell | start return | final return (mean ± sd) | 95% t-interval | gain | n |", "|---|---:|---:|---:|---:|---:|"]
    summary = {}
    for name in dict.fromkeys(r["cell"] for r in runs):
        finals = [r["final"] for r in runs if r["cell"] == name]
        start = [r["start"] for r in runs if r["cell"] == name][0]
        m, sd, ci = float(np.mean(finals)), float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0, t_interval(finals)
        summary[name] = {"start": start, "mean": m, "sd": sd, "ci95": ci, "n": len(finals)}
        ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
        rows.append(f"| {name} | {start:.3f} | {m:.3f} ± {sd:.3f} | {ci_text} | {m - start:+.3f} | {len(finals)} |")
        for key in EPISODE_METRICS:
            cell = [r for r in runs if r["cell"] == name and f"final_{key}" in r]
            if cell:
                vals = [r[f"final_{key}"] for r in cell]
                summary[name][key] = {"start": float(np.mean([r[f"start_{key}"] for r in cell])), "final": float(np.mean(vals)),
                                      "ci95": t_interval(vals), "n": len(vals)}  # fmt: skip
    keys = [k for k in EPISODE_METRICS if any(k in v for v in summary.values())]
    if keys:  # the episode metrics, start -> final [interval of the final over seeds]
        rows += ["", "| cell | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for name, v in summary.items():
            rows.append(f"| {name} | " + " | ".join(episode_cell(v.get(k)) for k in keys) + " |")
    result = {"command": " ".join(["python", *sys.argv]), "runs": runs, "summary": summary}
    (out / f"{experiment}.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
