"""The journal of a person's turns (`feedbackgym.tui.journal`), without a screen: each submitted
turn is on disk (fsynced) before the episode moves on, with its timing, target and branch; the
journal alone rebuilds every submitted turn, across rewinds; `recover` appends what a record
lacks; a person's seat is briefed in its own words and labelled honestly."""

import json
import os
import threading

import pytest

from feedbackgym.cli import main
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.records import ABORTED, RecordWriter, read_records
from feedbackgym.tui import journal as journal_mod
from feedbackgym.tui.journal import RECOVERED, journal_path, read_journal, rebuild_journal, recover
from feedbackgym.tui.seat import UNKNOWN_INTENT, TurnRequest, cited
from feedbackgym.tui.session import LiveSession, Setup


def answer_each(broker, texts, choice="correction", on_shown=True):
    """Answer the requests of ``broker`` with ``texts`` in turn, from another thread, as the UI does."""
    said = iter(texts)

    def on_request(request):
        if on_shown:
            broker.shown(request.id)
        threading.Thread(target=broker.answer, args=(request.id, request.utterance(choice if request.choices else None, next(said)))).start()

    broker.subscribe(on_request)


def session(tmp_path, scenario="judged_qa_critic", role="critic", seed=0):
    setup = Setup.of(load_scenario(scenario), seed, {role: "human"})
    return LiveSession(setup, RecordWriter(tmp_path / "tui.jsonl"))


def people_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_submitted_turn_is_on_disk_and_fsynced_before_the_episode_moves_on(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    s = session(tmp_path)
    answer_each(s.play.broker, ["Are you sure?", "Look at the guild again."])
    path = journal_path(tmp_path / "tui.jsonl")
    assert path.name == "tui.journal.jsonl" and not path.exists()  # nothing before a person speaks
    s.move(s.play)  # the actor
    assert not path.exists()
    s.move(s.play)  # the person
    (line,) = people_lines(path)
    assert len(synced) == 1
    assert (line["turn"], line["role"], line["target_turn"]) == (1, "critic", 0)
    assert line["messages"][-1]["text"] == "Are you sure?" and len(line["messages"]) == 2
    assert line["seed"] == 0 and line["seats"]["critic"] == "human" and line["scenario"]["name"] == "judged_qa_critic"
    assert line["shown_at"] <= line["submitted_at"]
    s.move(s.play)
    s.move(s.play)
    second = people_lines(path)[1]
    assert len(synced) == 2 and second["branch"] == line["branch"]
    assert [m["turn"] for m in second["messages"]] == [2, 3]  # only what the first line did not hold
    # the times stay out of the engine: no message label holds them
    assert all("shown_at" not in m.labels and "submitted_at" not in m.labels for m in s.play.episode.log)
    s.close()


def test_the_journal_alone_rebuilds_every_submitted_turn_across_rewinds(tmp_path):
    s = session(tmp_path, seed=2)
    answer_each(s.play.broker, ["One.", "Two.", "Three."])
    for _ in range(4):
        s.move(s.play)
    first = s.play
    s.rewind(3)  # back to the person's second turn: a new branch keeps turns 0-2
    answer_each(s.play.broker, ["Two again."])
    s.move(s.play)
    (path,) = [p for p in tmp_path.iterdir() if p.name.endswith(".journal.jsonl")]
    branches = read_journal(path)
    assert [b.id for b in branches] == [first.branch, s.play.branch]
    assert (branches[1].parent, branches[1].fork_turn) == (first.branch, 3)
    records = rebuild_journal(path)
    said = [[m.text for m in r.messages if m.labels.get("source") == "human" or (m.feedback and m.feedback.labels.get("source") == "human")] for r in records]
    assert said == [["One.", "Two."], ["One.", "Two again."]]
    assert records[1].messages == s.play.episode.log  # byte for byte the live episode
    assert all(r.terminate_reason == ABORTED and r.abort_cause == RECOVERED for r in records)
    assert [p["turn"] for p in records[1].people] == [3]
    s.close()


def test_a_torn_last_line_is_skipped_and_the_rest_rebuilds(tmp_path):
    s = session(tmp_path)
    answer_each(s.play.broker, ["First.", "Second."])
    for _ in range(4):
        s.move(s.play)
    path = journal_path(s.writer.path)
    with open(path, "a") as f:
        f.write('{"journal": 1, "turn": 5, "messa')  # a kill in the middle of a write
    errors = []
    (b,) = read_journal(path, on_error=lambda n, why: errors.append(n))
    assert errors == [3] and len(b.turns) == 2
    (rec,) = rebuild_journal(path)
    assert [m.text for m in rec.messages[1::2]] == ["First.", "Second."]


def test_recover_appends_only_what_the_record_lacks(tmp_path):
    s = session(tmp_path)
    answer_each(s.play.broker, ["Hm.", "Sure?"])
    for _ in range(4):
        s.move(s.play)
    # as after a SIGKILL: the journal holds the turns; drop the record to show the journal suffices
    s.writer.close()
    (tmp_path / "tui.jsonl").unlink()
    ((branch, rec, new),) = recover(journal_path(tmp_path / "tui.jsonl"))
    assert new and rec.abort_cause == RECOVERED
    (back,) = read_records(tmp_path / "tui.jsonl")
    assert back.messages == rec.messages and back.terminate_reason == ABORTED and back.people == rec.people
    ((_, _, again),) = recover(journal_path(tmp_path / "tui.jsonl"))
    assert not again and len(read_records(tmp_path / "tui.jsonl")) == 1


def test_the_recover_command(tmp_path, capsys):
    s = session(tmp_path)
    answer_each(s.play.broker, ["Hm."])
    s.move(s.play)
    s.move(s.play)
    s.writer.close()
    (tmp_path / "tui.jsonl").unlink()
    assert main(["recover", str(journal_path(tmp_path / "tui.jsonl"))]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 branches appended" in out
    assert len(read_records(tmp_path / "tui.jsonl")) == 1


def test_a_finished_or_left_episode_says_why_and_carries_the_timing(tmp_path):
    s = session(tmp_path, seed=1)
    answer_each(s.play.broker, ["Why?"])
    s.move(s.play)
    s.move(s.play)
    s.close("SIGTERM")
    (rec,) = read_records(tmp_path / "tui.jsonl")
    assert (rec.terminate_reason, rec.abort_cause) == (ABORTED, "SIGTERM") and not rec.journal
    (p,) = rec.people
    assert p["turn"] == 1 and p["target_turn"] == 0 and p["shown_at"] <= p["submitted_at"]


def request(role, private="", choices=("hint", "correction", "try again", "free")):
    return TurnRequest(0, role, 3, "Answer a question. Which city?", private, choices, ("critique",), "Give your feedback on the last move.", 2)


def test_each_seat_is_briefed_in_its_own_words():
    critic = request("critic", "Correct answer (please do not disclose it): Hestoth").brief
    assert critic.startswith("You are the critic (turn 3). Give your feedback on the last move (turn 2).")
    assert "The actor's task: Answer a question." in critic and "Only you see this: Correct answer" in critic
    actor = TurnRequest(0, "actor", 0, "Answer a question. Which city?", "", (), (), "", None).brief
    assert actor.startswith("You are the actor (turn 0). Answer a question.") and "actor's task" not in actor


def test_a_persons_judge_feedback_records_the_ids_it_cites_and_no_invented_intent():
    docs = "Correct answer: Hestoth\nEvidence:\n[doc0] A passage.\n[doc1] Another.\n[doc10] A tenth."
    judge = request("judge", docs)
    assert judge.evidence == ("doc0", "doc1", "doc10") and "[doc0]" in judge.brief
    fb = judge.utterance("correction", "See [doc10] and doc1; not doc7 or xdoc0.").feedback
    assert fb.labels["evidence_ids"] == ("doc10", "doc1")
    assert fb.labels["intent"] == UNKNOWN_INTENT and fb.labels["source"] == "human"
    assert judge.utterance("correction", "Wrong.", intent="malicious").feedback.labels["intent"] == "malicious"
    assert "evidence_ids" not in judge.utterance("hint", "No citation.").feedback.labels
    with pytest.raises(ValueError, match="intent"):
        judge.utterance("hint", "x", intent="sneaky")
    assert "intent" not in request("critic").utterance("hint", "x").feedback.labels  # a critic has none
    assert cited("[doc1]", ()) == ()


def test_a_person_judges_evidence_ids_reach_the_record(tmp_path):
    s = session(tmp_path, scenario="judged_qa", role="judge")
    seen = []
    s.play.broker.subscribe(seen.append)
    answer_each(s.play.broker, ["Compare [doc1] with doc2."])
    s.move(s.play)
    said = s.move(s.play).message
    assert seen[0].evidence and len(seen[0].evidence) == seen[0].private.count("\n[")
    assert said.feedback.labels["evidence_ids"] == ("doc1", "doc2") and said.feedback.labels["intent"] == UNKNOWN_INTENT
    s.close()
