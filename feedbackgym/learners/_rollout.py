"""Rollouts through the Gymnasium face: N envs in flight, one batched policy call per step.

Each env is ``feedbackgym.make(scenario, **seats)``: whichever role the scenario (or ``seats``)
gives to ``"learner"`` is the role trained, so ``seats={"judge": "learner", "actor":
"scripted:expert"}`` trains a judge with the same code. The learner's state text is its LM
prompt built from the env's view of that role; the env's ``terminated`` and ``truncated`` are
kept apart on every transition. Episode ``k`` of a call runs with ``seeds[k]``, and the policy
samples from the per-episode generator of the learner's role, so what happens depends only on
the seeds and the weights, never on how many envs run at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from feedbackgym.agents.lm import Generation


@dataclass
class Transition:
    """One utterance of the learner and what followed it."""

    state: str
    """the learner's prompt before it spoke (the dialogue so far)"""
    action: str
    """the utterance"""
    token_ids: list[int]
    """its tokens, as generated (through the stop token)"""
    logprobs: list[float]
    """their log-probs under the policy that generated them"""
    reward: float
    next_state: str
    """the learner's prompt at its next turn (or after the end)"""
    terminated: bool
    """the task ended (no bootstrapping from next_state)"""
    truncated: bool
    """the turn budget ran out (bootstrap from next_state)"""


@dataclass
class Trajectory:
    seed: int
    steps: list[Transition] = field(default_factory=list)
    success: bool = False

    @property
    def ret(self) -> float:
        return float(sum(s.reward for s in self.steps))


#: act(prompts, seeds, keys) -> one Generation per prompt
Act = Callable[[Sequence[str], Sequence[int], Sequence], list[Generation]]


def make_env(scenario: str, seats: dict[str, str] | None = None):
    import feedbackgym

    return feedbackgym.make(scenario, **(seats or {}))


def collect(policy, act: Act, scenario: str, seeds: Sequence[int], n_envs: int = 16, seats=None, writer=None) -> list[Trajectory]:
    """Play one episode per seed with ``act`` in the learner's seat; trajectories in seed order.
    ``writer`` (a `RecordWriter`) gets each finished episode for replay."""
    policy.forget()
    trajs = [Trajectory(int(s)) for s in seeds]
    envs = [make_env(scenario, seats) for _ in range(min(n_envs, len(seeds)))]
    slots: dict[int, int] = {}  # env slot -> index of its episode
    prompts: dict[int, str] = {}
    nxt = 0
    while slots or nxt < len(seeds):
        for e in range(len(envs)):  # a free slot opens the next seed
            if e not in slots and nxt < len(seeds):
                envs[e].reset(seed=int(seeds[nxt]))
                base = envs[e].unwrapped
                if base.episode.done:  # nothing for the learner to do (the others ended it)
                    _finish(trajs[nxt], base, writer)
                else:
                    slots[e] = nxt
                    prompts[e] = policy.prompt(base.episode.view(base.learner))
                nxt += 1
        live = sorted(slots)
        if not live:
            continue
        views = [envs[e].unwrapped.episode.view(envs[e].unwrapped.learner) for e in live]
        seeds_now = [int(v.rng.integers(2**63)) for v in views]  # as LMAgent.generate draws them
        outs = act([prompts[e] for e in live], seeds_now, [id(v.rng) for v in views])
        for e, out in zip(live, outs):
            env, k = envs[e], slots[e]
            _, reward, terminated, truncated, _ = env.step(out.text)
            base = env.unwrapped
            nxt_prompt = policy.prompt(base.episode.view(base.learner))
            trajs[k].steps.append(
                Transition(prompts[e], out.text, list(out.token_ids), list(out.logprobs), float(reward), nxt_prompt, bool(terminated), bool(truncated))
            )
            prompts[e] = nxt_prompt
            if terminated or truncated:
                _finish(trajs[k], base, writer)
                del slots[e]
    return trajs


def _finish(traj: Trajectory, base, writer) -> None:
    traj.success = base.episode.terminate_reason == "success"
    if writer is not None:
        writer.write(base.episode)
