"""The replay browser and the shared transcript as an instrument (issue 18): the task in every
transcript, one meaning per flip name (C->I episodes, R->W turns) with a jump and a filter that
agree, rewards never from beyond the scrubbed point, a layout that works at 80x24, search, help,
go-to, the answer timeline, the detail pane, sorting, and what a recording's bad lines become."""


import pytest
from pilot import until
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from feedbackgym.cli import main
from feedbackgym.core import EMPTY, Feedback, Message, freeze
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.feedback.metrics import log_metrics
from feedbackgym.records import Record, read_records
from feedbackgym.rollout import play_scenario
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.digest import task_lines, task_of, timeline, turn_rows
from feedbackgym.tui.replay import ReplayScreen
from feedbackgym.tui.session import Setup, record_rewards
from feedbackgym.tui.widgets import CONCEALED, DetailScreen, HelpScreen, PromptScreen, Timeline, Transcript, TruthPanel, TurnPanel

SIZE = (120, 40)
SMALL = (80, 24)




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
    logs = [answers(True, False, True, False, True, last="Zyxwv."), answers(True, False, True, False), answers(True, True, last="zyxwv!")]
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


async def test_search_across_the_episodes_kept_and_go_to(flips):
    records = read_records(flips)
    app = FeedbackGymApp(first=ReplayScreen(flips, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        await until(pilot, lambda: replay.index == 0)
        await pilot.press("0", "slash")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"ZYXWV", "enter")  # case does not matter
        await until(pilot, lambda: app.screen is replay)
        assert replay.matches == [(0, 8), (2, 2)]
        assert (replay.index, replay.shown) == (0, 9) and "Zyxwv" in replay.query_one(Transcript).messages[-1].text
        assert "'ZYXWV': 1 of 2 matches" in str(replay.query_one("#status").render())
        await pilot.press("n")  # the next match is in another episode
        assert (replay.index, replay.shown) == (2, 3)
        await pilot.press("n")  # round to the first
        assert (replay.index, replay.shown) == (0, 9)
        await pilot.press("N")
        assert (replay.index, replay.shown) == (2, 3)
        # go to an episode, a message of it, or of this one; what cannot be gone to is said
        steps = [("1:4", (1, 5), ""), (":2", (1, 3), ""), ("2", (2, 3), ""), ("9", (2, 3), "no episode 9"), ("x:y", (2, 3), "expected")]
        for where, expected, told in steps:
            await pilot.press("g")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            await pilot.press(*where, "enter")
            await until(pilot, lambda: app.screen is replay)
            assert (replay.index, replay.shown) == expected, where
            assert not told or told in list(app._notifications)[-1].message
        assert replay.query_one("#episodes", DataTable).cursor_row == 2
        while replay.filter_name != "flip_c2i":  # search only what the filter keeps
            await pilot.press("f")
        assert replay.matches == []


async def test_the_timeline_marks_each_answer_and_hides_what_is_not_reached(flips):
    records = read_records(flips)
    app = FeedbackGymApp(first=ReplayScreen(flips, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        await until(pilot, lambda: replay.index == 0)
        line = replay.query_one(Timeline)
        assert text_of(line.render()).split() == ["answers", "✓", "↘", "✓", "↘", "✓", "2", "R→W", "so", "far"]
        await pilot.press("0")
        assert text_of(line.render()).split()[:6] == ["answers", "✓", "·", "·", "·", "·"]
        hidden = Timeline(reveal=False)
        assert timeline(records[0].messages, 3) == [(0, True, False), (2, False, True), (4, None, False), (6, None, False), (8, None, False)]
    host = Host(hidden)
    async with host.run_test(size=SIZE):
        hidden.show(timeline(records[0].messages, 3))
        shown = text_of(hidden.render())
        assert "✓" not in shown and "✗" not in shown and "↘" not in shown and "2 so far" in shown


async def test_the_detail_pane_shows_a_long_message_whole_and_copies_it_and_help_explains(tmp_path):
    long = "Because " + "the evidence says so, " * 250 + "it is Voudom."
    sc = load_scenario("judged_qa")
    log = answers(True, False, last=long)
    path = tmp_path / "long.jsonl"
    path.write_text(Record(sc, 0, log, metrics=log_metrics(log, "protocol_end", "answer")).to_json() + "\n")
    app = FeedbackGymApp(first=ReplayScreen(path, read_records(path)))
    async with app.run_test(size=SMALL) as pilot:
        replay = app.screen
        await until(pilot, lambda: replay.index == 0)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = app.screen
        body = detail.query_one("#detail-text")
        assert body.render().plain == long and body.virtual_size.height >= len(long) // body.size.width  # whole, wrapped
        await pilot.press("c")
        assert app.clipboard == long
        await pilot.press("escape")
        assert app.screen is replay
        await pilot.press("question_mark")  # help: the keys and what the marks mean
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = "\n".join(text_of(s.render()) for s in app.screen.query(Static))
        for key, what in [("/", "search"), ("]", "next R→W"), ("g", "go to"), ("d", "detail"), ("s", "sort"), ("f", "filter")]:
            assert any(line.split()[:1] == [key] and what in line for line in shown.splitlines()), key
        for mark_name in ("C→I", "R→W", "I→C", "✓", "✗", "·", "↘"):
            assert mark_name in shown
        await pilot.press("escape")
        assert app.screen is replay


async def test_sort_by_any_column_and_back(flips):
    records = read_records(flips)
    app = FeedbackGymApp(first=ReplayScreen(flips, records))
    async with app.run_test(size=SIZE) as pilot:
        replay = app.screen
        table = replay.query_one("#episodes", DataTable)
        await until(pilot, lambda: replay.index == 0)
        while replay.sort_by != "C→I":
            await pilot.press("s")
        assert replay.kept == [0, 2, 1] and [cell(table, r, "#") for r in range(3)] == ["0", "2", "1"]
        await pilot.press("S")
        assert replay.kept == [1, 2, 0]  # reversed (ties keep their index order, reversed)
        table.move_cursor(row=0)
        await until(pilot, lambda: replay.index == 1)
        await pilot.press("0")
        for expected in [(1, 3), (1, 7), (0, 3)]:  # the jump follows the table's order: 1, 2 (none), 0
            await pilot.press("]")
            assert (replay.index, replay.shown) == expected
        assert str(table.columns[table.ordered_columns[list(table.columns).index("C→I")].key].label) == "C→I ▼"
        table.post_message(DataTable.HeaderSelected(table, table.columns["R→W"].key, 0, table.columns["R→W"].label))
        await until(pilot, lambda: replay.sort_by == "R→W")
        assert [int(cell(table, r, "R→W")) for r in range(3)] == [0, 2, 2]


def bad_file(tmp_path, good: int, bad: int):
    """A recording of ``good`` episodes followed by ``bad`` unreadable lines (a binary tail)."""
    sc = load_scenario("judged_qa")
    lines = [Record(sc, s, answers(True), metrics=log_metrics(answers(True), "protocol_end", "answer")).to_json().encode() for s in range(good)]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines + [bytes([0xFF, 0x00, 0x9C, n]) for n in range(bad)]) + b"\n")
    return path


@pytest.mark.parametrize("handed", [True, False], ids=["replay FILE", "read in the app"])
async def test_skipped_lines_are_counted_in_the_app_in_one_notification(tmp_path, handed):
    path = bad_file(tmp_path, 2, 27)
    screen = ReplayScreen(path, read_records(path)) if handed else ReplayScreen(path)
    app = FeedbackGymApp(first=screen)
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: screen.index == 0)
        assert "27 lines skipped" in str(screen.query_one("#status").render())
        told = [n for n in app._notifications if "skipped" in n.message]
        assert len(told) == 1 and "27 lines skipped" in told[0].message and "line 3" in told[0].message


@pytest.mark.parametrize("good, bad", [(0, 0), (0, 3)])
async def test_a_file_with_no_episode_says_so_instead_of_a_blank_screen(tmp_path, good, bad):
    path = bad_file(tmp_path, good, bad) if bad else tmp_path / "empty.jsonl"
    if not bad:
        path.write_text("")
    screen = ReplayScreen(path)
    app = FeedbackGymApp(first=screen)
    async with app.run_test(size=SMALL) as pilot:
        transcript = screen.query_one(Transcript)
        await until(pilot, lambda: transcript.option_count == 1)
        said = text_of(transcript.get_option_at_index(0).prompt)
        assert "holds no episodes" in said and "--record" in said
        assert ("3 lines skipped" in said) == bool(bad)
        await pilot.press("]", "n", "d", "g", "escape", "slash", "escape", "s", "f")  # nothing to act on: no crash
        assert app.screen is screen


async def test_the_home_screen_opens_a_bad_file_with_one_summary(tmp_path):
    path = bad_file(tmp_path, 1, 27)
    app = FeedbackGymApp()
    async with app.run_test(size=SMALL) as pilot:
        home = app.screen
        home.query_one("#path").value = str(path)
        home.query_one("#path").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReplayScreen) and app.screen.index == 0)
        told = [n for n in app._notifications if "skipped" in n.message or "line" in n.message]
        assert len(told) == 1 and "27 lines skipped" in told[0].message
