"""TRL's ``GRPOTrainer`` on any scenario and seat (extra ``trl``), two ways.

    from trl import GRPOConfig, GRPOTrainer
    from feedbackgym.adapters import trl as fg_trl

    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, args=GRPOConfig(..., num_generations=4),
        train_dataset=fg_trl.dataset("guess_number", seeds=range(64)),
        rollout_func=fg_trl.rollout_func("guess_number", max_new_tokens=8),
        reward_funcs=fg_trl.env_return,
    )

**rollout_func** plays whole episodes through `feedbackgym.rollout.rollout` (the one collection
loop), with the trainer's current model in the learner's seat (an `LMAgent` over it: its chat
template or plain transcript, its stop strings) and the scenario's agents in the others. TRL
hands it the prompts of a batch, each row repeated ``num_generations`` times; a row's prompt is
``"<scenario> seed=<s>"`` (`dataset` writes them), so the rows of one group play the same
instance (the same secret number, question, user), and each row samples the model with its own
generator (drawn from the adapter's, seeded with ``seed``): the group's episodes differ only
by what the model said, which is what GRPO's group baseline compares. It returns, per episode:

- ``prompt_ids``: the tokens of the seat's first prompt;
- ``completion_ids``: the rest of the episode as one sequence: the model's tokens of each turn,
  and between two turns the tokens its next prompt adds (what the other seats said, the chat
  template's turn markers): ``env_mask`` is 1 on the model's tokens and 0 on those, so TRL's loss
  (``completion_mask * tool_mask``) trains only on what the model generated;
- ``logprobs``: the sampling log-probabilities of the model's tokens (0 on env tokens);
- ``env_return``: the episode's return for the seat, the per-turn rewards summed (undiscounted):
  TRL scores a completion with one scalar, so the turn rewards are folded into it; pass
  `env_return` as a reward function to train on it. ``turn_rewards`` (one per turn of the seat),
  ``seed``, ``success`` and ``exact`` come along for reward functions of one's own (a discounted
  return, a success bonus).

The sequence is exact when each prompt starts with the previous prompt and the tokens generated
at it (a plain transcript does when the model's text re-tokenizes to the same tokens; a chat
template that re-renders the model's turn or re-words the last ask, or a prompt cut to the
context, does not). Where it does not, the env tokens are the next prompt's tokens after what it
shares with the previous prompt and after its own rendering of the model's utterance: the new
messages, once each, so the sequence grows linearly. ``exact`` is then False for that episode:
TRL scores a turn's tokens in a context that says the same things, not in the very tokens the
model was sampled in.

**environment_factory** gives the no-argument class TRL instantiates once per rollout: ``reset(**row)``
opens the episode of the row's ``seed`` (the Gymnasium face, `FeedbackEnv`) and returns what the
seat is told first; ``say(text)`` (the one tool) plays the seat's move and returns what the others
answered; ``get_reward()`` is the episode's return so far. The model then talks to the env
through tool calls, which needs a chat template that renders tool calls (TRL checks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from feedbackgym.agents.lm import LMAgent, LMOptions, common_prefix
from feedbackgym.envs.gym import FeedbackEnv
from feedbackgym.envs.scenario import Scenario
from feedbackgym.rollout import Trajectory, rollout, scenario_for

__all__ = ["EpisodeTokens", "dataset", "env_return", "environment_factory", "episode_tokens", "rollout_func", "seed_of"]

_SEED = re.compile(r" seed=(-?\d+)$")


def seat_scenario(scenario: str | Scenario, seat: str, **roles: str | None) -> Scenario:
    """``scenario`` (a name, a path, an env id or a `Scenario`) with ``seat`` played by the learner."""
    return scenario_for(scenario, **{**roles, seat: "learner"})


def prompt_of(scenario: Scenario, seed: int) -> str:
    """The dataset prompt that names an episode: ``"<scenario> seed=<seed>"``."""
    return f"{scenario.name} seed={int(seed)}"


def seed_of(prompt: Any) -> int:
    """The seed a dataset prompt names (a string, or chat messages whose last content is one)."""
    text = prompt[-1]["content"] if isinstance(prompt, list) else prompt
    found = _SEED.search(str(text))
    if found is None:
        raise ValueError(f"prompt {str(text)[:80]!r} names no episode: expected '<scenario> seed=<int>' (feedbackgym.adapters.trl.dataset)")
    return int(found.group(1))


def dataset(scenario: str | Scenario, seeds: Iterable[int], chat: bool = False):
    """A ``datasets.Dataset`` with one row per seed: ``prompt`` (``"<scenario> seed=<s>"``, what
    `rollout_func` reads) and ``seed`` (what an `environment_factory` env's ``reset`` reads).
    ``chat``: for ``environment_factory``, the prompt is one empty user message instead, which TRL
    fills with what ``reset`` returns (TRL's environments need chat prompts)."""
    from datasets import Dataset

    sc = scenario_for(scenario)
    if chat:
        return Dataset.from_list([{"prompt": [{"role": "user", "content": ""}], "seed": int(s)} for s in seeds])
    return Dataset.from_list([{"prompt": prompt_of(sc, s), "seed": int(s)} for s in seeds])


def env_return(completions, env_return: list[float], **_) -> list[float]:
    """A reward function for ``GRPOTrainer``: each completion's episode return (``rollout_func``'s field)."""
    return [float(r) for r in env_return]


# ---------------------------------------------------------------------- rollout_func
@dataclass
class EpisodeTokens:
    """One episode as TRL's rollout_func returns it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    env_mask: list[int]
    """1 on the tokens the model generated, 0 on the others"""
    exact: bool
    """every prompt extended the sequence before it (see the module docstring)"""


def episode_tokens(lm: LMAgent, trajectory: Trajectory) -> EpisodeTokens:
    """``trajectory`` (the seat's steps) as one token sequence: its first prompt, then each
    turn's generated tokens, with the tokens each next prompt adds between them (env tokens)."""
    steps = trajectory.steps
    prompt = lm.encode(steps[0].prompt) if steps else []
    context, completion, logprobs, mask, exact = list(prompt), [], [], [], True
    previous = prompt  # the prompt of the turn before
    for k, step in enumerate(steps):
        if k:
            nxt = lm.encode(step.prompt)
            env = added(lm, context, previous, nxt, steps[k - 1].action)
            exact = exact and env is None
            env = nxt[len(context) :] if env is None else env
            completion += env
            logprobs += [0.0] * len(env)
            mask += [0] * len(env)
            context += env
            previous = nxt
        completion += step.token_ids
        logprobs += step.logprobs
        mask += [1] * len(step.token_ids)
        context += step.token_ids
    return EpisodeTokens(prompt, completion, logprobs, mask, exact)


def added(lm: LMAgent, context: list[int], previous: list[int], nxt: list[int], said: str) -> list[int] | None:
    """What the next prompt ``nxt`` adds to the sequence: None when it extends ``context`` (then
    its tail is exactly that); otherwise its tokens after the previous prompt's (their common
    prefix) and after its rendering of what the model ``said`` there (a chat template's
    re-rendered turn), so the sequence grows by the new messages only, once each."""
    if nxt[: len(context)] == context:
        return None
    start = common_prefix(previous, nxt)
    said = said.strip()
    if said:
        for end in range(start + 1, len(nxt) + 1):
            if said in lm.tokenizer.decode(nxt[start:end], skip_special_tokens=False):
                return nxt[end:]
    return nxt[start:]


class SampledSeat:
    """An `LMAgent` whose rows sample from seeds drawn from the adapter's own generator instead of
    the episode's: the rows of a GRPO group share a seed (the same instance) but not their samples."""

    def __init__(self, lm: LMAgent, rng: np.random.Generator):
        self.lm, self.rng = lm, rng
        self.source = lm.source

    def prompt(self, view) -> str:
        return self.lm.prompt(view)

    def generate(self, views):
        seeds = [int(s) for s in self.rng.integers(2**63, size=len(views))]
        turns = [sum(1 for m in v.log if m.role == v.role) for v in views]
        temperatures = [self.lm.options.temperature_for(t) for t in turns]
        return self.lm.generate_text([self.lm.prompt(v) for v in views], seeds, keys=[id(v.rng) for v in views], temperatures=temperatures)


def rollout_func(
    scenario: str | Scenario, seat: str = "actor", *, seed: int = 0, n_envs: int = 16, face: str | None = None, writer=None,
    **options: Any,
):  # fmt: skip
    """A ``rollout_func`` for ``GRPOTrainer``: ``(prompts, trainer) -> dict`` (see the module
    docstring). ``options`` are the seat's `LMOptions` (``max_new_tokens``, ``temperature``,
    ``stop``, ``chat_template``...) or agent specs replacing the other roles' (``user="scripted:oracle"``);
    ``face`` and ``writer`` (a `RecordWriter`: every episode played is recorded) are `rollout`'s.
    The episodes of the last call are kept as the function's ``last`` attribute (a list of
    `Trajectory`), and all calls' as ``history``."""
    roles = {k: options.pop(k) for k in list(options) if k in ("actor", "critic", "judge", "user")}
    sc = seat_scenario(scenario, seat, **roles)
    opts = LMOptions.from_params(options)
    rng = np.random.default_rng(seed)

    def func(prompts: list, trainer) -> dict[str, list]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()  # no dropout while sampling; TRL sets the mode back for its own passes anyway
        try:
            lm = LMAgent(model, trainer.processing_class, opts, name="trl")
            seeds = [seed_of(p) for p in prompts]
            trajectories = rollout(SampledSeat(lm, rng), sc, n_envs=n_envs, seeds=seeds, face=face, writer=writer)
        finally:
            model.train(was_training)
        func.last = trajectories
        func.history.append(trajectories)
        episodes = [episode_tokens(lm, t) for t in trajectories]
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [e.env_mask for e in episodes],
            "env_return": [t.total_reward for t in trajectories],
            "turn_rewards": [[s.reward for s in t.steps] for t in trajectories],
            "seed": [t.seed for t in trajectories],
            "success": [t.success for t in trajectories],
            "exact": [e.exact for e in episodes],
        }

    func.last, func.history, func.scenario = [], [], sc
    return func


# ---------------------------------------------------------------------- environment_factory
def _said(obs: dict) -> str:
    return "\n".join(t for t in (obs["observation"], obs["feedback"]) if t)


def environment_factory(scenario: str | Scenario, seat: str = "actor", *, seed: int = 0, **roles: str | None) -> type:
    """A class for ``GRPOTrainer(environment_factory=...)``: one episode of ``scenario`` with the
    model in ``seat`` (the scenario's agents, or ``roles``' specs, in the others). A row without a
    ``seed`` column plays a seed drawn from a generator seeded with ``seed``, shared by the class."""
    sc = seat_scenario(scenario, seat, **roles)
    draws = np.random.default_rng(seed)

    class FeedbackGymEnv:
        scenario = sc

        def __init__(self):
            self.env = FeedbackEnv(sc)
            self.reward = 0.0
            self.done = False

        def reset(self, seed: int | None = None, **row) -> str:
            """Open the episode of ``seed`` (the dataset row's); return what the seat is told first."""
            if seed is None:
                seed = int(draws.integers(2**31 - 1))
            obs, _ = self.env.reset(seed=int(seed))
            self.reward, self.done = 0.0, False
            return "\n".join(t for t in (obs["instruction"], _said(obs)) if t)

        def say(self, text: str) -> str:
            """Say something in your seat of the conversation (your answer, your guess, your feedback).

            Args:
                text: what you say, in plain words

            Returns:
                What the others in the conversation answered.
            """
            if self.done:
                return "The episode is over; nothing more can be said."
            obs, reward, terminated, truncated, info = self.env.step(text)
            self.reward += float(reward)
            self.done = terminated or truncated
            said = _said(obs)
            if self.done:
                said += f"\n(The episode is over: {info['terminate_reason']}.)"
            return said.strip()

        def get_reward(self) -> float:
            return self.reward

    FeedbackGymEnv.__name__ = FeedbackGymEnv.__qualname__ = f"FeedbackGym_{sc.name}_{seat}"
    return FeedbackGymEnv
