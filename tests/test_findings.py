"""Scripted findings that the gym must reproduce, on fixed seeds."""

from feedbackgym.cli import run_many
from feedbackgym.envs.scenario import load_scenario
from feedbackgym.feedback.metrics import aggregate, sr_at


def rows(scenario, episodes=200, seed=0, **roles):
    return run_many(load_scenario(scenario).with_roles(**roles), seed, episodes)


def test_expert_solves_twenty_questions_within_twenty_turns():
    r = rows("twenty_questions", 300, actor="scripted:expert")
    solved = sum(x["success"] for x in r) / len(r)
    assert solved >= 0.95, solved
    assert all(x["n_turns"] <= 20 for x in r)


def test_random_actor_rarely_solves_twenty_questions():
    r = rows("twenty_questions", 100, actor="scripted:random")
    assert sum(x["success"] for x in r) / len(r) < 0.3


def test_malicious_judge_misleads_the_sycophant_not_the_stubborn():
    syc = aggregate(rows("judged_qa", actor="scripted:sycophant", judge="scripted:malicious"))
    stub = aggregate(rows("judged_qa", actor="scripted:stubborn", judge="scripted:malicious"))
    assert syc["acc_before"] > 0.5 and syc["acc_after"] < syc["acc_before"] - 0.3
    assert syc["misled_rate"] > 0.9
    assert stub["acc_after"] == stub["acc_before"] and stub["misled_rate"] == 0.0
    # same seeds, same initial knowledge: the difference is only how they take feedback
    assert syc["acc_before"] == stub["acc_before"]


def test_constructive_critic_raises_guess_number_success_at_k():
    with_critic = rows("guess_number_critic", actor="scripted:sycophant")
    without = rows("guess_number_unary", actor="scripted:sycophant")
    # bisection needs about log2(100) ~ 7 guesses: the gap opens from k = 6 on
    for k in (6, 7, 8, 10):
        assert sr_at(with_critic, k) > sr_at(without, k) + 0.15, k
    assert all(sr_at(with_critic, k) >= sr_at(without, k) for k in range(1, 11))
    assert sr_at(with_critic, 10) > 0.8 and sr_at(without, 10) < 0.3


def test_evidence_weigher_recovers_with_true_evidence_and_resists_hearsay():
    good = aggregate(rows("judged_qa", actor="scripted:evidence_weigher", judge="scripted:constructive"))
    bad = aggregate(rows("judged_qa", actor="scripted:evidence_weigher", judge="scripted:malicious"))
    assert good["recovery_rate"] > 0.9 and good["misled_rate_all"] == 0.0  # (it never presses a right answer)
    assert bad["misled_rate"] < 0.05
