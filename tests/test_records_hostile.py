"""Record files from elsewhere: every line of a wrong shape is skipped with its line number and
why, and the other lines load; any text the env accepted records and replays byte for byte; and a
record says what made it (package version, scenario hash, each seat's model)."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from importlib import metadata

import pytest
from pilot import until
from textual.widgets import DataTable, Input

import feedbackgym
from feedbackgym import load_scenario
from feedbackgym.cli import main
from feedbackgym.records import MAX_DEPTH, Record, RecordWriter, provenance, read_records, rebuild
from feedbackgym.rollout import play_scenario
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.replay import ReplayScreen

#: A line written before records carried provenance (by the writer of commit 014a986).
OLD_LINE = (
    '{"schema":1,"scenario":{"name":"guess_number","description":"The user holds a number from 1 to 100 and answers each guess with too low / too'
    ' high.","task":{"family":"guess_number","params":{"low":1,"high":100}},"roles":{"actor":{"agent":"scripted:expert","params":{}},"user":{"age'
    'nt":"scripted:oracle","params":{}}},"protocol":{"order":["actor","user"],"rounds":null,"final":[],"max_turns":10,"max_turns_terminates":true'
    ',"end_on_correct":false,"max_proposals":null,"countdown":false,"candidates":null},"feedback":{"kinds":["hn"],"paraphrase":"random"},"rewards'
    '":{"actor":"success","user":"goal_met"}},"seed":0,"messages":[{"turn":0,"role":"actor","text":"50","kind":"guess","feedback":null,"labels":{'
    '"valid":true,"is_correct":false,"solved":false,"answer_norm":50,"answer_changed":false}},{"turn":1,"role":"user","text":"Your guess of 50 wa'
    's a mistake; it is too low.","kind":"feedback","feedback":{"kind":"hn","text":"Your guess of 50 was a mistake; it is too low.","score":null,'
    '"labels":{"truthful":true,"source_role":"user","case":"too_low","suggested_answer":null}},"labels":{"to":"actor"}},{"turn":2,"role":"actor",'
    '"text":"75","kind":"guess","feedback":null,"labels":{"valid":true,"is_correct":false,"solved":false,"answer_norm":75,"answer_changed":true}}'
    ',{"turn":3,"role":"user","text":"75 is wrong: too low.","kind":"feedback","feedback":{"kind":"hn","text":"75 is wrong: too low.","score":nul'
    'l,"labels":{"truthful":true,"source_role":"user","case":"too_low","suggested_answer":null}},"labels":{"to":"actor"}},{"turn":4,"role":"actor'
    '","text":"88","kind":"guess","feedback":null,"labels":{"valid":true,"is_correct":false,"solved":false,"answer_norm":88,"answer_changed":true'
    '}},{"turn":5,"role":"user","text":"Wrong: the secret is less than 88.","kind":"feedback","feedback":{"kind":"hn","text":"Wrong: the secret i'
    's less than 88.","score":null,"labels":{"truthful":true,"source_role":"user","case":"too_high","suggested_answer":null}},"labels":{"to":"act'
    'or"}},{"turn":6,"role":"actor","text":"81","kind":"guess","feedback":null,"labels":{"valid":true,"is_correct":true,"solved":true,"answer_nor'
    'm":81,"answer_changed":true}}],"returns":{"actor":1.0,"user":1.0},"metrics":{"success":true,"first_success_turn":3,"n_turns":4,"terminate_re'
    'ason":"success","initial_correct":false,"final_correct":true,"flip_c2i":false,"flip_i2c":true,"n_answer_switches":3,"oscillated":false,"uniq'
    'ue_answer_ratio":1.0,"repetition_penalty":0.0,"decayed_return":0.125,"n_invalid":0,"invalid_final":false,"revision_ratio":null,"intervened":'
    'false,"last_suggestion":null,"final_answer":81,"adopted":null,"acknowledged_ambiguity":false,"correct_by_round":[false,false,false,true]},"h'
    'idden":{"secret":81,"low":1,"high":100},"terminate_reason":"success"}'
)


def episode(seed=0):
    return play_scenario(load_scenario("guess_number").with_roles(actor="scripted:expert"), seed)


@pytest.fixture(scope="module")
def good():
    return [Record.of(episode(s)).to_json() for s in range(2)]


def changed(line: str, **fields) -> str:
    d = json.loads(line)
    d.update(fields)
    return json.dumps(d)


def message(line: str, i: int = 0, **fields) -> str:
    d = json.loads(line)
    d["messages"][i].update(fields)
    return json.dumps(d)


def feedback(line: str, **fields) -> str:
    d = json.loads(line)
    d["messages"][1]["feedback"].update(fields)
    return json.dumps(d)


def nested(n: int) -> str:
    return "[" * n + "]" * n


# name -> (the bad line, made from a good one; a piece of the reason it is skipped for)
BAD = {
    "messages a string": (lambda g: changed(g, messages="abc"), "messages: got 'abc', expected a valid list"),
    "messages a number": (lambda g: changed(g, messages=5), "messages: got 5"),
    "messages null": (lambda g: changed(g, messages=None), "messages: got None"),
    "messages of numbers": (lambda g: changed(g, messages=[1, 2]), "messages.0: got 1, expected an object"),
    "messages of lists": (lambda g: changed(g, messages=[[]]), "messages.0: got a list of 0, expected an object"),
    "a message missing its text": (lambda g: changed(g, messages=[{"turn": 0, "role": "actor", "kind": "guess"}]), "messages.0.text"),
    "turn a string": (lambda g: message(g, turn="0"), "messages.0.turn: got '0'"),
    "turn a bool": (lambda g: message(g, turn=True), "messages.0.turn: got True"),
    "turn out of place": (lambda g: message(g, 2, turn=7), "messages.2.turn: got 7, expected 2"),
    "text a number": (lambda g: message(g, text=5), "messages.0.text: got 5, expected a valid string"),
    "role null": (lambda g: message(g, role=None), "messages.0.role"),
    "labels a string": (lambda g: message(g, labels="x"), "messages.0.labels"),
    "an unknown message field": (lambda g: message(g, colour="red"), "messages.0.colour"),
    "feedback a string": (lambda g: message(g, 1, feedback="hn"), "messages.1.feedback"),
    "feedback score a string": (lambda g: feedback(g, score="high"), "messages.1.feedback.score: got 'high'"),
    "feedback of an unknown kind": (lambda g: feedback(g, kind="praise"), "messages.1.feedback: feedback kind 'praise'"),
    "returns a string": (lambda g: changed(g, returns={"actor": "1.0"}), "returns.actor: got '1.0', expected a valid number"),
    "returns a list": (lambda g: changed(g, returns=[1.0]), "returns: got a list of 1"),
    "returns a bool": (lambda g: changed(g, returns={"actor": True}), "returns.actor: got True"),
    "returns 1e999": (lambda g: g.replace('"actor":1.0', '"actor":1e999'), "returns.actor: got inf, expected a finite number"),
    "seed 1e999": (lambda g: g.replace('"seed":0', '"seed":1e999'), "seed: got inf"),
    "seed of 5000 digits": (lambda g: g.replace('"seed":0', '"seed":' + "9" * 5000), "4300 digits"),
    "seed a string": (lambda g: changed(g, seed="3"), "seed: got '3'"),
    "seed a fraction": (lambda g: changed(g, seed=1.5), "seed: got 1.5"),
    "seed negative": (lambda g: changed(g, seed=-1), "seed: got -1, expected greater than or equal to 0"),
    "metrics a list": (lambda g: changed(g, metrics=[1]), "metrics: got a list of 1"),
    "hidden a string": (lambda g: changed(g, hidden="x"), "hidden: got 'x'"),
    "terminate_reason a number": (lambda g: changed(g, terminate_reason=5), "terminate_reason: got 5"),
    "journal a string": (lambda g: changed(g, journal="yes"), "journal: got 'yes'"),
    "usage a string": (lambda g: changed(g, usage="x"), "usage: got 'x'"),
    "provenance a string": (lambda g: changed(g, provenance="x"), "provenance: got 'x'"),
    "an unknown field": (lambda g: changed(g, colour="red"), "colour: got 'red', expected no such field"),
    "labels nested past the bound": (lambda g: message(g, labels={"x": json.loads(nested(MAX_DEPTH + 5))}), "messages.0.labels.x"),
    "labels nested 100k deep": (lambda g: g.replace('"labels":{"valid":true', '"labels":{"x":' + nested(100_000) + ',"valid":true', 1), "nested too deeply"),
    "a line nested 100k deep": (lambda g: nested(100_000), "nested too deeply"),
    "a list": (lambda g: "[1, 2]", "expected a JSON object, got a list of 2"),
    "a string": (lambda g: '"a record"', "expected a JSON object, got 'a record'"),
    "a number": (lambda g: "42", "expected a JSON object, got 42"),
    "null": (lambda g: "null", "expected a JSON object, got None"),
    "an empty object": (lambda g: "{}", "schema None: expected 1"),
    "a truncated line": (lambda g: g[: len(g) // 2], "not JSON"),
    "a scenario that is not one": (lambda g: changed(g, scenario={"name": "x"}), "record line 2"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_line_of_a_wrong_shape_is_skipped_with_its_line_and_why_and_the_others_load(tmp_path, good, name):
    make, why = BAD[name]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([good[0], make(good[0]), good[1]]) + "\n")
    problems = []
    records = read_records(path, on_error=lambda n, w: problems.append((n, w)))
    assert [(r.line, r.seed) for r in records] == [(1, 0), (3, 1)]
    assert [n for n, _ in problems] == [2] and records.skipped == problems
    assert why in problems[0][1]
    assert len(problems[0][1]) < 400  # an excerpt of the value, never the whole line


@pytest.mark.parametrize(
    "garbage", [b"\xff\xfe\x00\x80garbage\x9c", b'{"schema":1,"seed":\xc3(}', bytes(range(256))], ids=["garbage", "a bad byte in JSON", "every byte"]
)
def test_a_line_of_binary_garbage_is_skipped_and_nothing_is_replaced(tmp_path, good, garbage):
    path = tmp_path / "r.jsonl"
    path.write_bytes(good[0].encode() + b"\n" + garbage.replace(b"\n", b"") + b"\n" + good[1].encode() + b"\n")
    records = read_records(path)
    assert [r.line for r in records] == [1, 3]
    ((n, why),) = records.skipped
    assert n == 2 and "not UTF-8 text: byte 0x" in why


def test_a_text_that_is_not_utf8_is_skipped_not_read_with_a_replacement(tmp_path, good):
    """A byte that is not UTF-8 inside a message's text: the line is skipped, never loaded with
    the byte replaced by U+FFFD (which would lose what was said)."""
    bad = good[0].replace('"text":"50"', '"text":"5\udcff0"').encode("utf-8", "surrogateescape")
    path = tmp_path / "r.jsonl"
    path.write_bytes(bad + b"\n")
    records = read_records(path)
    assert records == [] and records.skipped[0][0] == 1 and "byte 0xff" in records.skipped[0][1]


def test_a_byte_order_mark_before_a_line_is_ignored(tmp_path, good):
    """A file saved by an editor that starts it with a UTF-8 BOM still reads whole."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(good).encode() + b"\n")
    records = read_records(path, on_error=lambda n, why: pytest.fail(f"line {n}: {why}"))
    assert [r.seed for r in records] == [0, 1]


def test_a_line_longer_than_the_bound_is_passed_over_without_holding_it(tmp_path, good, monkeypatch):
    from feedbackgym import records as records_module

    monkeypatch.setattr(records_module, "MAX_LINE_BYTES", 1 << 20)
    path = tmp_path / "r.jsonl"
    with open(path, "w") as f:
        f.write(good[0] + "\n")
        f.write('{"schema":1,"messages":["' + "x" * (40 << 20) + '"]}\n')  # 40 MB on one line
        f.write(good[1] + "\n")
    tracemalloc.start()
    try:
        records = read_records(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.line for r in records] == [1, 3]
    assert records.skipped == [(2, "line longer than 1048576 bytes, passed over unread")]
    assert peak < 8 << 20  # the 40 MB line was never read into memory whole


def test_a_record_of_the_previous_writer_still_reads_and_writes_back_as_it_was(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(OLD_LINE + "\n")
    (rec,) = read_records(path, on_error=lambda n, why: pytest.fail(f"line {n}: {why}"))
    assert rec.provenance is None and rec.seed == 0 and rec.returns == {"actor": 1.0, "user": 1.0}
    assert rec.to_json() == OLD_LINE  # no provenance invented for it
    assert rebuild(rec).log == rec.messages


def test_a_record_whose_model_is_not_here_still_reads_and_replays(tmp_path, good):
    """Made where lm:/their/checkpoint and a served model were; read where neither is."""
    d = json.loads(good[0])
    d["scenario"]["roles"]["actor"] = {"agent": "lm:/nowhere/checkpoint", "params": {"temperature": 0.2}}
    d["scenario"]["roles"]["user"] = {"agent": "openai:some-model", "params": {"base_url": "http://10.0.0.1/v1"}}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(d, separators=(",", ":")) + "\n")
    (rec,) = read_records(path, on_error=lambda n, why: pytest.fail(f"line {n}: {why}"))
    assert rec.scenario.roles["actor"].agent == "lm:/nowhere/checkpoint" and rec.scenario.roles["actor"].params == {"temperature": 0.2}
    assert json.loads(rec.to_json()) == d  # written back as it was
    assert rebuild(rec).log == rec.messages  # replaying needs no model
    d["scenario"]["roles"]["actor"] = {"agent": "lm:/nowhere/checkpoint", "params": [1]}
    path.write_text(json.dumps(d) + "\n")
    assert "roles.actor.params" in read_records(path).skipped[0][1]  # the seat's shape is still checked


# ---------------------------------------------------------------------- surrogates
def test_a_lone_surrogate_said_by_the_actor_records_as_utf8_and_replays_byte_for_byte(tmp_path, capsys):
    env = feedbackgym.make("feedbackgym/GuessNumber-v0")
    env.reset(seed=0)
    while not env.unwrapped.episode.done:
        env.step("\ud800x")
    ep = env.unwrapped.episode
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as w:
        w.write(ep)
    raw = path.read_bytes()
    raw.decode("utf-8")  # the file is valid UTF-8 (the surrogate is written as its escape)
    assert b"\\ud800x" in raw
    (rec,) = read_records(path, on_error=lambda n, why: pytest.fail(f"line {n}: {why}"))
    assert rec.messages[0].text == "\ud800x"
    assert [m.to_dict() for m in rec.messages] == [m.to_dict() for m in ep.log]
    again = rebuild(rec)
    assert [m.to_dict() for m in again.log] == [m.to_dict() for m in ep.log] and again.returns == ep.returns
    assert rec.to_json() == raw.decode("utf-8").rstrip("\n")  # and it writes back to the same bytes
    assert main(["replay", str(path), "--plain"]) == 0
    assert "\\ud800x" in capsys.readouterr().out  # printed as its escape: a terminal cannot show it


# ---------------------------------------------------------------------- provenance
def canonical_sha256(scenario) -> str:
    dump = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(dump.encode()).hexdigest()


def test_a_record_says_what_made_it_and_is_the_same_on_every_run():
    ep = episode(3)
    line = Record.of(ep).to_json()
    p = json.loads(line)["provenance"]
    assert p == {
        "feedbackgym": metadata.version("feedbackgym"),
        "scenario_sha256": canonical_sha256(ep.scenario),
        "seats": {"actor": {"agent": "scripted:expert"}, "user": {"agent": "scripted:oracle"}},
    }
    assert Record.of(episode(3)).to_json() == line  # same scenario and seed: the same bytes
    other = play_scenario(load_scenario("guess_number").with_roles(actor="scripted:random"), 3)
    assert json.loads(Record.of(other).to_json())["provenance"]["scenario_sha256"] != p["scenario_sha256"]


def test_an_lm_seat_is_recorded_with_the_hash_of_its_files(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "model.safetensors").write_bytes(b"weights v1")
    gguf = tmp_path / "small.gguf"
    gguf.write_bytes(b"GGUF weights")
    sc = load_scenario("guess_number").with_roles(actor=f"lm:{folder}", user=f"lm:{gguf}")
    seats = provenance(sc)["seats"]
    files = "".join(f"{p.name}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in sorted(folder.iterdir()))
    assert seats["actor"] == {"agent": f"lm:{folder}", "sha256": hashlib.sha256(files.encode()).hexdigest()}
    assert seats["user"] == {"agent": f"lm:{gguf}", "sha256": hashlib.sha256(b"GGUF weights").hexdigest()}
    (folder / "model.safetensors").write_bytes(b"weights v2")  # retrained in place
    st = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert provenance(sc)["seats"]["actor"]["sha256"] != seats["actor"]["sha256"]


def test_an_lm_seat_hashes_its_files_once_not_every_episode(tmp_path, monkeypatch):
    from feedbackgym.agents import models

    gguf = tmp_path / "small.gguf"
    gguf.write_bytes(b"GGUF weights")
    sc = load_scenario("guess_number").with_roles(actor=f"lm:{gguf}")
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    models._digest.cache_clear()
    for _ in range(5):
        provenance(sc)
    assert opened.count(str(gguf.resolve())) == 1


def test_a_served_seat_is_recorded_with_its_model_and_base_url():
    sc = load_scenario("guess_number").with_roles(actor="openai:Qwen/Qwen2.5-7B-Instruct")
    sc = sc.model_copy(update={"roles": {**sc.roles, "actor": sc.roles["actor"].model_copy(update={"params": {"base_url": "http://127.0.0.1:8000/v1/"}})}})
    assert provenance(sc)["seats"]["actor"] == {
        "agent": "openai:Qwen/Qwen2.5-7B-Instruct", "model": "Qwen/Qwen2.5-7B-Instruct", "base_url": "http://127.0.0.1:8000/v1",
    }  # fmt: skip


# ---------------------------------------------------------------------- the skip count, shown
SIZE = (120, 40)


@pytest.fixture
def damaged(tmp_path, good):
    """Two episodes among three lines that are not records (one of them with string-valued returns)."""
    path = tmp_path / "damaged.jsonl"
    bad = [changed(good[0], messages="abc"), changed(good[0], returns={"actor": "lots"}), nested(100_000)]
    path.write_text("\n".join([bad[0], good[0], bad[1], good[1], bad[2]]) + "\n")
    return path


def status(screen) -> str:
    return str(screen.query_one("#status").render())


def skip_notes(app) -> list[str]:
    return [n.message for n in app._notifications if "skipped" in n.message]


@pytest.mark.parametrize("preloaded", [False, True], ids=["read by the browser", "read by feedbackgym replay"])
async def test_the_replay_browser_shows_how_many_lines_it_skipped(damaged, preloaded):
    records = read_records(damaged) if preloaded else None
    app = FeedbackGymApp(first=ReplayScreen(damaged, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        table = replay.query_one("#episodes", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        await until(pilot, lambda: "3 lines skipped" in status(replay))
        (note,) = skip_notes(app)  # one message for all of them, not one a line
        assert note.startswith("3 lines skipped of damaged.jsonl; line 1: messages: got 'abc'")
        assert [r.seed for r in replay.records] == [0, 1]


async def test_a_recording_opened_from_the_home_screen_shows_its_skip_count(damaged):
    app = FeedbackGymApp(scenario="guess_number")
    async with app.run_test(size=SIZE) as pilot:
        home = app.screen
        home.query_one("#path", Input).value = str(damaged)
        await pilot.click("#open")
        await until(pilot, lambda: isinstance(app.screen, ReplayScreen))
        await until(pilot, lambda: "3 lines skipped" in status(app.screen))
        assert len(skip_notes(app)) == 1


async def test_a_clean_recording_says_nothing_of_skipping(tmp_path, good):
    path = tmp_path / "clean.jsonl"
    path.write_text("\n".join(good) + "\n")
    app = FeedbackGymApp(first=ReplayScreen(path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query_one("#episodes", DataTable).row_count == 2)
        assert "skipped" not in status(app.screen) and skip_notes(app) == []


def test_replay_plain_prints_the_episodes_each_skipped_line_and_the_count(damaged, capsys):
    assert main(["replay", str(damaged), "--plain"]) == 0
    out, err = capsys.readouterr()
    assert out.count("# guess_number") == 2
    assert [line.split(": skipped")[0] for line in err.splitlines()[:3]] == [f"{damaged}:{n}" for n in (1, 3, 5)]
    assert err.splitlines()[3] == f"{damaged}: 3 lines skipped"
