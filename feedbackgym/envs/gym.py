"""The Gymnasium face: one learner plays one role; built-in agents play the others."""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory

from feedbackgym.agents import agents_for
from feedbackgym.agents.prompts import view_chat
from feedbackgym.core import EMPTY, as_text, freeze, render_transcript
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import ROLES, Scenario, load_scenario
from feedbackgym.envs.tasks.base import MAX_ACTION_CHARS

#: The code points the Text spaces admit, as half-open ranges: all of U+0000-U+07FF (every
#: character of one or two UTF-8 bytes: ASCII with its control characters, Latin, IPA, Greek,
#: Cyrillic, Armenian, Hebrew, Arabic...), typographic punctuation with its invisible and
#: bidirectional marks, currency signs, letterlike symbols, arrows, mathematical operators,
#: enclosed numbers, box drawing, shapes, symbols and dingbats (a model's check marks), and
#: U+FFFD (what a decoder writes for a broken byte). A model's or a person's text outside them
#: (CJK, emoji, a lone surrogate) is escaped in observations (`shown`).
CHAR_RANGES = (
    (0x0, 0x800), (0x2010, 0x2070), (0x20A0, 0x20C1), (0x2100, 0x2150), (0x2190, 0x2300), (0x2460, 0x27C0),
    (0xFFFD, 0xFFFE),
)  # fmt: skip
#: The characters of `CHAR_RANGES`, the charset of every Text space of both faces (gymnasium's
#: default is letters and digits only; one of all Unicode would take seconds to build per space).
CHARSET = "".join(chr(c) for lo, hi in CHAR_RANGES for c in range(lo, hi))
MAX_OBS_CHARS = 100_000
#: the observation formats of both faces: LLF-Bench's dict of strings, or OpenAI chat messages
OBS_FORMATS = ("dict", "messages")
#: how many episodes in a row a reset may find over before the learner's first turn
MAX_REDRAWS = 100


_OUTSIDE = re.compile("[^" + "".join(f"\\U{lo:08x}-\\U{hi - 1:08x}" for lo, hi in CHAR_RANGES) + "]")


def _escape(match: re.Match) -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def shown(text: str, limit: int = MAX_OBS_CHARS) -> str:
    """``text`` as an observation shows it, always inside the `Text` spaces of both faces:

    - every character outside `CHARSET` (CJK, emoji, a lone surrogate, a script past U+07FF) is
      written as its Python escape: ``\\u4e2d``, ``\\ud800``, ``\\U0001f600`` (backslashes
      already in the text are left as they are; control characters and bidirectional marks
      are in `CHARSET` and stay as they are);
    - a text still longer than ``limit`` keeps its head and its tail, about half each, around
      a line ``[... N characters cut ...]``: the head says what a message is, the tail holds
      the latest words (what this turn asks comes last).

    Deterministic: the same text always shows the same way. Only observations are rendered; the
    log, `info` and records hold every text exactly as it was said."""
    if not text.isascii() and _OUTSIDE.search(text) is not None:  # ASCII is all in CHARSET (a flag check)
        text = _OUTSIDE.sub(_escape, text)
    if len(text) <= limit:
        return text
    keep = limit - 48  # the marker line takes at most 48 characters
    head, tail = keep // 2, keep - keep // 2
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[len(text) - tail :]}"


class ObsText(spaces.Text):
    """The `Text` of an observation field. Identical to gymnasium's, but it reads back correctly
    from `AsyncVectorEnv`'s shared memory (its default): gymnasium turns a `Text` buffer into
    strings once, when the vector env is built, and hands those same stale strings back every
    step; for this space it gives a view that decodes the buffer when it is read (copied into
    plain tuples of strings with the vector env's default ``copy=True``)."""


class _SharedTexts(Sequence):
    """The strings in a shared-memory `Text` buffer, decoded each time they are read."""

    def __init__(self, space: ObsText, memory, n: int):
        self._rows = np.frombuffer(memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))
        self._pad = len(space.character_set)  # what gymnasium fills a row with after the text
        self._chars = np.array(space.character_list, dtype="<U1")

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self)[i]
        row = self._rows[i]
        end = int(np.argmax(row == self._pad)) if row[-1] == self._pad else len(row)
        return self._chars[row[:end]].tobytes().decode("utf-32-le")

    def __eq__(self, other) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __deepcopy__(self, memo) -> tuple[str, ...]:
        return tuple(self)

    def __reduce__(self):
        return (tuple, (tuple(self),))


@read_from_shared_memory.register(ObsText)
def _read_obs_text(space: ObsText, shared_memory, n: int = 1) -> _SharedTexts:
    return _SharedTexts(space, shared_memory, n)


# Built once (a charset of thousands takes milliseconds to index) and copied per space: the
# copies share the immutable character tables and each gets its own sampling generator.
_OBS_TEXT = ObsText(max_length=MAX_OBS_CHARS, min_length=0, charset=CHARSET)
_ACTION_TEXT = spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset=CHARSET)


def obs_text() -> ObsText:
    """The space of one observation field: any `shown` text."""
    return copy.copy(_OBS_TEXT)


def action_text() -> spaces.Text:
    """The action space of every seat (anything else is accepted too, as an invalid move)."""
    return copy.copy(_ACTION_TEXT)


def messages_space() -> spaces.Sequence:
    """OpenAI chat messages as a Gymnasium space: a tuple of ``{"role", "content"}`` dicts (the
    role ``system``, ``user`` or ``assistant``)."""
    role = spaces.Text(max_length=9, min_length=4, charset="abcdefghijklmnopqrstuvwxyz")
    content = obs_text()
    return spaces.Sequence(spaces.Dict({"role": role, "content": content}))


def messages_observation(view) -> tuple[dict[str, str], ...]:
    """A role's view as the chat messages a model in its seat is prompted with
    (`feedbackgym.agents.prompts.view_chat`, what an ``lm:`` seat feeds its chat template): a
    tuple of dicts, in the order of a chat. The chat reads only the latest messages that fit
    about half of ``MAX_OBS_CHARS``, and each content is `shown` (escaped, cut to
    ``MAX_OBS_CHARS``), so it stays in its space."""
    return tuple({"role": m["role"], "content": shown(m["content"])} for m in view_chat(view, MAX_OBS_CHARS // 2))


class InfoMapping(Mapping):
    """A read-only mapping in ``info`` (a message's labels, the episode's metrics, the hidden
    truth). It reads like a dict (``info["labels"]["is_correct"]``, ``dict(...)`` for a copy)
    but is not one, so that Gymnasium's vector envs keep each env's mapping whole, in an object
    array (``infos["labels"][i]``), instead of batching its values key by key into arrays typed
    by the first env's value: that turned a label None (unknown) into False in a bool array and
    failed on an int beside a None."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] = EMPTY):
        self._data = freeze(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"InfoMapping({dict(self._data)!r})"

    def __reduce__(self):
        return (InfoMapping, (dict(self._data),))


def start_episode(scenario: Scenario, seed: int, agents, rng: np.random.Generator, stop: Collection[str], member: int = 0) -> Episode:
    """The episode a reset hands out: ``scenario`` from ``seed``, played by the built-in ``agents``
    until a role in ``stop`` is due. If it ends before that (guess_number's expert guessing
    right before the learner in the user's seat has said a word), the next seed is drawn from
    ``rng``, the face's generator, which ``reset(seed=s)`` has just seeded with ``s``, and the
    episode starts over, so the same ``s`` always gives the same episode; the episode played
    says its seed (``episode.seed``). Refused with a clear error after `MAX_REDRAWS` draws.
    ``member``: the `Episode`'s member of its seed's group (kept on a redraw)."""
    tried = []
    for _ in range(MAX_REDRAWS + 1):
        episode = Episode(scenario, seed, agents, member)
        play(episode, stop)
        if not episode.done:
            return episode
        tried.append(seed)
        seed = int(rng.integers(2**31 - 1))
    raise RuntimeError(
        f"scenario {scenario.name!r}: {len(tried)} episodes in a row ended ({episode.terminate_reason}) before "
        f"{sorted(stop)} had a turn (seeds {tried[:3]}...): that seat never gets to act"
    )


def member_option(options: dict[str, Any] | None) -> int:
    """``reset(options={"member": m})``: the episode's member of its seed's group (`Episode`); 0 if not given."""
    member = (options or {}).get("member", 0)
    if type(member) is not int or member < 0:
        raise ValueError(f"reset options: member must be an integer >= 0, got {member!r}")
    return member


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
    `lm:` seat prompts its model with (its chat template applied to them gives the same prompt)
    as long as its text lies in `CHARSET` (see below), ending with what this turn asks ("Give
    your final answer: ...").

    `instruction` is the task statement (every step), followed, for a learner in another seat
    than the actor's, by what only that role may know (a judge's evidence and the gold answer, a
    user's goal); `observation` what the other roles said
    since the learner's last turn other than feedback (the oracle's "Yes.", the env's note on an
    invalid move), and `feedback` the feedback messages since then ("" if none).

    Every field lies in its space whatever was said (`shown`): a character outside `CHARSET`
    (CJK, an emoji, a lone surrogate) appears as its Python escape (`\\u4e2d`), and a field longer than `MAX_OBS_CHARS` keeps its head and its
    tail around a `[... N characters cut ...]` line. `info["messages"]` holds the exact texts.

    In `gym.make_vec(id, n, vectorization_mode="async")` the `Text` fields work through shared
    memory, gymnasium's default (`ObsText` reads them back fresh each step);
    `obs_format="messages"` (a `Sequence`) needs `vector_kwargs={"shared_memory": False}`.

    ## Starting State
    `reset(seed)` draws an instance of the task family from the seed (a question over a fresh
    fictional world, a hidden object, a secret number); the built-in agents act until it is the
    learner's turn. A reset never hands out a finished episode: if the built-in agents end it
    before the learner's first turn (the expert guessing the number right, the learner in the
    user's seat), the next seed is drawn from the env's generator, which `reset(seed=s)` seeds
    with `s`, and the episode starts over (`start_episode`); the same `s` always gives the same
    episode, and `env.unwrapped.episode.seed` says which seed was played.
    `reset(seed=s, options={"member": m})` plays member m of seed s's group: the same instance,
    fresh draws in every seat (`Episode`'s ``member``; GRPO collects its groups this way).

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
    labels of the learner's last message; `turn`: actor turns so far; `success`; on an invalid
    move `invalid_reason`; at the end `terminate_reason`, `metrics` (the per-episode metrics)
    and `hidden` (the instance's truth). None of it is in the observation.

    Each key keeps one type in every step and env (so that a vector env batches them):
    `messages` a list of `Message`s, `turn` an int, `success` a bool, the reasons str, and
    `labels`, `metrics` and `hidden` each an `InfoMapping`, a read-only mapping that is not a
    dict, so a vector env keeps each env's whole (`infos["labels"][i]["is_correct"]`, None
    where unknown) instead of batching values that may be None into bool arrays.

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
        text = obs_text()
        if obs_format == "messages":
            self.observation_space = messages_space()
        else:
            self.observation_space = spaces.Dict({"instruction": text, "observation": text, "feedback": text})
        self.action_space = action_text()
        self.episode: Episode | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        ep_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.episode = start_episode(self.scenario, ep_seed, self.agents, self.np_random, (self.learner,), member_option(options))
        private = self.episode.instance.private_view(self.learner)
        self._instruction = shown(self.episode.instance.instruction + (f"\n{private}" if private else ""))
        self._mark = 0
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
        return {"instruction": self._instruction, "observation": shown("\n".join(seen)), "feedback": shown("\n".join(feedback))}

    def _info(self, own) -> dict[str, Any]:
        ep = self.episode
        info: dict[str, Any] = {
            "messages": ep.log[self._mark :],
            "turn": ep.actor_turns,
            "labels": InfoMapping(own.labels if own is not None else EMPTY),  # read-only: no copy needed
            "success": ep.terminate_reason == "success",
        }
        if own is not None and own.kind == "invalid":
            info["invalid_reason"] = own.labels["reason"]
        if ep.done:
            info["terminate_reason"] = ep.terminate_reason
            info["metrics"] = InfoMapping(ep.metrics())
            info["hidden"] = InfoMapping(ep.hidden())
        return info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if self.episode is None:
            return ""
        return render_transcript(self.episode.log) + "\n"
