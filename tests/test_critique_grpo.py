"""Critique-guided refinement (``protocol.refine``) and the Critique-GRPO learner: one test per
rule (each fails when the rule is broken: see `benchmarks/wrong_edits.py`'s ``cgrpo_*`` edits).

The step: the actor's move is a draft (its verdict kept, no turn, no reward, no success), the
refining role critiques that draft, the refinement is the move that counts; records and every
face keep it. The learner: drafts are on-policy samples at their prompt, refinements are posed
at their draft's prompt, scored by the task's verdict (unreadable: 0; no verdict: not trained),
grouped by (seed, prompt) with the best ``refinements`` kept; refinement tokens get -A f(pi),
f(pi) = pi / (pi + gamma), instead of the clipped ratio; descent makes a right refinement more
likely at the prompt its wrong draft was written at.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from feedbackgym.agents import make_agent  # noqa: E402
from feedbackgym.agents.base import agents_for  # noqa: E402
from feedbackgym.envs.engine import Episode, play  # noqa: E402
from feedbackgym.envs.scenario import ScenarioError, load_scenario  # noqa: E402
from feedbackgym.learners import critique_grpo as cg  # noqa: E402
from feedbackgym.learners import grpo  # noqa: E402
from feedbackgym.records import Record, RecordWriter, read_records, rebuild  # noqa: E402
from feedbackgym.rollout import Step, Trajectory, rollout, scenario_for  # noqa: E402


# ---------------------------------------------------------------------- the refinement step
def played(name: str, seed: int, **roles) -> Episode:
    sc = scenario_for(name, **roles)
    ep = Episode(sc, seed, agents_for(sc))
    play(ep)
    return ep


def test_a_draft_is_critiqued_then_refined_and_only_the_refinement_counts():
    ep = played("guess_number_refine", 3, actor="scripted:random")
    kinds = [(m.role, m.kind) for m in ep.log]
    assert kinds[:4] == [("actor", "draft"), ("critic", "feedback"), ("actor", "guess"), ("user", "feedback")]
    drafts = [m for m in ep.log if m.kind == "draft"]
    moves = [m for m in ep.log if m.role == "actor" and m.kind == "guess"]
    assert len(drafts) == len(moves) == ep.actor_turns  # the drafts spent no turn of the budget
    critique = ep.log[ep.log.index(drafts[1]) + 1]
    assert drafts[1].text in critique.text  # the critic speaks of the draft, not of the move before it
    assert all(d.labels["is_correct"] is False for d in drafts)


def test_a_right_draft_neither_ends_the_episode_nor_earns_and_the_critic_earns_the_change():
    # the expert's draft is right; the random actor's is not; the refinement decides
    for seed in range(40):
        ep = played("judged_qa_refine", seed, actor="scripted:random")
        draft, answer = ep.log[0], ep.log[2]
        assert draft.kind == "draft" and answer.kind == "answer" and ep.terminate_reason == "protocol_end"
        assert ep.returns["actor"] == float(answer.labels["is_correct"])  # final_correct reads the refinement
        assert ep.returns["judge"] == float(answer.labels["is_correct"]) - float(draft.labels["is_correct"])
    ep = played("guess_number_refine", 0, actor="scripted:expert")
    assert ep.log[0].kind == "draft" and ep.terminate_reason == "success"
    assert ep.log[-1].kind == "guess" and ep.log[-1].labels["solved"]


def test_the_refinement_turn_is_asked_to_refine():
    sc = scenario_for("judged_qa_refine", actor="scripted:random")
    ep = Episode(sc, 1, agents_for(sc))
    assert not ep.view("actor").refining
    ep.submit("actor", "The answer is nothing at all.")  # an unreadable draft: still critiqued, then refined
    assert ep.log[0].kind == "draft" and ep.log[0].labels["valid"] is False and ep.log[1].kind == "env"
    assert ep.current_role() == "judge"
    ep.submit("judge", agents_for(sc)["judge"].act(ep.view("judge")))
    view = ep.view("actor")
    assert view.refining and "Refine your draft" in view.ask
    assert ep.actor_turns == 0


@pytest.mark.parametrize("truth", [False, True])
def test_the_template_critics_give_the_verdict_and_with_truth_the_right_answer(truth):
    # Critique-GRPO's indicative ("correct/incorrect") and ground-truth critiques, on the draft
    name = "judged_qa_refine_truth" if truth else "judged_qa_refine_verdict"
    seen = set()
    for seed in range(12):
        ep = played(name, seed, actor="scripted:random")
        draft, critique = ep.log[0], ep.log[1]
        instance = ep.instance
        right = draft.labels["is_correct"]
        seen.add(right)
        assert critique.role == "critic" and critique.text.startswith("Your answer is correct." if right else "Your answer is incorrect.")
        assert critique.feedback.kind == ("critique" if truth else "binary") and critique.feedback.score == float(right)
        gives = truth and not right
        assert (instance.truth in critique.text) == gives  # the truth only where asked for and the draft is wrong
        assert critique.feedback.labels["suggested_answer"] == (instance.truth if gives else None)
    assert seen == {True, False}


def test_the_verdict_critic_plays_in_a_multi_turn_game_and_names_the_secret():
    ep = played("guess_number_refine", 2, actor="scripted:random", critic="scripted:verdict")
    critiques = [m.text for m in ep.log if m.role == "critic"]
    assert critiques and set(critiques) <= {"Your answer is correct.", "Your answer is incorrect."}
    sc = scenario_for("twenty_questions", actor="scripted:random")
    data = sc.model_dump(mode="json")
    data["roles"]["critic"] = {"agent": "scripted:verdict", "params": {"truth": True}}
    data["protocol"]["refine"] = "critic"
    from feedbackgym.envs.scenario import Scenario

    sc = Scenario.model_validate(data)
    ep = Episode(sc, 5, agents_for(sc))
    ep.submit("actor", "Is it an animal?")  # a question has no verdict: no answer yet, and the object follows
    critic = agents_for(sc)["critic"].act(ep.view("critic"))
    assert critic.text == f"That is not an answer. The correct answer is {ep.instance.object}."
    assert critic.feedback.score is None and critic.feedback.labels["suggested_answer"] == ep.instance.object


def test_refine_scenarios_are_checked_when_they_load(tmp_path):
    data = load_scenario("guess_number_refine").model_dump(mode="json")
    for value, expected in (("judge", "a role declared under roles"), ("actor", "a role that gives feedback")):
        path = tmp_path / f"bad_{value}.yaml"
        import yaml

        path.write_text(yaml.safe_dump({**data, "protocol": {**data["protocol"], "refine": value}}))
        with pytest.raises(ScenarioError) as err:
            load_scenario(str(path))
        assert str(path) in str(err.value) and "protocol.refine" in str(err.value) and expected in str(err.value)


def test_records_and_every_face_keep_drafts_refinements_and_verdicts(tmp_path):
    agent = make_agent("scripted:random", "actor")
    runs = {face: rollout(agent, "guess_number_refine", n_envs=3, seeds=[4, 5, 6], face=face) for face in (None, "gymnasium", "pettingzoo")}
    t = runs[None]
    assert runs["gymnasium"] == t and runs["pettingzoo"] == t
    steps = t[0].steps
    assert [s.refines for s in steps[:4]] == [False, True, False, True]
    assert all(s.verdict is not None for s in steps)
    with RecordWriter(tmp_path / "r.jsonl") as w:
        rollout(agent, "guess_number_refine", n_envs=2, seeds=[4], writer=w)
    rec = read_records(tmp_path / "r.jsonl")[0]
    assert Record.of(rebuild(rec)).to_json() == rec.to_json()
    assert [m.kind for m in rec.messages][:3] == ["draft", "feedback", "guess"]


class Gibberish:
    def act_batch(self, views):
        return ["banana" for _ in views]


def test_an_unreadable_draft_or_refinement_is_scored_wrong_not_left_out():
    (t,) = rollout(Gibberish(), "judged_qa_refine", seeds=[0])
    assert [(s.refines, s.verdict) for s in t.steps] == [(False, False), (True, False)]


# ---------------------------------------------------------------------- samples and groups
def step(prompt: str, tokens, verdict, refines=False) -> Step:
    return Step(prompt, "a", list(tokens), [0.0] * len(tokens), verdict=verdict, refines=refines)


def test_a_refinement_is_posed_at_its_drafts_prompt_and_scored_by_verdict():
    t = Trajectory(1, [step("x", [1], False), step("x + draft + critique", [2], True, refines=True)])
    out = cg.samples([t], cg.Args())
    assert [(s.prompt, s.tokens, s.score, s.refinement) for s, _ in out] == [("x", (1,), 0.0, False), ("x", (2,), 1.0, True)]
    assert [a for _, a in out] == pytest.approx([-0.5 / (0.5 + grpo.EPS), 0.5 / (0.5 + grpo.EPS)])


def test_groups_are_one_seeds_samples_at_one_prompt_and_keep_the_best_refinements():
    ts = [
        Trajectory(1, [step("x", [1], False), step("x'", [2], False, True)]),
        Trajectory(1, [step("x", [3], False), step("x''", [4], True, True)], member=1),
        Trajectory(2, [step("x", [5], True), step("y", [6], None)]),  # another seed: its own group; no verdict: untrained
    ]
    out = cg.samples(ts, cg.Args(refinements=1, scale_rewards=False))
    kept = {(s.group, s.tokens): a for s, a in out}
    assert set(kept) == {((1, "x"), (1,)), ((1, "x"), (3,)), ((1, "x"), (4,)), ((2, "x"), (5,))}  # the wrong refinement left out
    assert kept[(1, "x"), (4,)] == pytest.approx(2 / 3) and kept[(1, "x"), (1,)] == pytest.approx(-1 / 3)
    assert kept[(2, "x"), (5,)] == 0.0  # a group of one
    assert len(cg.samples(ts, cg.Args(refinements=2))) == 5
    assert all(not s.refinement for s, _ in cg.samples(ts, cg.Args(refinements=0)))


# ---------------------------------------------------------------------- the loss
def test_refinement_tokens_get_the_shaped_probability_and_drafts_the_clipped_ratio():
    logp = torch.log(torch.tensor([[0.5], [0.3]])).requires_grad_()
    old = torch.log(torch.tensor([[0.5], [0.9]]))  # the refinement row's "old" must not matter
    adv, mask, off = torch.tensor([1.0, 2.0]), torch.ones(2, 1), torch.tensor([False, True])
    loss, _ = cg.critique_loss(logp, old, adv, mask, off, 0.2, 0.1)
    assert float(loss.detach()) == pytest.approx((-1.0 * 1.0 - 2.0 * 0.3 / 0.4) / 2)
    loss.backward()
    p = 0.3  # d/dlogp of -A p / (p + g) = -A g p / (p + g)^2, halved by the mean over rows
    assert float(logp.grad[1, 0]) == pytest.approx(-2.0 * 0.1 * p / (p + 0.1) ** 2 / 2)
    assert float(logp.grad[0, 0]) == pytest.approx(-1.0 / 2)
    up = torch.log(torch.tensor([[1.5 * 0.5]]))  # a draft's ratio 1.5 with A > 0: clipped at 1.2
    loss, clipped = cg.critique_loss(up, torch.log(torch.tensor([[0.5]])), torch.tensor([1.0]), torch.ones(1, 1), torch.tensor([False]), 0.2, 0.1)
    assert float(loss) == pytest.approx(-1.2) and float(clipped) == 1.0


def test_descent_makes_a_right_refinement_likely_where_its_wrong_draft_was_written():
    from test_update_rules import tiny_gpt2

    model = tiny_gpt2()
    policy = SimpleNamespace(model=model, pad_id=0, encode=lambda p: [int(c) for c in p], forget=lambda: None,
                             agent=SimpleNamespace(options=SimpleNamespace(temperature=1.0)))  # fmt: skip
    learner = cg.CritiqueGRPO(policy, cg.Args(group_size=2, learning_rate=1e-2, batch_size=4, grad_accum=1, update_epochs=3), seed=0)
    wrong, right = [5], [3, 4]
    ts = [Trajectory(7, [step("12", wrong, False), step("1256", right, True, refines=True)]),
          Trajectory(7, [step("12", wrong, False), step("1257", [6], False, refines=True)], member=1)]  # fmt: skip

    def logp(action):
        with torch.no_grad():
            return float(grpo.token_logprobs(model, [[1, 2]], [action], 0)[0].sum())

    before = (logp(right), logp(wrong))
    metrics = learner.update(ts, 0)
    assert logp(right) > before[0] and logp(wrong) < before[1]
    assert metrics["samples"] == 3 and metrics["refinements"] == 1


def test_critique_grpo_refuses_a_scenario_without_a_refinement_step():
    from test_update_rules import tiny_gpt2

    policy = SimpleNamespace(model=tiny_gpt2(), agent=SimpleNamespace(options=SimpleNamespace(temperature=1.0)))
    learner = cg.CritiqueGRPO(policy, cg.Args(group_size=2), seed=0)
    with pytest.raises(ValueError, match="no protocol.refine"):
        learner.prepare(SimpleNamespace(rollout_size=4, scenario="guess_number"), {})
    learner.prepare(SimpleNamespace(rollout_size=4, scenario="guess_number_refine"), {})
