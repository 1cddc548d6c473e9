"""The live episode screen: step an episode, run it to the end, restart it, go back to a turn,
and take a seat in it.

Agents run in a thread worker (`LiveSession.move`); the worker reports back with messages, so
the UI thread only ever reads the episode. When a person's seat asks for a move, the seat bar
opens under the transcript; what the person says answers the seat's request.

A person sees what their seat's agent would, until the episode ends: the per-turn table and
plot (whether an answer is right) and the truth panel (``t``: hidden labels, the hidden truth)
stay hidden; the bar briefs them in their seat's own words (`TurnRequest.brief`), in a box
that scrolls (PgUp/PgDn, with a line that says how much there is). The layout keeps the
transcript and the input on screen from 80x24 up. Leaving an unfinished episode (Escape, quit)
asks first; SIGTERM and SIGHUP record it as aborted with the signal as its cause, then end the
app, which restores the terminal.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message as UIMessage
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Header, Select, Static

from feedbackgym.records import RecordWriter
from feedbackgym.tui.digest import turn_rows
from feedbackgym.tui.seat import SeatClosed, TurnRequest
from feedbackgym.tui.session import LiveSession, Play, Setup
from feedbackgym.tui.widgets import EpisodeScreen, FeedbackBar, Transcript, TruthPanel, TurnPanel

#: The signals that end the app cleanly, recording the episode in play as aborted.
SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Confirm(ModalScreen[bool]):
    """A yes/no question over the screen (``y``/Enter: yes, ``n``/Escape: no)."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 60; max-width: 90%; height: auto; border: thick $warning; background: $surface; padding: 0 1; }
    Confirm Horizontal { height: auto; align-horizontal: right; }
    Confirm Button { margin-left: 1; }
    """

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", markup=False)
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="warning", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SeatBar(FeedbackBar):
    """The feedback bar for a person's seat: the brief in the seat's own words (`TurnRequest.brief`)
    in a box that scrolls, with a line saying how much of it shows and the keys; the kind picker
    keeps each role's last choice."""

    BINDINGS = [
        Binding("pageup", "brief(-1)", "brief up", show=False),
        Binding("pagedown", "brief(1)", "brief down", show=False),
    ]

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.last: dict[str, str] = {}  # role -> the picker's last choice

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Static(id="hint", markup=False)

    def ask(self, request: TurnRequest) -> None:
        super().ask(request)
        self.query_one("#ask", Static).update(Text(request.brief))
        last = self.last.get(request.role)
        if last in request.choices:
            self.query_one("#kind", Select).value = last
        self.query_one("#brief").scroll_home(animate=False)
        self.call_after_refresh(self._hint)

    @on(Select.Changed, "#kind")
    def _kind(self, event: Select.Changed) -> None:
        if self.request is not None and isinstance(event.value, str):
            self.last[self.request.role] = event.value

    def action_brief(self, pages: int) -> None:
        brief = self.query_one("#brief")
        brief.scroll_to(y=brief.scroll_y + pages * max(brief.size.height - 1, 1), animate=False)
        self.call_after_refresh(self._hint)

    def on_resize(self) -> None:
        self.call_after_refresh(self._hint)

    def _hint(self) -> None:
        brief = self.query_one("#brief")
        total, height, top = brief.virtual_size.height, brief.size.height, round(brief.scroll_y)
        keys = "Enter says it · ↑/↓ the transcript"
        if total > height > 0:
            hint = f"brief: lines {top + 1}-{min(top + height, total)} of {total}, PgUp/PgDn scroll · {keys}"
        else:
            hint = keys
        self.query_one("#hint", Static).update(Text(hint, style="dim"))


class LiveScreen(EpisodeScreen):
    """One scenario played live; ``t`` shows or hides what no agent sees (never while a person
    plays an unfinished episode)."""

    AUTO_FOCUS = "#transcript"
    BINDINGS = [
        Binding("n,space", "step", "step"),
        Binding("r", "run", "run to end"),
        Binding("R", "restart", "restart"),
        Binding("N", "new_seed", "new seed"),
        Binding("b", "rewind", "back to here"),
        Binding("up", "transcript(-1)", "transcript up", show=False),
        Binding("down", "transcript(1)", "transcript down", show=False),
    ]
    DEFAULT_CSS = """
    LiveScreen #transcript { min-height: 3; }
    LiveScreen.-concealed TurnPanel { display: none; }
    LiveScreen SeatBar #hint { height: 1; }
    """

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
        self._signals: list[int] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status", markup=False)
        with Horizontal(id="main"):
            yield Transcript(id="transcript")
            yield TruthPanel()
        yield TurnPanel()
        yield SeatBar(id="bar")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FeedbackBar).display = False
        # a person should not see the answers before playing
        self.set_class(bool(self.session.setup.people), "-no-truth")
        if not self.app.is_headless:  # a test's app shares the test runner's process
            loop = asyncio.get_running_loop()
            for sig in SIGNALS:
                loop.add_signal_handler(sig, self.signalled, sig)
                self._signals.append(sig)
        self._follow(self.session.play)

    def on_resize(self) -> None:
        # the brief takes at most 30% of the rows (7 at 80x24), so the transcript keeps the rest
        # (a vh max-height is not applied to the bar's auto height, hence cells, set here)
        self.query_one("#brief").styles.max_height = min(max(3, self.size.height * 3 // 10), 14)

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self.session.close()

    @property
    def concealed(self) -> bool:
        """Is what no agent sees hidden now (a person plays and the episode has not ended)?"""
        return bool(self.session.setup.people) and not self.session.play.episode.done

    def signalled(self, sig: int) -> None:
        """SIGTERM or SIGHUP: record the episode in play first (the terminal may be gone), then end
        the app, which restores the terminal."""
        self.session.close(signal.Signals(sig).name)
        self.app.exit(return_code=128 + sig)

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
        self.set_class(self.concealed, "-concealed")
        self.query_one(Transcript).show(log, play.episode.instance.instruction)  # the task heads it, as in replay
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
            state = f"your turn ({role})" if waiting else f"next: {who}, " + ("running" if self._busy is play else "paused")
        mode = "▶ run" if self._until_end else "⏸ step: n next, r run"
        saved = self.session.writer
        where = f" · {saved.count} recorded → {saved.path}" if saved is not None else ""
        self.query_one("#status", Static).update(f"{mode} · {len(ep.log)} messages · {state}{where}")

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
            event.play.broker.shown(event.request.id)
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
        """Step mode: let the next speaker say one thing (the status line says ``step``)."""
        if self.session.play.episode.done:
            self.notify("The episode is over: R restarts it, N starts the next seed.", timeout=3)
        self._until_end = False
        self._go()
        self._show_status()

    def action_run(self) -> None:
        """Run mode: play on to the end (pausing at each of a person's turns)."""
        self._until_end = True
        self._go()
        self._show_status()

    def action_transcript(self, by: int) -> None:
        """Move the transcript's highlight (from the text box, where arrows move nothing)."""
        transcript = self.query_one(Transcript)
        if transcript.option_count:
            now = transcript.highlighted if transcript.highlighted is not None else transcript.option_count - 1
            transcript.highlighted = min(max(now + by, 0), transcript.option_count - 1)

    def action_truth(self) -> None:
        if self.concealed:
            self.notify("Hidden until the episode ends: your seat's agent would not see it.", timeout=3)
            return
        super().action_truth()

    def _ask_first(self, question: str, then: Callable[[], None]) -> None:
        """``then()`` at once if the episode has ended, else once the person says yes to ``question``."""
        if self.session.play.episode.done:
            then()
            return
        self.app.push_screen(Confirm(question), lambda yes: then() if yes else None)

    def action_leave(self) -> None:
        """Back to the home screen (asked first if the episode is unfinished), which keeps the set-up."""
        self._ask_first("Leave this episode for the home screen? It is unfinished" + self._kept(), self._leave_home)

    def confirm_quit(self) -> None:
        """Quit (asked first if the episode is unfinished)."""
        self._ask_first("Quit? The episode is unfinished" + self._kept(), self._quit)

    def _kept(self) -> str:
        if self.session.writer is None:
            return " and nothing is recorded (--record none)."
        return f": what a person said in it is recorded to {self.session.writer.path} as aborted."

    def _leave_home(self) -> None:
        self.session.close("home")
        for screen in self.app.screen_stack:
            keep = getattr(screen, "keep_setup", None)  # the home screen (below: it imports this module)
            if keep is not None:
                keep(self.session.current)
        self.app.pop_screen()

    def _quit(self) -> None:
        self.session.close("quit")
        self.app.exit()

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
