"""The Gymnasium face: one learner plays one role; built-in agents play the others."""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from feedbackgym.agents import agents_for
from feedbackgym.agents.prompts import view_chat
from feedbackgym.core import as_text, render_transcript
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import ROLES, Scenario, load_scenario
from feedbackgym.envs.tasks.base import MAX_ACTION_CHARS

#: Characters the Text spaces admit: printable ASCII, Latin letters with accents, typographic
#: punctuation. (gymnasium's default charset is letters and digits only.)
CHARSET = "".join(
    sorted(set(string.printable) | {chr(c) for c in range(0xA0, 0x250)} | {chr(c) for c in range(0x2010, 0x2070)})
)
MAX_OBS_CHARS = 100_000
#: the observation formats of both faces: LLF-Bench's dict of strings, or OpenAI chat messages
OBS_FORMATS = ("dict", "messages")


def messages_space() -> spaces.Sequence:
    """OpenAI chat messages as a Gymnasium space: a tuple of ``{"role", "content"}`` dicts (the
    role ``system``, ``user`` or ``assistant``)."""
    role = spaces.Text(max_length=9, min_length=4, charset="abcdefghijklmnopqrstuvwxyz")
    content = spaces.Text(max_length=MAX_OBS_CHARS, min_length=0, charset=CHARSET)
    return spaces.Sequence(spaces.Dict({"role": role, "content": content}))


def messages_observation(view) -> tuple[dict[str, str], ...]:
    """A role's view as the chat messages a model in its seat is prompted with
    (`feedbackgym.agents.prompts.view_chat`, what an ``lm:`` seat feeds its chat template): a
    tuple of dicts, in the order of a chat. The chat reads only the latest messages that fit
    about half of ``MAX_OBS_CHARS``, and each content is cut to it, so it stays in its space."""
    return tuple({"role": m["role"], "content": m["content"][-MAX_OBS_CHARS:]} for m in view_chat(view, MAX_OBS_CHARS // 2))


def check_obs_format(obs_format: str) -> str:
    if obs_format not in OBS_FORMATS:
        raise ValueError(f"obs_format {obs_format!r}: expected one of {OBS_FORMATS}")
    return obs_format


class FeedbackEnv(gym.Env):
    """
    ## Description
    A multi-turn language task in which an actor answers and other roles (a critic, a judge that
    may be deceptive, a simulated user) reply in natural language. The learner plays one role,
    by default the actor; the scenario's agents play the rest. Same scenario and seed give the
    same episode, byte for byte.

    ## Action Space
    `Text`: the learner's utterance. Anything is accepted: text the task cannot read (empty,
    gibberish, too long) is an *invalid move*: it costs a turn, `info["invalid_reason"]` says
    why, and the env's answer appears in the next observation.

    ## Observation Space
    `Dict(instruction=Text, observation=Text, feedback=Text)` (LLF-Bench's shape):
    With `obs_format="messages"`, the learner's view as OpenAI chat messages instead: a tuple of
    `{"role", "content"}` dicts (`Sequence(Dict(role=Text, content=Text))`), exactly the chat an
    `lm:` seat prompts its model with (its chat template applied to them gives the same prompt),
    ending with what this turn asks ("Give your final answer: ...").

    `instruction` is the task statement (every step), followed, for a learner in another seat
    than the actor's, by what only that role may know (a judge's evidence and the gold answer, a
    user's goal); `observation` what the other roles said
    since the learner's last turn other than feedback (the oracle's "Yes.", the env's note on an
    invalid move), and `feedback` the feedback messages since then ("" if none).

    ## Starting State
    `reset(seed)` draws an instance of the task family from the seed (a question over a fresh
    fictional world, a hidden object, a secret number); the built-in agents act until it is the
    learner's turn.

    ## Rewards
    Per the scenario's `rewards` for the learner's role, accrued since the learner last acted:
    `final_correct` (1 if the last answer is right, at the end), `step_penalty` (-1 per turn that
    does not solve the task), `success`, `ufo` (0.5^t at the solving turn minus the repetition
    penalty), `flip_c2i` (a judge's: a correct answer flipped), `improvement` (a critic's:
    answers it turned right minus those it turned wrong), `goal_met` (a user's), `task` (a
    game's own: a deal price, SPC's zero-sum +-1).

    ## Episode End
    Terminated when the task is solved (`success`), the protocol's rounds are done
    (`protocol_end`), the proposals run out (`proposals_exhausted`, MINT) or a user leaves
    (`user_left`); truncated when the budget of moves (`protocol.max_turns`) runs out
    (`max_turns`). `info["terminate_reason"]` says which.

    ## Information
    `messages`: the typed messages since the learner's last turn, its own included, with hidden
    labels (truthful, intent, knowledge, evidence ids, is_correct...); `labels`: the hidden
    labels of the learner's last message; `turn`: actor turns so far; at the end `metrics` (the
    per-episode metrics) and `hidden` (the instance's truth). None of it is in the observation.

    ## Arguments
    `scenario`: a shipped scenario name or a YAML path. `actor`, `critic`, `judge`, `user`: agent
    specs that replace the scenario's (`"scripted:malicious"`, `"learner"`, `None` to remove a
    role). `render_mode`: `"ansi"` returns the transcript as text. `obs_format`: `"dict"` (the
    default) or `"messages"`.

    ## Version History
    - v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self, scenario: str | Scenario = "judged_qa", render_mode: str | None = None, obs_format: str = "dict", **roles: str | None
    ):
        sc = load_scenario(scenario)
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise TypeError(f"unknown keyword(s) {sorted(unknown)}: pass agent specs by role, one of {ROLES}")
        self.scenario = sc.with_roles(**roles) if roles else sc
        self.learner = self.scenario.learner_role
        if self.learner is None:
            raise ValueError(f"scenario {self.scenario.name!r}: no role is played by the learner (give one agent='learner')")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode {render_mode!r}: expected None or 'ansi'")
        self.render_mode = render_mode
        self.agents = {r: a for r, a in agents_for(self.scenario).items() if a is not None}
        self.obs_format = check_obs_format(obs_format)
        text = spaces.Text(max_length=MAX_OBS_CHARS, min_length=0, charset=CHARSET)
        if obs_format == "messages":
            self.observation_space = messages_space()
        else:
            self.observation_space = spaces.Dict({"instruction": text, "observation": text, "feedback": text})
        self.action_space = spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset=CHARSET)
        self.episode: Episode | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        ep_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.episode = Episode(self.scenario, ep_seed, self.agents)
        private = self.episode.instance.private_view(self.learner)
        self._instruction = self.episode.instance.instruction + (f"\n{private}" if private else "")
        self._mark = 0
        play(self.episode, self.learner)
        return self._obs(), self._info(None)

    def step(self, action: str):
        ep = self.episode
        if ep is None or ep.done:
            raise RuntimeError("step() called on a finished or unstarted episode; call reset() first")
        self._mark = len(ep.log)
        result = ep.submit(self.learner, as_text(action), source="learner")
        play(ep, self.learner)
        reward = ep.take_reward(self.learner)
        return self._obs(), reward, ep.terminated, ep.truncated, self._info(result.message)

    def _obs(self):
        if self.obs_format == "messages":
            return messages_observation(self.episode.view(self.learner))
        # What was said since the learner's last turn (ep.spoke_at(learner), found without the
        # call): a step's mark is where its move went, so the rest follows it; after a reset the
        # mark is 0 and the learner has said nothing.
        log, start = self.episode.log, self._mark
        if start or (log and log[0].role == self.learner):
            start += 1
        seen, feedback = [], []
        for m in log[start:]:  # none of them the learner's
            if m.kind == "feedback":
                feedback.append(m.text)
            else:
                seen.append(m.text)
        return {"instruction": self._instruction, "observation": "\n".join(seen), "feedback": "\n".join(feedback)}

    def _info(self, own) -> dict[str, Any]:
        ep = self.episode
        info: dict[str, Any] = {
            "messages": ep.log[self._mark :],
            "turn": ep.actor_turns,
            "labels": own.labels if own is not None else {},  # read-only: no copy needed
            "success": ep.terminate_reason == "success",
        }
        if own is not None and own.kind == "invalid":
            info["invalid_reason"] = own.labels["reason"]
        if ep.done:
            info["terminate_reason"] = ep.terminate_reason
            info["metrics"] = ep.metrics()
            info["hidden"] = ep.hidden()
        return info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if self.episode is None:
            return ""
        return render_transcript(self.episode.log) + "\n"
