"""The home screen: pick a scenario, a seed and who plays each role, then play it; or open a
recording in the replay browser. Coming back from an episode, it shows that episode's set-up
(scenario, seed, seats: `keep_setup`), so that the next start plays on from there. Its letter
keys never fire while a text box has the focus (the box takes the letter)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, Select, Static
from textual.widgets.select import InvalidSelectValueError

from feedbackgym.agents import scripted_names
from feedbackgym.envs.scenario import Scenario, ScenarioError, list_scenarios, load_scenario
from feedbackgym.tui.live import LiveScreen
from feedbackgym.tui.replay import ReplayScreen
from feedbackgym.tui.session import Setup, check_seat, default_spec


class SeatSpec(Validator):
    """A free-text agent spec that can sit in ``role`` (blank: the picker's choice stands)."""

    def __init__(self, role: str, family: str):
        super().__init__()
        self.role, self.family = role, family

    def validate(self, value: str) -> ValidationResult:
        err = check_seat(value.strip(), self.role, self.family) if value.strip() else None
        return self.failure(f"expected {err}") if err else self.success()


def seat_choices(role: str, family: str, current: str) -> list[str]:
    """What the picker offers ``role``: a person, then every scripted behaviour that plays in ``family``."""
    specs = ["human"] + [f"scripted:{n}" for n in scripted_names(role)]
    specs = [s for s in specs if check_seat(s, role, family) is None]
    return specs if current in specs else [current] + specs


class HomeScreen(Screen):
    """Where every session starts; ``names``: the scenarios offered (all shipped ones by default)."""

    AUTO_FOCUS = "#scenarios"
    BINDINGS = [Binding("s", "start", "start"), Binding("o", "open", "open recording")]
    DEFAULT_CSS = """
    HomeScreen #scenarios { width: 34; height: 1fr; }
    HomeScreen #setup { width: 1fr; height: 1fr; padding: 0 1; }
    HomeScreen .title { text-style: bold; margin-top: 1; }
    HomeScreen .row { height: auto; margin-top: 1; }
    HomeScreen .row Label { width: 8; }
    HomeScreen .row Select { width: 36; margin-right: 1; }
    HomeScreen .row Input { width: 1fr; }
    HomeScreen .row Button { margin-left: 1; }
    HomeScreen #seed { width: 14; }
    HomeScreen #seats { height: auto; }
    """

    def __init__(self, scenario: str | None = None, names: list[str] | None = None):
        super().__init__()
        names = names or list_scenarios()
        self.names = names
        self.first = scenario if scenario in names else names[0]
        self.scenario: Scenario | None = None
        self.kept: Setup | None = None  # the set-up of the episode last left, shown when its scenario is picked

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(*self.names, id="scenarios")
            with VerticalScroll(id="setup"):
                yield Static(id="about", markup=False)
                with Horizontal(classes="row"):
                    yield Label("seed")
                    yield Input("0", id="seed", type="integer", compact=True)
                yield Static("who plays each role (pick one, or type any agent spec)", classes="title")
                yield Vertical(id="seats")
                with Horizontal(classes="row"):
                    yield Button("Start (s)", id="start", variant="primary", compact=True)
                yield Static("or replay a recording", classes="title")
                with Horizontal(classes="row"):
                    yield Input(id="path", placeholder="path/to/episodes.jsonl", compact=True)
                    yield Button("Open (o)", id="open", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#scenarios", OptionList).highlighted = self.names.index(self.first)

    @on(OptionList.OptionHighlighted, "#scenarios")
    async def _pick(self, event: OptionList.OptionHighlighted) -> None:
        seats = self.query_one("#seats", Vertical)
        await seats.remove_children()
        try:
            sc = load_scenario(self.names[event.option_index])
        except ScenarioError as e:
            self.scenario = None
            self.query_one("#about", Static).update(str(e))
            return
        self.scenario = sc
        family = sc.task.family
        self.query_one("#about", Static).update(f"{sc.name} ({family}): {sc.description}")
        rows = []
        for role, spec in sc.roles.items():
            current = default_spec(role, spec.agent)
            rows.append(
                Horizontal(
                    Label(role),
                    Select(
                        [(s, s) for s in seat_choices(role, family, current)],
                        value=current, allow_blank=False, compact=True, id=f"agent-{role}",
                    ),
                    Input(
                        placeholder="or a spec, e.g. scripted:NAME", id=f"spec-{role}",
                        validators=[SeatSpec(role, family)], compact=True,
                    ),
                    classes="row",
                )
            )
        await seats.mount_all(rows)
        if self.kept is not None and self.kept.scenario.name == sc.name:
            self._show_seats(self.kept)

    def keep_setup(self, setup: Setup) -> None:
        """Show ``setup`` (the episode just left): its scenario highlighted, its seed, its seats."""
        self.kept = setup
        self.query_one("#seed", Input).value = str(setup.seed)
        if setup.scenario.name not in self.names:
            return
        scenarios = self.query_one("#scenarios", OptionList)
        index = self.names.index(setup.scenario.name)
        if scenarios.highlighted == index and self.scenario is not None and self.scenario.name == setup.scenario.name:
            self._show_seats(setup)  # already picked: no new pick will come to fill them
        else:
            scenarios.highlighted = index

    def _show_seats(self, setup: Setup) -> None:
        for role, spec in setup.scenario.roles.items():
            picker, typed = self.query(f"#agent-{role}").first(Select), self.query(f"#spec-{role}").first(Input)
            try:
                picker.value, typed.value = spec.agent, ""
            except InvalidSelectValueError:  # a spec the picker does not offer: in the box
                typed.value = spec.agent

    def setup(self) -> Setup:
        """The scenario, seed and seats as chosen; ValueError naming what is wrong."""
        if self.scenario is None:
            raise ValueError("pick a scenario first")
        seed = self.query_one("#seed", Input).value.strip()
        if not seed.lstrip("-").isdigit():
            raise ValueError(f"seed: got {seed!r}, expected a whole number")
        specs = {}
        for role in self.scenario.roles:
            typed = self.query_one(f"#spec-{role}", Input).value.strip()
            specs[role] = typed or str(self.query_one(f"#agent-{role}", Select).value)
        return Setup.of(self.scenario, int(seed), specs)

    @on(Button.Pressed, "#start")
    @on(Input.Submitted, "#seed")
    def action_start(self) -> None:
        """Play the scenario as set up."""
        try:
            setup = self.setup()
        except ValueError as e:
            self.notify(str(e), title="cannot start", severity="error")
            return
        self.app.push_screen(LiveScreen(setup, self.app.writer))

    @on(Button.Pressed, "#open")
    @on(Input.Submitted, "#path")
    def action_open(self) -> None:
        """Open the recording named in the path box."""
        path = Path(self.query_one("#path", Input).value.strip())
        if not path.is_file():
            self.notify(f"no file {str(path)!r}", title="cannot open", severity="error")
            self.query_one("#path", Input).focus()
            return
        self.app.push_screen(ReplayScreen(path))
