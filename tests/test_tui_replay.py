"""The replay browser and the shared transcript as an instrument (issue 18): the task in every
transcript, one meaning per flip name (C->I episodes, R->W turns) with a jump and a filter that
agree, rewards never from beyond the scrubbed point, a layout that works at 80x24, search, help,
go-to, the answer timeline, the detail pane, sorting, and what a recording's bad lines become."""

import asyncio

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from feedbackgym.cli import main
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.records import read_records
from feedbackgym.rollout import play_scenario
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.digest import task_lines, task_of, turn_rows
from feedbackgym.tui.replay import ReplayScreen
from feedbackgym.tui.session import Setup
from feedbackgym.tui.widgets import CONCEALED, Transcript, TruthPanel, TurnPanel

SIZE = (120, 40)
SMALL = (80, 24)


async def until(pilot, condition, timeout=5.0):
    """Let the app run until ``condition()`` holds (worker threads report through messages)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the UI"
        await pilot.pause(0.01)


def text_of(renderable) -> str:
    console = Console(width=1000, color_system=None)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


class Host(App):
    """A bare app holding the widgets under test."""

    def __init__(self, *widgets):
        super().__init__()
        self.widgets = widgets

    def compose(self) -> ComposeResult:
        yield from self.widgets


async def test_panels_that_must_not_reveal_leave_out_every_mark_of_correctness():
    ep = play_scenario(Setup.of(load_scenario("judged_qa_multiround"), 0).scenario, 0)
    rows = turn_rows(list(ep.log), {})
    app = Host(TurnPanel(reveal=False), TruthPanel(reveal=False))
    async with app.run_test(size=(120, 40)):
        panel = app.query_one(TurnPanel)
        panel.show(rows)
        table = panel.query_one(DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["turn", "move", "changed", "feedback"]
        changed = {"✓": True, "✗": False, "·": None}
        for i, r in enumerate(rows):  # what is left: the move, whether it changed, the feedback before it
            turn, kind, change, feedback = table.get_row_at(i)
            assert (int(turn), kind, changed[change]) == (r["turn"], r["kind"], r["answer_changed"])
        assert not panel.query_one("#plot").display
        truth = app.query_one(TruthPanel)
        truth.show(ep.hidden(), ep.log[-1])
        assert text_of(truth.query_one("#hidden").render()).strip() == CONCEALED
        assert "is_correct" not in text_of(truth.query_one("#labels").render())
        panel.reveal = truth.reveal = True  # the episode ended: everything comes back
        panel.show(rows)
        assert [str(c.label) for c in table.columns.values()] == list(panel._columns) and "correct" in panel._columns
        truth.show(ep.hidden(), ep.log[-1])
        assert "is_correct" in text_of(truth.query_one("#labels").render())


@pytest.fixture
def recording(tmp_path, capsys):
    """Six judged QA episodes recorded by ``feedbackgym run``."""
    path = tmp_path / "run.jsonl"
    argv = ["run", "judged_qa_multiround", "--actor", "scripted:sycophant", "--episodes", "6", "--record", str(path), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    return path


def entry_lines(transcript: Transcript, i: int) -> list[str]:
    return [line.rstrip() for line in text_of(transcript.get_option_at_index(i).prompt).splitlines()]


async def test_the_task_heads_every_transcript_and_replay_plain(recording, capsys):
    records = read_records(recording)
    question = "In which city does the Shaleith Guild have its seat?"
    task = task_of(records[0])
    assert question in task and task == Episode(records[0].scenario, records[0].seed).instance.instruction
    assert main(["replay", str(recording), "--episode", "0", "--plain"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert plain[1 : 1 + len(task.splitlines())] == task_lines(task) and question in plain[1]
    app = FeedbackGymApp(first=ReplayScreen(recording, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        transcript = replay.query_one(Transcript)
        await until(pilot, lambda: replay.index == 0)
        await pilot.press("0")  # scrubbed to the first message: the task is still above it
        first = entry_lines(transcript, 0)
        assert first[: len(task_lines(task))] == task_lines(task)
        assert first[len(task_lines(task)) :] == plain[1 + len(task_lines(task)) : 2 + len(task_lines(task))]
    # the shared widget, live: the task shows before anyone spoke, and stays above the first message
    host = Host(Transcript(id="transcript"))
    async with host.run_test(size=SIZE):
        live = host.query_one(Transcript)
        live.show([], task)
        assert live.option_count == 1 and live.highlighted is None and live.messages == []
        assert entry_lines(live, 0) == task_lines(task)
        live.show(records[0].messages[:2])  # the task is kept
        assert live.option_count == 2 and entry_lines(live, 0)[0] == task_lines(task)[0]
        assert live.current is records[0].messages[1]
