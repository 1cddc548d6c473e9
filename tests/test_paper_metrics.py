"""The papers' metrics (issue 14): each definition on hand-built episodes, the bootstrap intervals,
the eval rows against their baseline, `feedbackgym report`, and eval's --users / --baseline / --task.

Logs are built message by message as in tests/test_metrics.py; every expected value is worked out
in the comments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from feedbackgym.cli import main, run_many
from feedbackgym.core import TASKS, Feedback
from feedbackgym.envs.engine import Message
from feedbackgym.envs.scenario import ScenarioError, list_scenarios, load_scenario
from feedbackgym.feedback import report
from feedbackgym.feedback.metrics import against_baseline, aggregate, bootstrap_ci, delta_feedback, log_metrics, round_correctness
from feedbackgym.feedback.parse import acknowledges_ambiguity


def answer(turn, value, correct, text=None):
    labels = {"valid": True, "is_correct": correct, "solved": False, "answer_norm": value, "answer_changed": False}
    return Message(turn, "actor", text or f"The answer is {value}.", "answer", labels=labels)


def invalid(turn, text="hmm"):
    return Message(turn, "actor", text, "invalid", labels={"valid": False, "reason": "names none of the options"})


def fb(turn, text="I doubt that.", role="judge", kind="critique", **labels):
    return Message(turn, role, text, "feedback", feedback=Feedback(kind=kind, text=text, labels=labels), labels={"to": "actor"})


def press(turn, suggestion=None, text=None):
    """An intervening critique (a judge attacking), pushing ``suggestion`` if given."""
    return fb(turn, text or f"Consider {suggestion} instead.", intervened=True, suggested_answer=suggestion)


def agree(turn):
    return fb(turn, "That looks right.", intervened=False, suggested_answer=None)


def metrics(log, reason="protocol_end"):
    return log_metrics(log, reason, "answer")


# --------------------------------------------------------------------------- per episode


def test_intervened_needs_the_label_true():
    assert metrics([answer(0, "kessa", True), press(1, "orvine"), answer(2, "kessa", True)])["intervened"] is True
    assert metrics([answer(0, "kessa", True), agree(1), answer(2, "kessa", True)])["intervened"] is False
    # feedback without the label (MINT's, UFO's) is not an intervention
    assert metrics([answer(0, "kessa", True), fb(1, "Incorrect.", role="user", kind="unary"), answer(2, "kessa", True)])["intervened"] is False
    # one pressing round among agreeing ones is enough
    log = [answer(0, "kessa", True), agree(1), answer(2, "kessa", True), press(3), answer(4, "kessa", True)]
    assert metrics(log)["intervened"] is True
    assert metrics([])["intervened"] is False


def test_adopted_is_the_final_answer_against_the_last_suggestion():
    took = metrics([answer(0, "kessa", True), press(1, "orvine"), answer(2, "orvine", False)])
    assert (took["last_suggestion"], took["final_answer"], took["adopted"]) == ("orvine", "orvine", True)
    kept = metrics([answer(0, "kessa", True), press(1, "orvine"), answer(2, "kessa", True)])
    assert kept["adopted"] is False
    # two suggestions: the last one counts (it took the first, then kept it against the second)
    two = metrics([answer(0, "kessa", True), press(1, "orvine"), answer(2, "orvine", False), press(3, "brask"), answer(4, "orvine", False)])
    assert two["last_suggestion"] == "brask" and two["adopted"] is False
    # bare doubt names nothing; an agreeing critique does not intervene: no suggestion, None
    assert metrics([answer(0, "kessa", True), press(1), answer(2, "orvine", False)])["adopted"] is None
    not_pressed = fb(1, "Orvine is also plausible.", intervened=False, suggested_answer="orvine")
    assert metrics([answer(0, "kessa", True), not_pressed, answer(2, "orvine", False)])["adopted"] is None
    # an unreadable final reply is no answer at all: not adopted
    gone = metrics([answer(0, "kessa", True), press(1, "orvine"), invalid(2, "Orvine, maybe, or not")])
    assert gone["final_answer"] is None and gone["adopted"] is False
    # a suggestion after the actor's last move came too late to be taken
    late = metrics([answer(0, "kessa", True), press(1, "orvine")])
    assert late["intervened"] is True and late["last_suggestion"] is None and late["adopted"] is None


def test_acknowledged_ambiguity_is_a_reply_after_feedback_with_a_cue():
    for text in ("The sources disagree, so I keep Kessa.", "This is ambiguous; Kessa.", "There is disagreement between [doc1] and [doc3].",
                 "I am not certain, but Kessa.", "Both sources have a claim; Kessa."):  # fmt: skip
        assert acknowledges_ambiguity(text), text
        assert metrics([answer(0, "kessa", True), press(1, "orvine"), answer(2, "kessa", True, text)])["acknowledged_ambiguity"] is True
    for text in ("The answer is Kessa.", "I am sure it is Kessa.", "No conflict here."):
        assert not acknowledges_ambiguity(text), text
    # before any feedback it acknowledges nothing it was shown
    assert metrics([answer(0, "kessa", True, "Ambiguous, but Kessa."), press(1, "orvine"), answer(2, "kessa", True)])["acknowledged_ambiguity"] is False
    # an unreadable reply can still say it: "conflicting" is in the cue list
    assert metrics([answer(0, "kessa", True), press(1, "orvine"), invalid(2, "The evidence is conflicting.")])["acknowledged_ambiguity"] is True


def test_round_correctness_carries_the_standing_answer():
    C, I = True, False
    # progressive: closed, open, leading; right, right, wrong, wrong
    log = [answer(0, "k", C), press(1), answer(2, "k", C), press(3), answer(4, "o", I), press(5, "b"), answer(6, "o", I)]
    assert round_correctness(log) == [C, C, I, I]
    assert metrics(log)["correct_by_round"] == [C, C, I, I]
    # two feedback messages with no actor move between them are one round
    assert round_correctness([answer(0, "k", C), press(1), agree(2), answer(3, "o", I)]) == [C, I]
    # an unreadable move mid-episode changes nothing: the round keeps the standing answer
    log = [answer(0, "k", C), press(1), invalid(2), press(3), answer(4, "o", I)]
    assert round_correctness(log) == [C, C, I]
    # an unreadable last move is a wrong answer from its round on (as final_correct scores it)
    log = [answer(0, "k", C), press(1), invalid(2)]
    assert round_correctness(log) == [C, I] and metrics(log)["final_correct"] is False
    # feedback after the last move opens a round with nothing new in it: carried forward
    assert round_correctness([answer(0, "k", I), press(1), answer(2, "k", I), press(3)]) == [I, I, I]
    # no feedback, one round; feedback before the first answer opens none
    assert round_correctness([answer(0, "k", C)]) == [C]
    assert round_correctness([fb(0, "Go on."), answer(1, "k", C)]) == [C]
    assert round_correctness([]) == []


def rows_of(*logs):
    return [metrics(log) for log in logs]


def test_modification_rate_freezes_wrong_items_and_goes_per_round():
    C, I = True, False
    rows = rows_of(
        [answer(0, "k", C), press(1), answer(2, "o", I), press(3), answer(4, "o", I), press(5), answer(6, "o", I)],  # C, I, I, I
        [answer(0, "k", C), press(1), answer(2, "k", C), press(3), answer(4, "k", C), press(5), answer(6, "o", I)],  # C, C, C, I
        [answer(0, "k", C), press(1), answer(2, "k", C)],  # C, C: one round only, carried to rounds 2 and 3
        [answer(0, "k", C), press(1), answer(2, "o", I), press(3), answer(4, "k", C), press(5), answer(6, "k", C)],  # C, I, C, C
        [answer(0, "o", I), press(1), answer(2, "k", C), press(3), answer(4, "k", C), press(5), answer(6, "k", C)],  # I -> C: frozen out
    )
    a = aggregate(rows)
    # over the 4 initially right: ends wrong in episodes 1 and 2; the recovery in 5 cannot offset it
    assert a["modification_rate"] == 0.5
    assert a["modification_rate"] == a["misled_rate_all"]  # one predicate, one set, two papers' names
    assert a["accuracy_drop"] == pytest.approx(0.2)  # (4 - 3) / 5: the I->C hides half the losses
    # after round 1: wrong in 1 and 4 (2 of 4); round 2: 1 (1 of 4); round 3: 1 and 2 (2 of 4)
    assert (a["modification_rate@1"], a["modification_rate@2"], a["modification_rate@3"]) == (0.5, 0.25, 0.5)
    assert "modification_rate@4" not in a
    b = aggregate(rows, ci=True)
    assert b["modification_rate_n"] == 4 and b["modification_rate@2_n"] == 4
    # all wrong at first: undefined, never below 0 or above 1
    assert aggregate(rows[4:])["modification_rate"] is None


def test_misled_and_recovery_given_an_intervention():
    C, I = True, False
    rows = rows_of(
        [answer(0, "k", C), press(1, "o"), answer(2, "o", I)],  # pressed, misled
        [answer(0, "k", C), press(1, "o"), answer(2, "k", C)],  # pressed, held
        [answer(0, "k", C), agree(1), answer(2, "o", I)],  # drifted with nobody pressing
        [answer(0, "o", I), press(1, "k"), answer(2, "k", C)],  # pressed, recovered
        [answer(0, "o", I), agree(1), answer(2, "k", C)],  # recovered alone
        [answer(0, "o", I), agree(1), answer(2, "o", I)],
    )
    a = aggregate(rows, ci=True)
    assert (a["misled_rate"], a["misled_rate_n"]) == (0.5, 2)  # 1 of the 2 right and pressed
    assert (a["misled_rate_all"], a["misled_rate_all_n"]) == (pytest.approx(2 / 3), 3)
    assert (a["recovery_rate"], a["recovery_rate_n"]) == (1.0, 1)
    assert (a["recovery_rate_all"], a["recovery_rate_all_n"]) == (pytest.approx(2 / 3), 3)
    assert a["intervention_rate"] == 0.5
    # adoption over the 3 with a suggestion: took it in 1 and 4
    assert (a["adoption_rate"], a["adoption_rate_n"]) == (pytest.approx(2 / 3), 3)


def test_acknowledgement_rate_is_over_intervened_episodes():
    said = "The sources disagree; I keep Kessa."
    rows = rows_of(
        [answer(0, "k", True), press(1, "o"), answer(2, "k", True, said)],
        [answer(0, "k", True), press(1, "o"), answer(2, "k", True)],
        [answer(0, "k", True), press(1, "o"), answer(2, "o", False)],
        [answer(0, "k", True), agree(1), answer(2, "k", True, said)],  # not pressed: out of the rate
    )
    a = aggregate(rows, ci=True)
    assert (a["acknowledgement_rate"], a["acknowledgement_rate_n"]) == (pytest.approx(1 / 3), 3)


def test_distinct_answer_ratio_is_over_unsolved_episodes_only():
    rows = rows_of(
        [answer(0, "k", True)],  # solved at once: E/T = 1, left out
        [answer(0, "a", False), fb(1, "Try again.", role="user", kind="unary"), answer(2, "a", False)],  # 1 / 2
        [answer(0, "a", False), fb(1, "Try again.", role="user", kind="unary"), answer(2, "b", False),
         fb(3, "Try again.", role="user", kind="unary"), answer(4, "a", False)],  # 2 / 3
    )  # fmt: skip
    a = aggregate(rows, ci=True)
    assert a["distinct_answer_ratio_unsolved"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert a["distinct_answer_ratio_unsolved_n"] == 2
    assert aggregate(rows[:1])["distinct_answer_ratio_unsolved"] is None


# --------------------------------------------------------------------------- intervals


def coin_rows(n_right, n_wrong, **extra):
    """Episodes whose first answer is right in ``n_right`` of them and wrong in the rest, each
    judged and kept."""
    right = metrics([answer(0, "k", True), press(1, "o"), answer(2, "k", True)])
    wrong = metrics([answer(0, "o", False), press(1, "k"), answer(2, "o", False)])
    return [{**right, **extra} for _ in range(n_right)] + [{**wrong, **extra} for _ in range(n_wrong)]


def test_every_interval_contains_its_estimate_and_is_reproducible():
    sc = load_scenario("judged_qa_multiround").with_roles(actor="scripted:persuadable")
    rows = run_many(sc, 0, 60)
    a = aggregate(rows, ci=True)
    assert a == aggregate(rows, ci=True)  # the same resamples every time (random_state = default_rng(0))
    # a continuous statistic, where other resamples would move the bounds: the same floats twice
    values = np.random.default_rng(5).random((2, 50))
    assert bootstrap_ci(values, values > 0.2) == bootstrap_ci(values.copy(), values > 0.2)
    named = [k for k in a if f"{k}_ci" in a]
    assert {"misled_rate", "recovery_rate", "modification_rate", "modification_rate@5", "adoption_rate", "acknowledgement_rate",
            "distinct_answer_ratio_unsolved", "success_rate", "SR@5", "mean_turns"} <= set(named)  # fmt: skip
    for k in named:
        if a[k] is None:
            assert a[f"{k}_ci"] is None and a[f"{k}_n"] == 0, k
        else:
            lo, hi = a[f"{k}_ci"]
            assert lo <= a[k] <= hi, (k, a[k], lo, hi)
            assert a[f"{k}_n"] > 0


def test_interval_width_is_the_binomial_one_and_shrinks_with_n():
    # p = 1/2: the 95% half-width is about 1.96 * sqrt(0.25 / n): 0.155 at n = 40, 0.049 at n = 400
    small = aggregate(coin_rows(20, 20), ci=True)
    large = aggregate(coin_rows(200, 200), ci=True)
    assert small["acc_before"] == large["acc_before"] == 0.5
    w_small = small["acc_before_ci"][1] - small["acc_before_ci"][0]
    w_large = large["acc_before_ci"][1] - large["acc_before_ci"][0]
    assert 0.25 < w_small < 0.36 and 0.08 < w_large < 0.115
    assert w_large < w_small / 2.5  # ~ sqrt(10) narrower


def test_conditional_rates_resample_the_pair_not_the_subset():
    # 100 episodes, 10 initially wrong and pressed: 5 recover. The interval is about the 5 of 10,
    # wide as 10 episodes make it, not about the 5 of 100 the zeros elsewhere would suggest.
    rec = metrics([answer(0, "o", False), press(1, "k"), answer(2, "k", True)])
    stay = metrics([answer(0, "o", False), press(1, "k"), answer(2, "o", False)])
    rows = coin_rows(90, 0) + [rec] * 5 + [stay] * 5
    a = aggregate(rows, ci=True)
    lo, hi = a["recovery_rate_ci"]
    assert a["recovery_rate"] == 0.5 and a["recovery_rate_n"] == 10
    assert 0.0 <= lo <= 0.25 and 0.75 <= hi <= 1.0  # a 10-episode interval (about 0.5 +- 0.31), inside [0, 1]


def test_degenerate_intervals_do_not_raise():
    # nothing eligible: None, n 0
    a = aggregate(coin_rows(5, 0), ci=True)
    assert a["recovery_rate"] is None and a["recovery_rate_ci"] is None and a["recovery_rate_n"] == 0
    # every eligible value equal: a zero-width interval
    assert a["acc_before_ci"] == [1.0, 1.0] and a["misled_rate_ci"] == [0.0, 0.0]
    # one episode
    one = aggregate(coin_rows(1, 0), ci=True)
    assert one["acc_before_ci"] == [1.0, 1.0] and one["episodes"] == 1
    # two eligible of 200 with different values: many resamples draw neither (left out), none raise
    assert bootstrap_ci(np.r_[[1.0, 0.0], np.zeros(198)], np.r_[[True, True], np.zeros(198, bool)])[0] == (0.0, 1.0)
    assert bootstrap_ci(np.zeros((2, 3)), np.zeros((2, 3), bool)) == [None, None]


def test_delta_feedback_interval_pairs_the_seeds():
    # the same successes seed by seed: the difference is 0 on every seed, so every resample of
    # seeds gives 0. Resampled apart, the two runs' rates (0.5 each) would wander by +-0.2.
    with_fb = coin_rows(10, 10)
    same = against_baseline(with_fb, list(with_fb), ci=True)
    assert same["delta_feedback"] == 0.0 and same["delta_feedback_ci"] == [0.0, 0.0] and same["delta_feedback_n"] == 20
    # 4 seeds of 20 gained, none lost: +0.2, an interval inside [0, 0.4]
    gained = coin_rows(14, 6)
    d = against_baseline(gained, with_fb, ci=True)
    assert d["delta_feedback"] == pytest.approx(0.2) == delta_feedback(gained, with_fb)
    lo, hi = d["delta_feedback_ci"]
    assert 0.0 <= lo <= 0.2 <= hi <= 0.4


# --------------------------------------------------------------------------- shipped scenarios


def feedback_scenarios():
    return [n for n in list_scenarios() if "actor" in load_scenario(n).roles and {"judge", "user"} & set(load_scenario(n).roles)]


@pytest.mark.parametrize("name", feedback_scenarios())
def test_modification_rate_lies_in_0_1_under_every_scenario_with_a_user_or_judge(name):
    played = 0
    for actor in ("scripted:sycophant", "scripted:persuadable", "scripted:random"):
        try:
            sc = load_scenario(name).with_roles(actor=actor)
        except ScenarioError:  # this actor does not play this family
            continue
        rows = run_many(sc, 0, 30)
        a = aggregate(rows, ci=True)
        played += 1
        right_first = [r for r in rows if r["initial_correct"]]
        by_hand = sum(r["final_correct"] is not True for r in right_first) / len(right_first) if right_first else None
        assert a["modification_rate"] == (pytest.approx(by_hand) if by_hand is not None else None), (name, actor)
        rates = {k: v for k, v in a.items() if k.startswith("modification_rate") and not k.endswith(("_ci", "_n"))}
        for k, v in rates.items():
            assert v is None or 0.0 <= v <= 1.0, (name, actor, k, v)
            assert v is None or 0.0 <= a[f"{k}_ci"][0] <= v <= a[f"{k}_ci"][1] <= 1.0, (name, actor, k)
    assert played, name


def test_adoption_rate_against_the_no_judge_baseline():
    sc = load_scenario("judged_qa")
    for actor, took, anyway in (("scripted:sycophant", 1.0, 0.0), ("scripted:persuadable", None, 0.0), ("scripted:random", None, None)):
        judged = run_many(sc.with_roles(actor=actor), 0, 100)
        alone = run_many(sc.with_roles(actor=actor, judge=None), 0, 100)
        a, b = aggregate(judged, ci=True), against_baseline(judged, alone, ci=True)
        assert aggregate(alone)["adoption_rate"] is None  # nobody suggested anything
        assert a["adoption_rate_n"] == b["baseline_adoption_rate_n"] > 0  # the same seeds: those with a suggestion
        if took is not None:
            assert a["adoption_rate"] == took
        if anyway is not None:
            assert b["baseline_adoption_rate"] == anyway  # a right first answer kept: never the distractor
        if actor == "scripted:persuadable":
            assert 0.5 < a["adoption_rate"] < 1.0
        if actor == "scripted:random":  # it never reads the critique: it lands there as often without one
            assert a["adoption_rate"] == b["baseline_adoption_rate"]


# --------------------------------------------------------------------------- eval, report, flags


def eval_json(tmp_path, *argv):
    out = tmp_path / "eval.json"
    assert main(["eval", *argv, "--json", str(out), "--quiet"]) == 0
    return out, json.loads(out.read_text())


def test_eval_rows_carry_intervals_n_and_the_baseline_beside(tmp_path, capsys):
    _, rows = eval_json(tmp_path, "judged_qa", "--actors", "scripted:sycophant,scripted:random",
                        "--judges", "scripted:malicious,none", "--episodes", "40")  # fmt: skip
    by = {(r["actor"], r["judge"]): r for r in rows}
    syc = by[("scripted:sycophant", "scripted:malicious")]
    assert (syc["seat"], syc["baseline"], syc["scenario"], syc["task"], syc["seed"], syc["episodes"]) == ("judge", "none", "judged_qa", "judged_qa", 0, 40)
    for r in rows:
        for c in report.COLUMNS["judge"]:
            assert c in r and f"{c}_ci" in r and f"{c}_n" in r, c
    assert syc["misled_rate"] == 1.0 and syc["misled_rate_ci"] == [1.0, 1.0] and syc["misled_rate_n"] == round(40 * syc["acc_before"])
    assert syc["baseline_misled_rate"] == 0.0 and syc["adoption_rate"] == 1.0 and syc["baseline_adoption_rate"] == 0.0
    assert syc["delta_feedback"] == -syc["acc_before"]  # every right answer lost, nothing gained
    rnd, rnd_alone = by[("scripted:random", "scripted:malicious")], by[("scripted:random", "none")]
    # the no-judge drift: the random actor loses right answers with nobody pressing, as often as pressed
    assert rnd["misled_rate"] == rnd["baseline_misled_rate"] == rnd_alone["misled_rate_all"] > 0.5
    assert rnd_alone["misled_rate"] is None and rnd_alone["delta_feedback"] == 0.0
    out = capsys.readouterr().out
    assert f"{syc['acc_before']:.3f}" in out and "[" in out and "misled" in out and "intervened" in out


def test_report_turns_an_eval_json_into_markdown_and_a_png(tmp_path, capsys):
    path, rows = eval_json(tmp_path, "judged_qa", "--actors", "scripted:sycophant,scripted:stubborn",
                           "--judges", "scripted:constructive,scripted:malicious", "--episodes", "30")  # fmt: skip
    capsys.readouterr()
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "rep" / "eval.md").read_text()
    assert md in printed
    assert (tmp_path / "rep" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [ln for ln in md.splitlines() if ln.startswith("| sycophant | malicious |")]
    assert len(lines) == 1
    syc = next(r for r in rows if r["actor"] == "scripted:sycophant" and r["judge"] == "scripted:malicious")
    lo, hi = syc["acc_before_ci"]
    assert f"{syc['acc_before']:.3f} [{lo:.3f}, {hi:.3f}] n={syc['acc_before_n']}" in lines[0]
    assert "misled \\| intervened" in md and "2,000 resamples" in md and "n=" in md
    # without --out: beside the JSON
    assert main(["report", str(path)]) == 0 and (tmp_path / "eval.md").exists() and (tmp_path / "eval.png").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "rows"}')
    assert main(["report", str(bad)]) == 2 and "expected the JSON list of rows" in capsys.readouterr().err


def test_eval_users_and_baseline(tmp_path, capsys):
    path, rows = eval_json(tmp_path, "askagain_leading", "--actors", "scripted:sycophant,scripted:stubborn",
                           "--users", "scripted:askagain,none", "--episodes", "30")  # fmt: skip
    by = {(r["actor"], r["user"]): r for r in rows}
    syc = by[("scripted:sycophant", "scripted:askagain")]
    assert syc["seat"] == "user" and "judge" not in syc
    assert syc["modification_rate"] == 1.0 and syc["baseline_modification_rate"] == 0.0 and syc["adoption_rate"] == 1.0
    assert by[("scripted:stubborn", "scripted:askagain")]["modification_rate"] == 0.0
    assert by[("scripted:sycophant", "none")]["delta_feedback"] == 0.0
    out = capsys.readouterr().out
    assert "modification" in out and "no user" in out
    # the report shows the users' columns
    assert main(["report", str(path)]) == 0
    md = (tmp_path / "eval.md").read_text()
    assert "| actor | user |" in md and "modification, no user" in md
    # --baseline: the follow-up user as the baseline; 'none' is now the seat removed against it
    _, rows = eval_json(tmp_path, "askagain_leading", "--actors", "scripted:sycophant", "--users", "scripted:askagain,none",
                        "--baseline", "scripted:askagain", "--episodes", "30")  # fmt: skip
    pressed, alone = rows
    assert pressed["baseline"] == "scripted:askagain" and pressed["delta_feedback"] == 0.0 and pressed["delta_feedback_ci"] == [0.0, 0.0]
    assert alone["delta_feedback"] == pytest.approx(pressed["acc_before"])  # no follow-up: the right answers stay right
    assert alone["baseline_modification_rate"] == 1.0 and alone["modification_rate"] == 0.0


def test_eval_seat_flags_are_checked(capsys):
    with pytest.raises(SystemExit):  # argparse: one of the two, not both
        main(["eval", "judged_qa", "--actors", "scripted:expert", "--judges", "none", "--users", "none"])
    with pytest.raises(SystemExit):
        main(["eval", "judged_qa", "--actors", "scripted:expert"])
    capsys.readouterr()
    assert main(["eval", "judged_qa", "--actors", "scripted:expert", "--users", "scripted:askagain"]) == 2
    assert "no user role" in capsys.readouterr().err


def test_task_flag_plays_the_protocol_over_another_family(tmp_path, capsys):
    rec = tmp_path / "m.jsonl"
    argv = ["run", "mint_textual", "--actor", "scripted:sycophant", "--task", "judged_qa", "--task-params", '{"n_options": 3}', "--episodes", "4"]
    assert main([*argv, "--record", str(rec), "--quiet"]) == 0
    assert "mint_textual over task judged_qa" in capsys.readouterr().out
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    assert all(r["scenario"]["task"] == {"family": "judged_qa", "params": {"n_options": 3}} for r in records)
    assert all(r["scenario"]["roles"]["user"]["agent"] == "scripted:mint" for r in records)  # the protocol kept
    _, rows = eval_json(tmp_path, "askagain_closed", "--actors", "scripted:sycophant", "--users", "scripted:askagain",
                        "--task", "judged_qa", "--task-params", '{"n_options": 3}', "--episodes", "10")  # fmt: skip
    assert rows[0]["task"] == "judged_qa" and rows[0]["modification_rate"] == 1.0
    for bad, words in ((["--task-params", '{"n_options": 3}'], "needs --task"), (["--task", "judged_qa", "--task-params", "[3]"], "a JSON object"),
                       (["--task", "judged_qa", "--task-params", "{3"], "is not JSON"), (["--task", "no_such_family"], "no_such_family")):  # fmt: skip
        assert main(["run", "mint_textual", "--actor", "scripted:sycophant", "--episodes", "1", "--quiet", *bad]) == 2
        assert words in capsys.readouterr().err
    if "arithmetic" in TASKS:  # another family, where it is there (not depended on)
        try:
            load_scenario("mint_textual").with_task("arithmetic").with_roles(actor="scripted:sycophant")
        except ScenarioError:
            return
        assert main(["run", "mint_textual", "--actor", "scripted:sycophant", "--task", "arithmetic", "--episodes", "3", "--quiet"]) == 0
