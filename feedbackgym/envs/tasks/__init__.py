"""Task families, by name. Each module defines a `Task` (instance generation) and its `Instance`."""

from feedbackgym.envs.tasks.base import Instance, Parsed, Task, Verdict
from feedbackgym.envs.tasks.guess_number import GuessNumber
from feedbackgym.envs.tasks.judged_qa import JudgedQA
from feedbackgym.envs.tasks.negotiation import Negotiation
from feedbackgym.envs.tasks.spc import SPC
from feedbackgym.envs.tasks.twenty_questions import TwentyQuestions

TASKS: dict[str, Task] = {t.name: t for t in (JudgedQA(), TwentyQuestions(), GuessNumber(), SPC(), Negotiation())}

__all__ = ["TASKS", "Instance", "Parsed", "Task", "Verdict"]
