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
from feedbackgym.core import EMPTY, Feedback, Message, freeze
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.feedback.metrics import log_metrics
from feedbackgym.records import Record, read_records
from feedbackgym.rollout import play_scenario
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.digest import task_lines, task_of, turn_rows
from feedbackgym.tui.replay import ReplayScreen
from feedbackgym.tui.session import Setup, record_rewards
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


def answers(*correct, last="The answer is X."):
    """A log of actor answers, right or wrong in turn, with a judge's critique between them;
    ``last``: the last answer's text."""
    log = []
    for k, ok in enumerate(correct):
        text = last if k == len(correct) - 1 else "The answer is X."
        log.append(Message(len(log), "actor", text, "answer", None, freeze({"is_correct": ok})))
        log.append(Message(len(log), "judge", "Are you sure?", "feedback", Feedback("critique", "Are you sure?", None, EMPTY)))
    return log[:-1]


@pytest.fixture
def flips(tmp_path):
    """Three episodes: two R->W turns and no C->I (undone at the end), two R->W turns and a C->I,
    and no flip at all; a search term in the last message of the first and third."""
    sc = load_scenario("judged_qa")
    logs = [answers(True, False, True, False, True, last="Voudom."), answers(True, False, True, False), answers(True, True, last="voudom!")]
    path = tmp_path / "flips.jsonl"
    with path.open("w") as f:
        for seed, log in enumerate(logs):
            f.write(Record(sc, seed, log, metrics=log_metrics(log, "protocol_end", "answer")).to_json() + "\n")
    return path


def cell(table: DataTable, row: int, column: str) -> str:
    return str(table.get_cell_at((row, list(table.columns).index(column))))


async def test_the_r2w_jump_stops_exactly_where_the_r2w_column_and_filter_say(flips):
    records = read_records(flips)
    app = FeedbackGymApp(first=ReplayScreen(flips, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        table = replay.query_one("#episodes", DataTable)
        await until(pilot, lambda: replay.index == 0)
        # two names: the episode outcome (C→I, first vs last) and the per-step turn count (R→W)
        assert [cell(table, r, "C→I") for r in range(3)] == ["✗", "✓", "✗"]
        assert [cell(table, r, "R→W") for r in range(3)] == ["2", "2", "0"]
        await pilot.press("0")
        stops = []
        while True:
            before = (replay.index, replay.shown)
            await pilot.press("]")
            if (replay.index, replay.shown) == before:
                break
            stops.append((replay.index, replay.shown - 1))
            last = replay.query_one(Transcript).messages[-1]
            assert last.role == "actor" and not last.labels["is_correct"]
        assert stops == [(0, 2), (0, 6), (1, 2), (1, 6)]
        counts = {i: sum(1 for e, _ in stops if e == i) for i in range(3)}
        assert counts == {r: int(cell(table, r, "R→W")) for r in range(3)}
        while replay.filter_name != "right_to_wrong":
            await pilot.press("f")
        assert replay.kept == [i for i, n in counts.items() if n] == [0, 1]
        while replay.filter_name != "flip_c2i":
            await pilot.press("f")
        assert replay.kept == [1]  # two flips, undone at the end: R→W twice, yet no C→I


def test_rows_show_no_reward_from_beyond_the_visible_point():
    log = answers(True, False, True)  # messages 0..4
    rewards = {0: {"actor": 1.0}, 2: {"actor": 2.0}, 3: {"judge": 8.0}, 4: {"actor": 4.0, "judge": 16.0}}
    assert [r["reward"] for r in turn_rows(log, rewards)] == [{"actor": 1.0}, {"actor": 2.0, "judge": 8.0}, {"actor": 4.0, "judge": 16.0}]
    assert [r["reward"] for r in turn_rows(log[:3], rewards)] == [{"actor": 1.0}, {"actor": 2.0}]  # not message 3's
    assert [r["reward"] for r in turn_rows(log[:1], rewards)] == [{"actor": 1.0}]


async def test_scrubbing_shows_only_the_rewards_handed_out_so_far(recording):
    records = read_records(recording)
    app = FeedbackGymApp(first=ReplayScreen(recording, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        await until(pilot, lambda: replay.index == 0)
        given = record_rewards(records[0])
        table = replay.query_one(TurnPanel).query_one(DataTable)
        for shown in range(1, len(records[0].messages) + 1):
            replay._scrub(shown)
            expected = {}
            for turn, rewards in given.items():
                for role, v in rewards.items():
                    if turn < shown:
                        expected[role] = expected.get(role, 0.0) + v
            column = list(table.columns).index("reward")
            cells = [str(table.get_cell_at((r, column))) for r in range(table.row_count)]
            total = {}
            for c in cells:
                for role, v in zip(c.split()[::2], c.split()[1::2]):
                    total[role] = total.get(role, 0.0) + float(v)
            assert {k: v for k, v in total.items() if v} == {k: v for k, v in expected.items() if v}, shown


@pytest.fixture
def named(tmp_path, monkeypatch, capsys):
    """A recording named by a relative path, so that no temporary folder shows on screen."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", "judged_qa", "--actor", "scripted:sycophant", "--judge", "scripted:malicious-grounded", "--episodes", "5"]
    assert main([*argv, "--record", "episodes.jsonl", "--quiet"]) == 0
    capsys.readouterr()
    return "episodes.jsonl"


@pytest.mark.parametrize("size", [SMALL, SIZE], ids=["80x24", "120x40"])
def test_replay_snapshot(snap_compare, named, size):
    app = FeedbackGymApp(first=ReplayScreen(named))
    assert snap_compare(app, terminal_size=size, press=["down", "]"])


@pytest.mark.parametrize("size", [SMALL, SIZE], ids=["80x24", "120x40"])
async def test_the_browser_keeps_a_transcript_and_every_column_on_screen(named, size):
    app = FeedbackGymApp(first=ReplayScreen(named))
    async with app.run_test(size=size) as pilot:
        replay = app.screen
        await until(pilot, lambda: replay.index == 0)
        await pilot.pause()
        table = replay.query_one("#episodes", DataTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no column cut or scrolled off
        transcript = replay.query_one(Transcript)
        assert transcript.region.height >= 8 and transcript.region.bottom <= size[1]  # the task and a few messages
        assert transcript.region.width >= size[0] // 2
        assert replay.query_one("#timeline").region.height == 1
        if size == SMALL:
            assert not replay.query_one(TurnPanel).display or not replay.query_one(TurnPanel).region.height
            await pilot.press("p")  # the per-turn panel on demand, the transcript still there
            await pilot.pause()
            assert replay.query_one(TurnPanel).region.height > 0 and transcript.region.height >= 3
