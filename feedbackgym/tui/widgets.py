"""What the live and replay screens share: the transcript, the truth panel, the per-turn table
with its plot, the feedback bar a person types into, and the screen they all sit on. Model text
is never parsed as markup: it goes to widgets as `rich.text.Text` or with markup disabled."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from rich.console import Console, ConsoleOptions, RenderResult
from rich.control import strip_control_codes
from rich.measure import Measurement
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message as UIMessage
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, OptionList, Select, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from feedbackgym.envs.engine import Message, Utterance
from feedbackgym.tui.digest import labels_of, mark, signed, tag_of
from feedbackgym.tui.seat import TurnRequest

ROLE_STYLES = {"actor": "bold cyan", "critic": "bold green", "judge": "bold magenta", "user": "bold yellow", "env": "dim"}
KIND_STYLES = {
    "answer": "cyan", "question": "cyan", "guess": "cyan", "reply": "yellow", "invalid": "bold red", "env": "dim",
    "r": "blue", "binary": "blue", "hp": "green", "fp": "green", "hn": "dark_orange", "fn": "dark_orange",
    "unary": "grey62", "critique": "magenta", "followup": "yellow",
}  # fmt: skip
#: Labels the truth panel lists first, in this order.
KEY_LABELS = ("truthful", "intent", "knowledge", "evidence_ids", "source", "is_correct", "answer_changed")


class Entry:
    """A transcript entry: a head, then the text wrapped in its own column (a hanging indent);
    ``before``: an entry shown above it in the same option (the task above the first message)."""

    def __init__(self, head: Text, body: Text, before: Entry | None = None):
        self.head, self.body, self.before = head, body, before

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.before is not None:
            yield from self.before.__rich_console__(console, options)
        indent = self.head.cell_len
        lines = self.body.wrap(console, max(options.max_width - indent, 8), overflow="fold")
        for i, line in enumerate(lines):
            yield Text.assemble(self.head if i == 0 else " " * indent, line)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        indent = self.head.cell_len
        return Measurement(indent + 8, indent + self.body.cell_len)


def task_prompt(task: str) -> Entry:
    """The task as the transcript shows it above the first message: ``task`` in the role column,
    the text in the messages' column (`digest.task_lines`, as ``feedbackgym replay`` prints it)."""
    head = Text.assemble("    ", (f"{'task':>6}", "bold"), " " * 13)
    return Entry(head, Text(strip_control_codes(task)))


def message_prompt(m: Message, task: str = "") -> Entry:
    """One transcript entry: the columns of ``feedbackgym replay``'s text (turn, role, tag) coloured
    by role and by kind, then the text (control codes removed); ``task``: shown above it."""
    tag = tag_of(m)
    kind = m.feedback.kind if m.feedback else m.kind
    head = Text.assemble(
        (f"{m.turn:>3} ", "dim"),
        (f"{m.role:>6}", ROLE_STYLES.get(m.role, "bold")),
        " ",
        (tag, KIND_STYLES.get(kind, "")),
        " " * (max(11 - len(tag), 0) + 1),
    )
    return Entry(head, Text(strip_control_codes(m.text)), task_prompt(task) if task else None)


class Transcript(OptionList):
    """The task, then the messages of one episode, one entry each (option ``i`` is message ``i``:
    the task sits above the first message, or alone, not selectable, before anyone spoke); the
    highlight picks the message the truth panel describes (and the turn to go back to)."""

    def __init__(self, **kw: Any):
        super().__init__(markup=False, **kw)
        self.messages: list[Message] = []
        self.task_text = ""

    def show(self, messages: Sequence[Message], task: str | None = None) -> None:
        """Show ``messages`` (adding or dropping entries at the end when they extend or shorten
        what is shown) and highlight the last; ``task``: the episode's task (None: keep the one
        shown; '': none)."""
        n = len(self.messages)
        changed = task is not None and task != self.task_text
        if task is not None:
            self.task_text = task
        if changed or not n or not messages:
            self.set_options([self._prompt(i, m) for i, m in enumerate(messages)])
            if not messages and self.task_text:
                self.add_option(Option(task_prompt(self.task_text), disabled=True))
        elif len(messages) >= n and all(a is b for a, b in zip(self.messages, messages)):
            self.add_options([message_prompt(m) for m in messages[n:]])
        elif len(messages) < n and all(a is b for a, b in zip(messages, self.messages)):
            for i in range(n - 1, len(messages) - 1, -1):
                self.remove_option_at_index(i)
        else:
            self.set_options([self._prompt(i, m) for i, m in enumerate(messages)])
        self.messages = list(messages)
        self.highlighted = len(messages) - 1 if messages else None
        if messages:  # once the new entries have their heights (the task makes the first one tall)
            self.call_after_refresh(self.scroll_to_highlight)

    def _prompt(self, i: int, m: Message) -> Entry:
        return message_prompt(m, self.task_text if i == 0 else "")

    @property
    def current(self) -> Message | None:
        """The highlighted message."""
        i = self.highlighted
        return self.messages[i] if i is not None and i < len(self.messages) else None

    def note(self, text: str) -> None:
        """Show no episode, only ``text`` saying why (an empty file, a filter that keeps none)."""
        self.set_options([Option(Text(text, style="italic"), disabled=True)])
        self.messages, self.task_text = [], ""


class Timeline(Static):
    """One line per episode: each scored actor answer as a mark (✓ right, ✗ wrong, ↘ an R->W
    turn, · past the visible point), the message at the cursor underlined. ``reveal=False`` (a
    person in the actor's seat) shows only how many answers there were."""

    DEFAULT_CSS = "Timeline { height: 1; padding: 0 1; }"

    def __init__(self, reveal: bool = True, **kw: Any):
        super().__init__(markup=False, **kw)
        self.reveal = reveal

    def show(self, points: Sequence[tuple[int, bool | None, bool]], at: int | None = None) -> None:
        """``points``: `digest.timeline`; ``at``: the turn of the message at the cursor."""
        line = Text("answers ", style="bold")
        if not self.reveal:
            line.append(f"{sum(ok is not None for _, ok, _ in points)} so far {CONCEALED}")
        elif not points:
            line.append("none", style="dim")
        for turn, ok, flip in points if self.reveal else ():
            glyph, style = ("·", "dim") if ok is None else ("↘", "bold red") if flip else (mark(ok), "green" if ok else "red")
            line.append(glyph, style + (" underline reverse" if turn == at else ""))
            line.append(" ")
        if self.reveal and points:
            flips = sum(flip for _, _, flip in points)
            line.append(f" {flips} R→W so far", style="dim")
        self.update(line)


class PromptScreen(ModalScreen[str | None]):
    """A one-line question over the screen (search, go to): Enter answers, Escape cancels."""

    DEFAULT_CSS = """
    PromptScreen { align: center top; }
    PromptScreen > Vertical { width: 70; max-width: 100%; height: auto; margin-top: 2; padding: 0 1; border: tall $accent; background: $panel; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = ""):
        super().__init__()
        self.title_text, self.value, self.placeholder = title, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="answer", compact=True)

    @on(Input.Submitted, "#answer")
    def _answer(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DetailScreen(ModalScreen[None]):
    """One message whole: its head, its text wrapped at any length, and (``reveal``) its labels;
    ``c`` copies the text (`App.copy_to_clipboard`, OSC 52: terminals without it copy nothing)."""

    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll { width: 90%; height: 90%; border: tall $accent; background: $panel; padding: 0 1; }
    DetailScreen #detail-labels { margin-top: 1; color: $text-muted; }
    """
    BINDINGS = [Binding("c", "copy", "copy text"), Binding("escape,q,enter", "close", "close")]

    def __init__(self, message: Message, task: str = "", reveal: bool = True):
        super().__init__()
        self.message, self.task_text, self.reveal = message, task, reveal

    def compose(self) -> ComposeResult:
        m = self.message
        with VerticalScroll():
            yield Static(Text(f"turn {m.turn} · {m.role} {tag_of(m)} · {len(m.text)} characters", style="bold"))
            if self.task_text and m.turn == 0:
                yield Static(Text("task: " + strip_control_codes(self.task_text), style="italic"))
            yield Static(Text(strip_control_codes(m.text)), id="detail-text")
            if self.reveal:
                yield Static(Text("labels\n" + (_yaml(labels_of(m)) or "(none)")), id="detail-labels")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.message.text)
        self.notify(f"copied {len(self.message.text)} characters of turn {self.message.turn}", timeout=3)

    def action_close(self) -> None:
        self.dismiss(None)


#: What the marks on the episode screens mean (the help overlay's second half).
MARKS = """✓ yes / right   ✗ no / wrong   · does not apply (or, on the timeline, not reached yet)
C→I  an episode whose first answer is right and last is wrong (the metric flip_c2i)
I→C  an episode whose first answer is wrong and last is right (flip_i2c)
R→W  one answer wrong right after a right one (↘ on the timeline; ] and [ jump to them);
     the R→W column counts them: an episode can have two and no C→I (right, wrong, right)
1st / last   the first / last answer right;  human   a person said something in it
task   what the actor was asked, above the first message"""


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below (its active bindings, with what they do) and what the marks mean."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: 90%; border: tall $accent; background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "close")]

    def __init__(self, keys: Sequence[tuple[str, str]], marks: str = MARKS):
        super().__init__()
        self.keys, self.marks = keys, marks

    def compose(self) -> ComposeResult:
        width = max((len(k) for k, _ in self.keys), default=0)
        keys = "\n".join(f"{k:<{width}}  {what}" for k, what in self.keys)
        with VerticalScroll():
            yield Static(Text("keys", style="bold"))
            yield Static(Text(keys))
            yield Static(Text("\nmarks", style="bold"))
            yield Static(Text(self.marks))

    def action_close(self) -> None:
        self.dismiss(None)


def keys_of(screen: Screen) -> list[tuple[str, str]]:
    """The keys active on ``screen`` with what they do, one line each: the screen's own first,
    then the app's, then those of the widget in focus."""
    seen: dict[str, list[str]] = {}
    rank = {screen: 0, screen.app: 1}
    for active in sorted(screen.active_bindings.values(), key=lambda a: rank.get(a.node, 2)):
        what = active.binding.description or active.binding.action
        seen.setdefault(what, []).append(screen.app.get_key_display(active.binding))
    return [(", ".join(dict.fromkeys(keys)), what) for what, keys in seen.items()]


def _yaml(data: Any) -> str:
    """``data`` as YAML; whatever JSON cannot hold is shown as its ``str``."""
    plain = json.loads(json.dumps(data, default=str))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=1000).rstrip()


class TruthPanel(VerticalScroll):
    """What no agent sees: the highlighted message's labels and the instance's hidden truth.
    ``reveal=False`` (a person in a seat, before the episode ends) shows neither; set
    ``reveal`` and show again to uncover them."""

    DEFAULT_CSS = """
    TruthPanel .title { text-style: bold; }
    TruthPanel #hidden-title { margin-top: 1; }
    """

    def __init__(self, reveal: bool = True, **kw: Any):
        super().__init__(**kw)
        self.reveal = reveal

    def compose(self) -> ComposeResult:
        yield Static("labels", classes="title", id="labels-title", markup=False)
        yield Static(id="labels", markup=False)
        yield Static("hidden truth", classes="title", id="hidden-title")
        yield Static(id="hidden", markup=False)

    def show(self, hidden: Mapping[str, Any], message: Message | None) -> None:
        self.query_one("#hidden", Static).update(Text(_yaml(dict(hidden)) if self.reveal else CONCEALED))
        title, body = "labels", ""
        if not self.reveal:
            body = CONCEALED
        elif message is not None:
            labels = labels_of(message)
            ordered = {k: labels.pop(k) for k in KEY_LABELS if k in labels} | dict(sorted(labels.items()))
            title = f"labels of turn {message.turn} ({message.role} {tag_of(message)})"
            body = _yaml(ordered) if ordered else "(none)"
        self.query_one("#labels-title", Static).update(Text(title))
        self.query_one("#labels", Static).update(Text(body))


#: What a panel says in place of what a person in a seat may not see yet.
CONCEALED = "(hidden until the episode ends)"
#: The per-turn table's columns and their widths.
TURN_COLUMNS = {"turn": 4, "move": 8, "correct": 7, "changed": 7, "feedback": 8, "truthful": 8, "reward": 16}
#: The columns that tell whether an answer is right (directly or through a reward for it).
REVEALING = ("correct", "truthful", "reward")


class TurnPanel(Horizontal):
    """Per actor move: its metrics and the reward it earned, with a plot of correctness.
    ``reveal=False`` (a person in the actor's seat, before the episode ends) leaves out every
    column that tells whether an answer is right, and the plot; set ``reveal`` and show again."""

    DEFAULT_CSS = """
    TurnPanel { height: 10; }
    TurnPanel #turns { width: 3fr; height: 1fr; }
    TurnPanel #plot { width: 2fr; height: 1fr; }
    """

    def __init__(self, reveal: bool = True, **kw: Any):
        super().__init__(**kw)
        self.reveal = reveal
        self._columns: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield DataTable(id="turns", cursor_type="none", zebra_stripes=True)
        yield PlotextPlot(id="plot")

    def show(self, rows: Sequence[Mapping[str, Any]]) -> None:
        table = self.query_one("#turns", DataTable)
        columns = tuple(c for c in TURN_COLUMNS if self.reveal or c not in REVEALING)
        if columns != self._columns:
            table.clear(columns=True)
            for label in columns:
                table.add_column(label, width=TURN_COLUMNS[label], key=label)
            self._columns = columns
        table.clear()
        for r in rows:
            cells = {
                "turn": str(r["turn"]),
                "move": r["kind"],
                "correct": mark(r["is_correct"]),
                "changed": mark(r["answer_changed"]),
                "feedback": r["feedback_kind"] or "-",
                "truthful": mark(r["feedback_truthful"]),
                "reward": signed(r["reward"]),
            }
            table.add_row(*(cells[c] for c in columns))
        plot = self.query_one(PlotextPlot)
        plot.display = self.reveal
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        xs = list(range(1, len(rows) + 1))
        plt.title("correct per actor move")
        if xs:
            plt.plot(xs, [1 if r["is_correct"] else 0 for r in rows], marker="dot")
            plt.xticks(xs)
        plt.ylim(-0.2, 1.2)
        plt.yticks([0, 1], ["wrong", "right"])
        plot.refresh()


class FeedbackBar(Vertical):
    """Where a person takes their turn: who they are, the task, what only they know, a picker for
    the kind of feedback, and a box for the text (Enter says it)."""

    DEFAULT_CSS = """
    FeedbackBar { height: auto; padding: 0 1; border-top: tall $accent; }
    FeedbackBar #brief { height: auto; max-height: 10; }
    FeedbackBar Horizontal { height: auto; }
    FeedbackBar #kind { width: 18; margin-right: 1; }
    FeedbackBar #say { width: 1fr; }
    """

    class Said(UIMessage):
        """The person's move for ``request``."""

        def __init__(self, request: TurnRequest, said: str | Utterance):
            super().__init__()
            self.request, self.said = request, said

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.request: TurnRequest | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="brief"):
            yield Static(id="ask", markup=False)
        with Horizontal():
            yield Select([], id="kind", allow_blank=True, compact=True)
            yield Input(id="say", placeholder="type your move, Enter to say it", compact=True)

    def ask(self, request: TurnRequest) -> None:
        """Show the bar for ``request`` and put the cursor in the text box."""
        self.request = request
        brief = f"Your turn, {request.role} (turn {request.turn}). The task: {request.instruction}"
        if request.private:
            brief += f"\nOnly you see this: {request.private}"
        self.query_one("#ask", Static).update(Text(brief))
        kind = self.query_one("#kind", Select)
        kind.set_options([(c, c) for c in request.choices])
        kind.display = bool(request.choices)
        if request.choices:
            kind.value = request.choices[0]
        box = self.query_one("#say", Input)
        box.clear()
        self.display = True
        box.focus()

    def done(self) -> None:
        self.request = None
        self.display = False

    @on(Input.Submitted, "#say")
    def _say(self, event: Input.Submitted) -> None:
        event.stop()
        if self.request is None:
            return
        choice = self.query_one("#kind", Select).value
        try:
            said = self.request.utterance(choice if isinstance(choice, str) else None, event.value)
        except ValueError as e:
            self.notify(str(e), severity="warning")
            return
        self.post_message(self.Said(self.request, said))


class EpisodeScreen(Screen):
    """A screen that shows one episode: a status line, the transcript beside the truth panel (``t``
    hides or shows it; it follows the transcript's highlight), the per-turn panel, and ``escape``
    back home. Subclasses say where the hidden truth comes from."""

    BINDINGS = [Binding("t", "truth", "truth"), Binding("escape", "leave", "home")]
    DEFAULT_CSS = """
    EpisodeScreen #status { height: 1; padding: 0 1; background: $boost; }
    EpisodeScreen #main { height: 1fr; }
    EpisodeScreen #transcript { width: 3fr; height: 1fr; }
    EpisodeScreen TruthPanel { width: 2fr; height: 1fr; border: tall $border-blurred; padding: 0 1; }
    EpisodeScreen.-no-truth TruthPanel { display: none; }
    """

    def hidden(self) -> Mapping[str, Any] | None:
        """The hidden truth of the episode shown (None: no episode)."""
        raise NotImplementedError

    def _show_truth(self) -> None:
        self.query_one(TruthPanel).show(self.hidden() or {}, self.query_one(Transcript).current)

    @on(OptionList.OptionHighlighted, "#transcript")
    def _highlighted(self) -> None:
        self._show_truth()

    def action_truth(self) -> None:
        self.toggle_class("-no-truth")

    def action_leave(self) -> None:
        self.app.pop_screen()
