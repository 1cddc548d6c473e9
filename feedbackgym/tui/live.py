"""The live episode screen: step an episode, run it to the end, restart it, go back to a turn,
and take a seat in it.

Agents run in a thread worker (`LiveSession.move`); the worker reports back with messages, so
the UI thread only ever reads the episode. When a person's seat asks for a move, the feedback
bar opens under the transcript; what the person says answers the seat's request.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message as UIMessage
from textual.widgets import Footer, Header, Static

from feedbackgym.records import RecordWriter
from feedbackgym.tui.digest import turn_rows
from feedbackgym.tui.seat import SeatClosed, TurnRequest
from feedbackgym.tui.session import LiveSession, Play, Setup
from feedbackgym.tui.widgets import EpisodeScreen, FeedbackBar, Transcript, TruthPanel, TurnPanel


class LiveScreen(EpisodeScreen):
    """One scenario played live; ``t`` shows or hides what no agent sees (hidden at first when a
    person plays)."""

    AUTO_FOCUS = "#transcript"
    BINDINGS = [
        Binding("n,space", "step", "step"),
        Binding("r", "run", "run to end"),
        Binding("R", "restart", "restart"),
        Binding("N", "new_seed", "new seed"),
        Binding("b", "rewind", "back to here"),
    ]

    class Moved(UIMessage):
        """The worker's play has a new message (or ended)."""

        def __init__(self, play: Play):
            super().__init__()
            self.play = play

    class Asked(UIMessage):
        """A person's seat in ``play`` waits for ``request``."""

        def __init__(self, play: Play, request: TurnRequest):
            super().__init__()
            self.play, self.request = play, request

    class Stopped(UIMessage):
        """The worker for ``play`` stopped (``error`` if an agent failed)."""

        def __init__(self, play: Play, error: str | None = None):
            super().__init__()
            self.play, self.error = play, error

    def __init__(self, setup: Setup, writer: RecordWriter | None = None):
        super().__init__()
        self.session = LiveSession(setup, writer)
        self._busy: Play | None = None
        self._until_end = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status", markup=False)
        with Horizontal(id="main"):
            yield Transcript(id="transcript")
            yield TruthPanel()
        yield TurnPanel()
        yield FeedbackBar(id="bar")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FeedbackBar).display = False
        # a person should not see the answers before playing
        self.set_class(bool(self.session.setup.people), "-no-truth")
        self._follow(self.session.play)

    def on_unmount(self) -> None:
        self.session.close()

    # ---------------------------------------------------------------- the play on screen
    def _follow(self, play: Play) -> None:
        """Show ``play`` from its start, and start it when a person sits in it."""
        self.sub_title = f"{self.session.setup.scenario.name} · seed {play.episode.seed}"
        play.broker.subscribe(lambda request: self.post_message(self.Asked(play, request)))
        self.query_one(FeedbackBar).done()
        self._show(play)
        if self.session.setup.people:
            self.action_run()

    def _show(self, play: Play) -> None:
        # copies: the worker may be appending to both meanwhile
        log, rewards = list(play.episode.log), dict(play.rewards)
        self.query_one(Transcript).show(log)
        self.query_one(TurnPanel).show(turn_rows(log, rewards))
        self._show_truth()
        self._show_status()

    def hidden(self) -> dict[str, Any]:
        return self.session.play.episode.hidden()

    def _show_status(self) -> None:
        play = self.session.play
        ep = play.episode
        people = self.session.setup.people
        if ep.done:
            state = f"done: {ep.terminate_reason} · returns " + " ".join(f"{r} {v:+g}" for r, v in ep.returns.items())
        else:
            role = ep.current_role()
            who = f"{role} (you)" if role in people else role
            waiting = play.broker.pending is not None
            state = f"next: {who} · " + ("waiting for you" if waiting else "running" if self._busy is play else "paused")
        saved = self.session.writer
        where = f" · recorded {saved.count} to {saved.path}" if saved is not None else ""
        self.query_one("#status", Static).update(f"{len(ep.log)} messages · {state}{where}")

    # ---------------------------------------------------------------- the worker
    @work(thread=True, group="env", exit_on_error=False)
    def _advance(self, play: Play) -> None:
        """Move ``play`` one message, or to its end while ``run`` holds."""
        error = None
        try:
            while not play.episode.done and play is self.session.play:
                self.session.move(play)
                self.post_message(self.Moved(play))
                if not self._until_end:
                    break
        except SeatClosed:
            pass
        except Exception as e:  # an agent failed: say so, keep the UI
            error = f"{type(e).__name__}: {e}"
        self.post_message(self.Stopped(play, error))

    def _go(self) -> None:
        play = self.session.play
        if self._busy is play or play.episode.done:
            return
        self._busy = play
        self._advance(play)
        self._show_status()

    def on_live_screen_moved(self, event: Moved) -> None:
        if event.play is not self.session.play:
            return
        if self.session.settle(event.play):
            self.notify(f"episode recorded to {self.session.writer.path}", timeout=2)
        self._show(event.play)

    def on_live_screen_asked(self, event: Asked) -> None:
        if event.play is self.session.play and event.play.broker.pending == event.request:
            self.query_one(FeedbackBar).ask(event.request)
            self._show_status()

    def on_live_screen_stopped(self, event: Stopped) -> None:
        if event.play is not self.session.play:
            return
        self._busy = None
        if event.error:
            self.notify(event.error, title="agent error", severity="error")
        self._show_status()

    @on(FeedbackBar.Said)
    def _said(self, event: FeedbackBar.Said) -> None:
        if self.session.play.broker.answer(event.request.id, event.said):
            self.query_one(FeedbackBar).done()
            self.query_one(Transcript).focus()
            self._show_status()

    # ---------------------------------------------------------------- keys
    def action_step(self) -> None:
        """Let the next speaker say one thing."""
        if self.session.play.episode.done:
            self.notify("The episode is over: R restarts it, N starts the next seed.", timeout=3)
        self._until_end = False
        self._go()

    def action_run(self) -> None:
        """Play on to the end (pausing at each of a person's turns)."""
        self._until_end = True
        self._go()

    def action_restart(self) -> None:
        """The same seed again, from the start."""
        self._follow(self.session.restart())

    def action_new_seed(self) -> None:
        """The next seed, from the start."""
        self._follow(self.session.restart(self.session.play.episode.seed + 1))

    def action_rewind(self) -> None:
        """Go back to the highlighted turn: replay everything before it, and let its speaker speak again."""
        current = self.query_one(Transcript).current
        if current is None:
            return
        self._follow(self.session.rewind(current.turn))
