"""What an ArCHer iteration costs, phase by phase, with one-token and multi-token actors.

    feedbackgym bootstrap twenty_questions --out models/actor_1t --merges lines   # one token a question
    feedbackgym bootstrap twenty_questions --out models/actor                     # 5-11 tokens a question
    python benchmarks/archer_cost.py --actor one=models/actor_1t --actor multi=models/actor

For each actor, ``--fill`` episodes are collected once into a replay buffer (as a run's buffer
is after a few iterations; a buffer of one iteration's episodes would overstate how often
states share an episode), then ArCHer's update (``critic_steps`` critic steps, each sampling
fresh utterances for its V targets, and ``actor_steps`` actor steps; the learner's defaults) is
timed from the same learner state under each sampling setting, one after the other in this
process, so that their ratios compare under the same load:

- ``before``: one `LMAgent.generate_text` call per micro-batch (the code before batching);
- ``batched``: all critic steps' samples in one `Policy.sample` call, batched by prompt length
  (``--batch-v-samples``), without shared prefixes;
- ``shared``: the default: batched, and an earlier turn reuses a later turn's prompt KV cache.

The three make the same update (the same seeds in the same order: `tests/test_multitoken.py`).
Reported per row: seconds of the update, of the critic steps, of their fresh sampling
(``v_samples``) and of the actor steps, and the collection of ``--rollout-size`` episodes (the
loop's other phase, measured once a actor). One torch thread. ``--repeats`` runs each row again
in the order before, batched, shared, shared, batched, before, ... and reports the median.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from feedbackgym.learners import archer
from feedbackgym.learners._policy import Policy
from feedbackgym.rollout import rollout

SETTINGS = {"before": (False, False), "batched": (True, False), "shared": (True, True)}


def collect(policy: Policy, episodes: int, num_envs: int, seed: int):
    learner = archer.ArCHer(policy, archer.Args(), seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        trajs = rollout(learner, "twenty_questions", num_envs, seeds=[seed * 10**7 + k for k in range(episodes)], actor="learner")
    return trajs, time.perf_counter() - t0


def measure(name: str, path: str, args) -> list[dict]:
    policy = Policy.load(path, max_new_tokens=24)
    fill, _ = collect(policy, args.fill, 16, args.seed)
    _, collect_s = collect(policy, args.rollout_size, 16, args.seed + 1)
    tokens = [len(s.token_ids) for t in fill for s in t.steps]
    learner_args = dict(warmup_iters=0, critic_steps=args.critic_steps)
    base = archer.ArCHer(policy, archer.Args(**learner_args), args.seed)
    base.observe(fill)
    snapshot = {"policy": copy.deepcopy(policy.model.state_dict()), "learner": base.state_dict()}
    order = list(SETTINGS)
    plan = [s for r in range(args.repeats) for s in (order if r % 2 == 0 else order[::-1])]
    rows: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    for setting in plan:
        batch, share = SETTINGS[setting]
        policy.model.load_state_dict(snapshot["policy"])
        learner = archer.ArCHer(policy, archer.Args(**learner_args, batch_v_samples=batch), args.seed, features=base.features.cache)
        learner.load_state_dict(copy.deepcopy(snapshot["learner"]))
        policy.share_prefixes = share
        t0 = time.perf_counter()
        out = learner.update([], iteration=0)
        rows[setting].append({"update_s": time.perf_counter() - t0, **{f"{k}_s": v for k, v in out["cost_s"].items()}})
        print(f"{name} {setting}: {rows[setting][-1]}", flush=True)
    policy.share_prefixes = True
    result = []
    for setting, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        result.append({"actor": name, "setting": setting, "tokens_per_utterance": float(np.mean(tokens)), "buffer": len(base.buffer),
                       "collect_s": collect_s, "runs": len(runs), **med})  # fmt: skip
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--actor", action="append", required=True, metavar="NAME=DIR", help="an actor to measure (repeatable)")
    p.add_argument("--fill", type=int, default=96, help="episodes in the replay buffer before the timed updates")
    p.add_argument("--rollout-size", type=int, default=16, help="episodes of the timed collection (the loop's default)")
    p.add_argument("--critic-steps", type=int, default=archer.Args.critic_steps, help="critic steps of the timed update (their cost is linear in it)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = [r for spec in a.actor for r in measure(*spec.split("=", 1), a)]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one torch thread, "
          f"load average {os.getloadavg()[0]:.1f} at the end; archer.Args' defaults but critic_steps {a.critic_steps} ("
          f"default {archer.Args.critic_steps}; batch {archer.Args.batch_size} x {archer.Args.grad_accum}, actor_steps {archer.Args.actor_steps}); "
          f"buffer of {a.fill} episodes\n")  # fmt: skip
    print("| actor | tokens/utterance | sampling | update s | critic s | of which v_samples s | actor s | vs before | collect s (--rollout-size episodes) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        before = next(b for b in rows if b["actor"] == r["actor"] and b["setting"] == "before")
        print(f"| {r['actor']} | {r['tokens_per_utterance']:.1f} | {r['setting']} | {r['update_s']:.1f} | {r['critic_s']:.1f} | "
              f"{r['v_samples_s']:.1f} | {r['actor_s']:.1f} | {before['update_s'] / r['update_s']:.1f}x | {r['collect_s']:.1f} |")  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
