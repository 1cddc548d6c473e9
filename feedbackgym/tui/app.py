"""The application: the home screen at the bottom of the stack, and optionally a live episode or
a recording opened on top of it."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from feedbackgym.records import RecordWriter
from feedbackgym.tui.home import HomeScreen


class FeedbackGymApp(App):
    """``writer``: where played episodes are appended (None: nothing is kept); ``scenario``: the
    one the home screen highlights; ``first``: a screen to open over the home screen at start;
    ``scenarios``: the ones the home screen offers (all shipped ones by default)."""

    TITLE = "feedbackgym"
    BINDINGS = [Binding("q", "quit", "quit")]

    def __init__(
        self,
        writer: RecordWriter | None = None,
        scenario: str | None = None,
        first: Screen | None = None,
        scenarios: list[str] | None = None,
    ):
        super().__init__()
        self.writer = writer
        self._home = HomeScreen(scenario, scenarios)
        self._first = first

    def on_mount(self) -> None:
        self.push_screen(self._home)
        if self._first is not None:
            self.push_screen(self._first)

    async def action_quit(self) -> None:
        """Quit (``q``, ctrl+q); a screen that would lose something asks first (its ``confirm_quit``)."""
        ask = getattr(self.screen, "confirm_quit", None)
        if ask is None:
            self.exit()
        else:
            ask()
