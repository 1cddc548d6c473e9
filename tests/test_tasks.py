"""Task families: generation from a seed, parsing, verification, oracle and expert."""

import numpy as np
import pytest

from feedbackgym.envs.tasks import TASKS
from feedbackgym.envs.tasks.judged_qa import RELATIONS
from feedbackgym.envs.tasks.twenty_questions import knowledge_base
from feedbackgym.feedback.parse import hedged


def sample(family, seed=0, **params):
    task = TASKS[family]
    return task.sample(np.random.default_rng(seed), task.Params(**params))


def test_knowledge_base_size_and_uniqueness():
    kb = knowledge_base()
    assert kb.matrix.shape[0] >= 100 and kb.matrix.shape[1] == 20
    assert len({row.tobytes() for row in kb.matrix}) == kb.matrix.shape[0]
    for a in kb.attributes:  # every bank question is answerable, and about its own attribute
        for q in a["questions"]:
            assert [kb.attr_names[i] for i in kb.match_attribute(q)] == [a["name"]]


def test_twenty_questions_oracle_and_guesses():
    inst = sample("twenty_questions", 3)
    kb = inst.kb
    j = kb.attr_names.index("alive")
    p = inst.parse("actor", "Is it alive?")
    assert (p.valid, p.kind, p.value) == (True, "question", "alive")
    assert inst.respond(p) == ("Yes." if kb.matrix[inst.secret, j] else "No.")
    right = inst.parse("actor", f"Is it a {inst.object}?")
    assert right.kind == "guess" and inst.score(right).solved and inst.respond(right) == "Yes."
    other = next(n for n in kb.names if n != inst.object)
    assert not inst.score(inst.parse("actor", f"is it an {other}")).solved
    assert inst.parse("actor", "Is it bigger than a dog?").kind != "guess"
    bad = inst.parse("actor", "What colour is the sky on Mars")
    assert not bad.valid and bad.reason.startswith("Invalid question")


def test_judged_qa_world_is_seeded_and_fictional():
    a, b, c = sample("judged_qa", 5), sample("judged_qa", 5), sample("judged_qa", 6)
    assert a.hidden() == b.hidden() and a.hidden() != c.hidden()
    assert a.truth in a.options and a.distractor in a.options and a.truth != a.distractor
    supports = [p.supports for p in a.corpus]
    assert supports.count(a.truth) == 2 and supports.count(a.distractor) == 2 and supports.count(None) == 4
    for p in a.corpus:  # crafted passages read as hearsay, true ones as record
        if p.supports == a.distractor:
            assert hedged(p.text) and a.distractor in p.text
        elif p.supports == a.truth:
            assert not hedged(p.text) and a.truth in p.text


@pytest.mark.parametrize("rel", sorted(RELATIONS))
def test_judged_qa_every_relation(rel):
    inst = sample("judged_qa", 1, relations=[rel], n_options=6, n_filler=10)
    assert inst.relation == rel and len(inst.options) == 6 and len(inst.corpus) == 2 + 2 + 10


def test_judged_qa_parse():
    inst = sample("judged_qa", 2)
    o = inst.options
    assert inst.parse("actor", "B").value == o[1]
    assert inst.parse("actor", "(c)").value == o[2]
    assert inst.parse("actor", "The answer is D.").value == o[3]
    assert inst.parse("actor", f"I'd say {o[0]}.").value == o[0]
    assert inst.parse("actor", f"Not {o[0]}; the answer is {o[2]}").value == o[2]
    both = inst.parse("actor", f"{o[0]} or {o[1]}")
    assert not both.valid and "several options" in both.reason
    assert not inst.parse("actor", "no idea").valid
    # a letter with its option text, as chat models answer: the two must agree
    assert inst.parse("actor", f"B) {o[1]}").value == o[1]
    assert inst.parse("actor", f"(d). {o[3]} is where it sits").value == o[3]
    assert inst.parse("actor", "C) I think so").value == o[2]
    mismatch = inst.parse("actor", f"A) {o[2]}")
    assert not mismatch.valid and "letter A" in mismatch.reason and o[2] in mismatch.reason
    assert not inst.parse("actor", f"The answer is B, {o[3]}.").valid


def test_guess_number_parse_and_bounds():
    from feedbackgym.envs.tasks.guess_number import GuessNumberInstance

    inst = GuessNumberInstance(secret=30, low=1, high=100)
    assert inst.parse("actor", "I guess 42!").value == 42
    assert not inst.parse("actor", "42 or 43").valid
    assert "outside" in inst.parse("actor", "101").reason
    assert not inst.parse("actor", "4.5").valid
    assert inst.bounds_after([50, 25]) == (26, 49)
    assert inst.respond(inst.parse("actor", "50")) == "lower" and inst.respond(inst.parse("actor", "30")) == "correct"


def test_params_are_validated():
    with pytest.raises(ValueError):
        TASKS["guess_number"].Params(low=10, high=5)
    with pytest.raises(ValueError):
        sample("judged_qa", 0, relations=["colour"])


def test_judged_qa_diagnosis_rules_out_wrong_options_by_name_and_never_states_the_truth():
    """A teacher's diagnosis of a wrong answer (MINT's textual feedback, Feedback Friction's hints):
    it rules out the answer and one more wrong option by name, read back as ruled out and never as
    a suggestion; it never names the truth; later ones rule out options not ruled out before and
    give advice not given before; a right answer has none."""
    from feedbackgym.envs.engine import Episode
    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.feedback.parse import read_feedback

    sc = load_scenario("feedback_friction").with_roles(actor="scripted:random")  # 6 options
    relations = set()
    for seed in range(200):
        ep = Episode(sc, seed)
        inst = ep.instance
        relations.add(inst.relation)
        assert inst.diagnosis(inst.parse("actor", inst.truth), ep.view("user")) is None
        wrong = [o for o in inst.options if o != inst.truth]
        eliminated, notes = set(), []
        for _ in range(3):  # answers the diagnoses left open: 5 wrong options, 2 ruled out a round
            answer = next(o for o in wrong if o not in eliminated)
            ep.submit("actor", inst.state(answer))
            note = inst.diagnosis(ep.last_parsed, ep.view("user"))
            assert inst.truth.lower() not in note.lower(), (seed, note)
            reading = read_feedback(note, inst, ep.last_parsed)
            named = [o for o in reading.ruled_out if o != answer]
            assert answer in reading.ruled_out and reading.suggestion is None, (seed, note)
            fresh = [o for o in wrong if o not in eliminated | {answer}]
            assert len(named) == (1 if fresh else 0) and not set(named) & eliminated, (seed, note)
            assert set(named) <= set(fresh)
            eliminated |= {answer, *named}
            assert ("Only hearsay" in note) == (answer == inst.distractor), (seed, note)
            notes.append(note.split(". ")[-1])
            ep.submit("user", note)
        assert len(set(notes)) == 3, (seed, notes)  # the advice is never repeated while some is left
    assert relations == set(RELATIONS)


def test_judged_qa_open_book_shows_the_corpus_and_the_default_stays_closed():
    import numpy as np

    from feedbackgym.core import TASKS

    task = TASKS["judged_qa"]
    closed = task.sample(np.random.default_rng(3), task.Params())
    opened = task.sample(np.random.default_rng(3), task.Params(open_book=True))
    assert closed.hidden() == opened.hidden()  # the same item, only what the actor is shown differs
    assert all(p.text not in closed.instruction for p in closed.corpus)
    assert all(f"[{p.id}] {p.text}" in opened.instruction for p in opened.corpus)
    assert opened.instruction.endswith(closed.instruction.split(". ", 1)[1])
