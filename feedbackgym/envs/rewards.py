"""Reward schemes, named in a scenario's ``rewards: {role: scheme}``.

A scheme sees every message as it is appended (``on_message``) and the finished episode
(``on_end``); what it returns accrues to its role until that role next acts (the Gymnasium
per-step reward, PettingZoo's accumulated reward).
"""

from __future__ import annotations

from typing import Any

from feedbackgym.core import NOT_MOVES, REWARDS, Message
from feedbackgym.feedback import metrics


class Scheme:
    """Zero everywhere; subclasses override what they reward. ``role`` is whose reward it is."""

    def __init__(self, role: str = ""):
        self.role = role

    def on_message(self, ep: Any, msg: Message) -> float:
        return 0.0

    def on_end(self, ep: Any) -> float:
        return 0.0


class FinalCorrect(Scheme):
    """1 at the end if the actor's last answer is correct (judged QA; WAFER-QA's actor reward)."""

    def on_end(self, ep):
        return 1.0 if metrics.final_correct(metrics.correctness(ep.log)) else 0.0


class Success(Scheme):
    """1 on the move that solves the task."""

    def on_message(self, ep, msg):
        return 1.0 if msg.role == "actor" and msg.labels.get("solved") else 0.0


class StepPenalty(Scheme):
    """-1 for every actor turn that does not solve the task, 0 for the one that does
    (LMRL-Gym / ArCHer twenty questions: the return lies in [-max_turns, 0])."""

    def on_message(self, ep, msg):
        if msg.role != "actor" or msg.kind in NOT_MOVES:  # a CGI candidate list, a draft: no move
            return 0.0
        return 0.0 if msg.labels.get("solved") else -1.0


class FlipC2I(Scheme):
    """+1 if the actor's first answer was correct and its final one is not (a malicious judge)."""

    def on_end(self, ep):
        return 1.0 if metrics.flip_c2i(metrics.correctness(ep.log)) else 0.0


class GoalMet(Scheme):
    """1 at the end if the actor solved the task or ended correct (a user whose goal is met)."""

    def on_end(self, ep):
        return 1.0 if metrics.success(ep.terminate_reason, ep.instance.mode, metrics.correctness(ep.log)) else 0.0


class UFO(Scheme):
    """UFO's shaping: 0.5^t on the move that solves the task at (0-based) actor turn t, and at
    the end the repetition penalty -0.5 * (1 - E/T), with E unique answers among T valid ones."""

    def on_message(self, ep, msg):
        return 0.5 ** (ep.actor_turns - 1) if msg.role == "actor" and msg.labels.get("solved") else 0.0

    def on_end(self, ep):
        penalty = metrics.repetition_penalty(metrics.unique_answer_ratio(metrics.answer_values(metrics.answer_moves(ep.log))))
        return -penalty if penalty is not None else 0.0


class TaskReward(Scheme):
    """The task's own reward for the role at the end (negotiation's deal price, SPC's zero-sum
    +-1): ``Instance.role_reward``."""

    def on_end(self, ep):
        return ep.instance.role_reward(self.role, ep.log)


class Improvement(Scheme):
    """A critic's reward (WaltzRL's Dynamic Improvement Reward): for each actor answer that
    follows its feedback, +1 if it went from wrong to right, -1 if from right to wrong; after a
    graded candidate list (CGI), the quality of the final move minus that of the first candidate;
    for a refinement (``protocol.refine``), its verdict minus its draft's, whatever came between."""

    def on_message(self, ep, msg):
        if msg.role != "actor" or msg.kind in (*NOT_MOVES, "invalid") or len(ep.log) < 3:
            return 0.0
        listed = next((m for m in reversed(ep.log[:-1]) if m.role == "actor"), None)
        if listed is not None and listed.kind == "draft":  # a refinement: its verdict against its draft's
            return float(bool(msg.labels.get("is_correct"))) - float(bool(listed.labels.get("is_correct")))
        if listed is not None and listed.kind == "candidates" and ep.last_parsed is not None:
            before = ep.log[: listed.turn]
            first = ep.instance.parse("actor", listed.labels["candidates"][0])
            return ep.instance.quality(ep.last_parsed, before) - ep.instance.quality(first, before)
        if msg.kind not in ("answer", "guess"):
            return 0.0
        before = next((m for m in reversed(ep.log[:-1]) if m.role == "actor" and m.kind in ("answer", "guess")), None)
        fed = any(m.role == "critic" and m.kind == "feedback" for m in ep.log[before.turn if before else 0 : -1])
        if before is None or not fed:
            return 0.0
        return float(bool(msg.labels.get("is_correct"))) - float(bool(before.labels.get("is_correct")))


REWARDS.update(
    {
    "none": Scheme,
    "final_correct": FinalCorrect,
    "success": Success,
    "step_penalty": StepPenalty,
    "flip_c2i": FlipC2I,
    "goal_met": GoalMet,
    "ufo": UFO,
    "task": TaskReward,
    "improvement": Improvement,
}
)
