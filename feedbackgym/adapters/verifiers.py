"""A verifiers environment from any scenario (extra ``verifiers``): the evaluated model plays one
seat, the scenario's agents play the others, and the reward is the scenario's for that seat.

    import asyncio
    from feedbackgym.adapters import verifiers as fg_vf

    episodes = asyncio.run(fg_vf.evaluate("guess_number", model="my-model",
                                          base_url="http://127.0.0.1:8000/v1", seeds=range(16)))
    [fg_vf.reward_of(e) for e in episodes]

verifiers 0.4 (``verifiers.v1``) has no ``MultiTurnEnv`` with ``env_response`` / ``is_completed``
any more: an environment is an ``Env`` whose ``run(task, agents)`` holds an interaction open with
the evaluated agent and answers each of its turns itself, as its TextArena games do. Here that
answer is the engine's, through the Gymnasium face (`FeedbackEnv`): each reply of the model is
the seat's move, the scenario's agents answer until the seat is due again, and what they said
is the next user turn (the episode's end ends the interaction). The pieces, all exported by
this module so that verifiers finds each by the id ``feedbackgym-scenario`` (`ID`; importing
this module registers it):

- `ScenarioTaskset` (config `ScenarioTasksetConfig`: ``scenario``, ``seat``, ``seeds``): one task
  per seed, prompt-less (the env opens the conversation with what the seat is told first);
- `ScenarioEnv` (config `ScenarioEnvConfig`, one role ``player``): plays the episode and records
  the seat's return as the reward ``scenario_return`` (weight 1), and ``success``, ``turns``
  and the episode's ``terminate_reason`` in the trace's info;
- `ChatHarness`: the model's side, a plain chat loop run in-process (one chat completion per
  turn through verifiers' interception endpoint, which records the trace). verifiers' own
  ``null`` harness runs its loop as a ``uv`` script whose packages it downloads; this one needs
  nothing beyond the ``openai`` client already installed.

The first user turn is the seat's chat at its first turn (`prompts.view_chat`: the same
messages an ``lm:`` or ``openai:`` seat is prompted with); each later one is what the other
seats said since, one ``role: text`` line each, then what the turn asks. With a greedy server,
the first turn's request is the one an ``openai:`` seat sends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

import verifiers.v1 as vf
from verifiers.v1.dialects.chat import message_to_wire
from verifiers.v1.runtimes import ProgramResult

from feedbackgym.agents.prompts import view_chat
from feedbackgym.envs.gym import FeedbackEnv
from feedbackgym.rollout import scenario_for

__all__ = ["ChatHarness", "ScenarioEnv", "ScenarioTaskset", "evaluate", "reward_of"]

#: the id verifiers finds this module's taskset, env and harness by. verifiers imports a plugin
#: id as ``verifiers.v1.<group>.<id>`` or else as a top-level module, and a dotted name inside
#: another package is neither: the module is entered under that id in the three groups instead.
ID = "feedbackgym-scenario"
for _group in ("tasksets", "harnesses", "envs"):
    sys.modules.setdefault(f"verifiers.v1.{_group}.{ID.replace('-', '_')}", sys.modules[__name__])
REWARD = "scenario_return"


# ---------------------------------------------------------------------- the model's side
class ChatHarnessConfig(vf.HarnessConfig):
    pass


class ChatHarness(vf.Harness[ChatHarnessConfig]):
    """One chat completion per turn, in-process, through the interception endpoint (which
    records the trace); a resumed turn replays the whole conversation (verifiers' default)."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, tool_interception_url=None) -> ProgramResult:
        from openai import AsyncOpenAI

        system, prompt = self.resolve_prompt(data)
        messages = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt:
            messages += [message_to_wire(m) for m in prompt]
        client = AsyncOpenAI(base_url=endpoint, api_key=secret, max_retries=0)
        try:
            await client.chat.completions.create(model=ctx.model, messages=messages)
        finally:
            await client.close()
        return ProgramResult(0, "", "")


# ---------------------------------------------------------------------- the tasks
class ScenarioTasksetConfig(vf.TasksetConfig):
    id: str = ID
    scenario: str = "guess_number"
    """a shipped scenario name or a YAML path"""
    seat: str = "actor"
    """the role the evaluated model plays"""
    seeds: list[int] = list(range(8))
    """one episode (task) per seed"""


class ScenarioData(vf.TaskData):
    info: dict
    """the scenario, the seat and the seed the env plays the episode from"""


class ScenarioTask(vf.Task[ScenarioData, vf.State, vf.TaskConfig]):
    pass


class ScenarioTaskset(vf.Taskset[ScenarioTask, ScenarioTasksetConfig]):
    def load(self) -> Iterator[ScenarioTask]:
        c = self.config
        for seed in c.seeds:
            info = {"scenario": c.scenario, "seat": c.seat, "seed": int(seed)}
            yield ScenarioTask(ScenarioData(name=f"{c.scenario}#{seed}", prompt=None, info=info), c.task)


# ---------------------------------------------------------------------- the episode
class ScenarioEnvConfig(vf.EnvConfig):
    taskset: ScenarioTasksetConfig = ScenarioTasksetConfig()
    player: vf.AgentConfig = vf.AgentConfig(harness={"id": ID}, runtime=vf.SubprocessConfig())  # nothing runs in it


def _lines(env: FeedbackEnv, mark: int) -> str:
    """What the others said since log position ``mark``, as `view_chat` writes another role's
    lines, then what the seat's turn asks."""
    ep = env.episode
    view = ep.view(env.learner)
    lines = [f"{m.role}: {m.text}" for m in ep.log[mark:] if m.role != env.learner]
    if view.ask:
        lines.append(view.ask)
    return "\n".join(lines) or f"Your turn, {env.learner}."


class ScenarioEnv(vf.Env[ScenarioEnvConfig]):
    async def run(self, task, agents) -> None:
        info = task.data.info
        env = FeedbackEnv(scenario_for(info["scenario"], **{info["seat"]: "learner"}))
        env.reset(seed=int(info["seed"]))
        ep, total, turns = env.episode, 0.0, 0
        first = view_chat(ep.view(env.learner))
        async with agents.player.interaction(task) as interaction:
            segment = await interaction.turn(first)
            while not segment.terminated:
                mark = len(ep.log)
                _, reward, terminated, truncated, _ = env.step(segment.last_reply)
                total, turns = total + float(reward), turns + 1
                if terminated or truncated:
                    break  # the episode is over: so is the exchange
                segment = await interaction.turn(_lines(env, mark + 1))
        trace = interaction.trace
        trace.record_reward(REWARD, total, 1.0)
        trace.info.update(
            success=ep.terminate_reason == "success", turns=turns, terminate_reason=ep.terminate_reason, seed=ep.seed
        )


# ---------------------------------------------------------------------- an evaluation
def reward_of(episode) -> float:
    """The seat's return in a verifiers episode of `ScenarioEnv` (its ``scenario_return``)."""
    (trace,) = episode.traces
    return trace.rewards[REWARD].score


async def evaluate(
    scenario: str, model: str, base_url: str, seeds: Iterable[int] = range(8), seat: str = "actor",
    api_key_var: str = "OPENAI_API_KEY", max_concurrent: int = 4, **sampling,
) -> list:  # fmt: skip
    """Evaluate ``model`` (served at ``base_url``, OpenAI-compatible) in ``seat`` of ``scenario``:
    one verifiers episode per seed, in seed order, through verifiers' own in-process path (its
    env, interception and eval client; the key is read from ``api_key_var``, "EMPTY" when unset). ``sampling``: verifiers' `Sampling` fields (``max_tokens``,
    ``temperature``, ``stop``...)."""
    import asyncio

    from verifiers.v1.clients import ModelContext
    from verifiers.v1.configs.client import EvalClientConfig

    config = ScenarioEnvConfig(taskset=ScenarioTasksetConfig(scenario=scenario, seat=seat, seeds=list(seeds)))
    env = ScenarioEnv(config)
    ctx = ModelContext(model=model, client=EvalClientConfig(base_url=base_url, api_key_var=api_key_var), sampling=vf.Sampling(**sampling))
    gate = asyncio.Semaphore(max_concurrent)
    async with env.serving():
        slots = [slot for task in env.taskset for slot in env.slots(task)]
        return list(await asyncio.gather(*(env.run_slot(slot, ctx, gate) for slot in slots)))
