"""Batched rollouts: N episodes in flight, one model call per agent for every episode waiting on it.

    from feedbackgym.agents.lm import LMAgent
    from feedbackgym.rollout import rollout
    trajectories = rollout(LMAgent.from_pretrained("models/actor"), "feedbackgym/TwentyQuestions-v0",
                           n_envs=32, episodes=256, seed=0)

The env id (or scenario name) and ``env_kwargs`` are resolved exactly as ``feedbackgym.make``
resolves them (the scenario, the learner's seat, the agents of the other seats); ``agent`` then
plays the learner's seat. Episode ``k`` always runs with seed ``seed + k``, whatever ``n_envs``
is, so a batched rollout and the sequential loop give the same episodes.

Why the episodes are stepped directly rather than through ``gymnasium.vector``: a vector env
batches the *env*, but here the cost is the model, and the model calls that can share a batch
are those of every seat played by the same agent (an LM judge waits alongside an LM actor);
``AsyncVectorEnv`` would put pure-Python episodes (microseconds a step) behind pickling, and
its NEXT_STEP autoreset draws the next episode's seed from the slot's generator and spends a
step (whose action is ignored) on the reset. Here a finished episode's slot opens the next
seed at once, and no model call is spent on a reset: every view handed to an agent belongs to
an episode waiting on that agent.

Rewards are the Gymnasium face's: a step's reward is what the learner's role accrued from its
utterance until its next turn or the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feedbackgym.agents import agents_for
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import Scenario, ScenarioError


@dataclass
class Step:
    """One utterance of the learner's seat and what followed it."""

    prompt: str
    """what the agent was conditioned on (an LM's prompt; the transcript for other agents)"""
    action: str
    """the utterance"""
    token_ids: list[int]
    """the generated tokens ([] for agents without tokens)"""
    logprobs: list[float]
    """their log-probabilities under the model"""
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False


@dataclass
class Trajectory:
    """One episode, from the learner's seat."""

    seed: int
    steps: list[Step] = field(default_factory=list)
    success: bool = False

    @property
    def total_reward(self) -> float:
        return sum(s.reward for s in self.steps)


def play_scenario(scenario: Scenario, seed: int) -> Episode:
    """One whole episode with the scenario's agents in every seat (the CLI's ``run`` and
    ``eval``, the bootstrap's expert episodes)."""
    agents = agents_for(scenario)
    missing = [r for r, a in agents.items() if a is None]
    if missing:
        raise ScenarioError(f"roles {missing} are seats for a learner; give them agents (e.g. --{missing[0]} scripted:expert)")
    ep = Episode(scenario, seed, agents)
    play(ep)
    return ep


def act(agent, views) -> list:
    """One call for all ``views``: Generations (text, token ids, log-probs) from an agent that
    has ``generate`` (an LMAgent), else what ``act_batch`` returns (text or typed utterances)."""
    return agent.generate(views) if hasattr(agent, "generate") else agent.act_batch(views)


def record(view, out) -> Step:
    """The learner's step for one output of ``act``."""
    if hasattr(out, "token_ids"):
        return Step(out.prompt, out.text, out.token_ids, out.logprobs)
    return Step(view.transcript, out if isinstance(out, str) else out.text, [], [])


def rollout(agent, env_id: str, n_envs: int, episodes: int, seed: int = 0, **env_kwargs) -> list[Trajectory]:
    """Play ``episodes`` episodes (seeds ``seed .. seed + episodes - 1``), ``n_envs`` at a time,
    with ``agent`` in the learner's seat; the trajectories in seed order."""
    import feedbackgym

    if n_envs < 1 or episodes < 0:
        raise ValueError(f"need n_envs >= 1 and episodes >= 0, got n_envs={n_envs}, episodes={episodes}")
    env = feedbackgym.make(env_id, **env_kwargs).unwrapped  # resolves the scenario and the other seats
    learner = env.learner
    agents = {**env.agents, learner: agent}
    trajectories = [Trajectory(seed + k) for k in range(episodes)]
    running: dict[int, Episode] = {}  # episode index -> its episode, at most n_envs of them
    next_k = 0
    while running or next_k < episodes:
        while len(running) < n_envs and next_k < episodes:  # autoreset: a free slot opens the next seed
            running[next_k] = Episode(env.scenario, seed + next_k, agents)
            next_k += 1
        waiting: dict[int, list[tuple[int, str]]] = {}  # id(agent) -> (episode, role) waiting on it
        for k, ep in running.items():
            role = ep.current_role()
            waiting.setdefault(id(agents[role]), []).append((k, role))
        for seats in waiting.values():
            who = agents[seats[0][1]]
            views = [running[k].view(role) for k, role in seats]
            for (k, role), view, out in zip(seats, views, act(who, views)):
                ep, traj = running[k], trajectories[k]
                if role == learner:
                    traj.steps.append(record(view, out))
                    ep.submit(role, traj.steps[-1].action, source="learner")
                else:
                    ep.submit(role, out.text if hasattr(out, "token_ids") else out, getattr(who, "source", None))
                if traj.steps and (ep.done or ep.current_role() == learner):
                    traj.steps[-1].reward += ep.take_reward(learner)
                if ep.done:
                    if traj.steps:
                        traj.steps[-1].terminated, traj.steps[-1].truncated = ep.terminated, ep.truncated
                    traj.success = ep.terminate_reason == "success"
                    del running[k]
    return trajectories
