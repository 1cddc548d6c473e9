"""The terminal UI driven by Pilot: choose a scenario and step it to the end, play the critic,
go back to a turn, keep what a person said on quit, and browse a recording down to an R->W turn
(an answer wrong right after a right one) and filter it to its C->I episodes (`flip_c2i`)."""


import pytest
from pilot import until
from rich.console import Console
from textual.widgets import DataTable, Input, OptionList

from feedbackgym.cli import main
from feedbackgym.envs.scenario import list_scenarios, load_scenario
from feedbackgym.records import ABORTED, RecordWriter, read_records
from feedbackgym.rollout import play_scenario as play
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.commands import add_parsers, open_replay
from feedbackgym.tui.home import HomeScreen
from feedbackgym.tui.live import LiveScreen
from feedbackgym.tui.replay import ReplayScreen
from feedbackgym.tui.session import Setup
from feedbackgym.tui.widgets import FeedbackBar, Transcript

SIZE = (120, 40)




def shown_lines(transcript: Transcript) -> list[str]:
    """The transcript's entries as plain text, a line each line they show (the task above the first)."""
    console = Console(width=1000, color_system=None)
    lines = []
    for i in range(transcript.option_count):
        with console.capture() as cap:
            console.print(transcript.get_option_at_index(i).prompt)
        lines += [line.rstrip() for line in cap.get().splitlines()]
    return lines


def critic_app(tmp_path, seed=0):
    writer = RecordWriter(tmp_path / "tui.jsonl")
    setup = Setup.of(load_scenario("judged_qa_critic"), seed, {"critic": "human"})
    return FeedbackGymApp(writer, first=LiveScreen(setup, writer))


async def say(pilot, text):
    """Type ``text`` into the feedback bar once it is open, and send it."""
    bar = pilot.app.screen.query_one(FeedbackBar)
    await until(pilot, lambda: bar.display and bar.request is not None)
    n = len(pilot.app.screen.query_one(Transcript).messages)
    await pilot.press(*text, "enter")
    await until(pilot, lambda: len(pilot.app.screen.query_one(Transcript).messages) > n)


async def test_choose_a_scenario_and_step_it_to_the_end():
    names = list_scenarios()
    app = FeedbackGymApp()
    async with app.run_test(size=SIZE) as pilot:
        home = app.screen
        assert isinstance(home, HomeScreen)
        home.query_one("#scenarios", OptionList).highlighted = names.index("judged_qa_critic")
        await until(pilot, lambda: home.scenario is not None and home.scenario.name == "judged_qa_critic")
        await pilot.click("#seed")
        await pilot.press("end", "backspace", "3", "enter")
        await until(pilot, lambda: isinstance(app.screen, LiveScreen), timeout=30.0)  # the push waits on the scenario's set-up (slow under load)
        live = app.screen
        transcript = live.query_one(Transcript)
        ep = live.session.play.episode
        assert ep.seed == 3
        while not ep.done:
            before = len(ep.log)
            await pilot.press("n")
            await app.workers.wait_for_complete()
            await until(pilot, lambda before=before: len(transcript.messages) == len(ep.log) > before)
        expected = play(live.session.setup.scenario, 3).log
        assert transcript.messages == expected
        assert "done: protocol_end" in str(live.query_one("#status").render())


async def test_play_the_critic_and_see_the_actor_respond(tmp_path):
    app = critic_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        live = app.screen
        bar = live.query_one(FeedbackBar)
        await until(pilot, lambda: bar.display)
        assert bar.query_one("#say", Input).has_focus
        bar.query_one("#kind").value = "correction"
        await say(pilot, "It is Voudom.")
        await until(pilot, lambda: len(live.session.play.episode.log) >= 3)
        critic, actor = live.session.play.episode.log[1:3]
        assert critic.feedback.kind == "critique" and critic.feedback.labels["source"] == "human"
        assert actor.text == "The answer is Voudom."  # the sycophant takes the suggestion
        await until(pilot, lambda: actor in live.query_one(Transcript).messages)
        await say(pilot, "Good.")
        await say(pilot, "Fine.")
        await until(pilot, lambda: live.session.play.episode.done and app.writer.count == 1)
    (rec,) = read_records(tmp_path / "tui.jsonl")
    people = [m for m in rec.messages if m.feedback and m.feedback.labels.get("source") == "human"]
    assert [m.text for m in people] == ["It is Voudom.", "Good.", "Fine."]
    assert rec.scenario.roles["critic"].agent == "human"


async def test_quitting_mid_episode_keeps_what_the_person_said(tmp_path):
    app = critic_app(tmp_path, seed=1)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, "Why?")
        await until(pilot, lambda: app.screen.query_one(FeedbackBar).request is not None)
        await pilot.press("ctrl+q")
    (rec,) = read_records(tmp_path / "tui.jsonl")
    assert rec.terminate_reason == ABORTED
    assert rec.messages[1].text == "Why?" and rec.messages[1].feedback.labels["source"] == "human"


async def test_go_back_to_a_turn_and_play_on():
    setup = Setup.of(load_scenario("judged_qa_multiround"), 0)
    app = FeedbackGymApp(first=LiveScreen(setup))
    async with app.run_test(size=SIZE) as pilot:
        live = app.screen
        transcript = live.query_one(Transcript)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: live.session.play.episode.done and len(transcript.messages) == 11)
        full = list(transcript.messages)
        transcript.highlighted = 4
        await pilot.press("b")
        assert transcript.messages == full[:4]
        assert live.session.play.episode.current_role() == full[4].role
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: live.session.play.episode.done)
        assert transcript.messages[:4] == full[:4] and len(transcript.messages) == len(live.session.play.episode.log)
        await pilot.press("R")
        assert transcript.messages == []


async def test_the_home_screen_refuses_a_spec_that_cannot_sit():
    app = FeedbackGymApp(scenario="judged_qa")
    async with app.run_test(size=SIZE) as pilot:
        home = app.screen
        await until(pilot, lambda: home.scenario is not None and bool(home.query("#spec-judge")))
        await pilot.click("#spec-judge")
        await pilot.press(*"scripted:nobody")
        await pilot.click("#start")
        assert app.screen is home
        assert any("scripted:nobody" in n.message for n in app._notifications)


async def test_a_scenario_that_does_not_load_is_named_not_fatal():
    app = FeedbackGymApp(scenarios=["no_such_scenario", "judged_qa"])
    async with app.run_test(size=SIZE) as pilot:
        home = app.screen
        await until(pilot, lambda: "no scenario named" in str(home.query_one("#about").render()))
        await pilot.press("s")
        assert app.screen is home and not home.query("#seats Select")


@pytest.fixture
def recording(tmp_path, capsys):
    """Six judged QA episodes recorded by ``feedbackgym run``, some of them C->I (`flip_c2i`)."""
    path = tmp_path / "run.jsonl"
    argv = ["run", "judged_qa_multiround", "--actor", "scripted:sycophant", "--episodes", "6", "--record", str(path), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    return path


async def test_a_recording_shows_the_same_messages_as_replay_plain(recording, capsys):
    plain = []
    for i in range(len(read_records(recording))):
        assert main(["replay", str(recording), "--episode", str(i)]) == 0
        plain.append(capsys.readouterr().out.splitlines()[1:-1])  # the messages, without head and returns
    app = FeedbackGymApp(first=ReplayScreen(recording))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        table = replay.query_one("#episodes", DataTable)
        await until(pilot, lambda: table.row_count == len(plain))
        for i, lines in enumerate(plain):
            table.move_cursor(row=i)
            await until(pilot, lambda i=i: replay.index == i)
            assert shown_lines(replay.query_one(Transcript)) == lines


async def test_scrub_a_recording_and_jump_to_the_next_right_to_wrong_turn(recording):
    records = read_records(recording)
    app = FeedbackGymApp(first=ReplayScreen(recording, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        transcript = replay.query_one(Transcript)
        await until(pilot, lambda: replay.index == 0)
        await pilot.press("0")
        assert len(transcript.messages) == 1
        await pilot.press("right", "right", "left")
        assert len(transcript.messages) == 2
        await pilot.press("]")
        last = transcript.messages[-1]
        before = [m for m in transcript.messages[:-1] if m.role == "actor"][-1]
        assert before.labels["is_correct"] and last.role == "actor" and not last.labels["is_correct"]
        assert f"message {replay.shown}/" in str(replay.query_one("#status").render())
        await pilot.press("f")  # only the C->I episodes (`flip_c2i`)
        kept = [i for i, r in enumerate(records) if r.metrics["flip_c2i"]]
        assert replay.kept == kept and 0 < len(kept) < len(records)
        assert replay.query_one("#episodes", DataTable).row_count == len(kept)


async def test_open_replay_refuses_empty_files_and_missing_episodes(tmp_path, recording, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert open_replay(empty) == 1
    assert open_replay(recording, episode=6) == 2
    assert "the file has 6 episodes" in capsys.readouterr().err


def test_the_commands_parse():
    import argparse

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["play", "judged_qa_critic", "--as", "critic", "--seed", "2"])
    assert (args.scenario, args.role, args.seed, args.record) == ("judged_qa_critic", "critic", 2, "runs/tui.jsonl")
    args = parser.parse_args(["tui", "--replay", "a.jsonl", "--record", "none"])
    assert (args.replay, args.record, args.scenario) == ("a.jsonl", "none", None)
