"""Hostile text and numbers in every seat of every id, through both faces (issue 13, acceptance 1).

Hypothesis drives each seat of each Gymnasium id, and every agent of each PettingZoo id at once,
with text no task expects: control characters, lone surrogates, emoji, right-to-left marks, huge
and odd numbers, very long lines, answer-like words. Whatever is sent:

- nothing raises (an unreadable move is an invalid move with a reason);
- every observation lies in its declared space;
- every episode is recordable (its record line is valid UTF-8 JSON) and replays through a fresh
  engine to the same messages, byte for byte.

The default suite runs a modest budget per seat; ``-m slow`` runs the same properties over at
least 1,000,000 actions in all and prints the totals (docs/benchmarks.md, "Fuzzing").
"""

from __future__ import annotations

import math
import os
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feedbackgym  # noqa: F401  (registers the ids)
from feedbackgym.core import SCRIPTED, check_spec
from feedbackgym.envs.registration import ENV_IDS, MULTIAGENT_IDS, make_multiagent
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.records import Record, rebuild

# ------------------------------------------------------------------------- hostile moves
_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
_controls = st.sampled_from(["\x00", "\x07", "\x1b[2J", "\r", "\n\n", "\t", "\x7f", "\u200b", "\u202e", "\ufeff", "\u2028"])
_words = st.sampled_from(
    [
        "yes", "no", "Yes.", "I don't know", "A", "B", "C", "D", "Answer: B", "The answer is 42", "50", "1", "100",
        "Is it an animal?", "Is it alive?", "Final answer: 7", "I accept", "accept", "deal", "offer 40", "I offer $55",
        "step 2", "Step 3 is wrong", "no error", "too high", "too low", "correct", "incorrect", "you are wrong",
        "Are you sure?", "Let me reconsider.", "GUESS", "<|im_end|>", "<|endoftext|>", "assistant:", "user:", "{}", "null",
    ]
)  # fmt: skip
_numbers = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(1, 5000).map(lambda n: "9" * n),
    st.sampled_from(["1e308", "-1e309", "1e-400", "0x1F", "1_000", "½", "٣", "NaN", "inf", "-0", "+-1", "1/0"]),
)
_piece = st.one_of(
    st.text(st.characters(), max_size=40),  # any code point but surrogates, control characters included
    st.text(st.one_of(st.characters(), _surrogate), max_size=8),
    _controls,
    _words,
    _numbers,
)
HOSTILE = st.one_of(
    st.lists(_piece, max_size=4).map(" ".join),
    st.tuples(_piece, st.integers(0, 3000)).map(lambda t: t[0] * t[1]),  # long lines, past every limit
)
POOL = st.lists(HOSTILE, min_size=1, max_size=20)


def moves(pool: list[str], seed: int, n: int) -> list[str]:
    """``n`` moves drawn from hypothesis's ``pool`` by an RNG seeded with the example's seed:
    hypothesis finds the hostile texts (and shrinks them), the RNG strings many of them together
    cheaply, so that a slow run reaches a million actions."""
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.integers(len(pool), size=n)]

def _settings(examples: int):
    return settings(
        max_examples=examples, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip


# ------------------------------------------------------------------------- seats
def stand_in(role: str, family: str) -> str:
    """A scripted agent for the seat the learner left (the first that plays there)."""
    for r, name in sorted(SCRIPTED):
        if r == role and check_spec(f"scripted:{name}", role, family) is None:
            return f"scripted:{name}"
    raise LookupError(f"no scripted {role} plays in {family}")


def seat_roles(scenario: str, role: str) -> dict[str, str]:
    sc = load_scenario(scenario)
    roles = {role: "learner"}
    if sc.learner_role not in (None, role):
        roles[sc.learner_role] = stand_in(sc.learner_role, sc.task.family)
    return roles


SEATS = [(env_id, role) for env_id, scenario in ENV_IDS.items() for role in load_scenario(scenario).roles]


# ------------------------------------------------------------------------- checks
def assert_recordable(ep) -> None:
    """The episode's record line is UTF-8 JSON, reads back to the same messages, and a fresh
    engine fed those messages rebuilds the same log."""
    line = Record.of(ep).to_json()
    line.encode("utf-8")  # no lone surrogate escapes into the file unescaped
    rec = Record.from_json(line, 1)
    assert [m.to_dict() for m in rec.messages] == [m.to_dict() for m in ep.log]
    replayed = rebuild(rec)
    assert [m.to_dict() for m in replayed.log] == [m.to_dict() for m in ep.log]
    assert replayed.done == ep.done and replayed.terminate_reason == ep.terminate_reason


def play_gym(env_id: str, role: str, seed: int, actions: list[str]) -> tuple[int, int]:
    """Drive one seat with ``actions``, resetting with the next seed whenever an episode ends."""
    env = gym.make(env_id, **seat_roles(ENV_IDS[env_id], role))
    space = env.observation_space
    obs, _ = env.reset(seed=seed)
    assert space.contains(obs), f"reset obs outside {space}"
    eps = 0
    for action in actions:
        assert not env.unwrapped.episode.done, "reset handed the learner a finished episode"
        obs, reward, terminated, truncated, info = env.step(action)
        assert space.contains(obs), f"obs outside its space after {action[:60]!r}"
        assert isinstance(reward, float) and math.isfinite(reward)
        if terminated or truncated:
            assert_recordable(env.unwrapped.episode)
            eps += 1
            seed += 1
            obs, _ = env.reset(seed=seed)
            assert space.contains(obs)
    assert_recordable(env.unwrapped.episode)  # an unfinished episode records too (as aborted)
    env.close()
    return len(actions), eps + 1


def play_aec(env_id: str, seed: int, actions: list[str]) -> tuple[int, int]:
    """Every agent of the AEC env driven from outside with ``actions`` in turn."""
    env = make_multiagent(env_id)
    env.reset(seed=seed)
    i = eps = 0
    while i < len(actions):
        agent = env.agent_selection
        obs, reward, terminated, truncated, _ = env.last()
        space = env.observation_space(agent)
        assert space.contains(obs), f"{agent}'s obs outside its space"
        assert math.isfinite(reward)
        if terminated or truncated:
            env.step(None)
        else:
            env.step(actions[i])
            i += 1
        if not env.agents:
            assert_recordable(env.unwrapped.episode)
            eps += 1
            seed += 1
            env.reset(seed=seed)
    for agent in env.agents:
        assert env.observation_space(agent).contains(env.observe(agent))
    assert_recordable(env.unwrapped.episode)
    env.close()
    return i, eps + 1


# ------------------------------------------------------------------------- the properties
def _case(face: str, env_id: str, role: str | None, examples: int, most: int, totals: Counter, least: int = 1) -> None:
    @_settings(examples)
    @given(seed=st.integers(0, 2**31 - 2), pool=POOL, n=st.integers(least, most))
    def prop(seed, pool, n):
        actions = moves(pool, seed, n)
        sent, eps = play_gym(env_id, role, seed, actions) if face == "gym" else play_aec(env_id, seed, actions)
        totals["examples"] += 1
        totals["actions"] += sent
        totals["episodes"] += eps

    prop()


@pytest.mark.parametrize("env_id,role", SEATS, ids=[f"{i.split('/')[1]}-{r}" for i, r in SEATS])
def test_hostile_moves_in_every_gymnasium_seat(env_id, role):
    _case("gym", env_id, role, examples=8, most=30, totals=Counter())


@pytest.mark.parametrize("env_id", sorted(MULTIAGENT_IDS), ids=lambda i: i.split("/")[1])
def test_hostile_moves_from_every_pettingzoo_agent(env_id):
    _case("aec", env_id, None, examples=8, most=30, totals=Counter())


#: the slow run: per case, examples x between ``SLOW_MOST // 2`` and ``SLOW_MOST`` actions
#: (hypothesis leans to the short end: 200 examples sent 49,119 actions a case, 19 cases 933k);
#: 240 examples send about 59,000 a case, all 19 cases about 1,120,000
SLOW_EXAMPLES, SLOW_MOST = 240, 400
CASES = [("gym", i, r) for i, r in SEATS] + [("aec", i, None) for i in sorted(MULTIAGENT_IDS)]


@pytest.mark.slow
@pytest.mark.parametrize("face,env_id,role", CASES, ids=[f"{f}-{i.split('/')[1]}-{r}" for f, i, r in CASES])
def test_hostile_moves_slow_run(face, env_id, role):
    """The same properties at the slow budget; each case prints its totals (summed in the docs)."""
    totals: Counter = Counter()
    _case(face, env_id, role, SLOW_EXAMPLES, SLOW_MOST, totals, least=SLOW_MOST // 2)
    line = f"FUZZ {face} {env_id} {role} examples={totals['examples']} actions={totals['actions']} episodes={totals['episodes']}"
    print("\n" + line)
    if os.environ.get("FUZZ_TOTALS"):  # a file the totals of each case are appended to as it ends
        with open(os.environ["FUZZ_TOTALS"], "a", encoding="utf-8") as f:
            f.write(line + "\n")
