"""What a face hands out cannot rewrite what happened: a script that changes every mutable thing
in a returned ``info`` (lists, dicts, labels, metrics, hidden truth) leaves the next observation
and the written record exactly as they are without the changes. Labels cannot be changed at all."""

from __future__ import annotations

import gymnasium as gym
import pytest

import feedbackgym  # noqa: F401  (registers the ids)
from feedbackgym.core import Feedback, Message
from feedbackgym.records import RecordWriter, read_records


def vandalise(obj, depth: int = 0) -> int:
    """Change everything changeable inside ``obj``; the number of refusals (read-only labels)."""
    refused = 0
    if depth > 8:
        return 0
    if isinstance(obj, (Message, Feedback)):
        for part in obj:
            refused += vandalise(part, depth + 1)
        return refused
    if isinstance(obj, dict):
        for key in list(obj):
            refused += vandalise(obj[key], depth + 1)
        try:
            obj["vandal"] = True
            for key in [k for k in obj if k != "vandal"]:
                obj[key] = "vandalised"
        except TypeError:
            refused += 1
    elif isinstance(obj, list):
        for item in obj:
            refused += vandalise(item, depth + 1)
        obj.append("vandal")
        obj.reverse()
    return refused


def play(env_id: str, actions, seed: int, path, mutate: bool):
    env = gym.make(env_id)
    obs_seen, refused = [], 0
    obs, info = env.reset(seed=seed)
    obs_seen.append(dict(obs))
    for a in actions:
        if mutate:
            refused += vandalise(info)
            obs["feedback"] = "vandalised"
        obs, reward, terminated, truncated, info = env.step(a)
        obs_seen.append(dict(obs))
        if terminated or truncated:
            break
    if mutate:
        refused += vandalise(info)
    with RecordWriter(path) as w:
        w.write(env.unwrapped.episode)
    return obs_seen, path.read_text(), refused


CASES = {
    "feedbackgym/JudgedQA-v0": ["The answer is A.", "The answer is B.", "I keep my answer."],
    "feedbackgym/TwentyQuestions-v0": ["Is it alive?", "Is it a tool?", "Is it a hammer?", "??"],
    "feedbackgym/GuessNumber-v0": ["50", "25", "75", "hello", "60"],
}


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_changing_a_returned_info_changes_nothing_recorded_or_observed(env_id, tmp_path):
    clean_obs, clean_record, _ = play(env_id, CASES[env_id], 0, tmp_path / "clean.jsonl", mutate=False)
    obs, record, refused = play(env_id, CASES[env_id], 0, tmp_path / "vandal.jsonl", mutate=True)
    assert obs == clean_obs
    assert record == clean_record
    assert refused > 0  # the message labels inside info["messages"] refused every change
    (rec,) = read_records(tmp_path / "vandal.jsonl")
    assert "vandal" not in record and all("vandal" not in m.labels for m in rec.messages)


def test_labels_are_read_only_and_say_how_to_change_a_copy():
    env = gym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious")
    env.reset(seed=0)
    _, _, _, _, info = env.step("The answer is A.")
    msg = info["messages"][0]
    with pytest.raises(TypeError, match="read-only"):
        msg.labels["is_correct"] = True
    with pytest.raises(AttributeError):
        msg.text = "something else"  # a named tuple
    fb = info["messages"][-1].feedback
    with pytest.raises(TypeError):
        fb.labels["truthful"] = False
    assert dict(fb.labels)  # a copy can be changed freely
