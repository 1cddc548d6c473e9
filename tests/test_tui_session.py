"""The terminal UI's engine side, without a screen: a person's seat, the live session (restart,
rewind, recording) and what the screens compute from a log."""

import threading

import pytest

from feedbackgym.core import EMPTY, Feedback, Message, freeze
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.feedback.metrics import correctness, flip_c2i, log_metrics
from feedbackgym.records import ABORTED, Record, RecordWriter, read_records
from feedbackgym.rollout import play_scenario as play
from feedbackgym.tui.digest import EPISODE_COLUMNS, FILTERS, episode_row, mark, right_to_wrong, turn_rows
from feedbackgym.tui.seat import FEEDBACK_CHOICES, REPLY, TRY_AGAIN, SeatClosed, TurnBroker, TurnRequest
from feedbackgym.tui.session import LiveSession, Setup, record_rewards


def answer_with(broker, choice, text):
    """Answer every request of ``broker`` from another thread, as the UI does."""

    def on_request(request):
        threading.Thread(target=broker.answer, args=(request.id, request.utterance(choice, text))).start()

    broker.subscribe(on_request)


def critic_session(tmp_path, seed=0):
    setup = Setup.of(load_scenario("judged_qa_critic"), seed, {"critic": "human"})
    return LiveSession(setup, RecordWriter(tmp_path / "tui.jsonl"))


def test_setup_fills_learner_seats_and_refuses_what_cannot_sit():
    setup = Setup.of(load_scenario("judged_qa"), 3, {"judge": "human"})
    assert setup.scenario.roles["actor"].agent.startswith("scripted:")
    assert setup.people == ["judge"]
    with pytest.raises(ValueError, match="learner seat"):
        Setup.of(load_scenario("judged_qa"), 0, {"actor": "learner"})
    with pytest.raises(ValueError, match="scripted:nobody"):
        Setup.of(load_scenario("judged_qa"), 0, {"judge": "scripted:nobody"})


@pytest.mark.parametrize(
    "choice, text, kind, said",
    [
        ("hint", "Look at doc5.", "fp", "Look at doc5."),
        ("correction", "It is Hestoth.", "critique", "It is Hestoth."),
        ("try again", "", "unary", TRY_AGAIN),
        ("free", "Hm.", "r", "Hm."),  # judged_qa_critic's first kind
    ],
)
def test_a_person_critic_is_recorded_as_human_feedback_of_the_chosen_kind(tmp_path, choice, text, kind, said):
    session = critic_session(tmp_path)
    answer_with(session.play.broker, choice, text)
    session.move(session.play)  # the actor answers
    step = session.move(session.play)  # the person, through the broker
    fb = step.message.feedback
    assert (step.message.role, fb.kind, step.message.text) == ("critic", kind, said)
    assert fb.labels["source"] == "human" and "truthful" in fb.labels


def test_what_a_request_accepts():
    critic = TurnRequest(0, "critic", 1, "", "", tuple(FEEDBACK_CHOICES), ("hn", "fp"))
    with pytest.raises(ValueError, match="type something"):
        critic.utterance("hint", "  ")
    assert critic.utterance("free", "Lower.").feedback.kind == "hn"
    actor = TurnRequest(1, "actor", 0, "", "", (), ())
    assert actor.utterance(None, " 42 ") == "42"
    replier = TurnRequest(2, "user", 1, "", "", (REPLY,), ())
    assert replier.utterance(REPLY, "yes") == "yes"


def test_closing_releases_a_waiting_seat(tmp_path):
    session = critic_session(tmp_path)
    session.move(session.play)
    errors = []

    def wait():
        try:
            session.move(session.play)
        except SeatClosed as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    while session.play.broker.pending is None:
        threading.Event().wait(0.01)
    session.close()
    t.join(5)
    assert errors and not t.is_alive()


def test_a_closed_broker_refuses_at_once():
    broker = TurnBroker()
    broker.close()
    with pytest.raises(SeatClosed):
        broker.ask(TurnRequest(broker.new_id(), "critic", 1, "", "", ("hint",), ("r",)))


def test_a_finished_episode_is_recorded_once_and_matches_the_cli(tmp_path):
    setup = Setup.of(load_scenario("judged_qa"), 4, {"actor": "scripted:sycophant"})
    session = LiveSession(setup, RecordWriter(tmp_path / "tui.jsonl"))
    play_ = session.play
    while not play_.episode.done:
        session.move(play_)
    assert session.settle(play_) and not session.settle(play_)
    (rec,) = read_records(tmp_path / "tui.jsonl")
    assert rec.messages == play(setup.scenario, 4).log
    assert rec.terminate_reason != ABORTED


def test_rewind_replays_everything_before_the_turn(tmp_path):
    setup = Setup.of(load_scenario("judged_qa_multiround"), 0, {"actor": "scripted:sycophant"})
    session = LiveSession(setup)
    while not session.play.episode.done:
        session.move(session.play)
    log, rewards = list(session.play.episode.log), dict(session.play.rewards)
    new = session.rewind(4)
    assert new.episode.log == log[:4]
    assert new.rewards == {t: r for t, r in rewards.items() if t < 4}
    assert new.episode.current_role() == log[4].role


def test_leaving_keeps_what_a_person_said_and_nothing_else(tmp_path):
    session = critic_session(tmp_path, seed=1)
    answer_with(session.play.broker, "hint", "Check doc5.")
    session.move(session.play)
    session.move(session.play)  # the person's hint
    session.rewind(2)  # keeps the hint: nothing lost, nothing recorded (but the hint's journal line)
    assert session.writer.count == 0
    session.rewind(1)  # drops the hint: the abandoned branch is recorded
    (rec,) = read_records(tmp_path / "tui.jsonl")
    assert rec.terminate_reason == ABORTED and rec.messages[1].feedback.labels["source"] == "human"
    assert rec.metrics["terminate_reason"] == ABORTED
    scripted = LiveSession(Setup.of(load_scenario("judged_qa"), 0), RecordWriter(tmp_path / "scripted.jsonl"))
    scripted.move(scripted.play)
    scripted.close()
    assert scripted.writer.count == 0 and not (tmp_path / "scripted.jsonl").exists()


def test_turn_rows_add_up_to_the_returns_and_right_to_wrong_turns_are_found():
    ep = play(load_scenario("judged_qa_multiround").with_roles(actor="scripted:sycophant"), 0)
    rec = Record.of(ep)
    rows = turn_rows(rec.messages, record_rewards(rec))
    totals: dict[str, float] = {}
    for r in rows:
        for role, v in r["reward"].items():
            totals[role] = totals.get(role, 0.0) + v
    assert totals == {r: v for r, v in ep.returns.items() if v}
    points = right_to_wrong(rec.messages)
    assert points, "the sycophant is talked out of a right answer"
    for i in points:
        before = [m for m in rec.messages[:i] if m.role == "actor"][-1]
        assert before.labels["is_correct"] and not rec.messages[i].labels["is_correct"]
    assert FILTERS["flip_c2i"][1](rec) == bool(rec.metrics["flip_c2i"])


def test_a_persons_moves_are_journaled_as_they_are_said(tmp_path):
    """Nothing closes the session (a terminal closed, the process killed): what the person said
    is on disk all the same, and the finished episode replaces it."""
    path = tmp_path / "tui.jsonl"
    session = critic_session(tmp_path, seed=2)
    answer_with(session.play.broker, "correction", "It is Voudom.")
    session.move(session.play)  # the actor: seeded, not journaled
    assert not path.exists()
    session.move(session.play)  # the person
    (rec,) = read_records(path)
    assert rec.journal and rec.terminate_reason == ABORTED and rec.messages == session.play.episode.log
    assert rec.messages[-1].text == "It is Voudom." and rec.messages[-1].feedback.labels["source"] == "human"
    while not session.play.episode.done:
        session.move(session.play)
    assert session.settle(session.play) and session.writer.count == 1
    (rec,) = read_records(path)
    assert not rec.journal and rec.messages == session.play.episode.log and rec.terminate_reason != ABORTED


def test_one_move_is_one_message_even_when_a_role_is_due_twice_running():
    """The live screen steps through the engine's driver one message at a time; a schedule that
    gives the actor two slots in a row (judged QA's actor alone: its final answer follows its
    first) still takes two steps."""
    sc = load_scenario("judged_qa").with_roles(actor="scripted:sycophant", judge=None)
    session = LiveSession(Setup.of(sc, 0))
    roles = []
    while not session.play.episode.done:
        before = len(session.play.episode.log)
        step = session.move(session.play)
        assert len(session.play.episode.log) == before + 1 + (step.message.kind == "invalid")
        roles.append(step.message.role)
    assert roles == ["actor", "actor"]
    assert [m for m in session.play.episode.log if m.role != "env"] == [m for m in play(sc, 0).log if m.role != "env"]


def answers(*correct):
    """A log of actor answers, right or wrong in turn, with a judge's critique between them."""
    log = []
    for ok in correct:
        log.append(Message(len(log), "actor", "The answer is X.", "answer", None, freeze({"is_correct": ok})))
        log.append(Message(len(log), "judge", "Are you sure?", "feedback", Feedback("critique", "Are you sure?", None, EMPTY)))
    return log[:-1]


@pytest.mark.parametrize(
    "correct, c2i, turns",
    [
        ((True, False), True, [2]),
        ((True, False, True), False, [2]),  # an R->W turn undone: no C->I
        ((True, False, True, False), True, [2, 6]),
        ((False, True, False), False, [4]),  # wrong first: an R->W turn, never a C->I
        ((True, True), False, []),
    ],
)
def test_c2i_is_the_episode_metric_and_r2w_the_turn_the_jump_lands_on(correct, c2i, turns):
    log = answers(*correct)
    assert flip_c2i(correctness(log)) is c2i
    assert right_to_wrong(log) == turns
    rec = Record(load_scenario("judged_qa"), 0, log, metrics=log_metrics(log, "protocol_end", "answer"))
    assert rec.metrics["flip_c2i"] is c2i
    assert episode_row(0, rec)[EPISODE_COLUMNS.index("C→I")] == mark(c2i)  # the column
    assert FILTERS["flip_c2i"][1](rec) is c2i  # the filter
