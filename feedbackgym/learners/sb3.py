"""Stable-Baselines3 PPO and MaskablePPO in the learner's seat, through the candidate-action view.

    feedbackgym train maskable_ppo --scenario twenty_questions --out runs/mppo --iterations 40
    feedbackgym train sb3_ppo --scenario guess_number --out runs/sppo --embedder minilm
    feedbackgym train maskable_ppo --out runs/mppo --resume     # continues exactly

The text env is seen through `CandidateActions` (action ``i`` says the episode's ``i``-th
candidate utterance; ``action_masks()`` for MaskablePPO) and `EmbedObservation` (a ``Dict`` of
embedded texts, for SB3's ``MultiInputPolicy``). The policy is SB3's MLP, not an LM: there is no
``--actor``. One iteration is one ``model.learn(num_steps * num_envs, reset_num_timesteps=False)``:
a rollout of ``num_steps`` steps in each of ``num_envs`` envs (a `DummyVecEnv`), then SB3's update.
The loop, run folder, evaluation points and checkpoints are `train.run`'s, as for the LM learners;
the final model is ``RUN/model.zip`` (``PPO.load`` / ``MaskablePPO.load``).

**Exact resume.** Between two ``learn`` calls SB3 carries the last observation and episode-start
flags of each env (``model.save`` keeps them; ``load(force_reset=False)`` puts them back), the
policy and its Adam state (saved), the timestep and update counters (saved), and it draws
actions and minibatch orders from the global torch and numpy generators (the loop saves those).
Its rollout buffer is spent at the end of each ``learn`` and refilled from scratch by the next,
so a checkpoint between iterations needs none of it. What SB3 cannot save is the envs' state in
the middle of an episode; this env is deterministic given its seed and the actions taken, so each
env's part of the checkpoint is its episode's seed and its actions so far, and a resumed run
replays them (and checks that the replay ends at the observation SB3 saved). Training episodes
use seeds ``seed * 10**7 + n`` in the order the envs start them; the evaluation plays the
deterministic policy (the most likely allowed action) on fixed seeds, so it draws nothing.
With ``--embedder minilm`` each text is embedded alone (a batch of one), so its vector does not
depend on which texts shared its batch, and a resumed run's fresh cache yields the same floats.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from feedbackgym.envs.gym import FeedbackEnv
from feedbackgym.envs.wrappers import CandidateActions, EmbedObservation
from feedbackgym.learners.args import PPOArgs
from feedbackgym.learners.train import TrainArgs, eval_seeds, summary
from feedbackgym.rollout import scenario_for


@dataclass
class Args(PPOArgs):
    """SB3's PPO fields under CleanRL's names. Defaults: SB3's (``learning_rate`` 3e-4, ``gamma``
    0.99, ``max_grad_norm`` 0.5, ``gae_lambda`` 0.95, ``clip_coef`` 0.2, ``vf_coef`` 0.5), but
    ``batch_size`` 128 (SB3: 64) and ``update_epochs`` 4 (SB3: 10) for rollouts of 1024 steps, and
    ``ent_coef`` 0.01 (SB3: 0)."""

    learning_rate: float = 3e-4
    batch_size: int = 128
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    update_epochs: int = 4
    embedder: str = "hashing"
    """observation features: hashing (256-d, no model, fast) or minilm (frozen all-MiniLM-L6-v2, 384-d)"""
    embed_candidates: bool = False
    """also embed the K candidate utterances (for tasks whose candidates change between episodes: judged QA's options)"""
    mask_repeats: bool = True
    """in search tasks, mask the candidates already said this episode (what maskable_ppo may not choose)"""
    num_steps: int = 64
    """env steps per env per iteration (SB3's n_steps; an iteration is num_steps * num_envs steps)"""
    ent_coef: float = 0.01
    """entropy bonus (a little keeps a K-way choice exploring)"""


#: SB3's logger keys after ``train()`` -> metric names in metrics.jsonl
LOSSES = {
    "train/policy_gradient_loss": "pg_loss", "train/value_loss": "value_loss", "train/entropy_loss": "entropy_loss",
    "train/approx_kl": "approx_kl", "train/clip_fraction": "clip_fraction", "train/explained_variance": "explained_variance",
}  # fmt: skip


def observation_embedder(name: str):
    """``hashing``, or ``minilm`` cached and one text a forward pass, so that a text's vector is a
    pure function of the text (a resumed run's fresh cache yields the same floats)."""
    from feedbackgym.encoders import EmbeddingCache, make_embedder

    return make_embedder(name) if name == "hashing" else EmbeddingCache(make_embedder(name, batch_size=1))


class Episodes(gym.Wrapper):
    """The outermost wrapper of a training env: seeds each episode from the run's counter, keeps
    the current episode's seed and actions (all of the env's state: the env is deterministic given
    both) and the (return, success) of the episodes it finished."""

    def __init__(self, env: gym.Env, next_seed: Callable[[], int]):
        super().__init__(env)
        self.next_seed = next_seed
        self.seed, self.actions, self.ret = None, [], 0.0
        self.finished: list[tuple[float, bool]] = []

    def reset(self, *, seed=None, options=None):
        self.seed = self.next_seed() if seed is None else int(seed)
        self.actions, self.ret = [], 0.0
        return self.env.reset(seed=self.seed, options=options)

    def step(self, action):
        self.actions.append(int(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.ret += float(reward)
        if terminated or truncated:
            self.finished.append((self.ret, self.env.unwrapped.episode.terminate_reason == "success"))
        return obs, reward, terminated, truncated, info

    def take_finished(self) -> list[tuple[float, bool]]:
        out, self.finished = self.finished, []
        return out

    def state(self) -> dict:
        return {"seed": self.seed, "actions": list(self.actions)}

    def restore(self, state: dict) -> dict:
        """Replay the saved episode up to where it was; the observation reached."""
        obs, _ = self.reset(seed=state["seed"])
        for a in state["actions"]:
            obs, *_ = self.step(a)
        return obs


class SB3PPO:
    """Stable-Baselines3 PPO over the candidate actions (all K open to it)."""

    help = "Stable-Baselines3 PPO on the candidate-action view (embedded observations, MultiInputPolicy)."
    Args = Args
    #: loop fields that do not apply (an SB3 policy is no LM; it steps the Gymnasium face's candidate view)
    unused_train_args = ("actor", "rollout_size", "max_new_tokens", "temperature", "face")
    maskable = False

    @staticmethod
    def algorithm():
        from stable_baselines3 import PPO

        return PPO

    @staticmethod
    def check(args: TrainArgs) -> None:
        if args.actor:
            raise ValueError(f"--actor {args.actor}: the SB3 learners train SB3's own MLP policy, not a language model")
        if args.face != "gymnasium":
            raise ValueError("the SB3 learners step the Gymnasium face (its candidate-action view): --face does not apply")

    def __init__(self, args: TrainArgs, algo_args: Args, seats: dict):
        from stable_baselines3.common.utils import set_random_seed
        from stable_baselines3.common.vec_env import DummyVecEnv

        self.args, self.algo_args, self.seats = args, algo_args, seats
        self.embedder = observation_embedder(algo_args.embedder)
        self.started = 0  # training episodes started so far
        self.envs = [Episodes(self.make_env(), self.next_seed) for _ in range(args.num_envs)]
        self.venv = DummyVecEnv([lambda e=e: e for e in self.envs])
        self.eval_env = self.make_env()
        set_random_seed(args.seed)  # python, numpy, torch: the policy's initial weights and every later draw
        a = algo_args
        self.model = self.algorithm()(
            "MultiInputPolicy", self.venv, n_steps=a.num_steps, batch_size=a.batch_size, n_epochs=a.update_epochs,
            learning_rate=a.learning_rate, gamma=a.gamma, gae_lambda=a.gae_lambda, clip_range=a.clip_coef,
            ent_coef=a.ent_coef, vf_coef=a.vf_coef, max_grad_norm=a.max_grad_norm, device="cpu", verbose=0,
        )  # fmt: skip

    def make_env(self) -> gym.Env:
        env = FeedbackEnv(scenario_for(self.args.scenario, **self.seats))
        env = CandidateActions(env, mask_repeats=self.algo_args.mask_repeats)
        return EmbedObservation(env, self.embedder, embed_candidates=self.algo_args.embed_candidates)

    def next_seed(self) -> int:
        self.started += 1
        return self.args.seed * 10**7 + self.started - 1

    # ------------------------------------------------------------------ the loop's calls
    def iterate(self, it: int, episodes: int) -> tuple[int, int, dict]:
        steps = self.algo_args.num_steps * self.args.num_envs
        self.model.learn(steps, reset_num_timesteps=False)
        finished = [r for env in self.envs for r in env.take_finished()]
        logged = self.model.logger.name_to_value
        losses = {name: _finite(logged[key]) for key, name in LOSSES.items() if key in logged}
        return len(finished), steps, {**summary(finished), **losses}

    def evaluate(self, writer) -> dict:
        env, results = self.eval_env, []
        for seed in eval_seeds(self.args):
            obs, _ = env.reset(seed=seed)
            ret, done = 0.0, env.unwrapped.episode.done
            while not done:
                masks = {"action_masks": env.get_wrapper_attr("action_masks")()} if self.maskable else {}
                action, _ = self.model.predict(obs, deterministic=True, **masks)
                obs, reward, terminated, truncated, _ = env.step(int(action))
                ret, done = ret + float(reward), terminated or truncated
            writer.write(env.unwrapped.episode)
            results.append((ret, env.unwrapped.episode.terminate_reason == "success"))
        return summary(results, "eval_")

    def state_dict(self) -> dict:
        """The SB3 model's zip (whose pickled entries are never unpickled on resume, see
        `load_state_dict`) and, as plain data and tensors, what of it changes during a run."""
        buf = io.BytesIO()
        self.model.save(buf)
        m = self.model
        running = {
            "_last_obs": {k: torch.from_numpy(np.asarray(v)) for k, v in m._last_obs.items()},
            "_last_episode_starts": torch.from_numpy(np.asarray(m._last_episode_starts)),
            "ep_info_buffer": [dict(e) for e in m.ep_info_buffer],
            "ep_success_buffer": [bool(e) for e in m.ep_success_buffer],
        }
        return {"model": buf.getvalue(), "running": running, "started": self.started, "envs": [env.state() for env in self.envs]}

    def load_state_dict(self, state: dict) -> None:
        # SB3 would unpickle (cloudpickle) the entries of its zip's "data" marked ":serialized:",
        # which runs whatever code a crafted file holds. None is: each is taken from this fresh
        # model (built from the run's saved arguments) or from the checkpoint's plain data.
        m, running = self.model, state["running"]
        with zipfile.ZipFile(io.BytesIO(state["model"])) as z:
            data = json.loads(z.read("data"))
        window = data.get("_stats_window_size", 100)  # SB3's episode-statistics window
        given = {
            "_last_obs": {k: v.numpy() for k, v in running["_last_obs"].items()},
            "_last_episode_starts": running["_last_episode_starts"].numpy(),
            "ep_info_buffer": deque(running["ep_info_buffer"], maxlen=window),
            "ep_success_buffer": deque(running["ep_success_buffer"], maxlen=window),
        }
        pickled = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]
        foreign = [k for k in pickled if k not in given and not hasattr(m, k)]
        if foreign:
            raise ValueError(f"the SB3 model in the checkpoint holds pickled entries this learner does not have: {foreign}; refused")
        custom = {k: given[k] if k in given else getattr(m, k) for k in pickled}
        # force_reset=False keeps the saved last observations: SB3 goes on from them, mid-episode
        self.model = self.algorithm().load(io.BytesIO(state["model"]), env=self.venv, device="cpu", force_reset=False, custom_objects=custom)
        self.started = state["started"]
        for i, (env, saved) in enumerate(zip(self.envs, state["envs"])):
            obs = env.restore(saved)
            if not all(np.array_equal(obs[k], self.model._last_obs[k][i]) for k in obs):
                raise RuntimeError(f"env {i}: replaying its episode (seed {saved['seed']}) did not reach the saved observation")

    def save(self, out: Path) -> None:
        self.model.save(out / "model.zip")


class SB3MaskablePPO(SB3PPO):
    """sb3-contrib MaskablePPO: only the episode's candidates (not yet said, in search tasks) may be chosen."""

    help = "sb3-contrib MaskablePPO on the candidate-action view: only the candidates action_masks() allows."
    maskable = True

    @staticmethod
    def algorithm():
        from sb3_contrib import MaskablePPO

        return MaskablePPO


def _finite(v) -> float | None:
    """A logged value for JSON (SB3 logs NaN, e.g. an explained variance of constant returns)."""
    v = float(v)
    return v if math.isfinite(v) else None
