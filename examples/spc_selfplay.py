"""Two learners against each other in the Self-Play Critic game, through the PettingZoo face.

The sneaky generator chooses which step of the worked solution to corrupt and how (off by one,
off by ten, doubled, digits swapped); the critic chooses which step to re-check carefully (a
blatant error it sees at a glance anyway). Both are tabular softmax policies trained with
REINFORCE against a running baseline, on the zero-sum reward of the game. Both act only from
their observations: the generator reads the correct solution from its private view, the critic
reads the generator's solution from the transcript.

    python examples/spc_selfplay.py
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

import feedbackgym
from feedbackgym.envs.tasks.spc import _STEP, ERRORS, sneaky


@dataclass
class Args:
    episodes: int = 4000
    """episodes of self-play"""
    report: int = 400
    """episodes per line of the report"""
    lr: float = 0.1
    """learning rate of both policies"""
    seed: int = 0


class Softmax:
    """A tabular softmax policy over n candidate moves, trained by REINFORCE with a baseline."""

    def __init__(self, n: int, lr: float, rng: np.random.Generator, logits=None):
        self.logits = np.zeros(n) if logits is None else np.asarray(logits, float)
        self.lr, self.rng, self.baseline = lr, rng, 0.0

    def probs(self) -> np.ndarray:
        z = np.exp(self.logits - self.logits.max())
        return z / z.sum()

    def sample(self) -> int:
        return int(self.rng.choice(len(self.logits), p=self.probs()))

    def update(self, action: int, reward: float) -> None:
        advantage = reward - self.baseline
        self.baseline += 0.05 * (reward - self.baseline)
        grad = -self.probs()
        grad[action] += 1.0
        self.logits += self.lr * advantage * grad


def parse_steps(text: str) -> list[tuple[int, str, int, int]]:
    return [(int(a), op, int(b), int(r)) for _, a, op, b, r in _STEP.findall(text)]


def critic_says(solution: str, careful: int) -> str:
    """Name a step whose result is off by half or more (seen at a glance), or the carefully
    re-checked step if it is wrong; otherwise pass the solution."""
    steps = parse_steps(solution)
    for i, (a, op, b, r) in enumerate(steps):
        true = {"+": a + b, "-": a - b, "*": a * b}[op]
        if r != true and (abs(r - true) >= abs(true) / 2 or i == careful):
            return f"Step {i + 1} is wrong."
    return "All steps are correct."


def main(args: Args) -> None:
    rng = np.random.default_rng(args.seed)
    env = feedbackgym.make_multiagent("feedbackgym/SelfPlayCritic-v0")  # both roles played from here
    n_steps, errors = env.unwrapped.scenario.task.params.get("steps", 4), list(ERRORS)
    # the generator starts out fond of the last step (so that the critic has something to learn)
    gen = Softmax(n_steps * len(errors), args.lr, rng, [2.0 if i // len(errors) == n_steps - 1 else 0.0 for i in range(n_steps * len(errors))])
    critic = Softmax(n_steps, args.lr, rng)
    wins = []
    print(f"{'episodes':>9} {'generator win':>14} {'critic win':>11}  critic checks step (probs)   generator corrupts step (probs)")
    for episode in range(args.episodes):
        env.reset(seed=args.seed + episode)
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            if agent == "generator_0":
                g = gen.sample()
                k, e = divmod(g, len(errors))
                env.step(sneaky(parse_steps(obs["private"]), k, errors[e], rng))
            else:
                c = critic.sample()
                solution = obs["new"].split(": ", 1)[1]  # the transcript line is "generator: <solution>"
                env.step(critic_says(solution, c))
        returns = env.unwrapped.episode.returns
        gen.update(g, returns["generator"])
        critic.update(c, returns["critic"])
        wins.append(returns["generator"] > 0)
        if (episode + 1) % args.report == 0:
            window = wins[-args.report :]
            g_rate = sum(window) / len(window)
            per_step = gen.probs().reshape(n_steps, len(errors)).sum(axis=1)
            print(f"{episode + 1:>9} {g_rate:>14.2f} {1 - g_rate:>11.2f}  {np.round(critic.probs(), 2)}   {np.round(per_step, 2)}")
    favourite = int(np.argmax(gen.probs()))
    print(f"generator's favourite move: step {favourite // len(errors) + 1}, {errors[favourite % len(errors)]}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, field in Args.__dataclass_fields__.items():
        p.add_argument(f"--{name}", type=type(field.default), default=field.default)
    main(Args(**vars(p.parse_args())))
