"""A person's seat in the live screen, from 80x24 up: the transcript and the input stay on screen
through a whole critic episode; a person in the actor's seat never sees whether an answer is
right, nor the hidden truth, before the episode ends; leaving and quitting ask first and keep the
set-up; keys never fire inside a text box; arrows move the transcript from the text box; the
kind picker keeps its choice; step mode says so. Then in a real terminal (tmux at 80x24): what a
person typed survives SIGHUP, SIGTERM and SIGKILL (the journal rebuilds every submitted turn),
and Escape asks before it leaves. Snapshots of the critic's screen at 80x24 and 120x40."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
from pilot import until as wait
from textual.widgets import Input, Select

from feedbackgym.envs.scenario import load_scenario
from feedbackgym.records import ABORTED, RecordWriter, read_records
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.home import HomeScreen
from feedbackgym.tui.journal import journal_path, read_journal, rebuild_journal
from feedbackgym.tui.live import Confirm, LiveScreen
from feedbackgym.tui.session import Setup
from feedbackgym.tui.widgets import FeedbackBar, Transcript, TruthPanel, TurnPanel

SMALL, LARGE = (80, 24), (120, 40)
#: What tells a person whether an answer is right: the per-turn table's marks, the plot's axis.
CORRECTNESS = ("✓", "✗", "right┤", "wrong┤")


async def until(pilot, condition, timeout=15.0):
    """`pilot.until` with a longer wait: a whole episode's worker turns."""
    await wait(pilot, condition, timeout)


def screen_text(app) -> str:
    """The screen as a person sees it, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def seated_app(tmp_path, scenario="judged_qa_critic", role="critic", seed=0, **seats):
    writer = RecordWriter(tmp_path / "tui.jsonl")
    setup = Setup.of(load_scenario(scenario), seed, {role: "human", **seats})
    return FeedbackGymApp(writer, first=LiveScreen(setup, writer))


def visible(app, widget) -> bool:
    """Is ``widget`` shown whole on the screen, at least one row high?"""
    region, screen = widget.region, app.screen.region
    return widget.display and region.height >= 1 and screen.contains_region(region)


async def say(pilot, text):
    """Put ``text`` in the feedback box once it is open (typing is `test_keys_never_fire...`'s), and send it."""
    bar = pilot.app.screen.query_one(FeedbackBar)
    await until(pilot, lambda: bar.display and bar.request is not None)
    n = len(pilot.app.screen.session.play.episode.log)
    bar.query_one("#say", Input).value = text
    await pilot.press("enter")
    await until(pilot, lambda: len(pilot.app.screen.session.play.episode.log) > n)


async def test_a_whole_critic_episode_keeps_the_transcript_and_the_input_in_view(tmp_path):
    app = seated_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        live = app.screen
        transcript, bar = live.query_one(Transcript), live.query_one(FeedbackBar)
        said = 0
        while not live.session.play.episode.done:
            await until(pilot, lambda: (bar.display and bar.request is not None) or live.session.play.episode.done)
            await pilot.pause()
            if live.session.play.episode.done:
                break
            # the task heads the live transcript, as in replay (it was only in the seat's brief)
            assert transcript.task_text == live.session.play.episode.instance.instruction != ""
            assert visible(app, transcript) and transcript.region.height >= 5
            assert visible(app, bar.query_one("#say", Input)) and bar.query_one("#say", Input).has_focus
            text = screen_text(app)
            last = transcript.messages[-1].text
            assert last[:30] in text  # the message to answer is in view
            assert "brief:" in text or "Enter says it" in text  # the bar's keys are in view
            said += 1
            await say(pilot, f"Critique number {said}, please reconsider.")
        await pilot.pause()
        assert visible(app, transcript) and said == 3
    (rec,) = read_records(tmp_path / "tui.jsonl")
    assert [m.text for m in rec.messages if m.role == "critic"] == [f"Critique number {i}, please reconsider." for i in (1, 2, 3)]
    assert [p["turn"] for p in rec.people] == [1, 3, 5]


async def test_a_person_in_the_actors_seat_never_sees_correctness_or_the_truth_before_the_end(tmp_path):
    app = seated_app(tmp_path, scenario="judged_qa", role="actor", judge="scripted:malicious-grounded")
    async with app.run_test(size=LARGE) as pilot:
        live = app.screen
        ep = live.session.play.episode
        truth_line = f"truth: {ep.hidden()['truth']}"
        shown = []
        bar = live.query_one(FeedbackBar)
        for answer in ("A", "B"):
            await until(pilot, lambda: bar.display and bar.request is not None)
            await pilot.press("t")  # typed into the box: no truth panel
            await pilot.press("ctrl+a", "ctrl+k")
            shown.append(screen_text(app))
            live.action_truth()  # even the action itself refuses while the episode runs
            await pilot.pause()
            shown.append(screen_text(app))
            assert not live.query_one(TruthPanel).display and not live.query_one(TurnPanel).display
            await say(pilot, answer)
            if not ep.done:
                shown.append(screen_text(app))
        await until(pilot, lambda: ep.done)
        await pilot.pause()
        for text in shown:
            assert not any(mark in text for mark in CORRECTNESS), text
            assert truth_line not in text and "hidden truth" not in text and "is_correct" not in text
        # once it has ended, all of it may be seen
        assert live.query_one(TurnPanel).display
        assert any(mark in screen_text(app) for mark in ("✓", "✗"))
        live.action_truth()
        await pilot.pause()
        assert "hidden truth" in screen_text(app)


async def test_leaving_asks_first_and_home_keeps_the_setup(tmp_path):
    app = seated_app(tmp_path, seed=4)
    async with app.run_test(size=SMALL) as pilot:
        live = app.screen
        await say(pilot, "Are you sure?")
        await pilot.press("escape")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        assert app.screen is live and not live.session.closed
        live.query_one(Transcript).focus()  # out of the text box, where N is a letter
        await pilot.press("N")  # a new seed: the home screen keeps the one in play
        await until(pilot, lambda: live.session.play.episode.seed == 5 and live.query_one(FeedbackBar).request is not None)
        await pilot.press("escape")
        await pilot.press("y")
        home = app.screen
        assert isinstance(home, HomeScreen)
        await until(pilot, lambda: home.scenario is not None and home.scenario.name == "judged_qa_critic" and bool(home.query("#agent-critic")))
        await until(pilot, lambda: home.query_one("#agent-critic", Select).value == "human")
        assert home.query_one("#seed", Input).value == "5"
        assert home.setup().people == ["critic"]
    rec = read_records(tmp_path / "tui.jsonl")[0]
    assert (rec.terminate_reason, rec.abort_cause) == (ABORTED, "restart")  # the first seed, left by N


async def test_quitting_asks_first(tmp_path):
    app = seated_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await say(pilot, "Hm.")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, Confirm)
        await pilot.press("escape")
        assert isinstance(app.screen, LiveScreen)
        await pilot.press("ctrl+q", "y")
        await until(pilot, lambda: app._exit_renderables is not None or not app.is_running)
    (rec,) = read_records(tmp_path / "tui.jsonl")
    assert (rec.terminate_reason, rec.abort_cause) == (ABORTED, "quit")


async def test_keys_never_fire_inside_a_text_box_and_arrows_move_the_transcript(tmp_path):
    app = seated_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        live = app.screen
        transcript = live.query_one(Transcript)
        await say(pilot, "Look again.")
        bar = live.query_one(FeedbackBar)
        await until(pilot, lambda: bar.request is not None and bar.request.turn == 3)
        await pilot.press(*"nrRNbtq ")  # every live key, typed
        assert bar.query_one("#say", Input).value == "nrRNbtq " and app.screen is live
        assert live.session.play.episode.seed == 0 and len(live.session.play.episode.log) == 3
        assert transcript.highlighted == 2
        await pilot.press("up", "up")
        assert transcript.highlighted == 0 and bar.query_one("#say", Input).has_focus
        await pilot.press("down")
        assert transcript.highlighted == 1
    home_app = FeedbackGymApp(scenario="judged_qa")
    async with home_app.run_test(size=SMALL) as pilot:
        home = home_app.screen
        await until(pilot, lambda: bool(home.query("#spec-judge")))
        for box in ("#path", "#seed", "#spec-judge"):
            home.query_one(box, Input).focus()
            await pilot.press(*"soq")
            assert home_app.screen is home and home_app.is_running


async def test_the_kind_picker_keeps_the_last_choice_and_step_mode_shows(tmp_path):
    app = seated_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        live = app.screen
        bar = live.query_one(FeedbackBar)
        await until(pilot, lambda: bar.request is not None)
        assert "▶ run" in screen_text(app)
        bar.query_one("#kind", Select).value = "correction"
        await say(pilot, "It is Voudom.")
        await until(pilot, lambda: bar.request is not None and bar.request.turn == 3)
        assert bar.query_one("#kind", Select).value == "correction"
        await say(pilot, "Again.")
        assert [m.feedback.kind for m in live.session.play.episode.log if m.role == "critic"] == ["critique", "critique"]
        live.query_one(Transcript).focus()
        await until(pilot, lambda: bar.request is not None)
        live.action_step()
        await pilot.pause()
        assert "⏸ step" in screen_text(app)


async def test_a_judges_seat_shows_every_passage_with_a_hint_that_it_scrolls(tmp_path):
    app = seated_app(tmp_path, scenario="judged_qa", role="judge")
    async with app.run_test(size=SMALL) as pilot:
        bar = app.screen.query_one(FeedbackBar)
        await until(pilot, lambda: bar.request is not None)
        await pilot.pause()
        ids = bar.request.evidence
        assert len(ids) >= 4
        assert "PgUp/PgDn" in screen_text(app)
        seen = set()
        for _ in range(10):
            seen |= {i for i in ids if f"[{i}]" in screen_text(app)}
            await pilot.press("pagedown")
            await pilot.pause()
        assert seen == set(ids)  # every passage, one page at a time
        assert bar.query_one("#say", Input).has_focus


# ---------------------------------------------------------------------- snapshots
def critic_mid_episode(snap_compare, tmp_path, size):
    """The critic's screen with one critique said and the second being typed."""
    app = seated_app(tmp_path)

    async def one_critique_in(pilot):
        bar = app.screen.query_one(FeedbackBar)
        bar.query_one("#say").cursor_blink = False
        await say(pilot, "Are you sure? Look at the guild's seat again.")
        await until(pilot, lambda: bar.request is not None and bar.request.turn == 3)
        bar.query_one("#say", Input).insert_text_at_cursor("It is not Voudom.")
        await until(pilot, lambda: "Enter says it" in str(bar.query_one("#hint").render()))  # laid out
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=one_critique_in)


def test_the_critic_screen_at_80x24(snap_compare, tmp_path):
    assert critic_mid_episode(snap_compare, tmp_path, SMALL)


def test_the_critic_screen_at_120x40(snap_compare, tmp_path):
    assert critic_mid_episode(snap_compare, tmp_path, LARGE)


# ---------------------------------------------------------------------- in a real terminal
tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """``feedbackgym.tui`` in a detached tmux session of its own server, at 80x24; the shell
    prints the exit status when the program ends, so the restored terminal can be read."""

    def __init__(self, args, cwd, size=SMALL):
        self.name = f"fbg-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        command = shlex.join([sys.executable, "-m", "feedbackgym.tui", *args])
        shell = f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES {command}; echo exited=$?; sleep 30"
        w, h = size
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(w), "-y", str(h), shell], check=True)

    def text(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def wait_for(self, *needles, timeout=60.0) -> str:
        """The pane's text (white space runs made one space) once it shows every needle."""
        deadline = time.monotonic() + timeout
        while True:
            text = " ".join(self.text().split())
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {needles} in the pane:\n{self.text()}")
            time.sleep(0.1)

    def keys(self, *keys) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def program(self) -> int:
        panes = subprocess.run([*self.tmux, "list-panes", "-t", self.name, "-F", "#{pane_pid}"], capture_output=True, text=True)
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", panes.stdout.split()[0]], capture_output=True, text=True).stdout
        (child,) = out.split()
        return int(child)

    def close(self) -> None:
        """End the program, then the pane. Closing the pane alone (a hangup) was seen, rarely,
        to leave the program running without a terminal once it was back on the home screen."""
        try:
            os.kill(self.program(), signal.SIGKILL)
        except (ValueError, ProcessLookupError, IndexError):  # already gone
            pass
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def pane(tmp_path):
    panes = []

    def start(*args):
        panes.append(Pane(args, tmp_path))
        return panes[-1]

    yield start
    for p in panes:
        p.close()


def a_critic_who_said(pane, tmp_path, *critiques):
    p = pane("play", "judged_qa_critic", "--as", "critic", "--record", str(tmp_path / "people.jsonl"))
    for i, text in enumerate(critiques):
        p.wait_for("You are the critic", "Enter says it", f"{1 + 2 * i} messages")
        p.keys("-l", text)
        p.keys("Enter")
        p.wait_for(f"{3 + 2 * i} messages")  # said, and the actor answered
    return p


def journaled(tmp_path):
    """What the journal beside the record holds: the person's texts, and their rebuild."""
    path = journal_path(tmp_path / "people.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    (rebuilt,) = rebuild_journal(path)
    return [line["messages"][-1]["text"] for line in lines], [m.text for m in rebuilt.messages if m.role == "critic"]


@tmux
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_a_critique_survives_a_hangup_or_a_terminate(tmp_path, pane, sig):
    said = ["Are you sure? See doc1.", "Think about the guild again."]
    p = a_critic_who_said(pane, tmp_path, *said)
    os.kill(p.program(), sig)
    p.wait_for(f"exited={128 + sig}")  # a clean exit, back on the shell's screen
    assert "You are the critic" not in p.text()  # the terminal was restored
    (rec,) = read_records(tmp_path / "people.jsonl")
    assert (rec.terminate_reason, rec.abort_cause, rec.journal) == (ABORTED, signal.Signals(sig).name, False)
    assert [m.text for m in rec.messages if m.role == "critic"] == said
    assert journaled(tmp_path) == (said, said)


@tmux
def test_a_critique_survives_a_kill(tmp_path, pane):
    said = ["Are you sure? See doc1.", "Think about the guild again."]
    p = a_critic_who_said(pane, tmp_path, *said)
    os.kill(p.program(), signal.SIGKILL)  # no handler, no clean-up: only what is on disk counts
    p.wait_for(f"exited={128 + signal.SIGKILL}")
    assert journaled(tmp_path) == (said, said)
    assert [len(b.turns) for b in read_journal(journal_path(tmp_path / "people.jsonl"))] == [2]


@tmux
def test_escape_asks_before_it_leaves(tmp_path, pane):
    p = a_critic_who_said(pane, tmp_path, "Hm.")
    p.keys("Escape")
    p.wait_for("Leave this episode", "Yes (y)")
    p.keys("n")
    p.wait_for("You are the critic", "your turn (critic)")
    p.keys("Escape")
    p.wait_for("Leave this episode")
    p.keys("y")
    p.wait_for("who plays each role")
    (rec,) = read_records(tmp_path / "people.jsonl")
    assert rec.abort_cause == "home"
