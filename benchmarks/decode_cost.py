"""What decoding into a reserved KV cache saves, side by side with transformers' concatenating one.

    python benchmarks/decode_cost.py --actor mt=models/actor_mt2500 --actor smollm2=smollm2

`LMAgent` decodes a batch token by token. transformers' `DynamicLayer` concatenates each new
position onto the cache, copying the whole cache at every token; `ReservedLayer` (the default,
``LMAgent.reserve_cache``) writes it into room reserved ahead. For each actor, two workloads are
timed under both settings, one after the other in this process (``--repeats`` times, alternating
which goes first; the median is reported), so that their ratio compares under the same load:

- ``k draws``: ``--k`` samples at each of ``--states`` replay states (no conversation keys: the
  prompts run through `shared_prefix_plan`, equal ones once), as CHAI's best-of-k and its
  critic's V targets ask, and GRPO's groups;
- ``rollout``: ``--episodes`` twenty_questions episodes with the actor in the learner's seat
  (each conversation keeps its cache for its next turn).

Both settings must draw the same tokens (checked: the cache holds the same numbers either way).
One torch thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from feedbackgym.agents.lm import LMAgent
from feedbackgym.learners._base import Learner
from feedbackgym.learners._policy import Policy
from feedbackgym.rollout import rollout


def states(policy: Policy, episodes: int) -> list[str]:
    """The learner's prompts at every turn of ``episodes`` twenty_questions episodes."""
    trajs = rollout(Learner(policy, None, 0), "twenty_questions", 16, seeds=list(range(episodes)), actor="learner")
    return [s.prompt for t in trajs for s in t.steps]


def timed(fn) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(name: str, path: str, a) -> list[dict]:
    policy = Policy.load(path, max_new_tokens=a.max_new_tokens)
    pool = states(policy, 16)
    picked = [pool[i] for i in np.random.default_rng(0).choice(len(pool), min(a.states, len(pool)), replace=False)]
    rows = [p for p in picked for _ in range(a.k)]

    def play():
        trajs = rollout(Learner(policy, None, 1), "twenty_questions", 16, seeds=list(range(100, 100 + a.episodes)), actor="learner")
        return [s.token_ids for t in trajs for s in t.steps]

    work = {"k draws": lambda: [g.token_ids for g in policy.sample(rows, list(range(len(rows))))], "rollout": play}
    out = []
    for label, fn in work.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        tokens = {}
        for r in range(a.repeats):
            for reserve in (True, False) if r % 2 == 0 else (False, True):
                LMAgent.reserve_cache = reserve
                policy.forget()
                s, tokens[reserve] = timed(fn)
                times[reserve].append(s)
        LMAgent.reserve_cache = True
        same = tokens[True] == tokens[False]
        n_tokens = sum(len(t) for t in tokens[True])
        reserved, concat = statistics.median(times[True]), statistics.median(times[False])
        out.append({"actor": name, "work": label, "tokens": n_tokens, "reserved_s": reserved, "concat_s": concat, "same": same})
        print(out[-1], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--actor", action="append", required=True, metavar="NAME=MODEL", help="a folder or lm: name (repeatable)")
    p.add_argument("--states", type=int, default=32)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = [r for spec in a.actor for r in measure(*spec.split("=", 1), a)]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one torch thread, "
          f"load average {os.getloadavg()[0]:.1f} at the end; {a.k} draws at {a.states} states, {a.episodes} episodes\n")  # fmt: skip
    print("| actor | workload | tokens drawn | reserved cache s | concatenating s | speed-up | same tokens |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        speedup = r["concat_s"] / r["reserved_s"]
        print(f"| {r['actor']} | {r['work']} | {r['tokens']} | {r['reserved_s']:.2f} | {r['concat_s']:.2f} | {speedup:.2f}x | {r['same']} |")


if __name__ == "__main__":
    main()
