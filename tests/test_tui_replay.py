"""The replay browser and the shared transcript as an instrument (issue 18): the task in every
transcript, one meaning per flip name (C->I episodes, R->W turns) with a jump and a filter that
agree, rewards never from beyond the scrubbed point, a layout that works at 80x24, search, help,
go-to, the answer timeline, the detail pane, sorting, and what a recording's bad lines become."""

from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from feedbackgym.envs.scenario import load_scenario
from feedbackgym.rollout import play_scenario
from feedbackgym.tui.digest import turn_rows
from feedbackgym.tui.session import Setup
from feedbackgym.tui.widgets import CONCEALED, TruthPanel, TurnPanel


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
