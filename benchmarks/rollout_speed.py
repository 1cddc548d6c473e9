"""Episodes/s and generated tokens/s of an LM actor: the sequential loop through the Gymnasium
face against batched rollouts (`feedbackgym.rollout`) at N = 1, 8, 32, 64 episodes in flight.

    feedbackgym bootstrap twenty_questions --out models/actor
    python benchmarks/rollout_speed.py --model models/actor            # the markdown table
    python benchmarks/rollout_speed.py --model models/actor --json out.json

Every row plays the same episodes (seeds ``seed .. seed + episodes - 1``) with the same sampling
settings, from a fresh agent (an empty prompt cache); the model is loaded once, and a short
warm-up runs before the clock starts. "sequential, no KV reuse" recomputes every prompt, as a
loop around ``model.generate`` would.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import feedbackgym
from feedbackgym.agents.lm import LMAgent
from feedbackgym.rollout import rollout


def sequential(agent: LMAgent, env_id: str, episodes: int, seed: int) -> tuple[int, int]:
    """One env, one episode after another, one model call per step: (successes, tokens)."""
    env = feedbackgym.make(env_id)
    successes = tokens = 0
    for k in range(episodes):
        env.reset(seed=seed + k)
        done = False
        while not done:
            base = env.unwrapped
            g = agent.generate([base.episode.view(base.learner)])[0]
            tokens += len(g.token_ids)
            *_, terminated, truncated, info = env.step(g.text)
            done = terminated or truncated
        successes += info["success"]
    return successes, tokens


def batched(agent: LMAgent, env_id: str, episodes: int, seed: int, n_envs: int) -> tuple[int, int]:
    runs = rollout(agent, env_id, n_envs=n_envs, episodes=episodes, seed=seed)
    return sum(t.success for t in runs), sum(len(s.token_ids) for t in runs for s in t.steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/actor", help="folder of a saved causal LM (lm:PATH)")
    p.add_argument("--env", default="feedbackgym/TwentyQuestions-v0")
    p.add_argument("--episodes", type=int, default=128, help="episodes per row")
    p.add_argument("--ns", default="1,8,32,64", help="episodes in flight for the batched rows")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    def agent(**extra) -> LMAgent:
        return LMAgent.from_pretrained(args.model, temperature=args.temperature, **extra)

    batched(agent(), args.env, 8, args.seed + 10**6, 8)  # warm-up, on other seeds
    cases = [("sequential, no KV reuse", 1, lambda: sequential(agent(prompt_cache=0), args.env, args.episodes, args.seed))]
    cases.append(("sequential", 1, lambda: sequential(agent(), args.env, args.episodes, args.seed)))
    for n in (int(x) for x in args.ns.split(",")):
        cases.append(("batched", n, lambda n=n: batched(agent(), args.env, args.episodes, args.seed, n)))
    rows = []
    for mode, n, fn in cases:
        t0 = time.perf_counter()
        successes, tokens = fn()
        dt = time.perf_counter() - t0
        rows.append({"mode": mode, "n_envs": n, "seconds": round(dt, 2), "episodes_per_s": args.episodes / dt,
                     "tokens_per_s": tokens / dt, "success": successes / args.episodes})  # fmt: skip
    base = next(r for r in rows if r["mode"] == "sequential")["episodes_per_s"]
    print(f"{args.model} on {args.env}: {args.episodes} episodes per row, temperature {args.temperature}, "
          f"{args.threads} torch threads, {platform.processor() or platform.machine()}, torch {torch.__version__}\n")  # fmt: skip
    print("| mode | N | seconds | episodes/s | tokens/s | vs sequential | success |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['n_envs']} | {r['seconds']:.1f} | {r['episodes_per_s']:.2f} | "
              f"{r['tokens_per_s']:.0f} | {r['episodes_per_s'] / base:.1f}x | {r['success']:.2f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
