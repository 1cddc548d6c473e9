"""The one collection loop: N episodes in flight, one model call per agent for every episode waiting on it.

    from feedbackgym.agents.lm import LMAgent
    from feedbackgym.rollout import rollout
    trajectories = rollout(LMAgent.from_pretrained("models/actor"), "feedbackgym/TwentyQuestions-v0",
                           n_envs=32, episodes=256, seed=0)

``env`` is a registered env id, a scenario name or path, or a `Scenario`; ``roles`` replace its
agent specs (``judge="lm:models/judge"``, ``actor="learner"``, None removes a role), as
``feedbackgym.make`` does. ``agent`` plays the learner's seat (whichever role the scenario gives
``agent: learner``). Episode ``k`` runs with ``seeds[k]`` (default ``seed + k``) whatever
``n_envs`` is, and every agent draws from its own role's per-episode generator, so a batched
rollout and the sequential loop give the same episodes. The learners collect through this loop
too (`feedbackgym.learners.train`), with a `Learner` as the agent.

``face`` says what each slot steps:

- ``None`` (the default): the engine's `Episode` itself, driven by `play_batch`: every seat's
  model calls are batched across the episodes waiting on it (an LM judge alongside an LM actor);
- ``"gymnasium"``: a `FeedbackEnv` per slot; the learner's utterance goes through ``env.step``,
  which plays the other seats (one episode at a time) and returns the reward and both end flags;
- ``"pettingzoo"``: the AEC env per slot with the learner's role the one agent driven from
  outside (``external=[role]``); the reward is the agent's entry in ``env.rewards`` after its move,
  the flags its ``terminations`` / ``truncations``.

All three run the same engine, so they give the same trajectories and the same records
(``tests/test_train_faces.py``). (The AEC env reports what an agent accrued from its move on: a
reward paid to the learner's role before its first turn is not reported there, and no shipped
reward scheme pays one.)

Each round, a free slot opens the next seed (the other seats move until the learner is due: no
model call is spent on a reset), then every live episode's learner speaks once, in one call, and
the other seats answer until the learner is due again or the episode ends. Why not
``gymnasium.vector``: a vector env batches the *env*, but the cost is the model, and what can
share a model call is every seat played by the same agent; ``AsyncVectorEnv`` would put
pure-Python episodes behind pickling, and its NEXT_STEP autoreset spends a step (whose action is
ignored) on each reset and draws the next seed from the slot's generator.

Rewards are the Gymnasium face's: a step's reward is what the learner's role accrued from its
utterance until its next turn or the end; ``terminated`` and ``truncated`` are kept apart.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import gymnasium as gym

from feedbackgym.agents import agents_for
from feedbackgym.envs import pettingzoo
from feedbackgym.envs.engine import Episode, act, play, play_batch
from feedbackgym.envs.gym import FeedbackEnv
from feedbackgym.envs.scenario import Scenario, ScenarioError, load_scenario
from feedbackgym.records import Record

#: the faces a rollout can step besides the engine itself (``face=None``)
FACES = ("gymnasium", "pettingzoo")


@dataclass
class Step:
    """One utterance of the learner's seat and what followed it."""

    prompt: str
    """what the agent was conditioned on (an LM's prompt; the transcript for other agents)"""
    action: str
    """the utterance"""
    token_ids: list[int]
    """the generated tokens, through the stop token ([] for agents without tokens)"""
    logprobs: list[float]
    """their log-probabilities under the model that generated them"""
    reward: float = 0.0
    """what the learner's role accrued from this utterance until its next turn or the end"""
    next_prompt: str = ""
    """the prompt at the learner's next turn (or after the end)"""
    terminated: bool = False
    """the episode ended here by the task's rules (no bootstrapping from next_prompt)"""
    truncated: bool = False
    """the episode was cut here (a turn budget): bootstrap from next_prompt"""
    feedback: str = ""
    """what the other roles said after the utterance, until the learner's next turn or the end, one
    ``role: text`` line each (the critique, reply or verdict a feedback-conditioned learner reads)"""
    verdict: bool | None = None
    """the task's verdict on the utterance as a move (``is_correct``; False when it was unreadable;
    None for a move that is neither right nor wrong, a question, or for a role that does not move)"""
    refines: bool = False
    """it refines the step before it, a draft, after that draft's critique (``protocol.refine``)"""


@dataclass
class Trajectory:
    """One episode, from the learner's seat."""

    seed: int
    steps: list[Step] = field(default_factory=list)
    success: bool = False
    member: int = 0
    """its member of the seed's group (``rollout(members=k)``: the same instance, fresh draws)"""
    end: str | None = None
    """why the episode ended (the engine's ``terminate_reason``: success, max_turns, protocol_end, ...)"""

    @property
    def total_reward(self) -> float:
        return float(sum(s.reward for s in self.steps))


def scenario_for(env: str | Scenario, **roles: str | None) -> Scenario:
    """The scenario of a registered env id, a scenario name or path, or a `Scenario`, with
    ``roles`` replacing its agent specs (what ``feedbackgym.make`` resolves)."""
    if isinstance(env, str) and env in gym.registry:  # an id: the scenario it opens by default
        env = gym.spec(env).kwargs.get("scenario", env)
    sc = load_scenario(env)
    return sc.with_roles(**roles) if roles else sc


def play_scenario(scenario: Scenario, seed: int) -> Episode:
    """One whole episode with the scenario's agents in every seat (the bootstrap's expert episodes)."""
    ep = Episode(scenario, seed, _seated(scenario))
    play(ep)
    return ep


def play_scenarios(scenario: Scenario, seeds: Sequence[int], in_flight: int = 16, agents: dict[str, Any] | None = None):
    """Whole episodes of ``scenario``, one per seed, yielded in seed order: ``in_flight`` at a
    time through `play_batch`, so a model in a seat answers every episode waiting on it in one
    call (the CLI's ``run`` and ``eval``); one at a time where a person takes a seat. The agents are made once. The episodes are those of
    `play_scenario` one by one. If a model call fails (a served seat's server is gone), the
    episodes finished before it, in seed order, are still yielded, then the error is raised.
    ``agents``: the seats' agents, made by the caller (default: made here, from the scenario)."""
    agents = _seated(scenario) if agents is None else agents
    human = any(spec.agent == "human" for spec in scenario.roles.values())
    in_flight = 1 if human else max(1, in_flight)  # a person plays one episode at a time
    for chunk_seeds in _chunks(seeds, in_flight):  # never a list of all the seeds: 10^6 of them are 36 MB
        chunk = [Episode(scenario, s, agents) for s in chunk_seeds]
        try:
            play_batch(dict(enumerate(chunk)))
        except BaseException:
            for ep in chunk:
                if ep.current_role() is not None:
                    break
                yield ep
            raise
        yield from chunk


def _chunks(seeds: Iterable[int], size: int) -> Iterator[list[int]]:
    """``seeds`` in lists of ``size`` (the last may be shorter), read as they are needed."""
    it = iter(seeds)
    while chunk := [s if isinstance(s, tuple) else int(s) for s in islice(it, size)]:  # a tuple: (seed, member)
        yield chunk


def _seated(scenario: Scenario) -> dict[str, Any]:
    agents = agents_for(scenario)
    missing = [r for r, a in agents.items() if a is None]
    if missing:
        raise ScenarioError(f"roles {missing} are seats for a learner; give them agents (e.g. --{missing[0]} scripted:expert)")
    return agents


# ---------------------------------------------------------------------- the learner's agent
class LearnerAgent:
    """The agent in the learner's seat, as the loop sees it: its messages are recorded with the
    source ``learner``; each of its outputs becomes a `Step`."""

    source = "learner"

    def __init__(self, agent: Any):
        self.agent = agent

    def act_batch(self, views: Sequence) -> list:
        return act(self.agent, views)  # Generations from an LM (or a learner), else text or utterances

    def prompt(self, view) -> str:
        """What the agent is conditioned on at ``view``: its prompt if it has one, else the transcript."""
        return self.agent.prompt(view) if hasattr(self.agent, "prompt") else view.transcript

    def step(self, view, out) -> Step:
        if hasattr(out, "token_ids"):
            return Step(out.prompt, out.text, list(out.token_ids), list(out.logprobs))
        return Step(self.prompt(view), out if isinstance(out, str) else out.text, [], [])


def replies(view, learner: str) -> str:
    """What the other roles said since ``learner`` last spoke, as ``role: text`` lines."""
    return "\n".join(f"{role}: {text}" for role, _, text in view.new if role != learner)


def verdict(view) -> bool | None:
    """The task's verdict on what ``view``'s role said last (`Step.verdict`)."""
    if not view.since:
        return None
    m = view._log[view.since - 1]
    return False if m.kind == "invalid" or m.labels.get("valid") is False else m.labels.get("is_correct")


def closed(step: Step, view, learner: str) -> None:
    """Fill in what ``step`` learns once the learner is due again or the episode is over."""
    step.feedback = replies(view, learner)
    step.verdict = verdict(view)


# ---------------------------------------------------------------------- slots
class Slot:
    """One slot of the loop: an episode (opened anew for each seed) that `play_batch` drives.

    It offers `play_batch` what an `Episode` does (``current_role``, ``agents``, ``view``,
    ``submit``), and yields once its learner has spoken this round and is due again: the loop
    then finishes or refills slots before the next round."""

    episode: Episode
    learner: str
    moved = False

    def current_role(self) -> str | None:
        raise NotImplementedError

    def view(self, role: str):
        return self.episode.view(role)

    @property
    def done(self) -> bool:
        return self.episode.done


class EngineSlot(Slot):
    """The engine's episode itself: every seat is asked through `play_batch`."""

    def __init__(self, scenario: Scenario, learner: str, agents: dict):
        self.scenario, self.learner, self.agents = scenario, learner, agents

    def open(self, seed: int, member: int = 0) -> None:
        self.episode, self.moved = Episode(self.scenario, seed, self.agents, member), False

    def current_role(self) -> str | None:
        role = self.episode.current_role()
        return None if self.moved and role == self.learner else role

    def submit(self, role: str, text, source: str | None = None):
        self.moved = self.moved or role == self.learner
        return self.episode.submit(role, text, source)

    def take_reward(self, role: str) -> float:
        return self.episode.take_reward(role)

    @property
    def terminated(self) -> bool:
        return self.episode.terminated

    @property
    def truncated(self) -> bool:
        return self.episode.truncated


class FaceSlot(Slot):
    """The learner's seat of a face: the face plays the other seats inside its step, and reports
    the reward and the two end flags."""

    def __init__(self, env, learner: str, agent: LearnerAgent):
        self.env, self.learner, self.agents = env, learner, {learner: agent}
        self.reward, self.terminated, self.truncated = 0.0, False, False

    @property
    def episode(self) -> Episode:
        return self.env.unwrapped.episode

    def open(self, seed: int, member: int = 0) -> None:
        # the other seats act until the learner is due (or the episode ends)
        self.env.reset(seed=seed, options={"member": member} if member else None)
        self.reward, self.moved = 0.0, False
        self.terminated, self.truncated = self.episode.terminated, self.episode.truncated

    def current_role(self) -> str | None:
        return None if self.moved or self.done else self.learner

    def submit(self, role: str, text, source: str | None = None) -> None:
        assert role == self.learner, (role, self.learner)
        reward, self.terminated, self.truncated = self.step(text)
        self.reward += reward
        self.moved = True

    def take_reward(self, role: str) -> float:
        reward, self.reward = self.reward, 0.0
        return reward


class GymnasiumSlot(FaceSlot):
    def __init__(self, scenario: Scenario, learner: str, agent: LearnerAgent):
        super().__init__(FeedbackEnv(scenario), learner, agent)

    def step(self, text) -> tuple[float, bool, bool]:
        _, reward, terminated, truncated, _ = self.env.step(text)
        return float(reward), bool(terminated), bool(truncated)


class PettingZooSlot(FaceSlot):
    def __init__(self, scenario: Scenario, learner: str, agent: LearnerAgent):
        super().__init__(pettingzoo.env(scenario=scenario, external=[learner]), learner, agent)
        self.name = pettingzoo.agent_name(learner)

    def step(self, text) -> tuple[float, bool, bool]:
        env, name = self.env, self.name
        assert env.agent_selection == name, (env.agent_selection, name)
        env.step(text)
        return float(env.rewards[name]), bool(env.terminations[name]), bool(env.truncations[name])


def slot_factory(face: str | None, scenario: Scenario, learner: str, agent: LearnerAgent):
    """A function that makes one slot of ``face`` (None: the engine)."""
    if face is None:
        agents = {**{r: a for r, a in agents_for(scenario).items() if a is not None}, learner: agent}
        return lambda: EngineSlot(scenario, learner, agents)
    if face not in FACES:
        raise ValueError(f"unknown face {face!r}; known: None (the engine), {', '.join(FACES)}")
    cls = GymnasiumSlot if face == "gymnasium" else PettingZooSlot
    return lambda: cls(scenario, learner, agent)


# ---------------------------------------------------------------------- the loop
def rollout(
    agent: Any, env: str | Scenario, n_envs: int = 16, episodes: int | None = None, seed: int = 0, *,
    seeds: Sequence[int] | None = None, face: str | None = None, writer=None, workers: int = 1, members: int = 1,
    **roles: str | None,
) -> list[Trajectory]:  # fmt: skip
    """Play one episode per seed (``seeds``, or ``seed .. seed + episodes - 1``), ``n_envs`` at a
    time, with ``agent`` in the learner's seat; the trajectories in seed order. ``writer`` (a
    `RecordWriter`) gets each episode in seed order, as soon as it and every earlier one have
    finished. ``workers`` > 1: the seeds are played on that many Ray actors, each with its own
    copy of ``agent`` (see `on_workers`); the same trajectories and records. ``members`` k > 1:
    each seed is played k times, members 0 .. k-1 (`Episode`'s ``member``: the same task
    instance, every seat drawing afresh; a GRPO group), in the order seed 0's members, seed 1's, ..."""
    if seeds is None:
        if episodes is None or episodes < 0:
            raise ValueError(f"give episodes >= 0 or seeds, got episodes={episodes}")
        seeds = [seed + k for k in range(episodes)]
    if members < 1:
        raise ValueError(f"need members >= 1, got members={members}")
    keys = [(int(s), m) for s in seeds for m in range(members)]
    if n_envs < 1:
        raise ValueError(f"need n_envs >= 1, got n_envs={n_envs}")
    scenario = scenario_for(env, **roles)
    learner = scenario.learner_role
    if learner is None:
        raise ValueError(f"scenario {scenario.name!r}: no role is played by the learner (give one agent='learner', e.g. actor='learner')")
    if workers > 1:
        return _rollout_on_workers(agent, scenario, n_envs, keys, face, writer, workers)
    return _rollout(agent, scenario, learner, n_envs, keys, face, writer)


def _rollout(agent: Any, scenario: Scenario, learner: str, n_envs: int, keys: list[tuple[int, int]], face, writer) -> list[Trajectory]:
    """`rollout` in this process, one episode per (seed, member) of ``keys``."""
    seat = LearnerAgent(agent)
    new_slot = slot_factory(face, scenario, learner, seat)
    slots = [new_slot() for _ in range(min(n_envs, len(keys)))]
    trajectories = [Trajectory(s, member=m) for s, m in keys]
    running: dict[int, int] = {}  # slot -> index of its episode
    ended: dict[int, Episode] = {}  # finished episodes not yet written: an earlier seed is still running
    written = 0

    def on_turn(e: int, role: str, view, out):
        if role != learner:
            return None
        steps = trajectories[running[e]].steps
        step = seat.step(view, out)
        if steps:  # the previous step's reward is complete: the learner is due again
            steps[-1].reward += slots[e].take_reward(learner)
            steps[-1].next_prompt = step.prompt
            closed(steps[-1], view, learner)
        step.refines = view.refining
        steps.append(step)
        return step.action

    def finish_done(group: dict[int, Slot]) -> None:
        nonlocal written
        for e, slot in group.items():
            if not slot.done:
                continue
            k = running.pop(e)
            traj = trajectories[k]
            if traj.steps:
                last = traj.steps[-1]
                last.reward += slot.take_reward(learner)
                last.next_prompt = seat.prompt(slot.view(learner))
                closed(last, slot.view(learner), learner)
                last.terminated, last.truncated = slot.terminated, slot.truncated
            traj.end = slot.episode.terminate_reason
            traj.success = traj.end == "success"
            if writer is not None:
                ended[k] = slot.episode
                while written in ended:
                    writer.write(ended.pop(written))
                    written += 1

    nxt = 0
    while running or nxt < len(keys):
        fresh = {}
        for e, slot in enumerate(slots):  # autoreset: a free slot opens the next seed
            if e not in running and nxt < len(keys):
                slot.open(*keys[nxt])
                running[e], fresh[e] = nxt, slot
                nxt += 1
        play_batch(fresh, stop=learner)  # the other seats, until the learner's first turn
        finish_done(fresh)  # the other seats ended it before the learner spoke
        live = {e: slots[e] for e in sorted(running)}
        for slot in live.values():
            slot.moved = False
        play_batch(live, on_turn=on_turn)  # each learner speaks once; the others answer
        finish_done(live)
    return trajectories


# ---------------------------------------------------------------------- on Ray actors
def played(scenario: Scenario, seeds: Sequence[int], in_flight: int = 16, workers: int = 1, record: bool = False):
    """`play_scenarios`' episodes as ``(record, metrics row)`` pairs in seed order (``record`` a
    `Record` when asked for, else None): what ``run`` and ``eval`` keep of an episode. With
    ``workers`` > 1 the seeds are played on Ray actors (`on_workers`): the same pairs."""
    if workers <= 1:
        for ep in play_scenarios(scenario, seeds, in_flight):
            yield (Record.of(ep) if record else None), ep.metrics()
        return
    yield from on_workers("play", scenario, seeds, in_flight, workers, record=record)


def _rollout_on_workers(agent, scenario: Scenario, n_envs: int, keys: list[tuple[int, int]], face, writer, workers: int) -> list[Trajectory]:
    trajectories = []
    for traj, record in on_workers("rollout", scenario, keys, n_envs, workers, record=writer is not None, agent=agent, face=face):
        trajectories.append(traj)
        if writer is not None:
            writer.write(record)
    return trajectories


#: seeds a worker plays per call, in units of the episodes it has in flight
CHUNK = 4


def on_workers(method: str, scenario: Scenario, seeds: Iterable[int], in_flight: int, workers: int, **kw):
    """What ``method`` of `EpisodeWorker` returns for ``seeds``, in seed order, played on
    ``workers`` Ray actors: the seeds are cut into chunks of ``CHUNK * in_flight`` in order,
    chunk ``i`` goes to actor ``i % workers`` (each actor runs its calls in the order sent), at
    most two chunks an actor are in flight, and results come back in chunk order as they are
    ready. An episode depends only on its scenario and seed (every agent draws from its role's
    per-episode generator), not on which process or batch plays it, so the results, and the
    records, are those of one process. The actors are made once per process and reused
    (`worker_pool`); a ``rollout`` sends ``agent`` to the object store once per call, and each
    actor plays with its own copy of it."""
    pool = worker_pool(workers)
    ray = _ray(workers)
    shared = {k: ray.put(v) if k == "agent" else v for k, v in kw.items()}
    pending: deque = deque()
    for i, chunk in enumerate(_chunks(seeds, CHUNK * max(1, in_flight))):
        if len(pending) == 2 * len(pool):
            yield from ray.get(pending.popleft())
        pending.append(getattr(pool[i % len(pool)], method).remote(scenario, chunk, in_flight, **shared))
    while pending:
        yield from ray.get(pending.popleft())


class EpisodeWorker:
    """A Ray actor's state: the agents of each scenario it has played (made once: an LM seat
    loads its model once per actor, not per chunk)."""

    def __init__(self):
        self._agents: dict[str, dict[str, Any]] = {}

    def _seated(self, scenario: Scenario) -> dict[str, Any]:
        key = scenario.model_dump_json()
        if key not in self._agents:
            self._agents[key] = _seated(scenario)
        return self._agents[key]

    def play(self, scenario: Scenario, seeds: list[int], in_flight: int, record: bool = False) -> list[tuple]:
        out = []
        for ep in play_scenarios(scenario, seeds, in_flight, self._seated(scenario)):
            out.append(((Record.of(ep) if record else None), ep.metrics()))
        return out

    def rollout(self, scenario: Scenario, keys: list[tuple[int, int]], n_envs: int, record: bool = False, agent: Any = None, face=None) -> list[tuple]:
        records = _Kept()
        trajectories = _rollout(agent, scenario, scenario.learner_role, n_envs, keys, face, records if record else None)
        return list(zip(trajectories, records.records if record else [None] * len(trajectories)))


class _Kept:
    """A writer that keeps the records (an actor's, sent back with its trajectories)."""

    def __init__(self):
        self.records: list[Record] = []

    def write(self, ep: Episode) -> None:
        self.records.append(Record.of(ep))


_POOL: list = []


def worker_pool(workers: int) -> list:
    """``workers`` `EpisodeWorker` actors of this process (made on first use, then reused)."""
    ray = _ray(workers)
    if len(_POOL) < workers:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if workers > cpus:  # an actor a CPU: the ones over would wait for a CPU forever
            raise ValueError(f"--workers {workers}: the Ray cluster has {cpus} CPUs (one actor a CPU); ask for at most {cpus}, or add machines (RAY_ADDRESS)")
        remote = ray.remote(num_cpus=1)(EpisodeWorker)
        while len(_POOL) < workers:
            _POOL.append(remote.remote())
    return _POOL[:workers]


def _ray(workers: int):
    """The ``ray`` module, connected: to the cluster ``RAY_ADDRESS`` names (``ray start --head``
    on one machine, ``ray start --address HEAD:6379`` on the others; "auto": the one this
    machine is part of), else to a local one started here with at least as many CPUs as the
    workers asked for (one actor a CPU)."""
    try:
        import ray
    except ImportError:
        raise ValueError("workers > 1 run on Ray actors: pip install 'feedbackgym[ray]'") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        local = {} if address else {"num_cpus": max(os.cpu_count() or 1, workers)}
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False, **local)
    return ray
