"""The PettingZoo face: every role an agent, over the same engine as the Gymnasium face.

| | |
|---|---|
| Agents | one per scenario role: `actor_0`, `critic_0`, `judge_0`, `user_0`, `buyer_0`, `seller_0`, `generator_0` |
| Parallel API | yes, turn based: one agent acts per parallel step (`turn_based_aec_to_parallel`) |
| Observation | `Dict(instruction, new, feedback, private)` of `Text` |
| Action | `Text` |

## Observation
`instruction` is the task statement; `new` the messages since this agent last spoke, one per
line as `role: text`; `feedback` the feedback messages among them ("" if none); `private` what
only this role may know (the judge's evidence and the gold answer, the user's goal; "" for the
actor). Hidden labels are never in an observation; `infos` carry the agent's own last labels.
Every field lies in its space whatever was said: characters outside the charset appear as
their Python escapes and a field past `MAX_OBS_CHARS` keeps its head and tail
(`feedbackgym.envs.gym.shown`, the Gymnasium face's rule).

## Reset
`reset(seed)` opens the episode of that seed. When the seats played by the scenario's agents end
it before any agent driven from outside has acted (`external=["user"]` with guess_number's
expert guessing right), the next seed is drawn from the env's generator, seeded by `seed`, and
the episode starts over, as in the Gymnasium face (`feedbackgym.envs.gym.start_episode`).

## Rewards
Per role, from the scenario's `rewards` (`final_correct`, `step_penalty`, `flip_c2i` for a
malicious judge, `improvement` for a critic, `goal_met` for a user, `task` for the games' own:
a deal price, SPC's zero-sum +-1), accumulated until the agent next acts.

## Action
Text; anything is accepted (an unreadable move is an invalid move with a reason). An outside
driver may also pass an `Utterance` (text plus typed feedback with its kind and labels).

## Arguments
`scenario` (name, path or `Scenario`); `external`: the roles driven from outside (default: all;
the others are played by the agents the scenario names); role keywords (`judge="learner"`) replace
the scenario's agent specs; `render_mode` `"ansi"` or `"human"`; `max_cycles`: the schedule runs
on past its own end and the episode is truncated when the next agent to act has acted this many
times. In the parallel view one agent acts per step, so there `max_cycles` caps the steps.
`is_parallelizable` (what PettingZoo's generic `aec_to_parallel` asks) is claimed only where
that conversion holds (`parallelizable`): it steps every agent once a cycle and needs each
episode to end at a cycle's end, which a solved task, a leaving user or the move budget break
in any cycle of two roles or more. Use `parallel_env` (turn based) for those.
`obs_format="messages"`: each agent observes `{"messages": ...}`, its view as OpenAI chat messages
(the Gymnasium face's tuple of `{"role", "content"}` dicts, the chat an `lm:` seat is prompted
with), in a dict because PettingZoo's API test takes arrays or dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import turn_based_aec_to_parallel, wrappers

from feedbackgym.agents import agents_for
from feedbackgym.core import as_text, render_transcript
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.gym import (
    action_text,
    check_obs_format,
    member_option,
    messages_observation,
    messages_space,
    obs_text,
    shown,
    start_episode,
)
from feedbackgym.envs.scenario import Scenario, load_scenario, validate


def agent_name(role: str) -> str:
    return f"{role}_0"


def role_of(agent: str) -> str:
    return agent.rsplit("_", 1)[0]


def parallelizable(scenario: Scenario, max_steps: int | None = None) -> bool:
    """Whether PettingZoo's `aec_to_parallel` can convert the env of ``scenario``: it steps every
    agent once a cycle, in ``possible_agents`` order, and every episode must end at the end of
    a cycle. The schedule repeats ``protocol.order``, but a move that solves the task ends the
    episode at once, a user may leave, and the move budget ends it as a mover's turn comes
    due, so in a cycle of two roles or more an episode can end mid-cycle (JudgedQA's final
    answer, a right guess before the user's reply). Only a one-role cycle holds, with no
    ``max_steps`` (a cap counted in single moves)."""
    return len(scenario.roles) == 1 and max_steps is None


class raw_env(AECEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": "feedbackgym_v0", "is_parallelizable": False, "render_fps": 4}

    def __init__(
        self,
        scenario: str | Scenario = "judged_qa",
        render_mode: str | None = None,
        max_cycles: int | None = None,
        max_steps: int | None = None,
        external: Iterable[str] | None = None,
        obs_format: str = "dict",
        **roles: str | None,
    ):
        super().__init__()
        sc = load_scenario(scenario)
        if roles:
            sc = sc.with_roles(**roles)
        if max_cycles is not None or max_steps is not None:  # the caps end it: the schedule runs on
            data = sc.model_dump()
            data["protocol"].update(rounds=None, final=[], max_turns=10**9)
            sc = validate(data, source=f"{sc.name} (capped by max_cycles / max_steps)")
        self.scenario = sc
        self.metadata = {**type(self).metadata, "is_parallelizable": parallelizable(sc, max_steps)}
        self.external = set(sc.roles if external is None else external)
        unknown = self.external - set(sc.roles)
        if unknown:
            raise ValueError(f"external roles {sorted(unknown)} are not in scenario {sc.name!r}: {sorted(sc.roles)}")
        self.possible_agents = [agent_name(r) for r in sc.roles]
        builtin = {r: a for r, a in agents_for(sc).items() if r not in self.external}
        missing = [r for r, a in builtin.items() if a is None]
        if missing:
            raise ValueError(f"roles {missing} are learner seats: list them in external= or give them agents")
        self._builtin = builtin
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r}: expected None or one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.max_cycles, self.max_steps = max_cycles, max_steps
        self.obs_format = check_obs_format(obs_format)
        text = obs_text()
        obs_space = spaces.Dict({"instruction": text, "new": text, "feedback": text, "private": text})
        if obs_format == "messages":  # in a dict: PettingZoo's API test wants arrays or dicts
            obs_space = spaces.Dict({"messages": messages_space()})
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: action_text() for a in self.possible_agents}
        self._rng = np.random.default_rng()
        self.episode: Episode | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    # ------------------------------------------------------------------ the loop
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        ep_seed = seed if seed is not None else int(self._rng.integers(2**31 - 1))
        self.episode = start_episode(self.scenario, ep_seed, self._builtin, self._rng, self.external, member_option(options))
        self.agents = self.possible_agents[:]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._steps = 0
        self._acted = {r: 0 for r in self.scenario.roles}
        self._advance()

    def step(self, action: str | None) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        ep = self.episode
        before = dict(ep.returns)
        self._cumulative_rewards[agent] = 0.0
        result = ep.submit(role_of(agent), as_text(action), source="learner")
        self._steps += 1
        self._acted[role_of(agent)] += 1
        self.infos[agent] = {"labels": result.message.labels, "kind": result.message.kind}  # labels are read-only
        self._advance()
        self.rewards = {a: ep.returns[role_of(a)] - before[role_of(a)] for a in self.agents}
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()

    def _advance(self) -> None:
        """Let the built-in agents act, then hand the turn to the next external agent (or end)."""
        ep = self.episode
        play(ep, self.external)
        if self.max_steps is not None and self._steps >= self.max_steps:
            ep.truncate("max_steps")
        elif self.max_cycles is not None and not ep.done and self._acted[ep.current_role()] >= self.max_cycles:
            ep.truncate("max_cycles")
        if ep.done:
            for a in self.agents:
                self.terminations[a], self.truncations[a] = ep.terminated, ep.truncated
                self.infos[a] = {**self.infos[a], "terminate_reason": ep.terminate_reason}
            self.agent_selection = self.agents[0]
            self._deads_step_first()
        else:
            self.agent_selection = agent_name(ep.current_role())

    # ------------------------------------------------------------------ what an agent sees
    def observe(self, agent: str):
        ep, role = self.episode, role_of(agent)
        if self.obs_format == "messages":
            return {"messages": messages_observation(ep.view(role))}
        new = ep.log[ep.spoke_at(role) :]
        return {
            "instruction": shown(ep.instance.instruction),
            "new": shown(render_transcript(new)),
            "feedback": shown("\n".join(m.text for m in new if m.kind == "feedback")) if role in ep.movers else "",
            "private": shown(ep.instance.private_view(role)),
        }

    def view(self, agent: str):
        """The engine's view for ``agent``: what a scripted policy needs to act from outside."""
        return self.episode.view(role_of(agent))

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        text = render_transcript(self.episode.log) if self.episode else ""
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


def env(**kwargs) -> AECEnv:
    """The AEC env with PettingZoo's standard wrappers (order enforcing)."""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))


def parallel_env(max_cycles: int | None = None, **kwargs):
    """The turn-based parallel view: one agent acts per step, so ``max_cycles`` is a number of
    steps (the round is repeated long enough, then the steps are capped)."""
    return turn_based_aec_to_parallel(raw_env(max_cycles=max_cycles, max_steps=max_cycles, **kwargs))
