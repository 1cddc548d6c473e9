"""The replay browser: the episodes of a JSONL recording with their metrics (C->I: the episode
metric `flip_c2i`; R->W: how many answers were wrong right after a right one; see `digest`), a
filter, a sort, and a transcript headed by the task to scrub turn by turn, with a jump to the
next R->W turn, a search over every message of the episodes the filter keeps, a go-to, an answer
timeline, a detail pane for a long message (with copy) and a help overlay (``?``).

Scrubbing shows the episode as it grew: the messages up to the cursor, the truth panel for the
message at the cursor, and the per-turn table and plot so far (rewards up to the cursor, none
from later messages). Below 30 rows the header and the per-turn panel give their rows to the
transcript (``p`` shows the panel); below 100 columns the truth panel starts hidden (``t``).
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
from textual.widgets import DataTable, Footer, Header, OptionList, Static

from feedbackgym.records import Record, Records, read_records
from feedbackgym.tui.digest import FILTERS, episode_columns, episode_row, find, right_to_wrong, sort_key, task_of, timeline, turn_rows
from feedbackgym.tui.session import record_rewards
from feedbackgym.tui.widgets import DetailScreen, EpisodeScreen, HelpScreen, PromptScreen, Timeline, Transcript, TruthPanel, TurnPanel, keys_of


class ReplayScreen(EpisodeScreen):
    """One recording. ``records`` skips reading the file (already read; ``skipped``: the (line,
    why) of the lines it could not use, by default those `read_records` kept with them);
    ``episode`` opens that one. Skipped lines are counted in the status line and summed up in
    one notification; a file with no episode says so where the transcript would be."""

    AUTO_FOCUS = "#episodes"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("left,h", "scrub(-1)", "back", priority=True),
        Binding("right,l", "scrub(1)", "forward", priority=True),
        Binding("0", "scrub_to(0)", "first message", show=False),
        Binding("$", "scrub_to(-1)", "whole episode", show=False),
        Binding("]", "right_to_wrong(1)", "next R→W"),
        Binding("[", "right_to_wrong(-1)", "prev R→W", show=False),
        Binding("f", "filter", "filter"),
        Binding("slash", "search", "search"),
        Binding("n", "next_match(1)", "next match", show=False),
        Binding("N", "next_match(-1)", "previous match", show=False),
        Binding("g", "goto", "go to", show=False),
        Binding("d", "detail", "detail", show=False),
        Binding("s", "sort", "sort", show=False),
        Binding("S", "reverse", "reverse sort", show=False),
        Binding("p", "turns", "per-turn panel", show=False),
        Binding("question_mark", "help", "help"),
    ]
    DEFAULT_CSS = """
    ReplayScreen #episodes { height: auto; max-height: 12; }
    ReplayScreen.-short #episodes { max-height: 6; }
    ReplayScreen.-short Header { display: none; }
    ReplayScreen.-short TurnPanel { display: none; }
    ReplayScreen.-short.-turns TurnPanel { display: block; height: 8; }
    ReplayScreen #main { min-height: 5; }
    ReplayScreen #status { height: auto; max-height: 2; }
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
        self.sort_by, self.sort_reverse = "#", False
        self.index: int | None = None
        self.shown = 0
        self.query_text = ""
        self.matches: list[tuple[int, int]] = []
        self.error: str | None = None
        self._rewards: dict[int, dict[str, float]] = {}
        self._tasks: dict[int, str] = {}
        self._preloaded = records is not None
        self._first = episode

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status", markup=False)
        yield DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
        yield Timeline(id="timeline")
        with Horizontal(id="main"):
            yield Transcript(id="transcript")
            yield TruthPanel()
        yield TurnPanel()
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.path)
        self.set_class(self.app.size.width < 100, "-no-truth")
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
        self.records, self.skipped, self.error = event.records, event.skipped, event.error
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

    def task(self, index: int) -> str:
        """Episode ``index``'s task (drawn once, then kept)."""
        if index not in self._tasks:
            self._tasks[index] = task_of(self.records[index])
        return self._tasks[index]

    # ---------------------------------------------------------------- the episode list
    def _fill(self) -> None:
        """Show the episodes the filter keeps, in the sort's order, and open the chosen (or first) one."""
        keep = FILTERS[self.filter_name][1]
        key = sort_key(self.sort_by)
        kept = [i for i, r in enumerate(self.records) if keep(r)]
        self.kept = sorted(kept, key=lambda i: key(i, self.records[i]), reverse=self.sort_reverse)
        self._refind()
        table = self.query_one("#episodes", DataTable)
        table.clear(columns=True)
        columns = episode_columns(self.records)
        if self.sort_by not in columns:
            self.sort_by = "#"
        arrow = " ▼" if self.sort_reverse else " ▲"
        for c in columns:
            table.add_column(c + arrow if c == self.sort_by and (c != "#" or self.sort_reverse) else c, key=c)
        table.add_rows([episode_row(i, self.records[i], columns) for i in self.kept])
        first = self._first if self._first is not None else self.index
        self._first = None
        if first is not None and first < 0:
            first += len(self.records)
        row = self.kept.index(first) if first in self.kept else 0
        if self.kept:
            table.move_cursor(row=row)
            self._open(self.kept[row], self.shown if self.kept[row] == self.index else None)
        else:
            self.index = None
            self.query_one(Transcript).note(self._nothing())
            self.query_one(Timeline).show([])
            self.query_one(TurnPanel).show([])
            self._show_status()

    def _nothing(self) -> str:
        """Why no episode is shown, and what to do."""
        if self.error is not None:
            return f"{self.path} cannot be read: {self.error}."
        if not self.records:
            why = f" ({skipped(len(self.skipped))}, none readable as an episode)" if self.skipped else ""
            return f"{self.path} holds no episodes{why}. Record some with: feedbackgym run SCENARIO --record {self.path}"
        return f"No episode of {len(self.records)} is kept by the filter '{FILTERS[self.filter_name][0]}'; f for the next filter."

    @on(DataTable.RowHighlighted, "#episodes")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:  # overtaken by a later move
            return
        if event.cursor_row < len(self.kept) and self.kept[event.cursor_row] != self.index:
            self._open(self.kept[event.cursor_row])

    @on(DataTable.HeaderSelected, "#episodes")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's header sorts by it (a second click reverses)."""
        column = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if column == self.sort_by else False
        self.sort_by = column
        self._fill()

    def _open(self, index: int, shown: int | None = None) -> None:
        """Show episode ``index`` up to message ``shown`` (all of it by default)."""
        if index != self.index:
            self.index = index
            self._rewards = record_rewards(self.records[index])
        self._scrub(len(self.records[index].messages) if shown is None else shown)

    def _scrub(self, shown: int) -> None:
        messages = self.records[self.index].messages
        self.shown = max(1, min(shown, len(messages))) if messages else 0
        so_far = messages[: self.shown]
        self.query_one(Transcript).show(so_far, self.task(self.index))
        self.query_one(Timeline).show(timeline(messages, self.shown), self.shown - 1)
        self.query_one(TurnPanel).show(turn_rows(so_far, self._rewards))
        self._show_truth()
        self._show_status()

    def _move_to(self, index: int, shown: int) -> None:
        """Open episode ``index`` (one the filter keeps) up to message ``shown``, its row under the cursor."""
        self.query_one("#episodes", DataTable).move_cursor(row=self.kept.index(index))
        self._open(index, shown)

    def hidden(self) -> dict[str, Any] | None:
        return self.records[self.index].hidden if self.index is not None else None

    def _show_status(self) -> None:
        head = f"{len(self.kept)}/{len(self.records)} episodes"
        if self.filter_name != "all":
            head += f" ({FILTERS[self.filter_name][0].split(':')[0]}; f: next filter)"
        if self.skipped:
            head += f" · {skipped(len(self.skipped))}"
        if self.index is not None:
            r = self.records[self.index]
            head += f" · episode {self.index}: {r.scenario.name} seed {r.seed} · message {self.shown}/{len(r.messages)}"
        if self.query_text:
            here = (self.index, self.shown - 1)
            at = f"{self.matches.index(here) + 1} of " if here in self.matches else ""
            head += f" · '{self.query_text}': {at}{len(self.matches)} matches (n/N)"
        head += " · ? help"
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
        """Show the episode up to the next (or previous) R->W turn, in this or a later (earlier)
        episode the filter keeps, in the table's order."""
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
                self._move_to(index, (points[0] if direction > 0 else points[-1]) + 1)
                return
        self.notify("no further R→W turn" if direction > 0 else "no earlier R→W turn", timeout=2)

    def action_filter(self) -> None:
        """The next filter."""
        names = list(FILTERS)
        self.filter_name = names[(names.index(self.filter_name) + 1) % len(names)]
        self._fill()

    def action_sort(self) -> None:
        """Sort by the next column."""
        columns = episode_columns(self.records)
        self.sort_by = columns[(columns.index(self.sort_by) + 1) % len(columns)] if self.sort_by in columns else "#"
        self._fill()

    def action_reverse(self) -> None:
        """Reverse the sort."""
        self.sort_reverse = not self.sort_reverse
        self._fill()

    def action_turns(self) -> None:
        """Show or hide the per-turn panel (hidden by default below 30 rows)."""
        self.toggle_class("-turns")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(keys_of(self)))

    def action_detail(self) -> None:
        """The highlighted message whole, in a pane that copies it (``c``)."""
        current = self.query_one(Transcript).current
        if current is not None:
            self.app.push_screen(DetailScreen(current, self.task(self.index) if self.index is not None else ""))

    @on(OptionList.OptionSelected, "#transcript")
    def _selected(self) -> None:
        self.action_detail()

    # ---------------------------------------------------------------- search and go to
    def action_search(self) -> None:
        """Ask for text to find in every message (and task) of the episodes the filter keeps."""
        self.app.push_screen(PromptScreen("find in the messages of every episode kept (Enter; Escape cancels)", self.query_text), self._searched)

    def _searched(self, text: str | None) -> None:
        if text is None:
            return
        self.query_text = text
        self._refind()
        if not self.matches:
            self._show_status()
            if text:
                self.notify(f"'{text}' is in no message of the episodes kept", timeout=3)
            return
        self.action_next_match(1, inclusive=True)

    def _refind(self) -> None:
        self.matches = find(self.records, self.kept, self.query_text, self.task) if self.query_text else []

    def action_next_match(self, direction: int, inclusive: bool = False) -> None:
        """The next (previous) match after (before) the cursor, in the table's order, round to the start."""
        if not self.matches or self.index is None:
            return
        rank = {i: k for k, i in enumerate(self.kept)}
        here = (rank.get(self.index, -1), self.shown - 1)
        order = sorted(self.matches, key=lambda h: (rank[h[0]], h[1]))
        if direction > 0:
            later = [h for h in order if ((rank[h[0]], h[1]) >= here if inclusive else (rank[h[0]], h[1]) > here)]
            index, turn = (later or order)[0]
        else:
            earlier = [h for h in order if (rank[h[0]], h[1]) < here]
            index, turn = (earlier or order)[-1]
        self._move_to(index, max(turn, 0) + 1)

    def action_goto(self) -> None:
        """Ask where to go: an episode (``3``), a message of it (``3:5``) or of this one (``:5``)."""
        self.app.push_screen(PromptScreen("go to: EPISODE, EPISODE:MESSAGE or :MESSAGE (the turn number)", placeholder="3:5"), self._goto)

    def _goto(self, where: str | None) -> None:
        if not where or not where.strip():
            return
        episode, _, turn = where.strip().partition(":")
        try:
            index = int(episode) if episode.strip() else self.index
            shown = int(turn) + 1 if turn.strip() else None
        except ValueError:
            self.notify(f"go to {where!r}: expected EPISODE, EPISODE:MESSAGE or :MESSAGE, as numbers", severity="warning")
            return
        if index is None or index not in self.kept:
            kept = f"; the filter keeps {len(self.kept)} of {len(self.records)}" if len(self.kept) < len(self.records) else ""
            self.notify(f"no episode {index} to show (0..{len(self.records) - 1}{kept})", severity="warning")
            return
        self._move_to(index, shown)


def skipped(n: int) -> str:
    """``N lines skipped``."""
    return f"{n} line{'s' * (n != 1)} skipped"
