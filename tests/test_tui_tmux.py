"""The terminal UI in a real terminal: tmux runs it at 120x40, keys are sent, the pane's text is
read back. Skipped where tmux is not installed."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from feedbackgym.cli import format_transcript, main
from feedbackgym.records import read_records

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """One detached tmux session running a command, on a tmux server of its own (tests running
    in parallel would otherwise race to start and stop the shared default server)."""

    def __init__(self, command: list[str], cwd):
        self.name = f"fbg-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        # the size is the pane's: a COLUMNS or LINES inherited from the test run would override it
        shell = f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES {shlex.join(command)}; sleep 5"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", shell], check=True)

    def text(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def wait_for(self, *needles: str, timeout: float = 15.0, read=lambda text: text) -> str:
        """The pane's text once it shows every needle (as ``read`` renders it)."""
        deadline = time.monotonic() + timeout
        while True:
            text = read(self.text())
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {needles} in the pane:\n{text}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def kill_program(self) -> None:
        """SIGKILL the program in the pane (the shell's child), and wait until it is gone."""
        panes = subprocess.run([*self.tmux, "list-panes", "-t", self.name, "-F", "#{pane_pid}"], capture_output=True, text=True)
        (child,) = ps("pid=", "--ppid", panes.stdout.split()[0]).split()
        os.kill(int(child), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while ps("stat=", "-p", child).strip() not in ("", "Z"):  # neither gone nor a zombie yet
            assert time.monotonic() < deadline, "the program outlived SIGKILL"
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def ps(fields: str, *select: str) -> str:
    return subprocess.run(["ps", "-o", fields, *select], capture_output=True, text=True).stdout


def flat(text: str) -> str:
    """Text with the borders dropped and every run of white space made one space, so that a
    wrapped line reads as it was written."""
    return " ".join(text.translate(str.maketrans("▊▎▔▁", "    ")).split())


@pytest.fixture
def pane(tmp_path):
    panes = []

    def start(*args):
        p = Pane([sys.executable, "-m", "feedbackgym.tui", *args], tmp_path)
        panes.append(p)
        return p

    yield start
    for p in panes:
        p.close()


def test_replay_shows_the_recorded_transcript(tmp_path, pane, capsys):
    rec = tmp_path / "run.jsonl"
    main(["run", "judged_qa", "--actor", "scripted:sycophant", "--episodes", "3", "--record", str(rec), "--quiet"])
    capsys.readouterr()
    records = read_records(rec)
    p = pane("tui", "--replay", str(rec), "--record", "none")
    p.wait_for("3/3 episodes")
    p.keys("t")  # the transcript alone, so that its wrapped lines read on
    for i, record in enumerate(records):
        lines = [flat(line) for line in format_transcript(record).splitlines()[1:-1]]
        p.wait_for(f"episode {i}:", *lines, read=flat)
        p.keys("Down")


def a_critic_who_said(pane, out, said):
    """``feedbackgym play judged_qa_critic --as critic`` in a pane, once the person's first
    feedback is on screen."""
    p = pane("play", "judged_qa_critic", "--as", "critic", "--record", str(out))
    p.wait_for("You are the critic", "The answer is Hestoth.")
    p.keys("-l", said)
    p.keys("Enter")
    p.wait_for("critic [fp]", flat(said), read=flat)
    return p


def test_play_the_critic_in_a_terminal(tmp_path, pane):
    out = tmp_path / "people.jsonl"
    p = a_critic_who_said(pane, out, "The answer is Voudom, see doc1.")
    p.wait_for("The answer is Voudom.")
    p.keys("C-q")
    p.wait_for("Quit?")
    p.keys("y")  # quitting an unfinished episode asks first
    deadline = time.monotonic() + 10
    while all(r.journal for r in read_records(out)) and time.monotonic() < deadline:  # the quit's own record
        time.sleep(0.1)
    (rec,) = read_records(out)
    assert rec.terminate_reason == "aborted" and not rec.journal
    assert rec.messages[1].feedback.labels["source"] == "human"


def test_what_a_person_said_survives_the_terminal_being_killed(tmp_path, pane):
    out = tmp_path / "people.jsonl"
    a_critic_who_said(pane, out, "Look again at doc1.").kill_program()  # no quit, no clean-up
    (rec,) = read_records(out)
    assert rec.journal and rec.terminate_reason == "aborted"
    assert rec.messages[1].text == "Look again at doc1." and rec.messages[1].feedback.labels["source"] == "human"
