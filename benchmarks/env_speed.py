"""Microseconds per `env.step` for every registered id, with a scripted actor choosing the
actions, at short and long episode lengths.

    python benchmarks/env_speed.py            # the table
    python benchmarks/env_speed.py --json out.json

The actor's moves are computed before the clock starts, so the figure is the env's own cost:
the engine, the built-in roles' replies (e.g. the user's feedback in guess_number), the
observation and the info. Resets are timed separately. "long" episodes raise the turn budget
(and, for guess_number, the range) so that one episode runs for thousands of steps: a per-step
cost that grows with the transcript shows up as long > short.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import gymnasium as gym
import numpy as np

import feedbackgym
from feedbackgym.envs.scenario import load_scenario, validate

# (id, scenario overrides for a long episode, actor used to pre-compute moves)
CASES = {
    "feedbackgym/GuessNumber-v0": ({"task": {"family": "guess_number", "params": {"low": 1, "high": 10**9}}}, "random"),
    "feedbackgym/TwentyQuestions-v0": ({}, "random"),
    "feedbackgym/JudgedQA-v0": ({"protocol": {"order": ["actor", "judge"], "rounds": 5000, "final": ["actor"], "max_turns": 10**6}}, "random"),
}


def scenario_for(env_id: str, long: bool, turns: int):
    sc = load_scenario(feedbackgym.ENV_IDS[env_id])
    if not long:
        return sc
    data = sc.model_dump()
    over, _ = CASES[env_id]
    for k, v in over.items():
        data[k] = {**data[k], **v}
    data["protocol"]["max_turns"] = max(data["protocol"]["max_turns"], turns + 10)
    return validate(data, source="benchmark")


def moves(env, n: int, seed: int) -> list[str]:
    """n actions drawn by the scripted random actor's move generator (valid, uninformed moves)."""
    inst = env.unwrapped.episode.instance
    rng = np.random.default_rng(seed)
    return [inst.noisy(None, rng) for _ in range(n)]


def time_steps(env_id: str, long: bool, steps: int, seed: int = 0, wrapped: bool = False) -> dict:
    sc = scenario_for(env_id, long, steps)
    env = gym.make(env_id, scenario=sc)  # with gymnasium's wrappers (order enforcing, checker)...
    if not wrapped:
        env = env.unwrapped  # ...or the env itself
    env.reset(seed=seed)
    actions = moves(env, steps, seed)
    env.reset(seed=seed)
    n_steps = n_resets = 0
    t_reset = 0.0
    clock = time.perf_counter
    step, reset = env.step, env.reset
    start = clock()
    for a in actions:  # the loop is timed whole; only resets are clocked one by one
        _, _, term, trunc, _ = step(a)
        n_steps += 1
        if term or trunc:
            t0 = clock()
            reset()
            t_reset += clock() - t0
            n_resets += 1
    t_step = clock() - start - t_reset
    return {
        "id": env_id,
        "episode": "long" if long else "short",
        "wrapped": wrapped,
        "steps": n_steps,
        "us_per_step": 1e6 * t_step / n_steps,
        "resets": n_resets,
        "us_per_reset": 1e6 * t_reset / n_resets if n_resets else None,
        "mean_episode_steps": n_steps / max(1, n_resets) if not long else n_steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3, help="best of N runs per cell")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    rows = []
    for env_id in CASES:
        for long, wrapped in ((False, False), (True, False), (False, True)):
            runs = [time_steps(env_id, long, args.steps, r, wrapped) for r in range(args.repeats)]
            rows.append(min(runs, key=lambda r: r["us_per_step"]))
    print(f"python {platform.python_version()}, {platform.machine()}, best of {args.repeats}, {args.steps} steps each")
    print(f"{'id':34} {'episode':8} {'env':10} {'us/step':>8} {'us/reset':>9} {'steps/episode':>14}")
    for r in rows:
        reset = f"{r['us_per_reset']:.1f}" if r["us_per_reset"] else "-"
        env = "gym.make" if r["wrapped"] else "unwrapped"
        print(f"{r['id']:34} {r['episode']:8} {env:10} {r['us_per_step']:8.2f} {reset:>9} {r['mean_episode_steps']:14.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
