"""ArCHer (Zhou et al., ICML 2024): an utterance-level critic and a token-level actor.

    feedbackgym train archer --scenario twenty_questions --actor lm:models/actor --out runs/archer

Per iteration, after the loop has put the new transitions (s, a, r, s', terminated, truncated)
in a FIFO replay buffer:

1. ``critic_steps`` times, on ``batch_size * grad_accum`` transitions drawn uniformly:
     y_Q,i = r + gamma * (1 - terminated) * Vbar_i(s')        (bootstraps on truncation)
     y_V,i = mean over k fresh samples a~pi(.|s) of Qbar_i(s, a)
     L = sum_i MSE(Q_i(s, a), y_Q,i) + MSE(V_i(s), y_V,i)
   each head bootstraps from its own target twin; then Polyak: theta_bar <- (1-tau) theta_bar + tau theta.
2. unless ``iteration < warmup_iters``, ``actor_steps`` times, on replay *states*:
     a ~ pi(.|s) fresh;  A = min(Q1, Q2)(s, a) - min(V1, V2)(s)   (online critic, no grad)
     L_pi = -mean(A * sum_t log pi(a_t | s, a_<t))

Micro-batch losses are averaged over ``grad_accum`` (the anchor sums them), gradients clipped to
``max_grad_norm``, sequences left-padded with explicit position ids.

Cost: the actor does not change during the critic steps, so (``batch_v_samples``) the fresh
samples of all of them are drawn up front, with the same seeds in the same order, in one
`Policy.sample` call over every state (batches of similar lengths; an earlier turn of an episode
reuses a later turn's prompt cache); each actor step samples its micro-batches together. The
update's metrics carry each phase's seconds (``cost_s``: critic, of which v_samples, actor).

Defaults are the anchor's ``archer_20q`` config scaled for a 2-core CPU and a ~3M-parameter
GPT-2; each field says how.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from feedbackgym.encoders import make_embedder
from feedbackgym.learners._base import Learner, accumulate, clipped_step, seeded_init, seeds
from feedbackgym.learners._critic import DoubleCritic, FeatureCache, Features, MiniLMEncoder, ReplayBuffer, polyak
from feedbackgym.learners.args import LMOptimArgs


@dataclass
class Args(LMOptimArgs):
    """ArCHer's fields. From the base: ``learning_rate`` 1e-4 is the actor's (anchor 1e-6 for a
    124M GPT-2; OfflineArcher's 20Q: 1e-4; at 3e-5 a 2M-param actor barely moved in 30
    iterations), ``batch_size`` 16 transitions per micro-batch (anchor 8), ``grad_accum`` 2
    (anchor 32), ``max_grad_norm`` 1.0 for actor and critic (anchor 1.0)."""

    gamma: float = 0.95
    """discount per utterance (anchor: 0.95 in every config)"""
    tau: float = 0.1
    """Polyak rate of the target critic, after every critic step (anchor: 0.1)"""
    critic_lr: float = 1e-3
    """Adam lr of the critic heads (anchor 2e-5 fine-tunes RoBERTa; heads trained from scratch on frozen features need more)"""
    encoder_lr: float = 2e-5
    """Adam lr of MiniLM when --fine-tune (anchor's critic lr)"""
    critic_steps: int = 30
    """critic optimizer steps per iteration (anchor 50; each samples fresh utterances)"""
    actor_steps: int = 3
    """actor optimizer steps per iteration (anchor 3)"""
    warmup_iters: int = 10
    """iterations with the actor frozen while the critic learns (anchor 10-20; with 3, the actor followed an untrained critic and got worse)"""
    buffer_size: int = 5000
    """replay buffer size in transitions, FIFO (anchor 100000)"""
    v_samples: int = 1
    """fresh policy samples averaged in the V target (anchor 1)"""
    batch_v_samples: bool = True
    """draw the fresh samples of all critic steps (and of an actor step's micro-batches) in one
    batched call before they are used (same seeds, same order); --no-batch-v-samples: one call
    per micro-batch, as the anchor"""
    hidden: int = 256
    """width of the critic's MLP heads (anchor 768)"""
    embedder: str = "minilm"
    """critic features: minilm (frozen all-MiniLM-L6-v2, cached) or hashing (no model)"""
    fine_tune: bool = False
    """train MiniLM with the critic (anchor fine-tunes RoBERTa); slow on CPU"""


# ---------------------------------------------------------------------- the update, as formulas
def q_targets(reward: torch.Tensor, v_next: torch.Tensor, terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """r + gamma * V(s'), except after termination (r alone). Truncation bootstraps."""
    return reward + gamma * (1.0 - terminated.float()) * v_next


def v_targets(q_samples: torch.Tensor) -> torch.Tensor:
    """Qbar(s, a) averaged over the fresh samples a~pi: ``q_samples`` is (k, n)."""
    return q_samples.mean(0)


def advantage(q1: torch.Tensor, q2: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    return torch.minimum(q1, q2) - torch.minimum(v1, v2)


def actor_loss(adv: torch.Tensor, logp_sum: torch.Tensor) -> torch.Tensor:
    """REINFORCE on whole utterances: -mean(A * sum of token log-probs); A carries no grad."""
    return -(adv.detach() * logp_sum).mean()


def critic_loss(q: tuple, v: tuple, yq: tuple, yv: tuple) -> torch.Tensor:
    mse = nn.functional.mse_loss
    return sum(mse(qi, yi) for qi, yi in zip(q, yq)) + sum(mse(vi, yi) for vi, yi in zip(v, yv))


# ---------------------------------------------------------------------- the learner
class ArCHer(Learner):
    name = "archer"
    Args = Args

    def __init__(self, policy, args: Args, seed: int, features: FeatureCache | None = None):
        super().__init__(policy, args, seed)
        if args.fine_tune:
            self.features = Features(None)
            self.critic = seeded_init(seed, lambda: DoubleCritic(MiniLMEncoder.dim, args.hidden, MiniLMEncoder()))
        else:
            cache = features or FeatureCache(make_embedder(args.embedder))
            self.features = Features(cache)
            self.critic = seeded_init(seed, lambda: DoubleCritic(cache.dim, args.hidden))
        self.critic.to(self.device)  # drawn on the CPU: the same initial weights on every device
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        groups = [{"params": [p for n, p in self.critic.named_parameters() if not n.startswith("encoder.")], "lr": args.critic_lr}]
        if self.critic.encoder is not None:
            groups.append({"params": list(self.critic.encoder.parameters()), "lr": args.encoder_lr})
        self.critic_opt = torch.optim.Adam(groups)
        self.actor_opt = torch.optim.Adam(policy.model.parameters(), lr=args.learning_rate)
        self.buffer = ReplayBuffer(args.buffer_size)
        #: announced sample_actions requests: [states, k, seeds, samples (None until `fill`)]
        self._prefetched: deque[list] = deque()
        self._sampling_s = 0.0  # seconds spent sampling since the phase began

    # -------------------------------------------------------------- pieces
    def sample_actions(self, states: list[str], k: int = 1) -> list[list]:
        """k fresh utterances per state from the current policy, seeded from the learner's rng
        (or the ones `announce` and `fill` drew for exactly this request, with the seeds taken then)."""
        if self._prefetched:
            want, wk, _, gens = self._prefetched.popleft()
            if want == list(states) and wk == k and gens is not None:
                return gens
            self._prefetched.clear()  # asked otherwise than announced: draw afresh from here on
        t0 = time.perf_counter()
        with torch.no_grad():
            gens = self.policy.sample([s for s in states for _ in range(k)], seeds(self.rng, len(states) * k))
        self._sampling_s += time.perf_counter() - t0
        return [gens[i * k : (i + 1) * k] for i in range(len(states))]

    def v_sample_requests(self, batch: list) -> list[tuple[list[str], int]]:
        """The ``sample_actions(states, k)`` calls that ``targets(batch)`` makes, in order (a
        subclass whose ``targets`` samples otherwise says so here, or its samples are drawn one
        call at a time)."""
        return [([t.prompt for t in batch], self.args.v_samples)]

    def announce(self, requests: list[tuple[list[str], int]]) -> None:
        """Take the seeds of coming ``sample_actions`` requests from the rng now, in the order the
        requests would take them; `fill` then draws their samples in one batched call, so the
        later calls get what they would have drawn (up to float rounding in a batch of another
        shape, which can flip a near-tie token)."""
        for states, k in requests:
            self._prefetched.append([list(states), k, seeds(self.rng, len(states) * k), None])

    def fill(self) -> None:
        todo = [e for e in self._prefetched if e[3] is None]
        if not todo:
            return
        t0 = time.perf_counter()
        with torch.no_grad():
            gens = self.policy.sample([s for states, k, *_ in todo for s in states for _ in range(k)], [x for e in todo for x in e[2]])
        self._sampling_s += time.perf_counter() - t0
        at = 0
        for e in todo:
            states, k = e[0], e[1]
            e[3] = [gens[at + i * k : at + (i + 1) * k] for i in range(len(states))]
            at += len(states) * k

    def targets(self, batch: list) -> tuple[tuple, tuple]:
        """The critic's regression targets for a batch of transitions: (yQ1, yQ2), (yV1, yV2)."""
        a = self.args
        f = self.features
        r = torch.tensor([t.reward for t in batch], dtype=torch.float32, device=self.device)
        term = torch.tensor([t.terminated for t in batch], dtype=torch.float32, device=self.device)
        states = [t.prompt for t in batch]
        fresh = self.sample_actions(states, a.v_samples)
        with torch.no_grad():
            vn1, vn2 = self.target.v(f(self.target, [t.next_prompt for t in batch]))
            es = f(self.target, states)
            qs1, qs2 = [], []
            for j in range(a.v_samples):
                q1, q2 = self.target.q(es, f(self.target, [g[j].text for g in fresh]))
                qs1.append(q1)
                qs2.append(q2)
        yq = (q_targets(r, vn1, term, a.gamma), q_targets(r, vn2, term, a.gamma))
        yv = (v_targets(torch.stack(qs1)), v_targets(torch.stack(qs2)))
        return yq, yv

    def critic_objective(self, batch: list) -> torch.Tensor:
        """sum_i MSE(Q_i(s, a), y_Q,i) + MSE(V_i(s), y_V,i) on one micro-batch."""
        yq, yv = self.targets(batch)
        es = self.features(self.critic, [t.prompt for t in batch])
        ea = self.features(self.critic, [t.action for t in batch])
        return critic_loss(self.critic.q(es, ea), self.critic.v(es), yq, yv)

    def actor_objective(self, states: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(-mean(A * sum_t log pi), A) for fresh samples a~pi at ``states``."""
        gens = [g[0] for g in self.sample_actions(states)]
        with torch.no_grad():
            es = self.features(self.critic, states)
            adv = advantage(*self.critic.q(es, self.features(self.critic, [g.text for g in gens])), *self.critic.v(es))
        logp, _ = self.policy.logprobs(states, [g.token_ids for g in gens])
        return actor_loss(adv, logp.sum(1)), adv

    def critic_plan(self) -> list[list[list] | None]:
        """The micro-batches of every critic step of an iteration, drawn as the steps would draw
        them, each step's V-target seeds right after its batches; with ``batch_v_samples`` their
        samples are then drawn at once (the actor does not change during the critic steps)."""
        a = self.args
        if not a.batch_v_samples:
            return [None] * a.critic_steps  # each step draws its own, then samples them
        plan = []
        for _ in range(a.critic_steps):
            plan.append([self.buffer.sample(a.batch_size, self.rng) for _ in range(a.grad_accum)])
            self.announce([r for mb in plan[-1] for r in self.v_sample_requests(mb)])
        self.fill()
        return plan

    def critic_step(self, micro: list[list] | None = None) -> float:
        a = self.args
        micro = micro or [self.buffer.sample(a.batch_size, self.rng) for _ in range(a.grad_accum)]
        value = accumulate(micro, self.critic_objective)
        clipped_step(self.critic_opt, self.critic.parameters(), a.max_grad_norm)
        polyak(self.target, self.critic, a.tau)
        return value

    def actor_step(self) -> tuple[float, float]:
        a = self.args
        micro = [[t.prompt for t in self.buffer.sample(a.batch_size, self.rng)] for _ in range(a.grad_accum)]
        if a.batch_v_samples:  # one call for the step's micro-batches: the actor changes only after them
            self.announce([(states, 1) for states in micro])
            self.fill()
        advs = []

        def loss(states):
            value, adv = self.actor_objective(states)
            advs.append(adv)
            return value

        value = accumulate(micro, loss)
        self._prefetched.clear()
        clipped_step(self.actor_opt, self.policy.model.parameters(), a.max_grad_norm)
        self.policy.forget()
        return value, float(torch.cat(advs).mean())

    def actor_frozen(self, iteration: int) -> bool:
        return iteration < self.args.warmup_iters

    # -------------------------------------------------------------- the iteration
    def observe(self, trajectories: list) -> None:
        steps = [t for traj in trajectories for t in traj.steps]
        for t in steps:
            self.buffer.add(t)
        if self.features.cache is not None:  # embed the new texts at once, in batches of similar length
            self.features.cache([text for t in steps for text in (t.prompt, t.action, t.next_prompt)])

    def update(self, trajectories: list, iteration: int) -> dict:
        self.observe(trajectories)
        a = self.args
        t0, self._sampling_s = time.perf_counter(), 0.0
        critic = [self.critic_step(micro) for micro in self.critic_plan()]
        self._prefetched.clear()
        cost = {"critic": time.perf_counter() - t0, "v_samples": self._sampling_s}
        out = {"critic_loss": float(np.mean(critic)), "buffer": len(self.buffer)}
        if not self.actor_frozen(iteration):
            t0 = time.perf_counter()
            steps = [self.actor_step() for _ in range(a.actor_steps)]
            cost["actor"] = time.perf_counter() - t0
            out["actor_loss"] = float(np.mean([s[0] for s in steps]))
            out["advantage"] = float(np.mean([s[1] for s in steps]))
        out["cost_s"] = {k: round(v, 3) for k, v in cost.items()}
        return out

    # -------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        return {
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "features": self.features.cache.state_dict() if self.features.cache is not None else None,
        }

    def load_extra_state(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.buffer.load_state_dict(state["buffer"])
        if state["features"] is not None and self.features.cache is not None:
            self.features.cache.load_state_dict(state["features"])
