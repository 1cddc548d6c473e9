"""The replay browser: the episodes of a JSONL recording with their metrics (C->I: the episode
metric `flip_c2i`), a filter, and a transcript to scrub turn by turn, with a jump to the next
R->W turn (an answer wrong right after a right one; see `digest`).

Scrubbing shows the episode as it grew: the messages up to the cursor, the truth panel for the
message at the cursor, and the per-turn table and plot so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message as UIMessage
from textual.widgets import DataTable, Footer, Header, Static

from feedbackgym.records import Record, Records, read_records
from feedbackgym.tui.digest import EPISODE_COLUMNS, FILTERS, episode_row, right_to_wrong, task_of, turn_rows
from feedbackgym.tui.session import record_rewards
from feedbackgym.tui.widgets import EpisodeScreen, Transcript, TruthPanel, TurnPanel


class ReplayScreen(EpisodeScreen):
    """One recording. ``records`` skips reading the file (already read; ``skipped``: the (line,
    why) of the lines it could not use, by default those `read_records` kept with them);
    ``episode`` opens that one. Skipped lines are counted in the status line and summed up in
    one notification."""

    AUTO_FOCUS = "#episodes"
    BINDINGS = [
        Binding("left,h", "scrub(-1)", "back", priority=True),
        Binding("right,l", "scrub(1)", "forward", priority=True),
        Binding("0", "scrub_to(0)", "first", show=False),
        Binding("$", "scrub_to(-1)", "last", show=False),
        Binding("]", "right_to_wrong(1)", "next R→W"),
        Binding("[", "right_to_wrong(-1)", "prev R→W"),
        Binding("f", "filter", "filter"),
    ]
    DEFAULT_CSS = """
    ReplayScreen #episodes { height: auto; max-height: 12; }
    """

    class Loaded(UIMessage):
        def __init__(self, records: list[Record], skipped: list[tuple[int, str]], error: str | None = None):
            super().__init__()
            self.records, self.skipped, self.error = records, skipped, error

    def __init__(
        self, path: str | Path, records: Sequence[Record] | None = None, episode: int | None = None,
        skipped: Sequence[tuple[int, str]] | None = None,
    ):  # fmt: skip
        super().__init__()
        self.path = Path(path)
        self.records: list[Record] = list(records) if records is not None else []
        if skipped is None:
            skipped = records.skipped if isinstance(records, Records) else ()
        self.skipped: list[tuple[int, str]] = list(skipped)
        self.kept: list[int] = []
        self.filter_name = "all"
        self.index: int | None = None
        self.shown = 0
        self._rewards: dict[int, dict[str, float]] = {}
        self._instruction = ""
        self._preloaded = records is not None
        self._first = episode

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status", markup=False)
        table: DataTable = DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
        table.add_columns(*EPISODE_COLUMNS)
        yield table
        with Horizontal(id="main"):
            yield Transcript(id="transcript")
            yield TruthPanel()
        yield TurnPanel()
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.path)
        if self._preloaded:
            self._fill()
            self._tell_skipped()
        else:
            self.query_one("#status", Static).update(f"reading {self.path} …")
            self._read()

    @work(thread=True, exit_on_error=False)
    def _read(self) -> None:
        try:
            records = read_records(self.path)
        except OSError as e:
            self.post_message(self.Loaded([], [], e.strerror or str(e)))
            return
        self.post_message(self.Loaded(list(records), records.skipped))

    def on_replay_screen_loaded(self, event: Loaded) -> None:
        self.records, self.skipped = event.records, event.skipped
        if event.error is not None:
            self.notify(f"{self.path}: {event.error}", title="cannot read", severity="error")
        self._fill()
        self._tell_skipped()

    def _tell_skipped(self) -> None:
        """One notification for all the lines that could not be used: how many, and the first."""
        if self.skipped:
            line, why = self.skipped[0]
            why = why if len(why) <= 120 else why[:120] + "…"
            self.notify(f"{skipped(len(self.skipped))} of {self.path.name}; line {line}: {why}", title="skipped", severity="warning", timeout=10)

    # ---------------------------------------------------------------- the episode list
    def _fill(self) -> None:
        """Show the episodes the filter keeps, and open the chosen (or first) one."""
        keep = FILTERS[self.filter_name][1]
        self.kept = [i for i, r in enumerate(self.records) if keep(r)]
        table = self.query_one("#episodes", DataTable)
        table.clear()
        table.add_rows([episode_row(i, self.records[i]) for i in self.kept])
        first = self._first if self._first is not None else self.index
        self._first = None
        if first is not None and first < 0:
            first += len(self.records)
        row = self.kept.index(first) if first in self.kept else 0
        if self.kept:
            table.move_cursor(row=row)
            self._open(self.kept[row])
        else:
            self.index = None
            self.query_one(Transcript).show([], "")
            self.query_one(TurnPanel).show([])
            self._show_status()

    @on(DataTable.RowHighlighted, "#episodes")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:  # overtaken by a later move
            return
        if event.cursor_row < len(self.kept) and self.kept[event.cursor_row] != self.index:
            self._open(self.kept[event.cursor_row])

    def _open(self, index: int, shown: int | None = None) -> None:
        """Show episode ``index`` up to message ``shown`` (all of it by default)."""
        if index != self.index:
            self.index = index
            self._rewards = record_rewards(self.records[index])
            self._instruction = task_of(self.records[index])
        self._scrub(len(self.records[index].messages) if shown is None else shown)

    def _scrub(self, shown: int) -> None:
        messages = self.records[self.index].messages
        self.shown = max(1, min(shown, len(messages))) if messages else 0
        so_far = messages[: self.shown]
        self.query_one(Transcript).show(so_far, self._instruction)
        self.query_one(TurnPanel).show(turn_rows(so_far, self._rewards))
        self._show_truth()
        self._show_status()

    def hidden(self) -> dict[str, Any] | None:
        return self.records[self.index].hidden if self.index is not None else None

    def _show_status(self) -> None:
        label = FILTERS[self.filter_name][0]
        head = f"{len(self.kept)} of {len(self.records)} episodes ({label}, f to change)"
        if self.skipped:
            head += f" · {skipped(len(self.skipped))}"
        if self.index is not None:
            r = self.records[self.index]
            head += f" · episode {self.index}: {r.scenario.name} seed {r.seed} · message {self.shown}/{len(r.messages)}"
        self.query_one("#status", Static).update(head)

    # ---------------------------------------------------------------- keys
    def action_scrub(self, delta: int) -> None:
        """One message back or forward."""
        if self.index is not None:
            self._scrub(self.shown + delta)

    def action_scrub_to(self, where: int) -> None:
        """The first message, or (-1) the whole episode."""
        if self.index is not None:
            self._scrub(1 if where == 0 else len(self.records[self.index].messages))

    def action_right_to_wrong(self, direction: int) -> None:
        """Show the episode up to the next (or previous) R->W turn, in this or a later (earlier) episode."""
        if self.index is None:
            return
        at = self.shown - 1
        pos = self.kept.index(self.index) if self.index in self.kept else 0
        order = self.kept[pos:] if direction > 0 else self.kept[pos::-1]
        for index in order:
            points = right_to_wrong(self.records[index].messages)
            if index == self.index:
                points = [p for p in points if (p > at if direction > 0 else p < at)]
            if points:
                self.query_one("#episodes", DataTable).move_cursor(row=self.kept.index(index))
                self._open(index, (points[0] if direction > 0 else points[-1]) + 1)
                return
        self.notify("no further R→W turn" if direction > 0 else "no earlier R→W turn", timeout=2)

    def action_filter(self) -> None:
        """The next filter."""
        names = list(FILTERS)
        self.filter_name = names[(names.index(self.filter_name) + 1) % len(names)]
        self._fill()


def skipped(n: int) -> str:
    """``N lines skipped``."""
    return f"{n} line{'s' * (n != 1)} skipped"
