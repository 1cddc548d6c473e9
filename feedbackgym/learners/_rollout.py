"""Rollouts through either face: N envs in flight, one batched policy call per step.

``face="gymnasium"``: each env is ``feedbackgym.make(scenario, **seats)``. ``face="pettingzoo"``:
each env is ``feedbackgym.make_multiagent(scenario, external=[role], **seats)``, the AEC env in
which the learner's role is the one agent driven from outside and every other seat is played by
the agent the scenario (or ``seats``) names, as the AEC env does for any role not external.
Either way, whichever role the scenario (or ``seats``) gives to ``"learner"`` is the role
trained, so ``seats={"judge": "learner", "actor": "scripted:expert"}`` trains a judge with the
same code. The learner's state text is its LM prompt built from the engine's view of that role;
the reward is what the role accrued from its move until its next turn (``take_reward`` in the
Gymnasium face, the AEC env's cumulative reward of the agent in the PettingZoo face);
``terminated`` and ``truncated`` are kept apart on every transition. Both faces run the same
engine, so the same seeds and weights give the same trajectories through either
(``tests/test_train_faces.py``). Episode ``k`` of a call runs with ``seeds[k]``, and the policy
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


FACES = ("gymnasium", "pettingzoo")


class GymnasiumSeat:
    """The learner's seat through the Gymnasium face."""

    def __init__(self, scenario: str, seats: dict):
        import feedbackgym

        self.env = feedbackgym.make(scenario, **seats)
        self.role = self.env.unwrapped.learner

    @property
    def episode(self):
        return self.env.unwrapped.episode

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def step(self, text: str) -> tuple[float, bool, bool]:
        _, reward, terminated, truncated, _ = self.env.step(text)
        return float(reward), bool(terminated), bool(truncated)


class PettingZooSeat:
    """The learner's seat through the PettingZoo face: the AEC env with the learner's role the
    only agent driven from outside. (The AEC env reports what an agent accrued from its move on;
    a reward paid to the learner's role before its first turn would not be reported, and no
    shipped reward scheme pays one.)"""

    def __init__(self, scenario: str, seats: dict):
        import feedbackgym
        from feedbackgym.envs.pettingzoo import agent_name

        sc = feedbackgym.load_scenario(scenario)
        self.role = (sc.with_roles(**seats) if seats else sc).learner_role
        if self.role is None:
            raise ValueError(f"scenario {sc.name!r}: no role is played by the learner (give one agent='learner' or --seats ROLE=learner)")
        self.env = feedbackgym.make_multiagent(scenario, external=[self.role], **seats)
        self.agent = agent_name(self.role)

    @property
    def episode(self):
        return self.env.unwrapped.episode

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)  # the other seats act until it is the learner's turn (or the end)

    def step(self, text: str) -> tuple[float, bool, bool]:
        env, agent = self.env, self.agent
        assert env.agent_selection == agent, (env.agent_selection, agent)
        env.step(text)
        return float(env._cumulative_rewards[agent]), bool(env.terminations[agent]), bool(env.truncations[agent])


def open_seat(scenario: str, seats: dict | None = None, face: str = "gymnasium"):
    """The learner's seat of ``scenario`` through ``face`` (one of `FACES`)."""
    if face not in FACES:
        raise ValueError(f"unknown face {face!r}; known: {list(FACES)}")
    return (GymnasiumSeat if face == "gymnasium" else PettingZooSeat)(scenario, seats or {})


def collect(policy, act: Act, scenario: str, seeds: Sequence[int], n_envs: int = 16, seats=None, writer=None,
            face: str = "gymnasium") -> list[Trajectory]:  # fmt: skip
    """Play one episode per seed with ``act`` in the learner's seat through ``face``; trajectories
    in seed order. ``writer`` (a `RecordWriter`) gets each finished episode for replay."""
    policy.forget()
    trajs = [Trajectory(int(s)) for s in seeds]
    envs = [open_seat(scenario, seats, face) for _ in range(min(n_envs, len(seeds)))]
    slots: dict[int, int] = {}  # env slot -> index of its episode
    prompts: dict[int, str] = {}
    nxt = 0
    while slots or nxt < len(seeds):
        for e in range(len(envs)):  # a free slot opens the next seed
            if e not in slots and nxt < len(seeds):
                envs[e].reset(int(seeds[nxt]))
                ep = envs[e].episode
                if ep.done:  # nothing for the learner to do (the others ended it)
                    _finish(trajs[nxt], ep, writer)
                else:
                    slots[e] = nxt
                    prompts[e] = policy.prompt(ep.view(envs[e].role))
                nxt += 1
        live = sorted(slots)
        if not live:
            continue
        views = [envs[e].episode.view(envs[e].role) for e in live]
        seeds_now = [int(v.rng.integers(2**63)) for v in views]  # as LMAgent.generate draws them
        outs = act([prompts[e] for e in live], seeds_now, [id(v.rng) for v in views])
        for e, out in zip(live, outs):
            env, k = envs[e], slots[e]
            reward, terminated, truncated = env.step(out.text)
            nxt_prompt = policy.prompt(env.episode.view(env.role))
            trajs[k].steps.append(
                Transition(prompts[e], out.text, list(out.token_ids), list(out.logprobs), reward, nxt_prompt, terminated, truncated)
            )
            prompts[e] = nxt_prompt
            if terminated or truncated:
                _finish(trajs[k], env.episode, writer)
                del slots[e]
    return trajs


def _finish(traj: Trajectory, episode, writer) -> None:
    traj.success = episode.terminate_reason == "success"
    if writer is not None:
        writer.write(episode)
