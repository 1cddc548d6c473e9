"""A person in a role, at the console: the new messages are printed, the reply is read from stdin.
(The terminal UI seats a person through its own input box.)"""

from __future__ import annotations

from feedbackgym.agents.base import ScriptedAgent


class ConsoleHuman(ScriptedAgent):
    name = "human"
    source = "human"

    def __init__(self, role: str, prompt=input, out=print):
        self.role, self._input, self._out = role, prompt, out

    def act(self, view) -> str:
        if not any(r == self.role for r, _, _ in view.messages):
            self._out(view.instruction)
            if view.private:
                self._out(f"(only you see this) {view.private}")
        for role, _, text in view.new:
            self._out(f"{role}: {text}")
        return self._input(f"{self.role}> ")
