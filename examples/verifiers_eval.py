"""A verifiers evaluation of a scenario, through `feedbackgym.adapters.verifiers` (needs the
``verifiers`` extra and a served model: any OpenAI-compatible server).

The served model plays one seat (the actor's by default); the scenario's agents play the others;
each episode's reward is the seat's return under the scenario's rewards. Prints one line per
episode and the mean.

    transformers serve path/to/model --host 127.0.0.1 --port 8000 &
    python examples/verifiers_eval.py --base-url http://127.0.0.1:8000/v1 --model path/to/model \\
        --scenario guess_number --episodes 8
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass


@dataclass
class Args:
    base_url: str = "http://127.0.0.1:8000/v1"
    """the server's OpenAI base URL"""
    model: str = ""
    """the model name the server serves"""
    scenario: str = "guess_number"
    """a shipped scenario name or a YAML path"""
    seat: str = "actor"
    """the role the served model plays"""
    episodes: int = 8
    """one per seed, from --seed"""
    seed: int = 0
    max_tokens: int = 16
    """tokens per reply"""
    temperature: float = 0.0
    """0: greedy"""


def main(args: Args) -> list[float]:
    from feedbackgym.adapters import verifiers as fg_vf

    seeds = range(args.seed, args.seed + args.episodes)
    episodes = asyncio.run(
        fg_vf.evaluate(
            args.scenario, model=args.model, base_url=args.base_url, seeds=seeds, seat=args.seat,
            max_tokens=args.max_tokens, temperature=args.temperature, stop=["\n"],
        )
    )  # fmt: skip
    rewards = []
    for episode in episodes:
        (trace,) = episode.traces
        reward = fg_vf.reward_of(episode)
        rewards.append(reward)
        info = trace.info
        print(f"seed {info['seed']}: reward {reward:.3f}, {info['turns']} turns, {info['terminate_reason']}")
    print(f"mean reward {sum(rewards) / len(rewards):.3f} over {len(rewards)} episodes")
    return rewards


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        kind = type(default) if default is not None else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    main(Args(**vars(parser.parse_args())))
