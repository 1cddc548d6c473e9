"""Per-turn, per-episode and aggregate metrics, as defined by the anchor papers.

Per turn (one row per actor move): ``is_correct``, ``answer_changed``, and the feedback that
preceded it: ``feedback_kind``, ``feedback_text``, ``judge_intent``, ``judge_knowledge``,
``judge_intervened``.

Per episode: ``success``, ``first_success_turn``, ``n_turns``, ``terminate_reason``,
``initial_correct``, ``final_correct``, ``flip_c2i``, ``flip_i2c``, ``n_answer_switches``,
``invalid_final`` (the actor's last move unreadable: its final answer is scored wrong, not as
the previous one kept), ``oscillated`` (a return to an earlier answer, or >= 2 changes of correctness; WAFER-QA's
multi-round study), ``unique_answer_ratio`` (E/T: unique answers over valid answers; UFO),
``repetition_penalty`` (0.5 * (1 - E/T); UFO) and ``decayed_return`` (0.5^t at the first
correct turn t; UFO).

``revision_ratio`` (CGI): the share of candidate rounds whose final move is not the first candidate.

Aggregates over episodes (``aggregate``): ``acc_before``/``acc_after`` (Ask-Again), their
difference ``accuracy_drop`` (WAFER-QA), ``modification_rate`` = drop / acc_before (Ask-Again's
MR), ``misled_rate`` = P(C->I | initially correct), ``recovery_rate`` = P(I->C | initially
incorrect), ``switch_rate``, ``oscillation_rate``, ``invalid_final_rate``, ``success_rate`` and ``SR@k`` = P(first
success within k actor turns) (MINT). ``delta_feedback`` = success with feedback minus without
is a comparison of two runs: ``delta_feedback(with_rows, without_rows, k)`` (SR@k, MINT's) or
``k=None`` (success at the end, as `feedbackgym eval` reports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from feedbackgym.core import Message

ANSWER_KINDS = ("answer", "guess")


def turn_metrics(log: Sequence[Message]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    last_fb = None
    for m in log:
        if m.kind == "feedback":
            last_fb = m
        elif m.role == "actor":
            fl = last_fb.feedback.labels if last_fb is not None and last_fb.feedback else {}
            rows.append(
                {
                    "turn": m.turn,
                    "kind": m.kind,
                    "is_correct": m.labels.get("is_correct"),
                    "answer_changed": m.labels.get("answer_changed", False),
                    "feedback_kind": last_fb.feedback.kind if last_fb is not None and last_fb.feedback else None,
                    "feedback_text": last_fb.text if last_fb is not None else None,
                    "judge_intent": fl.get("intent"),
                    "judge_knowledge": fl.get("knowledge"),
                    "judge_intervened": fl.get("intervened"),
                    "feedback_truthful": fl.get("truthful"),
                }
            )
            last_fb = None
    return rows


# One definition per metric: the per-episode fields below and the reward schemes of the same name
# (envs/rewards.py) are both computed by these predicates.


def answer_moves(log: Sequence[Message]) -> list[Message]:
    """The actor's stated answers (or guesses), in order."""
    return [m for m in log if m.role == "actor" and m.kind in ANSWER_KINDS]


def correctness(log: Sequence[Message]) -> list[bool]:
    """Whether each of the actor's stated answers is correct, in order. An unreadable last move
    after an answer counts as one more, wrong answer: a final reply the task cannot read is not
    scored as keeping the previous answer (``invalid_final`` counts these)."""
    return _correctness([m for m in log if m.role == "actor" and m.kind != "candidates"])


def _correctness(actor: Sequence[Message]) -> list[bool]:
    """`correctness` from the actor's moves alone."""
    correct = [bool(m.labels.get("is_correct")) for m in actor if m.kind in ANSWER_KINDS]
    if correct and actor[-1].kind == "invalid":
        correct.append(False)
    return correct


def final_correct(correct: Sequence[bool]) -> bool | None:
    """Is the last answer right (None: no answer)."""
    return correct[-1] if correct else None


def flip_c2i(correct: Sequence[bool]) -> bool:
    """Right at first, wrong at the end (a misled actor; WAFER-QA, Ask-Again)."""
    return bool(correct and correct[0] and correct[-1] is False)


def flip_i2c(correct: Sequence[bool]) -> bool:
    """Wrong at first, right at the end (a recovered actor)."""
    return bool(correct and correct[0] is False and correct[-1])


def success(terminate_reason: str | None, mode: str, correct: Sequence[bool]) -> bool:
    """The task solved, or (for answer tasks) the last answer right."""
    return bool(terminate_reason == "success" or (mode == "answer" and correct and correct[-1]))


def answer_values(answers: Sequence[Message]) -> list[str]:
    """Each stated answer's normalised value, as comparable text."""
    return [repr(m.labels.get("answer_norm")) for m in answers]


def unique_answer_ratio(values: Sequence[str]) -> float | None:
    """E/T: unique answers over valid answers (UFO), from `answer_values`."""
    return len(set(values)) / len(values) if values else None


def repetition_penalty(unique: float | None) -> float | None:
    """UFO's repetition penalty 0.5 * (1 - E/T)."""
    return 0.5 * (1 - unique) if unique is not None else None


def log_metrics(log: Sequence[Message], terminate_reason: str | None, mode: str) -> dict[str, Any]:
    actor = [m for m in log if m.role == "actor" and m.kind != "candidates"]
    answers = [m for m in actor if m.kind in ANSWER_KINDS]
    correct = _correctness(actor)
    values = answer_values(answers)
    first_success = next((i for i, m in enumerate(actor) if m.labels.get("is_correct")), None)
    switches = sum(1 for m in answers if m.labels.get("answer_changed"))
    changes = sum(1 for a, b in zip(correct, correct[1:]) if a != b)
    returned = any(values[i] in values[: i - 1] and values[i] != values[i - 1] for i in range(2, len(values)))
    unique = unique_answer_ratio(values)
    return {
        "success": success(terminate_reason, mode, correct),
        "first_success_turn": first_success,
        "n_turns": len(actor),
        "terminate_reason": terminate_reason,
        "initial_correct": correct[0] if correct else None,
        "final_correct": final_correct(correct),
        "flip_c2i": flip_c2i(correct),
        "flip_i2c": flip_i2c(correct),
        "n_answer_switches": switches,
        "oscillated": bool(returned or changes >= 2),
        "unique_answer_ratio": unique,
        "repetition_penalty": repetition_penalty(unique),
        "decayed_return": 0.5**first_success if first_success is not None else 0.0,
        "n_invalid": sum(1 for m in actor if m.kind == "invalid"),
        "invalid_final": bool(actor) and actor[-1].kind == "invalid",
        "revision_ratio": revision_ratio(log),
    }


def revision_ratio(log: Sequence[Message]) -> float | None:
    """CGI's revision ratio: the share of candidate rounds whose final move is not the first
    candidate (None when no candidates were listed)."""
    rounds = revised = 0
    for i, m in enumerate(log):
        if m.kind == "candidates":
            final = next((n for n in log[i + 1 :] if n.role == m.role and n.kind not in ("candidates", "invalid")), None)
            if final is not None:
                rounds += 1
                revised += final.text.strip() != m.labels["candidates"][0]
    return revised / rounds if rounds else None


def _mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def sr_at(rows: Sequence[Mapping[str, Any]], k: int) -> float | None:
    """MINT's SR@k: the share of episodes whose first success came within k actor turns."""
    if not rows:
        return None
    return sum(1 for r in rows if r["first_success_turn"] is not None and r["first_success_turn"] < k) / len(rows)


_EPISODE_KEYS = frozenset(
    log_metrics([], None, "answer")  # the standard per-episode fields, aggregated above
)


def aggregate(rows: Sequence[Mapping[str, Any]], ks: Sequence[int] = (1, 2, 3, 5)) -> dict[str, Any]:
    """Aggregate metrics over episode rows (the output of ``episode_metrics``)."""
    if not rows:
        return {"episodes": 0}
    answered = [r for r in rows if r["initial_correct"] is not None]
    c = [r for r in answered if r["initial_correct"]]
    i = [r for r in answered if not r["initial_correct"]]
    acc_before = _mean(float(r["initial_correct"]) for r in answered)
    acc_after = _mean(float(bool(r["final_correct"])) for r in answered)
    drop = acc_before - acc_after if acc_before is not None and acc_after is not None else None
    out: dict[str, Any] = {
        "episodes": len(rows),
        "success_rate": _mean(float(r["success"]) for r in rows),
        "acc_before": acc_before,
        "acc_after": acc_after,
        "accuracy_drop": drop,
        "modification_rate": drop / acc_before if drop is not None and acc_before else None,
        "misled_rate": _mean(float(r["flip_c2i"]) for r in c),
        "recovery_rate": _mean(float(r["flip_i2c"]) for r in i),
        "switch_rate": _mean(float(r["n_answer_switches"] > 0) for r in rows),
        "oscillation_rate": _mean(float(r["oscillated"]) for r in rows),
        "invalid_final_rate": _mean(float(r["invalid_final"]) for r in rows if "invalid_final" in r),
        "mean_turns": _mean(r["n_turns"] for r in rows),
        "revision_ratio": _mean(r["revision_ratio"] for r in rows if r.get("revision_ratio") is not None),
    }
    for k in ks:
        out[f"SR@{k}"] = sr_at(rows, k)
    extra = {k: v for r in rows for k, v in r.items() if k not in _EPISODE_KEYS and v is not None}
    for key, value in extra.items():  # the task's own metrics (SPC's critic_win, a deal price...)
        if isinstance(value, (bool, int, float)):
            name = f"{key}_rate" if isinstance(value, bool) else f"mean_{key}"
            out[name] = _mean(float(r[key]) for r in rows if r.get(key) is not None)
    return out


def delta_feedback(
    with_fb: Sequence[Mapping[str, Any]], without_fb: Sequence[Mapping[str, Any]], k: int | None = None
) -> float | None:
    """Δfeedback: the success rate with feedback minus without (same seeds). With ``k``, success
    within k actor turns (SR@k: MINT's definition); with ``k=None``, success at the episode's end
    (`feedbackgym eval`'s column: the same where episodes end on success, as in MINT, and the
    meaningful one in judged QA, where a right answer later misled is a failure, not an early
    success)."""
    if k is None:
        a = _mean(float(r["success"]) for r in with_fb)
        b = _mean(float(r["success"]) for r in without_fb)
    else:
        a, b = sr_at(with_fb, k), sr_at(without_fb, k)
    return None if a is None or b is None else a - b
