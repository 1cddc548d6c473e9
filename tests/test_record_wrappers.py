"""The faces' recording wrappers: `RecordEpisodes` (Gymnasium) and `RecordAECEpisodes`
(PettingZoo) append each finished episode, and only finished ones, through the one
`RecordWriter`; what they wrote replays (read_records + rebuild) to the same messages."""

import gymnasium as gym
import numpy as np

import feedbackgym
from feedbackgym.agents import agents_for
from feedbackgym.envs.pettingzoo import role_of
from feedbackgym.records import RecordAECEpisodes, RecordEpisodes, RecordWriter, read_records, rebuild
from feedbackgym.rollout import play_scenario


def assert_replays(records, logs):
    """The records hold exactly ``logs``, and a fresh engine fed each one lands on the same log."""
    assert [r.messages for r in records] == logs
    for rec in records:
        assert not rec.journal and rec.terminate_reason != "aborted"
        again = rebuild(rec)
        assert again.log == rec.messages and again.returns == rec.returns and again.metrics() == rec.metrics


def test_a_recorded_gym_episode_replays_to_the_same_messages(tmp_path):
    path = tmp_path / "gym.jsonl"
    env = RecordEpisodes(feedbackgym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious"), path)
    base = env.unwrapped
    actor = agents_for(base.scenario.with_roles(actor="scripted:sycophant"))["actor"]
    finished = []
    for seed in range(4):
        env.reset(seed=seed)
        done, first = False, True
        while not done:
            # one unreadable move per episode: an invalid move is recorded like any other
            action = "¿qué?" if first else actor.act(base.episode.view(base.learner))
            _, _, terminated, truncated, _ = env.step(action)
            done, first = terminated or truncated, False
        finished.append(list(base.episode.log))
    env.reset(seed=99)
    env.step("The answer is nobody.")  # left unfinished by the next reset: not written
    env.reset(seed=100)
    env.close()
    records = read_records(path)
    assert_replays(records, finished)
    assert [r.seed for r in records] == [0, 1, 2, 3]
    assert any(m.kind == "invalid" for m in records[0].messages)


def test_a_recorded_pettingzoo_episode_replays_to_the_same_messages(tmp_path):
    path = tmp_path / "aec.jsonl"
    env = RecordAECEpisodes(feedbackgym.make_multiagent("feedbackgym/JudgedQA-v0"), path)
    scenario = env.unwrapped.scenario.with_roles(actor="scripted:sycophant", judge="scripted:malicious")
    agents = agents_for(scenario)
    finished = []
    for seed in range(3):
        env.reset(seed=seed)
        for agent in env.agent_iter():
            _, _, terminated, truncated, _ = env.last()
            action = None if terminated or truncated else agents[role_of(agent)].act(env.unwrapped.view(agent))
            env.step(action)
        finished.append(list(env.unwrapped.episode.log))
    env.reset(seed=7)
    env.step("The answer is nobody.")  # left unfinished: not written
    env.close()
    records = read_records(path)
    assert_replays(records, finished)
    # every role played from outside by the scenario's own agents says what they say in the
    # engine's own episode (the face labels its moves source=learner)
    said = [[(m.role, m.text) for m in log] for log in finished]
    assert said == [[(m.role, m.text) for m in play_scenario(scenario, seed).log] for seed in range(3)]


def test_recording_works_under_make_vec_sync(tmp_path):
    path = tmp_path / "vec.jsonl"
    with RecordWriter(path) as writer:
        record = [lambda e: RecordEpisodes(e, writer)]  # one writer shared by the sub-envs
        envs = gym.make_vec("feedbackgym/GuessNumber-v0", num_envs=3, vectorization_mode="sync", wrappers=record)
        envs.reset(seed=0)
        rng = np.random.default_rng(0)
        finished = []
        for _ in range(60):
            _, _, terminated, truncated, _ = envs.step([str(n) for n in rng.integers(1, 101, size=3)])
            for i in np.flatnonzero(terminated | truncated):  # the sub-env still holds the episode it ended
                finished.append(list(envs.envs[i].unwrapped.episode.log))
        envs.close()
        assert writer.count == len(finished) >= 3
    assert_replays(read_records(path), finished)
