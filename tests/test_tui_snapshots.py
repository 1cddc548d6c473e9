"""Snapshots of the three screens at 120x40, with fixed seeds and a fixed scenario list. The SVGs
under tests/__snapshots__/ are also the screenshots in docs/tui.md; after a deliberate change of
the screens, look at the failing report, then rerun with --snapshot-update."""

import pytest

from feedbackgym.cli import main
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.tui.app import FeedbackGymApp
from feedbackgym.tui.live import LiveScreen
from feedbackgym.tui.replay import ReplayScreen
from feedbackgym.tui.session import Setup
from feedbackgym.tui.widgets import Transcript

SIZE = (120, 40)
#: The scenarios of the first release, so that new ones do not move the home screen.
SCENARIOS = ["guess_number", "guess_number_critic", "judged_qa", "judged_qa_critic", "judged_qa_multiround", "twenty_questions"]


def test_home(snap_compare):
    app = FeedbackGymApp(scenario="judged_qa_critic", scenarios=SCENARIOS)
    assert snap_compare(app, terminal_size=SIZE)


def test_live(snap_compare):
    setup = Setup.of(load_scenario("judged_qa"), 0, {"actor": "scripted:sycophant"})
    app = FeedbackGymApp(first=LiveScreen(setup), scenarios=SCENARIOS)

    async def run_to_the_end_and_pick_the_judge(pilot):
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.query_one(Transcript).highlighted = 1

    assert snap_compare(app, terminal_size=SIZE, run_before=run_to_the_end_and_pick_the_judge)


def test_live_as_the_critic(snap_compare):
    setup = Setup.of(load_scenario("judged_qa_critic"), 0, {"critic": "human"})
    app = FeedbackGymApp(first=LiveScreen(setup), scenarios=SCENARIOS)

    async def wait_for_the_person(pilot):
        while app.screen.session.play.broker.pending is None:
            await pilot.pause(0.01)
        app.screen.query_one("#say").cursor_blink = False
        await pilot.press(*"Are you sure?")

    assert snap_compare(app, terminal_size=SIZE, run_before=wait_for_the_person)


@pytest.fixture
def recording(tmp_path, monkeypatch, capsys):
    """A recording named by a relative path, so that the header does not show a temporary folder."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", "judged_qa", "--actor", "scripted:sycophant", "--judge", "scripted:malicious-grounded", "--episodes", "5"]
    assert main([*argv, "--record", "episodes.jsonl", "--quiet"]) == 0
    capsys.readouterr()
    return "episodes.jsonl"


def test_replay(snap_compare, recording):
    app = FeedbackGymApp(first=ReplayScreen(recording), scenarios=SCENARIOS)
    assert snap_compare(app, terminal_size=SIZE, press=["down", "]"])
