"""Long runs stream (issue 13): `run` and `eval` keep aggregates, not rows; an episode keeps its
texts, not a dict per message.

What a user relies on: the aggregates a `Tally` folds one row at a time are those the row-list
definitions give (`Rate` over every row, the per-round and the task's own rates found over all of
them); its intervals are the episode bootstrap's; `run` and `eval` hold a bounded number of
episodes and rows whatever their length; a long episode's memory per turn does not grow with its
length and is its texts plus a fixed cost.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

from feedbackgym import cli, rollout
from feedbackgym.agents import agents_for
from feedbackgym.envs.engine import Episode, play
from feedbackgym.envs.scenario import load_scenario, validate
from feedbackgym.feedback import metrics, report
from feedbackgym.feedback.metrics import RATES, Tally, aggregate, log_metrics


def row_list_rates(rows, ks=(1, 2, 3, 5)):
    """The rates over a list of rows as they were defined before streaming: every round any row
    reached, every task metric any row has (named after its last value)."""
    rounds = max((len(r.get("correct_by_round") or ()) - 1 for r in rows), default=0)
    out = [*RATES, *(metrics._sr_rate(k) for k in ks), *(metrics._modification_at(k) for k in range(1, rounds + 1))]
    extra = {k: v for r in rows for k, v in r.items() if k not in metrics._EPISODE_KEYS and v is not None}
    return out + [metrics._extra_rate(k, v) for k, v in extra.items() if isinstance(v, (bool, int, float))]


def row_list_means(rows):
    out = {}
    for rate in row_list_rates(rows):
        vals = [float(rate.value(r)) for r in rows if rate.over(r) and rate.value(r) is not None]
        out[rate.name] = (sum(vals) / len(vals) if vals else None, len(vals))
    return out


def hand_row(rounds, **extra):
    """An episode row: the standing answer's correctness after each round, plus a task's metrics."""
    base = log_metrics([], None, "answer")
    first, last = rounds[0], rounds[-1]
    return {
        **base, "initial_correct": first, "final_correct": last, "flip_c2i": first and not last,
        "flip_i2c": not first and last, "success": last, "n_turns": len(rounds), "correct_by_round": list(rounds), **extra,
    }  # fmt: skip


def test_a_tally_folds_the_row_list_definitions_rounds_and_task_metrics_appearing_late():
    # short episodes first; a third round and a task metric appear only later: the earlier
    # episodes count at their last round in modification_rate@2, and not at all in the new metric
    rows = [hand_row([True, False]), hand_row([True, True]), hand_row([False, True])]
    rows += [hand_row([True, True, False], deal_price=10), hand_row([True, False, True, True], deal_price=14.5)]
    rows += [hand_row([True, True], deal_price=None, walked=True), hand_row([False, False], walked=False)]
    tally = Tally()
    for r in rows:
        tally.add(r)
    got = tally.result(ci=True)
    want = row_list_means(rows)
    assert [r.name for r in tally.rates()] == list(want)
    assert "modification_rate@3" in want and "mean_deal_price" in want and "walked_rate" in want
    for name, (mean, n) in want.items():
        assert got[f"{name}_n"] == n, name
        assert got[name] == (pytest.approx(mean) if mean is not None else None), name
    assert got["modification_rate@2"] == 0.4 and got["modification_rate@2_n"] == 5  # 2 of the 5 first-right, by round 2
    assert aggregate(rows, ci=True) == {"episodes": len(rows), **got}


def test_the_interval_is_the_bootstrap_over_episodes():
    rows = cli.run_many(load_scenario("judged_qa_multiround").with_roles(actor="scripted:persuadable"), 0, 80)
    a = aggregate(rows, ci=True)
    assert a == aggregate(rows, ci=True)  # the same draws every time
    rng = np.random.default_rng(12345)
    idx = rng.integers(0, len(rows), (4000, len(rows)))  # resample episode indices, as scipy did
    checked = 0
    for rate in row_list_rates(rows):
        value = np.array([float(rate.value(r)) if rate.over(r) and rate.value(r) is not None else 0.0 for r in rows])
        mask = np.array([rate.over(r) and rate.value(r) is not None for r in rows])
        if a[f"{rate.name}_n"] < 2 or len(set(value[mask])) < 2:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = value[idx].sum(1) / mask[idx].sum(1)
        lo, hi = np.nanpercentile(stat, [2.5, 97.5])
        # 2,000 draws each: the bounds agree within Monte Carlo error
        assert a[f"{rate.name}_ci"] == [pytest.approx(lo, abs=0.04), pytest.approx(hi, abs=0.04)], rate.name
        checked += 1
    assert checked >= 5


def test_a_tally_keeps_counts_not_rows():
    rows = cli.run_many(load_scenario("judged_qa").with_roles(actor="scripted:persuadable", judge="scripted:malicious"), 0, 50)
    small, large = Tally().fold(rows), Tally().fold(rows * 40)
    assert large.episodes == 40 * small.episodes == 2000
    assert large.size() == small.size()  # the same distinct values: nothing per episode
    assert large.result()["acc_before"] == small.result()["acc_before"]


class Row(dict):
    """A metrics row that can be watched (a plain dict takes no weak reference)."""


@pytest.fixture
def watched(monkeypatch):
    """Weak references to every episode `run`/`eval` play and every metrics row they make, and
    the most of each alive at once, counted as each episode is handed over."""
    seen = {"episodes": [], "rows": [], "max_episodes": 0, "max_rows": 0}
    real = rollout.play_scenarios  # what `run` and `eval` play through (`rollout.played`)

    def alive(kind):
        return sum(w() is not None for w in seen[kind])

    def watching(scenario, seeds, in_flight=16, agents=None):
        for ep in real(scenario, seeds, in_flight, agents):
            seen["episodes"].append(weakref.ref(ep))
            seen["max_episodes"] = max(seen["max_episodes"], alive("episodes"))
            yield ep

    metrics_of = Episode.metrics

    def row(self):
        r = Row(metrics_of(self))
        seen["rows"].append(weakref.ref(r))
        seen["max_rows"] = max(seen["max_rows"], alive("rows"))
        return r

    monkeypatch.setattr(Episode, "metrics", row)
    monkeypatch.setattr(rollout, "play_scenarios", watching)
    return seen


def test_run_holds_a_bounded_number_of_episodes_and_rows(watched, capsys):
    assert cli.main(["run", "guess_number", "--actor", "scripted:expert", "--episodes", "120", "--in-flight", "4", "--quiet"]) == 0
    assert "120 episodes" in capsys.readouterr().out
    assert len(watched["rows"]) == 120
    assert watched["max_rows"] <= 2  # the row being folded (and the one before it, until rebound)
    assert watched["max_episodes"] <= 2 * 4  # a chunk in flight and the one before it


def test_eval_streams_and_gives_the_rows_of_the_row_lists(watched):
    base = load_scenario("judged_qa")
    rows = cli.evaluate(base, ["scripted:persuadable"], ["scripted:malicious", "none"], 60, 0, in_flight=4)
    assert len(watched["rows"]) == 2 * 60  # the baseline's episodes serve the 'none' column too
    assert watched["max_rows"] <= 2 * 2 + 2  # a row per run side by side (and the ones before them)
    assert watched["max_episodes"] <= 2 * 2 * 4
    # the same figures as from the whole row lists, paired seed by seed
    alone = cli.run_many(base.with_roles(actor="scripted:persuadable", judge=None), 0, 60)
    played = cli.run_many(base.with_roles(actor="scripted:persuadable", judge="scripted:malicious"), 0, 60)
    about = {"scenario": "judged_qa", "task": "judged_qa", "seed": 0}
    want = [
        report.eval_row("scripted:persuadable", "judge", "scripted:malicious", None, played, alone, **about),
        report.eval_row("scripted:persuadable", "judge", "none", None, alone, alone, **about),
    ]
    assert rows == want
    assert rows[0]["delta_feedback"] < 0 and rows[1]["delta_feedback"] == 0.0


# --------------------------------------------------------------------------- one long episode


def long_episode(turns: int):
    data = load_scenario("guess_number").with_roles(actor="scripted:random").model_dump()
    data["task"]["params"] = {"low": 1, "high": 10**9}
    data["protocol"]["max_turns"] = turns
    sc = validate(data, source="test")
    agents = agents_for(sc)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ep = Episode(sc, 0, agents)
        play(ep)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ep.actor_turns == turns
    return ep, held / turns, sum(sys.getsizeof(m.text) for m in ep.log) / turns


def test_a_long_episode_holds_its_texts_and_a_fixed_cost_a_turn():
    short, short_per_turn, _ = long_episode(500)
    ep, per_turn, text_per_turn = long_episode(3000)
    # no copy per turn: six times the turns, the same bytes a turn (a copy of the log, a view or a
    # metrics cache per turn would grow it with the length)
    assert per_turn <= 1.1 * short_per_turn
    # what a turn holds past its two texts: the two typed messages, the feedback, their label
    # dicts (one per message: sharing equal ones cost ~8% more opcodes a step), the guess and the
    # turn numbers: ~740 B
    assert per_turn - text_per_turn <= 800, (per_turn, text_per_turn)
