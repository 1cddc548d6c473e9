"""FCP (`feedbackgym.learners.fcp`): its triples come from what was said (records, including a
person's turns in the terminal UI, and fresh episodes); it trains on the feedback each response
really got and acts under the positive condition; `feedbackgym train fcp --records` runs its
offline stage, which raises the likelihood of the recorded responses under their feedback."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from conftest import save_tiny_lm  # noqa: E402

from feedbackgym.envs.scenario import load_scenario  # noqa: E402
from feedbackgym.learners import fcp, train  # noqa: E402
from feedbackgym.learners._policy import Policy  # noqa: E402
from feedbackgym.learners.filtered_bc import nll  # noqa: E402
from feedbackgym.records import RecordWriter, read_records  # noqa: E402
from feedbackgym.rollout import Step, Trajectory, play_scenarios, scenario_for  # noqa: E402
from feedbackgym.tui.session import LiveSession, Setup  # noqa: E402

TEXTS = ["Task: Answer the question from the documents.\nactor: The answer is the Nileil River.\ncritic: Check doc2 again.\nactor:"] * 20
PERSON = "Look again at the second document, it names another river."


@pytest.fixture(scope="module")
def tiny_actor(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny_fcp"), TEXTS)


def person_critiques(path, seed: int = 0) -> None:
    """One judged_qa_critic episode in the terminal UI's session, a person in the critic's seat
    typing `PERSON` at every turn (from another thread, as the UI does)."""
    setup = Setup.of(load_scenario("judged_qa_critic"), seed, {"critic": "human"})
    session = LiveSession(setup, RecordWriter(path))
    play_ = session.play
    broker = play_.broker
    broker.subscribe(lambda r: threading.Thread(target=broker.answer, args=(r.id, r.utterance("hint", PERSON))).start())
    while not play_.episode.done:
        session.move(play_)
    session.settle(play_)


def test_a_persons_critiques_become_the_conditions_of_the_actor_s_turns(tiny_actor, tmp_path):
    person_critiques(tmp_path / "tui.jsonl")
    (rec,) = read_records(tmp_path / "tui.jsonl")
    found = fcp.triples(Policy.load(tiny_actor), [rec], "actor")
    actor_turns = [m for m in rec.messages if m.role == "actor"]
    assert [y for _, _, y in found] == [m.text for m in actor_turns]
    assert [c for c, _, _ in found[:-1]] == [f"critic: {PERSON}"] * (len(found) - 1)  # what the person typed is the condition
    assert found[-1][0] == f"outcome: {rec.terminate_reason}"  # no critique after the last answer: how the episode ended
    assert PERSON not in found[0][1] and all(x.endswith(f"critic: {PERSON}\nactor:") for _, x, _ in found[1:])  # the prompt: what came before


def test_online_triples_carry_the_feedback_each_response_got_not_the_positive_one():
    policy = SimpleNamespace(model=torch.nn.Linear(1, 1), prompt=lambda v: "P", forget=lambda: None)
    learner = fcp.FCP(policy, fcp.Args(actor_steps=0), seed=0)
    first = Step(fcp.conditioned("outcome: success", "x0"), "50", [5], [0.0], feedback="user: 50 is too high.")
    last = Step(fcp.conditioned("outcome: success", "x1"), "20", [6], [0.0], reward=1.0, terminated=True)
    learner.update([Trajectory(1, [first, last], success=True, end="success")], 0)
    assert learner.pool == [("Feedback: user: 50 is too high.\nx0", [5]), ("Feedback: outcome: success\nx1", [6])]
    learner.pool.clear()
    lost = Step(fcp.conditioned("outcome: success", "x2"), "7", [7], [0.0], feedback="user: 7 is too low.", truncated=True)
    learner.update([Trajectory(2, [lost], end="max_turns")], 1)
    assert learner.pool == [("Feedback: user: 7 is too low. | outcome: max_turns\nx2", [7])]
    assert learner.prompt(None) == "Feedback: outcome: success\nP"  # it acts under the positive condition


def test_train_fcp_offline_stage_from_records_raises_their_likelihood(tiny_actor, tmp_path):
    person_critiques(tmp_path / "data.jsonl")
    sc = scenario_for("judged_qa_critic", actor="scripted:sycophant")
    with RecordWriter(tmp_path / "data.jsonl") as w:  # and episodes a scripted actor played
        for ep in play_scenarios(sc, range(10, 16)):
            w.write(ep)
    policy = Policy.load(tiny_actor)
    data = [(fcp.conditioned(c, x), policy.tokenizer(f" {y}\n", add_special_tokens=False)["input_ids"])
            for c, x, y in fcp.triples(policy, read_records(tmp_path / "data.jsonl"), "actor")]  # fmt: skip

    def loss(p):
        with torch.no_grad():
            return float(nll(p, [x for x, _ in data], [t for _, t in data]))

    before = loss(policy)
    args = train.TrainArgs(scenario="judged_qa_critic", actor=f"lm:{tiny_actor}", out=str(tmp_path / "run"), iterations=1,
                           rollout_size=2, num_envs=2, max_new_tokens=8, eval_every=1, eval_episodes=2)  # fmt: skip
    learner = fcp.Args(records=str(tmp_path / "data.jsonl"), offline_steps=30, actor_steps=0, learning_rate=3e-3, batch_size=8, grad_accum=1)
    lines = train.run("fcp", args, learner, quiet=True)
    assert lines[1]["triples"] > len(data)  # the offline triples and the iteration's own
    after = loss(Policy.load(str(tmp_path / "run" / "actor")))  # no online steps (actor_steps 0): the offline stage's doing
    assert after < before - 0.5, (before, after)


def test_records_without_the_role_s_turns_are_refused_naming_the_file(tiny_actor, tmp_path):
    sc = scenario_for("guess_number", actor="scripted:expert")
    with RecordWriter(tmp_path / "gn.jsonl") as w:  # an actor and a user: nobody in the critic's seat
        for ep in play_scenarios(sc, range(2)):
            w.write(ep)
    args = train.TrainArgs(scenario="judged_qa_critic", actor=f"lm:{tiny_actor}", out=str(tmp_path / "r"), iterations=1, rollout_size=2,
                           seats="critic=learner,actor=scripted:sycophant")  # fmt: skip
    with pytest.raises(ValueError, match="gn.jsonl: no turn of the role 'critic' with feedback in its 2 records"):
        train.run("fcp", args, fcp.Args(records=str(tmp_path / "gn.jsonl")), quiet=True)
