"""Records: append-only JSONL; replay reproduces every message; corrupt lines are reported."""

import json

import pytest

import feedbackgym
from feedbackgym import list_scenarios, load_scenario
from feedbackgym.agents import agents_for
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.engine import play as engine_play
from feedbackgym.records import ABORTED, Record, RecordWriter, read_records, rebuild


@pytest.mark.parametrize("scenario", list_scenarios())
def test_record_replay_reproduces_every_message(tmp_path, play, scenario):
    path = tmp_path / "r.jsonl"
    episodes = [play(scenario, s, actor=a) for s in range(4) for a in ("scripted:sycophant", "scripted:random")]
    with RecordWriter(path) as w:
        for ep in episodes:
            w.write(ep)
    records = read_records(path, on_error=lambda n, why: pytest.fail(f"line {n}: {why}"))
    assert len(records) == len(episodes)
    for ep, rec in zip(episodes, records):
        assert rec.messages == ep.log  # every message, labels included
        assert rec.seed == ep.seed and rec.returns == ep.returns and rec.metrics == ep.metrics()
        again = rebuild(rec)  # a fresh engine fed the recorded utterances lands in the same state
        assert again.log == ep.log
        assert again.returns == ep.returns and again.metrics() == ep.metrics()
        steps = list(rec.steps())
        assert len(steps) == len(ep.log) and steps[-1] == ep.log


def test_each_episode_is_flushed_when_written(tmp_path, play):
    path = tmp_path / "r.jsonl"
    w = RecordWriter(path)
    w.write(play("judged_qa", 0, actor="scripted:expert"))
    assert len(path.read_text().splitlines()) == 1  # on disk before close
    w.write(play("judged_qa", 1, actor="scripted:expert"))
    assert len(path.read_text().splitlines()) == 2
    w.close()
    with RecordWriter(path) as w2:  # append, never truncate
        w2.write(play("judged_qa", 2, actor="scripted:expert"))
    assert len(read_records(path)) == 3


def test_corrupt_lines_are_reported_with_line_number_and_skipped(tmp_path, play):
    path = tmp_path / "r.jsonl"
    good = [Record.of(play("guess_number", s, actor="scripted:expert")).to_json() for s in range(3)]
    bad_schema = json.loads(good[0])
    bad_schema["schema"] = 99
    no_seed = json.loads(good[0])
    del no_seed["seed"]
    bad_scenario = json.loads(good[0])
    bad_scenario["scenario"]["protocol"]["max_turns"] = -1
    lines = [good[0], '{"truncated": ', good[1], json.dumps(bad_schema), "[1, 2]", json.dumps(no_seed), json.dumps(bad_scenario), good[2]]
    path.write_text("\n".join(lines) + "\n")
    problems = []
    records = read_records(path, on_error=lambda n, why: problems.append((n, why)))
    assert [r.line for r in records] == [1, 3, 8]
    assert [n for n, _ in problems] == [2, 4, 5, 6, 7]
    reasons = dict(problems)
    assert "schema 99" in reasons[4] and "seed" in reasons[6] and "protocol.max_turns" in reasons[7]
    assert [r.seed for r in records] == [0, 1, 2]


def partial(seed=0, judge="scripted:malicious"):
    """A judged QA episode stopped when the judge is first due (one answer said)."""
    sc = load_scenario("judged_qa").with_roles(actor="scripted:sycophant", judge=judge)
    ep = Episode(sc, seed, agents_for(sc))
    engine_play(ep, stop="judge")
    return ep


def test_a_journal_line_is_replaced_by_a_later_line_of_its_episode_and_kept_otherwise(tmp_path):
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as w:
        done, left, other = partial(0), partial(1), partial(2)
        w.journal(done)
        w.journal(left)
        w.journal(other)
        engine_play(done)
        w.write(done)  # replaces its journal line
        w.journal(partial(1, judge="scripted:constructive"))  # another scenario, same seed: replaces nothing
        engine_play(other)
        assert w.count == 1  # journal lines are not episodes
    records = read_records(path)
    assert [(r.line, r.seed, r.journal) for r in records] == [(2, 1, True), (3, 2, True), (4, 0, False), (5, 1, True)]
    assert all(r.terminate_reason == ABORTED and r.metrics["terminate_reason"] == ABORTED for r in records if r.journal)
    assert records[2].messages == done.log
    assert records[0].messages == left.log and rebuild(records[0]).log == left.log  # an aborted episode replays too
    with RecordWriter(path) as w:
        w.write(other)  # the journaled episode finished after all, in a later session
    assert [(r.line, r.journal) for r in read_records(path)] == [(2, True), (4, False), (5, True), (6, False)]


def test_a_writer_creates_nothing_until_it_writes_and_writes_an_episode_once(tmp_path, play):
    path = tmp_path / "sub" / "r.jsonl"
    w = RecordWriter(path)
    assert not path.exists()
    ep = play("guess_number", 0, actor="scripted:expert")
    assert w.write_once(ep) and not w.write_once(ep)
    w.close()
    assert len(read_records(path)) == 1 and w.count == 1


def test_any_string_the_env_accepted_is_stored(tmp_path):
    env = feedbackgym.make("feedbackgym/GuessNumber-v0")
    env.reset(seed=0)
    lone = "guess \ud800 \U0001f600 é"  # a lone surrogate cannot be encoded as UTF-8 as it stands
    while not env.unwrapped.episode.done:
        env.step(lone)
    with RecordWriter(tmp_path / "r.jsonl") as w:
        w.write(env.unwrapped.episode)
    (rec,) = read_records(tmp_path / "r.jsonl")
    assert rec.messages == env.unwrapped.episode.log and rec.messages[0].text == lone
