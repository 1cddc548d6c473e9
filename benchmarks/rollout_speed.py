"""Episodes/s and generated tokens/s of an LM actor: the sequential loop through the Gymnasium
face against batched rollouts (`feedbackgym.rollout`), a real LM's rollouts against Hugging Face
``generate()`` on the same prompts, and served seats against a local ``transformers serve``.

    feedbackgym bootstrap twenty_questions --out models/actor
    python benchmarks/rollout_speed.py --model models/actor            # the "loop" table
    python benchmarks/rollout_speed.py --model models/actor --json out.json
    python benchmarks/rollout_speed.py --model smollm2 --env feedbackgym/JudgedQA-v0 \\
        --sections lm,generate,served --episodes 32

Sections (``--sections``, comma-separated):

- ``loop``: the sequential Gymnasium loop (with and without KV reuse) against ``rollout()`` at
  ``--ns`` episodes in flight.
- ``lm``: ``rollout()`` at ``--lm-ns``, with the time inside the model's forward passes measured
  (hooks on the model), so the share of the run spent outside the model is reported.
- ``generate``: for each ``lm`` run, the batches of prompts the agent was asked for (one
  ``generate_text`` call each: the prompts, their seeds) are replayed through
  ``model.generate(**tokenizer(batch, left padding), max_new_tokens, same sampling, stop strings)``,
  in the same process right after the rollout: the bound a user writing their own loop around
  ``generate()`` would reach at that batch. The rollout's LM decodes with its own loop and keeps
  each conversation's KV cache across turns; ``generate()`` recomputes every prompt. Sampling uses
  one global seed per batch (``generate()`` has no per-row generators), so sampled texts can differ.
- ``served``: ``transformers serve`` on 127.0.0.1 (``tests/servers.py``) serving the same model
  folder, ``openai:`` seats (`ServedAgent`) at ``--concurrency`` requests in flight (and as many
  episodes in flight), on the same episodes; completion tokens come from the responses' usage.

Every row plays the same episodes (seeds ``seed .. seed + episodes - 1``) with the same sampling
settings, from a fresh agent (an empty prompt cache); the model is loaded once, and a short
warm-up runs before the clock starts. ``--repeats R`` runs each timed row R times: the table gives
the median and the min-max spread of tokens/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import feedbackgym
from feedbackgym.agents.lm import LMAgent
from feedbackgym.rollout import rollout

SECTIONS = ("loop", "lm", "generate", "served")


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


# ---------------------------------------------------------------------- measuring
class ForwardTimer:
    """Wall time inside ``model``'s forward passes (a pre-hook and a hook on the top module),
    while the context is open; ``calls`` counts them."""

    def __init__(self, model):
        self.model, self.seconds, self.calls, self._t0 = model, 0.0, 0, 0.0

    def _pre(self, *_):
        self._t0 = time.perf_counter()

    def _post(self, *_):
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1

    def __enter__(self) -> ForwardTimer:
        self._hooks = [self.model.register_forward_pre_hook(self._pre), self.model.register_forward_hook(self._post)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()


def record_calls(agent: LMAgent) -> list[dict]:
    """Wrap ``agent.generate_text`` (which every `LMAgent.generate` goes through) to keep each
    call's prompts, seeds and temperatures, and the texts and token counts it returned."""
    calls: list[dict] = []
    inner = agent.generate_text

    def generate_text(prompts, seeds, keys=None, temperatures=None):
        out = inner(prompts, seeds, keys=keys, temperatures=temperatures)
        calls.append({"prompts": list(prompts), "seeds": list(seeds), "temperatures": temperatures,
                      "texts": [g.text for g in out], "tokens": [len(g.token_ids) for g in out]})  # fmt: skip
        return out

    agent.generate_text = generate_text
    return calls


def lm_rollout(make_agent, env_id: str, episodes: int, seed: int, n: int) -> dict:
    """One timed ``rollout()`` at ``n`` in flight: time, model time, tokens, calls, texts."""
    agent = make_agent()
    calls = record_calls(agent)
    with ForwardTimer(agent.model) as fw:
        t0 = time.perf_counter()
        runs = rollout(agent, env_id, n_envs=n, episodes=episodes, seed=seed)
        dt = time.perf_counter() - t0
    return {"seconds": dt, "model_seconds": fw.seconds, "forwards": fw.calls, "calls": calls,
            "tokens": sum(len(s.token_ids) for t in runs for s in t.steps), "success": sum(t.success for t in runs),
            "actions": [[s.action for s in t.steps] for t in runs]}  # fmt: skip


def hf_generate(agent: LMAgent, calls: list[dict]) -> dict:
    """The recorded batches through ``model.generate()``, one call per batch, same settings."""
    tok, opts, model = agent.tokenizer, agent.options, agent.model
    sampling = {"do_sample": False}
    if opts.temperature_step is not None:
        raise SystemExit("--sections generate: a temperature schedule (temperature_step) has no generate() twin")
    if opts.temperature > 0:
        sampling = {"do_sample": True, "temperature": opts.temperature, "top_p": opts.top_p, "top_k": 0}
    settings = {"max_new_tokens": opts.max_new_tokens, "pad_token_id": agent.pad_id, "eos_token_id": agent.eos_id,
                "stop_strings": list(opts.stop), "tokenizer": tok, **sampling}  # fmt: skip
    seconds = model_seconds = 0.0
    outputs = []
    for c in calls:
        t0 = time.perf_counter()
        with ForwardTimer(model) as fw, torch.inference_mode():
            enc = tok(c["prompts"], return_tensors="pt", padding=True, padding_side="left", truncation=True,
                      truncation_side="left", max_length=agent.max_prompt_tokens, add_special_tokens=not agent.use_chat)  # fmt: skip
            torch.manual_seed(c["seeds"][0] % 2**63)  # one seed per batch: generate() has no per-row generators
            out = model.generate(**{k: v.to(agent.device) for k, v in enc.items()}, **settings)
        seconds += time.perf_counter() - t0
        model_seconds += fw.seconds
        outputs.append(out[:, enc["input_ids"].shape[1] :].tolist())
    # outside the clock: each row's tokens through its end token or the one completing a stop
    # string (after which generate() pads), and its text cut as the agent cuts it
    tokens, same = 0, 0
    for c, rows in zip(calls, outputs):
        for row, text in zip(rows, c["texts"]):
            n = len(row)
            for i, t in enumerate(row):
                if t in (agent.pad_id, agent.eos_id):
                    ended_by_stop = any(s in tok.decode(row[:i], skip_special_tokens=True) for s in opts.stop)
                    n = i if ended_by_stop else i + 1
                    break
            tokens += n
            same += agent._text(row[:n]) == text
    return {"seconds": seconds, "model_seconds": model_seconds, "tokens": tokens,
            "same_text": same / max(1, sum(len(c["prompts"]) for c in calls))}  # fmt: skip


def model_folder(name: str) -> str:
    """The folder a server loads for ``lm:NAME`` (a GGUF file's dequantized copy)."""
    from feedbackgym.agents.lm import dequantized
    from feedbackgym.agents.models import locate

    where = locate(name)
    return str(dequantized(Path(where.path) / where.gguf_file)) if where.gguf_file else str(where.path)


def served_rows(args, opts, folder: str, concurrencies: list[int], reference: list[list[str]] | None) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from servers import Server

    from feedbackgym.agents.served import ServedAgent

    rows = []
    log = Path(tempfile.mkdtemp(prefix="rollout_speed_serve_")) / "serve.log"
    server = Server(folder, log=log).start(timeout=300)
    try:

        def agent(c: int) -> ServedAgent:
            a = ServedAgent.from_params(folder, base_url=server.url, concurrency=c, temperature=opts.temperature,
                                        top_p=opts.top_p, max_tokens=opts.max_new_tokens, stop=list(opts.stop),
                                        timeout=300, max_retries=0)  # fmt: skip
            usage: list = []
            inner = a.generate

            def generate(views):
                out = inner(views)
                usage.extend(g.usage or {} for g in out)
                return out

            a.generate, a.usage_log = generate, usage
            return a

        warm = agent(2)
        rollout(warm, args.env, n_envs=2, episodes=2, seed=args.seed + 10**6)  # warm-up, on other seeds
        warm.close()
        for c in concurrencies:
            for _ in range(args.served_repeats):
                a = agent(c)
                t0 = time.perf_counter()
                runs = rollout(a, args.env, n_envs=c, episodes=args.episodes, seed=args.seed)
                dt = time.perf_counter() - t0
                a.close()
                done = sum(u.get("completion_tokens", 0) for u in a.usage_log)
                actions = [[s.action for s in t.steps] for t in runs]
                rows.append({"section": "served", "mode": "served rollout()", "n_envs": c, "seconds": dt,
                             "episodes_per_s": args.episodes / dt, "tokens_per_s": done / dt,
                             "success": sum(t.success for t in runs) / args.episodes, "requests": len(a.usage_log),
                             "mean_latency_s": statistics.mean(u.get("latency_s", 0) for u in a.usage_log),
                             "same_text": same_fraction(actions, reference)})  # fmt: skip
    finally:
        server.stop()
    return rows


def same_fraction(actions: list[list[str]], reference: list[list[str]] | None) -> float | None:
    """The fraction of utterances equal to the reference run's (same episode, same step)."""
    if reference is None:
        return None
    pairs = [(a, b) for x, y in zip(actions, reference) for a, b in zip(x, y)]
    longer = sum(max(len(x), len(y)) for x, y in zip(actions, reference))
    return sum(a == b for a, b in pairs) / max(1, longer)


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (section, mode, N): the median run, with the spread of tokens/s over repeats."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["section"], r["mode"], r["n_envs"]), []).append(r)
    out = []
    for runs in groups.values():
        runs = sorted(runs, key=lambda r: r["seconds"])
        med = dict(runs[(len(runs) - 1) // 2])
        med["repeats"] = len(runs)
        med["tokens_per_s_range"] = [min(r["tokens_per_s"] for r in runs), max(r["tokens_per_s"] for r in runs)]
        out.append(med)
    return out


def fmt(x, spec: str, none: str = "-") -> str:
    return none if x is None else format(x, spec)


# ---------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/actor", help="any lm:NAME: a saved folder, a GGUF file, smollm2")
    p.add_argument("--env", default="feedbackgym/TwentyQuestions-v0")
    p.add_argument("--sections", default="loop", help=f"comma-separated, of {','.join(SECTIONS)}")
    p.add_argument("--episodes", type=int, default=128, help="episodes per row")
    p.add_argument("--ns", default="1,8,32,64", help="episodes in flight for the loop section's batched rows")
    p.add_argument("--lm-ns", default="1,8,32", help="episodes in flight for the lm and generate sections")
    p.add_argument("--concurrency", default="1,8,16", help="requests (and episodes) in flight for the served rows")
    p.add_argument("--temperature", type=float, default=None, help="default: the model's own config, else 1")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per row (median and spread reported)")
    p.add_argument("--served-repeats", type=int, default=1, help="timed runs per served row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    def agent(**extra) -> LMAgent:
        params = {"max_new_tokens": args.max_new_tokens, **extra}
        if args.temperature is not None:
            params["temperature"] = args.temperature
        return LMAgent.from_pretrained(args.model, **params)

    opts = agent().options
    batched(agent(), args.env, 8, args.seed + 10**6, 8)  # warm-up, on other seeds
    rows: list[dict] = []

    def timed(section: str, mode: str, n: int, fn) -> None:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            successes, tokens = fn()
            dt = time.perf_counter() - t0
            rows.append({"section": section, "mode": mode, "n_envs": n, "seconds": dt, "episodes_per_s": args.episodes / dt,
                         "tokens_per_s": tokens / dt, "success": successes / args.episodes})  # fmt: skip

    if "loop" in sections:
        timed("loop", "sequential, no KV reuse", 1, lambda: sequential(agent(prompt_cache=0), args.env, args.episodes, args.seed))
        timed("loop", "sequential", 1, lambda: sequential(agent(), args.env, args.episodes, args.seed))
        for n in (int(x) for x in args.ns.split(",")):
            timed("loop", "batched", n, lambda n=n: batched(agent(), args.env, args.episodes, args.seed, n))

    reference = None  # the N = 1 rollout's utterances, which the other rows are compared with
    if "lm" in sections or "generate" in sections:
        if "generate" in sections:
            hf_generate(agent(), lm_rollout(agent, args.env, 2, args.seed + 10**6, 2)["calls"])  # warm-up
        for n in (int(x) for x in args.lm_ns.split(",")):
            for _ in range(args.repeats):  # a rollout, then generate() on its batches, then again
                r = lm_rollout(agent, args.env, args.episodes, args.seed, n)
                reference = reference or r["actions"]
                batch = statistics.mean(len(c["prompts"]) for c in r["calls"])
                rows.append({"section": "lm", "mode": "rollout()", "n_envs": n, "seconds": r["seconds"],
                             "episodes_per_s": args.episodes / r["seconds"], "tokens_per_s": r["tokens"] / r["seconds"],
                             "success": r["success"] / args.episodes, "outside_model": 1 - r["model_seconds"] / r["seconds"],
                             "calls": len(r["calls"]), "mean_batch": batch, "forwards": r["forwards"],
                             "same_text": same_fraction(r["actions"], reference)})  # fmt: skip
                if "generate" in sections:
                    g = hf_generate(agent(), r["calls"])
                    rows.append({"section": "generate", "mode": "HF generate()", "n_envs": n, "seconds": g["seconds"],
                                 "episodes_per_s": args.episodes / g["seconds"], "tokens_per_s": g["tokens"] / g["seconds"],
                                 "success": None, "outside_model": 1 - g["model_seconds"] / g["seconds"],
                                 "calls": len(r["calls"]), "mean_batch": batch, "same_text": g["same_text"],
                                 "rollout_seconds": r["seconds"]})  # fmt: skip

    if "served" in sections:
        folder = model_folder(args.model)
        rows += served_rows(args, opts, folder, [int(x) for x in args.concurrency.split(",")], reference)

    table = summarize(rows)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    load = ", load average {:.2f} {:.2f} {:.2f} at the start".format(*load_at_start) if load_at_start else ""
    print(f"command: python {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}  (commit {commit})")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{load}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")  # fmt: skip
    print(f"{args.model} on {args.env}: {args.episodes} episodes per row, temperature {opts.temperature}, "
          f"top_p {opts.top_p}, max_new_tokens {opts.max_new_tokens}, {args.repeats} run(s) per row (median)\n")  # fmt: skip
    loop = [r for r in table if r["section"] == "loop"]
    if loop:
        base = next(r for r in loop if r["mode"] == "sequential")["episodes_per_s"]
        print("| mode | N | seconds | episodes/s | tokens/s | vs sequential | success |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in loop:
            print(f"| {r['mode']} | {r['n_envs']} | {r['seconds']:.1f} | {r['episodes_per_s']:.2f} | "
                  f"{r['tokens_per_s']:.0f} | {r['episodes_per_s'] / base:.1f}x | {r['success']:.2f} |")  # fmt: skip
        print()
    lm = [r for r in table if r["section"] in ("lm", "generate", "served")]
    if lm:
        ours = {r["n_envs"]: r for r in lm if r["section"] == "lm"}
        print("| mode | N | seconds | episodes/s | tokens/s (min-max) | vs generate() | outside model | "
              "same text as rollout() N=1 | success |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in lm:
            gen = next((g for g in lm if g["section"] == "generate" and g["n_envs"] == r["n_envs"]), None)
            vs = f"{r['tokens_per_s'] / gen['tokens_per_s']:.2f}x" if r["section"] == "lm" and gen else "-"
            lo, hi = r["tokens_per_s_range"]
            same = r["same_text"]
            if r["section"] == "generate":
                same_note = f"{same:.2f} (vs this N)"
                mode = "HF generate(), same batches"
            else:
                same_note, mode = fmt(same, ".2f"), r["mode"]
            n = f"{r['n_envs']}" + (" (concurrency)" if r["section"] == "served" else "")
            print(f"| {mode} | {n} | {r['seconds']:.1f} | {r['episodes_per_s']:.2f} | {r['tokens_per_s']:.0f} "
                  f"({lo:.0f}-{hi:.0f}) | {vs} | {fmt(r.get('outside_model'), '.1%')} | {same_note} | "
                  f"{fmt(r['success'], '.2f')} |")  # fmt: skip
        if ours:
            print("\nrollout() calls per run and mean batch: "
                  + ", ".join(f"N={n}: {r['calls']} calls of {r['mean_batch']:.1f}" for n, r in ours.items()))  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": sys.argv, "commit": commit, "rows": rows, "table": table}, f, indent=2, default=str)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
