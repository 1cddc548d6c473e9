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
the final policy is ``RUN/policy.safetensors`` (`load_policy`; with ``--similarity hindsight``
also ``RUN/answers.safetensors``, the `AnswerTable` its support reads), and SB3's ``RUN/model.zip`` for
``PPO.load`` / ``MaskablePPO.load`` (nothing here reads it: loading it unpickles).

**Exact resume.** Between two ``learn`` calls SB3 carries the last observation and episode-start
flags of each env, the policy and its Adam state, the timestep and update counters (all saved as
tensors and plain data, put back into a fresh model built from the run's arguments), and it draws
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

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from feedbackgym.envs.gym import FeedbackEnv
from feedbackgym.envs.wrappers import AnswerTable, CandidateActions, EmbedObservation, SimilarityTable
from feedbackgym.learners.args import PPOArgs, from_saved
from feedbackgym.learners.checkpoints import CheckpointError
from feedbackgym.learners.train import TrainArgs, eval_seeds, learner_class, parse_seats, rng_states, set_rng_states, summary
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
    replies: bool = True
    """observe, per candidate, whether it was said and the polarity and direction of the answer to it"""
    transcript: bool = True
    """also observe the embedded transcript (a bag of its words; costs most of an env step with hashing)"""
    similarity: str = ""
    """minilm or hashing: observe the inferred table (candidate similarities by this encoder), add its shared term to the logits;
    hindsight: its support from the answers in this run's won training episodes instead (AnswerTable)"""
    support_start: float = 0.0
    """with --similarity: the shared weight of the support column at the start (0: SB3's initial policy; x10 logits per unit of support)"""
    num_steps: int = 64
    """env steps per env per iteration (SB3's n_steps; an iteration is num_steps * num_envs steps)"""
    ent_coef: float = 0.01
    """entropy bonus (a little keeps a K-way choice exploring)"""


#: the SB3 model's counters a checkpoint keeps (all its other settings come from the run's arguments)
COUNTERS = ("num_timesteps", "_total_timesteps", "_num_timesteps_at_start", "_episode_num", "_current_progress_remaining", "_n_updates")
#: the final policy's state dict, in the run folder
POLICY = "policy.safetensors"
#: with --similarity hindsight, the final answer table (`AnswerTable.state_dict`), beside it
ANSWERS = "answers.safetensors"

#: SB3's logger keys after ``train()`` -> metric names in metrics.jsonl
LOSSES = {
    "train/policy_gradient_loss": "pg_loss", "train/value_loss": "value_loss", "train/entropy_loss": "entropy_loss",
    "train/approx_kl": "approx_kl", "train/clip_fraction": "clip_fraction", "train/explained_variance": "explained_variance",
}  # fmt: skip


def observation_embedder(name: str):
    """``hashing`` or ``minilm``, cached (an env repeats its instructions and replies), minilm
    one text a forward pass, so that a text's vector is a pure function of the text (a resumed
    run's fresh cache yields the same floats)."""
    from feedbackgym.encoders import EmbeddingCache, make_embedder

    return EmbeddingCache(make_embedder(name), size=10_000) if name == "hashing" else EmbeddingCache(make_embedder(name, batch_size=1))


#: the shared weights' scale: under Adam a weight moves about lr a step whatever its gradient, and
#: these 5 need to reach a few units (a logit margin) in a few hundred steps
LOCAL_SCALE = 10.0


def candidate_policy(base, support_start: float = 0.0):
    """``base`` (SB3's or sb3-contrib's multi-input actor-critic policy) with a per-candidate
    term: candidate ``i``'s logit is the MLP's plus ``w . local[i]``, where ``local[i]`` is row
    ``i`` of the ``replies`` and ``inferred`` tables and ``w`` (5 weights, zero at the start, so
    the initial policy is SB3's) is shared by all K candidates. The MLP alone learns a separate
    output weight per candidate from the few episodes that reach it (no learning on guess_number
    in 90k steps); the shared term learns "what was said, supported or ruled out" once for all.
    ``support_start``: the support weight's start (the others start at zero)."""
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
    from torch import nn

    class Features(BaseFeaturesExtractor):
        """Every key flattened (sorted), then the local tables as ``(K, 5)`` rows, flattened."""

        def __init__(self, observation_space):
            self.keys = sorted(observation_space.spaces)
            self.k = observation_space["replies"].shape[0] // 3
            self.global_dim = sum(int(np.prod(observation_space[key].shape)) for key in self.keys)
            super().__init__(observation_space, features_dim=self.global_dim + 5 * self.k)

        def forward(self, obs):
            flat = torch.cat([obs[key].flatten(1) for key in self.keys], dim=1)
            local = torch.cat([obs["replies"].view(-1, self.k, 3), obs["inferred"].view(-1, self.k, 2)], dim=2)
            return torch.cat([flat, local.flatten(1)], dim=1)

    class PassLocal(nn.Module):
        """SB3's MLP extractor on the flat part; the actor's latent carries the local rows on."""

        def __init__(self, mlp: MlpExtractor, global_dim: int, local_dim: int):
            super().__init__()
            self.mlp, self.global_dim = mlp, global_dim
            self.latent_dim_pi, self.latent_dim_vf = mlp.latent_dim_pi + local_dim, mlp.latent_dim_vf

        def forward(self, features):
            return self.forward_actor(features), self.forward_critic(features)

        def forward_actor(self, features):
            return torch.cat([self.mlp.forward_actor(features[:, : self.global_dim]), features[:, self.global_dim :]], dim=1)

        def forward_critic(self, features):
            return self.mlp.forward_critic(features[:, : self.global_dim])

    class Head(nn.Module):
        def __init__(self, latent_dim: int, k: int):
            super().__init__()
            self.latent_dim, self.k = latent_dim, k
            self.linear = nn.Linear(latent_dim, k)
            nn.init.orthogonal_(self.linear.weight, gain=0.01)  # SB3's init of its action net
            nn.init.zeros_(self.linear.bias)
            self.local = nn.Parameter(torch.tensor([0.0, 0.0, 0.0, support_start, 0.0]))

        def forward(self, latent):
            local = latent[:, self.latent_dim :].view(-1, self.k, 5)
            return self.linear(latent[:, : self.latent_dim]) + local @ (LOCAL_SCALE * self.local)

    class CandidatePolicy(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, features_extractor_class=Features, **kwargs)

        def _build_mlp_extractor(self) -> None:
            fx = self.features_extractor
            mlp = MlpExtractor(fx.global_dim, net_arch=self.net_arch, activation_fn=self.activation_fn, device=self.device)
            self.mlp_extractor = PassLocal(mlp, fx.global_dim, 5 * fx.k)

        def _build(self, lr_schedule) -> None:
            super()._build(lr_schedule)
            self.action_net = Head(self.mlp_extractor.mlp.latent_dim_pi, self.features_extractor.k)
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    CandidatePolicy.__name__ = CandidatePolicy.__qualname__ = f"Candidate{base.__name__}"
    return CandidatePolicy


class Episodes(gym.Wrapper):
    """The outermost wrapper of a training env: seeds each episode from the run's counter, keeps
    the current episode's seed and actions (all of the env's state: the env is deterministic given
    both) and the (return, success) of the episodes it finished. Its ``info`` is empty."""

    def __init__(self, env: gym.Env, next_seed: Callable[[], int], answers: AnswerTable | None = None):
        super().__init__(env)
        self.next_seed, self.answers = next_seed, answers
        self.seed, self.actions, self.ret = None, [], 0.0
        self.finished: list[tuple[float, bool]] = []

    def reset(self, *, seed=None, options=None):
        self.seed = self.next_seed() if seed is None else int(seed)
        self.actions, self.ret = [], 0.0
        obs, _ = self.env.reset(seed=self.seed, options=options)
        return obs, {}

    def step(self, action):
        self.actions.append(int(action))
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.ret += float(reward)
        if terminated or truncated:
            won = self.env.unwrapped.episode.terminate_reason == "success"
            self.finished.append((self.ret, won))
            if won and self.answers is not None:  # a training episode, never an evaluation one
                self.answers.record(int(action), self.env.get_wrapper_attr("replies"))
        # SB3 reads nothing of the env's info (the DummyVecEnv adds what it needs) and deep-copies
        # it every step: the messages and labels cost 37% of a step's time; an empty dict, nothing
        return obs, reward, terminated, truncated, {}

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

    name = "sb3_ppo"
    help = "Stable-Baselines3 PPO on the candidate-action view (embedded observations, MultiInputPolicy)."
    Args = Args
    #: loop fields that do not apply (an SB3 policy is no LM; it steps the Gymnasium face's candidate view)
    unused_train_args = ("actor", "rollout_size", "max_new_tokens", "temperature", "face", "workers")
    maskable = False

    @staticmethod
    def algorithm():
        from stable_baselines3 import PPO

        return PPO

    @staticmethod
    def policy_base():
        from stable_baselines3.common.policies import MultiInputActorCriticPolicy

        return MultiInputActorCriticPolicy

    @staticmethod
    def check(args: TrainArgs) -> None:
        if args.actor:
            raise ValueError(f"--actor {args.actor}: the SB3 learners train SB3's own MLP policy, not a language model")
        if args.face != "gymnasium":
            raise ValueError("the SB3 learners step the Gymnasium face (its candidate-action view): --face does not apply")

    def __init__(self, args: TrainArgs, algo_args: Args, seats: dict):
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.utils import set_random_seed
        from stable_baselines3.common.vec_env import DummyVecEnv

        self.args, self.algo_args, self.seats = args, algo_args, seats
        self.embedder = observation_embedder(algo_args.embedder)
        if algo_args.similarity and not algo_args.replies:
            raise ValueError("--similarity needs --replies (the inferred table is read from it); pass --similarity '' for SB3's own policy")
        # the inferred table's rule: from the candidates' text, or (hindsight) an AnswerTable that the
        # first env made sizes (K x K over its candidates) and every env then shares
        text = algo_args.similarity not in ("", "hindsight")
        self.inferred: SimilarityTable | AnswerTable | None = SimilarityTable(observation_embedder(algo_args.similarity)) if text else None
        self.answers: AnswerTable | None = None
        self.started = 0  # training episodes started so far
        made = [self.make_env() for _ in range(args.num_envs)]
        self.envs = [Episodes(env, self.next_seed, self.answers) for env in made]
        self.venv = DummyVecEnv([lambda e=e: e for e in self.envs])
        self.eval_env = self.make_env()
        set_random_seed(args.seed)  # python, numpy, torch: the policy's initial weights and every later draw
        a = algo_args
        policy = candidate_policy(self.policy_base(), algo_args.support_start) if self.inferred is not None else "MultiInputPolicy"
        self.model = self.algorithm()(
            policy, self.venv, n_steps=a.num_steps, batch_size=a.batch_size, n_epochs=a.update_epochs,
            learning_rate=a.learning_rate, gamma=a.gamma, gae_lambda=a.gae_lambda, clip_range=a.clip_coef,
            ent_coef=a.ent_coef, vf_coef=a.vf_coef, max_grad_norm=a.max_grad_norm, device=args.device, verbose=0,
        )  # fmt: skip
        # SB3's default logger makes a folder SB3-<date> in the system temp folder on every learn
        # setup; this one keeps the values (what `iterate` reads) and writes nothing anywhere
        self.model.set_logger(Logger(folder=None, output_formats=[]))

    def make_env(self) -> gym.Env:
        env = FeedbackEnv(scenario_for(self.args.scenario, **self.seats))
        env = CandidateActions(env, mask_repeats=self.algo_args.mask_repeats)
        a = self.algo_args
        if a.similarity == "hindsight" and self.answers is None:
            self.inferred = self.answers = AnswerTable(env.action_space.n)
        return EmbedObservation(env, self.embedder, embed_candidates=a.embed_candidates, replies=a.replies, transcript=a.transcript, inferred=self.inferred)

    def next_seed(self) -> int:
        self.started += 1
        return self.args.seed * 10**7 + self.started - 1

    # ------------------------------------------------------------------ the loop's calls
    def iterate(self, it: int, episodes: int) -> tuple[int, int, dict]:
        steps = self.algo_args.num_steps * self.args.num_envs
        self.model.learn(steps, reset_num_timesteps=False)
        if self.answers is not None:
            self.merge_answers()
        finished = [r for env in self.envs for r in env.take_finished()]
        logged = self.model.logger.name_to_value
        losses = {name: _finite(logged[key]) for key, name in LOSSES.items() if key in logged}
        return len(finished), steps, {**summary(finished), **losses}

    def merge_answers(self) -> None:
        """The answer table takes in this rollout's wins; the next rollout starts from the envs'
        last observations, so they are made again from it (SB3 keeps them as ``_last_obs``)."""
        self.answers.merge()
        fresh = [env.env.refresh() for env in self.envs]
        self.model._last_obs = {k: np.stack([o[k] for o in fresh]) for k in self.model._last_obs}

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
        """What of the SB3 model changes during a run, as tensors and plain data (the policy's and
        its optimizer's state dicts, the counters, the last observations and episode starts of the
        envs), and each env's episode so far. Never SB3's zip: loading it unpickles its entries."""
        m = self.model
        return {
            "policy": m.policy.state_dict(),
            "optimizer": m.policy.optimizer.state_dict(),
            "counters": {k: getattr(m, k) for k in COUNTERS},
            "running": {
                "_last_obs": {k: np.asarray(v) for k, v in m._last_obs.items()},
                "_last_episode_starts": np.asarray(m._last_episode_starts),
                "ep_info_buffer": [dict(e) for e in m.ep_info_buffer or ()],
                "ep_success_buffer": [bool(e) for e in m.ep_success_buffer or ()],
            },
            "started": self.started,
            "envs": [env.state() for env in self.envs],
            **({"answers": self.answers.state_dict()} if self.answers is not None else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Put ``state`` into this fresh model (built from the run's saved arguments: the policy's
        class, spaces and schedules are its own), then replay each env's episode so far."""
        m, running = self.model, state["running"]
        m.policy.load_state_dict(state["policy"])
        m.policy.optimizer.load_state_dict(state["optimizer"])
        if set(state["counters"]) != set(COUNTERS):
            raise ValueError(f"counters {sorted(state['counters'])}: expected {sorted(COUNTERS)}")
        for k in COUNTERS:
            setattr(m, k, type(getattr(m, k))(state["counters"][k]))
        # the next learn(reset_num_timesteps=False) goes on from these, mid-episode, without a reset
        m._last_obs = {k: np.asarray(v) for k, v in running["_last_obs"].items()}
        m._last_episode_starts = np.asarray(running["_last_episode_starts"])
        m.ep_info_buffer = deque(running["ep_info_buffer"], maxlen=m._stats_window_size)
        m.ep_success_buffer = deque(running["ep_success_buffer"], maxlen=m._stats_window_size)
        self.started = int(state["started"])
        if self.answers is not None:  # before the replays: their observations read it
            self.answers.load_state_dict(state["answers"])
        if len(state["envs"]) != len(self.envs):
            raise ValueError(f"{len(state['envs'])} envs saved, the run has {len(self.envs)}")
        for i, (env, saved) in enumerate(zip(self.envs, state["envs"])):
            obs = env.restore(saved)
            if set(obs) != set(m._last_obs) or not all(np.array_equal(obs[k], m._last_obs[k][i]) for k in obs):
                raise RuntimeError(f"env {i}: replaying its episode (seed {saved['seed']}) did not reach the saved observation")

    def save(self, out: Path) -> None:
        """The final policy as ``policy.safetensors`` (`load_policy` reads it back), and SB3's
        ``model.zip`` for ``PPO.load`` / ``MaskablePPO.load`` (which nothing here reads)."""
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous() for k, v in self.model.policy.state_dict().items()}, str(out / POLICY),
                  metadata={"format": "feedbackgym-sb3-policy", "algo": self.name})  # fmt: skip
        if self.answers is not None:  # what the policy's support column is computed from
            from safetensors.numpy import save_file as save_arrays

            table = self.answers.state_dict()
            save_arrays({"sums": table["sums"], "counts": table["counts"], "episodes": np.array(table["episodes"])}, str(out / ANSWERS))
        self.model.save(out / "model.zip")


class SB3MaskablePPO(SB3PPO):
    """sb3-contrib MaskablePPO: only the episode's candidates (not yet said, in search tasks) may be chosen."""

    name = "maskable_ppo"
    help = "sb3-contrib MaskablePPO on the candidate-action view: only the candidates action_masks() allows."
    maskable = True

    @staticmethod
    def algorithm():
        from sb3_contrib import MaskablePPO

        return MaskablePPO

    @staticmethod
    def policy_base():
        from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy

        return MaskableMultiInputActorCriticPolicy


def random_baseline(scenario: str = "guess_number", episodes: int = 32, masked: bool = True, seed: int = 0, seats: str = "") -> dict:
    """The uniform random policy over the candidate view on the loop's evaluation seeds (the
    ones `SB3PPO.evaluate` plays): each turn one action drawn uniformly from those allowed
    (``masked``: what `action_masks` allows, MaskablePPO's random start; else all K, PPO's),
    from ``default_rng(seed)``. Its ``eval_return`` and ``eval_success``, and their n."""
    args = TrainArgs(scenario=scenario, eval_episodes=episodes, seats=seats)
    env = CandidateActions(FeedbackEnv(scenario_for(scenario, **parse_seats(seats))))
    rng, results = np.random.default_rng(seed), []
    for s in eval_seeds(args):
        env.reset(seed=s)
        ret, done = 0.0, env.unwrapped.episode.done
        while not done:
            allowed = np.flatnonzero(env.action_masks() if masked else np.ones(env.action_space.n, bool))
            _, reward, terminated, truncated, _ = env.step(int(rng.choice(allowed)))
            ret, done = ret + float(reward), terminated or truncated
        results.append((ret, env.unwrapped.episode.terminate_reason == "success"))
    return {**summary(results, "eval_"), "eval_n": len(results)}


def load_policy(run: str | Path):
    """The final SB3 model of a finished run in ``run``: a fresh model built from its
    ``args.json`` with the policy of ``policy.safetensors`` (never SB3's zip, which unpickles)
    and, with ``--similarity hindsight``, the answer table of ``answers.safetensors`` in its
    envs (``model.env.envs[i].answers``); the global RNG states are left as they were. A damaged or foreign file raises
    `CheckpointError` naming it."""
    from safetensors import SafetensorError, safe_open

    run = Path(run)
    saved = json.loads((run / "args.json").read_text(encoding="utf-8"))
    cls = learner_class(saved["algo"])
    path = run / POLICY
    try:
        with safe_open(str(path), "pt", device="cpu") as f:
            about = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {str(e)[:200]}") from None
    if about.get("algo") != saved["algo"]:
        raise CheckpointError(f"{path}: a policy of {str(about.get('algo'))[:40]}, not of this {saved['algo']} run")
    before = rng_states()
    try:
        session = cls(from_saved(TrainArgs, saved["train"]), from_saved(cls.Args, saved["learner"]), parse_seats(saved["train"]["seats"]))
    finally:
        set_rng_states(before)
    try:
        session.model.policy.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit the run's policy: {str(e)[:200]}") from None
    if session.answers is not None:  # its envs' support column, as at the end of the run
        table = run / ANSWERS
        try:
            with safe_open(str(table), "np") as f:
                session.answers.load_state_dict({k: f.get_tensor(k) for k in f.keys()})
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise CheckpointError(f"{table}: not this run's answer table: {str(e)[:200]}") from None
    return session.model


def _finite(v) -> float | None:
    """A logged value for JSON (SB3 logs NaN, e.g. an explained variance of constant returns)."""
    v = float(v)
    return v if math.isfinite(v) else None
