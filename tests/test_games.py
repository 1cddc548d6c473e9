"""The multi-agent games: moves read by the moderator / checker, and each role's reward against
values worked out by hand on episodes fed move by move."""

import pytest

from feedbackgym.envs import pettingzoo as multi
from feedbackgym.envs.tasks.spc import render_steps


def fed(scenario, moves, seed=0, **roles):
    """Play ``scenario`` in the PettingZoo face with every role's move given, in schedule order."""
    env = multi.env(scenario=scenario, **roles)
    env.reset(seed=seed)
    moves = list(moves)
    for _agent in env.agent_iter():
        _, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        text = moves.pop(0)
        env.step(text(env.unwrapped.episode) if callable(text) else text)
    assert not moves, f"unused moves: {moves}"
    return env.unwrapped.episode, env


# ------------------------------------------------------------------ SPC
def _solution(ep, wrong_step=None, by=1):
    steps = list(ep.instance.steps)
    out, carry = [], None
    for i, (a, op, b, r) in enumerate(steps):
        if carry is not None:
            a = carry
            r = {"+": a + b, "-": a - b, "*": a * b}[op]
        if i + 1 == wrong_step:
            r += by
        out.append((a, op, b, r))
        carry = r
    return render_steps(out)


@pytest.mark.parametrize(
    "wrong, verdict, critic, generator",
    [
        (2, "Step 2 is wrong: the arithmetic fails.", 1.0, -1.0),  # caught
        (2, "All steps are correct.", -1.0, 1.0),  # missed
        (2, "Step 3 is wrong.", -1.0, 1.0),  # blamed the wrong step
        (None, "All steps are correct.", 1.0, -1.0),  # an honest solution, rightly passed
        (None, "Step 1 is wrong.", -1.0, 1.0),  # an honest solution, wrongly blamed
    ],
)
def test_spc_zero_sum_rewards(wrong, verdict, critic, generator):
    ep, env = fed("spc", [lambda ep: _solution(ep, wrong), verdict])
    assert ep.returns == {"generator": generator, "critic": critic}
    m = ep.metrics()
    assert m["sneaky_valid"] == (wrong is not None) and m["critic_win"] == (critic > 0)


def test_spc_checks_the_arithmetic_itself():
    ep, _ = fed("spc", [lambda ep: _solution(ep, None), "All steps are correct."])
    inst = ep.instance
    assert ep.log[0].labels["answer_norm"] == 0  # the correct solution: no error planted
    assert inst.parse("generator", _solution(ep, 2)).value == 2  # the step whose arithmetic fails
    steps = list(inst.steps)
    steps[0] = steps[0][:3] + (steps[0][3] + 1,)  # step 1 wrong, and step 3 too (not carried forward)
    steps[2] = steps[2][:3] + (steps[2][3] + 1,)
    two = inst.parse("generator", render_steps(steps))
    assert not two.valid and "steps 1, 3 are all wrong" in two.reason
    short = inst.parse("generator", "1. 2 + 2 = 5\n2. 5 + 1 = 6")
    assert not short.valid and "expected 4 steps" in short.reason


# ------------------------------------------------------------------ negotiation
def test_negotiation_rewards_by_hand():
    moves = [
        # game 1: the buyer takes the seller's $16
        "I can offer $10.", "I can let it go for $16.", "Deal, $16 it is.",
        "Hold your price longer.",  # critic
        # game 2: a deal at $18, struck by the seller accepting the buyer's offer
        "$18 is my final offer.", "Deal at $18.",
        "Stay firm.",
        # game 3: the buyer walks away
        "I can offer $12.", "I can let it go for $19.", "No deal, I'll walk away.",
        "Good game.",
    ]
    ep, env = fed("negotiation", moves)
    # seller: 16 + 18; buyer: -(16 + 18); critic: mean of later deals (18) minus the first (16)
    assert ep.returns == {"buyer": -34.0, "seller": 34.0, "critic": 2.0}
    m = ep.metrics()
    assert (m["price_game_1"], m["price_game_2"], m["price_game_3"]) == (16.0, 18.0, None)
    assert m["deal_rate"] == pytest.approx(2 / 3) and m["deal_price"] == 17.0


def test_negotiation_moderator_reads_moves():
    import numpy as np

    from feedbackgym.envs.tasks import TASKS

    t = TASKS["negotiation"]
    inst = t.sample(np.random.default_rng(0), t.Params())
    assert inst.parse("seller", "I can't accept $12; how about $15?") == (True, "offer", 15.0, "")
    assert inst.parse("buyer", "Deal!").kind == "accept"
    assert inst.parse("buyer", "No deal, sorry.").kind == "walk"
    assert inst.parse("buyer", "Tell me about the balloon.").kind == "talk"


def test_negotiation_deal_outside_the_range_does_not_count():
    moves = ["I can offer $10.", "I want $25 for it.", "Deal at $25.", "x",
             "I can offer $10.", "No deal.", "y", "I can offer $10.", "No deal.", "z"]
    ep, _ = fed("negotiation", moves)
    assert ep.metrics()["price_game_1"] is None and ep.returns["seller"] == 0.0


def test_negotiation_a_closed_game_skips_to_the_critic():
    ep, _ = fed("negotiation", ["$15?", "Deal.", "tip", "$10", "no deal", "tip", "$10", "no deal", "tip"])
    assert [m.role for m in ep.log] == ["buyer", "seller", "critic"] * 3


# ------------------------------------------------------------------ a critic's improvement reward
def test_critic_improvement_reward_by_hand():
    def right(ep):
        return f"The answer is {ep.instance.truth}."

    def wrong(ep):
        return f"The answer is {next(o for o in ep.instance.options if o != ep.instance.truth)}."

    # wrong -> (critic) -> right -> (critic) -> right -> (critic) -> wrong: +1, 0, -1
    ep, _ = fed("judged_qa_critic", [wrong, "Reconsider.", right, "Good.", right, "Hmm.", wrong])
    assert ep.returns["critic"] == 0.0
    ep, _ = fed("judged_qa_critic", [wrong, "Reconsider.", right, "Good.", right, "Good.", right])
    assert ep.returns["critic"] == 1.0


# ------------------------------------------------------------------ critique-guided improvement
def _quality(ep, text, upto):
    return ep.instance.quality(ep.instance.parse("actor", text), ep.log[:upto])


def test_cgi_round_grades_revision_and_critic_reward_by_hand():
    env = multi.env(scenario="cgi_twenty_questions", external=["actor"])
    env.reset(seed=4)
    ep = env.unwrapped.episode
    env.step("1. Is it a dog?\n2. Is it made of metal?\n3. Is it alive?")
    listed, critique = ep.log[0], ep.log[1]
    assert listed.kind == "candidates" and listed.labels["candidates"][0] == "Is it a dog?"
    grades = critique.text.splitlines()
    assert grades[0].startswith('Candidate 1 ("Is it a dog?")') and len([g for g in grades if g.startswith("Candidate")]) == 3
    q_dog, q_alive = _quality(ep, "Is it a dog?", 1), _quality(ep, "Is it alive?", 1)
    env.step("Is it alive?")  # the third candidate, not the first: a revision
    assert ep.log[2].kind == "question" and ep.log[3].role == "user"
    # the critic is paid the quality of the final move minus that of the first candidate
    assert ep.returns["critic"] == pytest.approx(q_alive - q_dog)
    assert ep.actor_turns == 1  # the candidate list does not count against the budget
    from feedbackgym.feedback.metrics import revision_ratio

    assert revision_ratio(ep.log) == 1.0


def test_cgi_scripted_actors_use_the_grades():
    from feedbackgym.cli import run_many
    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.feedback.metrics import aggregate

    def agg(actor):
        return aggregate(run_many(load_scenario("cgi_twenty_questions").with_roles(actor=actor), 0, 60))

    stubborn, sycophant, rnd = agg("scripted:stubborn"), agg("scripted:sycophant"), agg("scripted:random")
    assert stubborn["revision_ratio"] == 0.0 and sycophant["revision_ratio"] > 0.1
    assert sycophant["mean_turns"] < stubborn["mean_turns"]  # taking the critic's revisions finds it sooner
    assert rnd["success_rate"] < sycophant["success_rate"]


def test_cgi_candidate_lists_cost_no_step_penalty():
    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.rollout import play_scenario as play

    ep = play(load_scenario("cgi_twenty_questions").with_roles(actor="scripted:sycophant"), 0)
    moves = [m for m in ep.log if m.role == "actor" and m.kind in ("question", "guess", "invalid")]
    solved = ep.terminate_reason == "success"
    assert ep.returns["actor"] == -(len(moves) - (1 if solved else 0))  # -1 a move, 0 for the winning one
    assert ep.returns["actor"] >= -ep.scenario.protocol.max_turns
