"""RLlib trains both seats of the Self-Play Critic game through the PettingZoo face.

The sneaky generator and the critic are each an RLlib PPO module (independent learning, RLlib's
new API stack), on `feedbackgym.envs.pettingzoo` wrapped in `CandidateAgents` (Discrete moves
over each seat's candidates, embedded observations) and RLlib's own ``PettingZooEnv``. The game
is zero-sum (+1 / -1), so the generator's mean return is minus the critic's; the table shows
how the critic's win rate moves as the two learn against each other.

RLlib pins an older Gymnasium (``ray[rllib]==2.60.0`` wants ``gymnasium==1.2.2``; feedbackgym
works with either), so it gets a virtual environment of its own: ``make rllib`` builds
``.venv-rllib`` and runs this example's test. By hand:

    python3 -m venv .venv-rllib && .venv-rllib/bin/pip install "torch==2.13.0" "ray[rllib]==2.60.0" -e .
    .venv-rllib/bin/python examples/rllib_spc.py --iterations 20
"""

from __future__ import annotations

import argparse
import json
import os

import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv
from ray.tune.registry import register_env

from feedbackgym.encoders import HashingEmbedder
from feedbackgym.envs.pettingzoo import env as pettingzoo_env
from feedbackgym.envs.wrappers import CandidateAgents

SEATS = ("generator_0", "critic_0")


def make_env(config: dict) -> PettingZooEnv:
    """Both SPC seats played from outside, each with its candidate view (RLlib passes its env config)."""
    face = pettingzoo_env(scenario="spc", external=["generator", "critic"])
    return PettingZooEnv(CandidateAgents(face, HashingEmbedder(64)))


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=20, help="RLlib training iterations")
    p.add_argument("--batch", type=int, default=400, help="env steps an iteration (an episode is 2 steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the table's rows here")
    args = p.parse_args(argv)

    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    register_env("feedbackgym-spc", make_env)
    config = (
        PPOConfig()
        .environment("feedbackgym-spc")
        .env_runners(num_env_runners=0)  # episodes in the driver: 2 cores are enough
        .multi_agent(policies=set(SEATS), policy_mapping_fn=lambda agent_id, *a, **k: agent_id)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={s: RLModuleSpec() for s in SEATS}))
        .training(train_batch_size_per_learner=args.batch, minibatch_size=min(128, args.batch), num_epochs=4, lr=3e-4)
        .debugging(seed=args.seed)
    )
    algo = config.build_algo()
    rows = []
    print(f"{'iteration':>9} {'episodes':>9} {'critic wins':>12} {'generator return':>17} {'critic policy loss':>19}")
    for it in range(1, args.iterations + 1):
        result = algo.train()
        runners = result["env_runners"]
        returns = runners["module_episode_returns_mean"]
        row = {
            "iteration": it,
            "episodes": int(runners["num_episodes_lifetime"]),
            "critic_win_rate": (returns["critic_0"] + 1) / 2,
            "generator_return": returns["generator_0"],
            "critic_return": returns["critic_0"],
            "critic_policy_loss": float(result["learners"]["critic_0"]["policy_loss"]),
        }
        rows.append(row)
        print(f"{it:>9} {row['episodes']:>9} {row['critic_win_rate']:>12.3f} {row['generator_return']:>17.3f} {row['critic_policy_loss']:>19.4f}")
    algo.stop()
    ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
