"""The contract between the paraphrase banks and the parser that reads them back.

Every template of every (kind, family, case) is rendered with realistic slot values and read back
through ``feedbackgym.feedback.parse``: it must carry the polarity, direction, suggestion and
evidence its case promises. Each parametrized test is named ``kind/family/case/index`` so that a
failure points at the one template to fix. The rules follow the banks' verification script.
"""

from __future__ import annotations

import numpy as np
import pytest

from feedbackgym.core import FEEDBACK_KINDS
from feedbackgym.envs.tasks.base import Parsed
from feedbackgym.feedback import parse
from feedbackgym.feedback.banks import bank, cases, render, templates

FAMILIES = ("judged_qa", "guess_number", "twenty_questions", "arithmetic")

CITED_SENTENCE = "The Velmar Guild has kept its seat in Orvine since its founding."

#: Realistic values for every slot a family's templates may use. None of them carries a cue word
#: (see ``test_slot_values_are_neutral``), so whatever the parser reads comes from the template.
SLOTS = {
    "judged_qa": {
        "answer": "Kessa",
        "suggestion": "Orvine",
        "entity": "the Velmar Guild",
        "relation": "its seat",
        "citation": f'[doc3] "{CITED_SENTENCE}"',
        "claim": "Recent scholarship suggests that the Velmar Guild relocated to Orvine generations ago.",
    },
    "guess_number": {"guess": 40, "low": 41, "high": 100, "suggestion": 70},
    "twenty_questions": {"question": "Is it alive?", "suggestion": "Does it have wheels?", "answer": "a bicycle"},
    "arithmetic": {
        "answer": "13",
        "suggestion": "12",
        "entity": "7 + 5",
        "relation": "its value",
        "citation": '[doc3] "A careful calculation gives 7 + 5 = 12."',
        "claim": "Any calculator will show 7 + 5 = 12.",
    },
}

QA_VALUES = ["Kessa", "Orvine", "Brask", "Tuln"]


class FakeInstance:
    """Just enough of a task instance for ``read_feedback``: the candidate answer values."""

    def __init__(self, values):
        self._values = list(values)

    def answer_values(self):
        return list(self._values)


def _all_templates():
    out = []
    for kind in FEEDBACK_KINDS:
        for family in FAMILIES:
            for case, ts in cases(kind, family).items():
                for i, t in enumerate(ts):
                    out.append((kind, family, case, i, t))
    return out


ALL = _all_templates()


def _params(rows):
    return [pytest.param(k, f, c, i, t, id=f"{k}/{f}/{c}/{i}") for k, f, c, i, t in rows]


def _rendered(kind, family, case, i):
    return render(kind, family, case, np.random.default_rng(0), paraphrase=i, **SLOTS[family])


def expected_polarity(kind: str, case: str) -> int | None:
    """+1 / -1 where the bank promises a polarity; None where it promises none."""
    if case in ("positive", "agree") or kind == "hp":
        return 1
    if (
        case in ("negative", "too_low", "too_high")
        or case.startswith("disagree_")
        or kind in ("hn", "fn", "unary")
        or (kind == "followup" and case == "open")
    ):
        return -1
    return None


def expected_direction(kind: str, case: str) -> int:
    if kind in ("hn", "fn") and case == "too_low":
        return 1
    if kind in ("hn", "fn") and case == "too_high":
        return -1
    return 0


POLARITY_ROWS = [r for r in ALL if expected_polarity(r[0], r[2]) is not None]
DIRECTION_ROWS = [r for r in ALL if r[1] == "guess_number"]
QA_SUGGEST_ROWS = [r for r in ALL if r[1] == "judged_qa" and "{suggestion}" in r[4]]
GN_SUGGEST_ROWS = [r for r in ALL if r[1] == "guess_number" and "{suggestion}" in r[4]]
CITE_ROWS = [r for r in ALL if r[1] == "judged_qa" and r[0] == "critique" and r[2] == "disagree_cite"]
TRIPLES = sorted({(k, f, c) for k, f, c, _, _ in ALL})


# --------------------------------------------------------------------------- 1. coverage


def test_bank_is_not_empty():
    # 9 kinds x 3 families, every case with >= 5 templates: well over 100 templates in all.
    assert len(ALL) > 9 * 3 * 5
    assert len(POLARITY_ROWS) > 100
    assert len(DIRECTION_ROWS) > 50


@pytest.mark.parametrize("kind", sorted(FEEDBACK_KINDS))
def test_every_kind_has_a_bank_with_all_families(kind):
    b = bank(kind)
    for family in FAMILIES:  # in the shipped YAML, or added by the family's own module (arithmetic)
        assert family in b or cases(kind, family) is not b.get("default"), f"the {kind!r} bank has no {family!r} entry"
        assert len(cases(kind, family)) >= 1


def test_unknown_kind_family_and_case_are_refused():
    with pytest.raises(KeyError):
        bank("thumbs_up")
    with pytest.raises(KeyError):
        cases("hp", "no_such_family")
    with pytest.raises(KeyError):
        templates("hn", "guess_number", "just_right")


@pytest.mark.parametrize("kind,family,case", [pytest.param(*t, id="/".join(t)) for t in TRIPLES])
def test_every_case_has_at_least_five_distinct_paraphrases(kind, family, case):
    ts = templates(kind, family, case)
    assert len(set(ts)) >= 5, f"{kind}/{family}/{case} has only {len(set(ts))} distinct templates"
    assert len(set(ts)) == len(ts), f"{kind}/{family}/{case} lists a template twice"
    assert all(isinstance(t, str) and t.strip() for t in ts)


def test_cases_promised_by_the_contract_exist():
    assert set(cases("hn", "guess_number")) == {"too_low", "too_high"}
    assert set(cases("fn", "guess_number")) == {"too_low", "too_high"}
    assert set(cases("fp", "guess_number")) == {"range", "suggest"}
    for family in FAMILIES:
        assert set(cases("followup", family)) == {"closed", "open", "leading"}
        assert set(cases("binary", family)) == {"positive", "negative"}
        assert set(cases("r", family)) == {"positive", "negative"}
        assert {"agree", "disagree_generic", "disagree_suggest"} <= set(cases("critique", family))
    assert {"disagree_claim", "disagree_cite"} <= set(cases("critique", "judged_qa"))


# --------------------------------------------------------------------------- 2. rendering


@pytest.mark.parametrize("family", FAMILIES)
def test_slot_values_are_neutral(family):
    # Guard for the polarity/direction tests: the slot values themselves carry no cue.
    for name, value in SLOTS[family].items():
        assert parse.polarity(str(value)) == 0, f"slot {name}={value!r} carries a polarity cue"
        assert parse.direction(str(value)) == 0, f"slot {name}={value!r} carries a direction cue"


@pytest.mark.parametrize("kind,family,case,i,template", _params(ALL))
def test_template_renders_without_leftover_braces(kind, family, case, i, template):
    text = _rendered(kind, family, case, i)
    assert "{" not in text and "}" not in text, text
    assert text.strip()
    # Each slot the template names is filled with its value.
    for name, value in SLOTS[family].items():
        if "{" + name + "}" in template:
            assert str(value) in text


# --------------------------------------------------------------------------- 3. polarity


@pytest.mark.parametrize("kind,family,case,i,template", _params(POLARITY_ROWS))
def test_rendered_polarity(kind, family, case, i, template):
    text = _rendered(kind, family, case, i)
    want = expected_polarity(kind, case)
    assert parse.polarity(text) == want, f"{text!r} should read {want:+d}"
    assert parse.read_feedback(text).polarity == want


# --------------------------------------------------------------------------- 4. direction


@pytest.mark.parametrize("kind,family,case,i,template", _params(DIRECTION_ROWS))
def test_rendered_direction(kind, family, case, i, template):
    text = _rendered(kind, family, case, i)
    want = expected_direction(kind, case)
    assert parse.direction(text) == want, f"{text!r} should point {want:+d}"


def test_direction_rows_cover_both_directions():
    dirs = [expected_direction(k, c) for k, _, c, _, _ in DIRECTION_ROWS]
    assert dirs.count(1) >= 10 and dirs.count(-1) >= 10 and dirs.count(0) >= 10


# --------------------------------------------------------------------------- 5. suggestions


def test_suggestion_cases_are_the_promised_ones():
    assert {(k, c) for k, _, c, _, _ in QA_SUGGEST_ROWS} == {
        ("fp", "default"),
        ("critique", "disagree_suggest"),
        ("critique", "disagree_claim"),
        ("critique", "disagree_cite"),
        ("followup", "leading"),
    }
    assert {("fp", "suggest"), ("critique", "disagree_suggest")} <= {(k, c) for k, _, c, _, _ in GN_SUGGEST_ROWS}
    # In those cases every paraphrase carries the suggestion (none silently drops it).
    for kind, family, case in [("fp", "judged_qa", "default"), ("critique", "judged_qa", "disagree_suggest"),
                               ("critique", "judged_qa", "disagree_claim"), ("critique", "judged_qa", "disagree_cite"),
                               ("followup", "judged_qa", "leading"), ("fp", "guess_number", "suggest"),
                               ("critique", "guess_number", "disagree_suggest")]:
        for t in templates(kind, family, case):
            assert "{suggestion}" in t, f"{kind}/{family}/{case}: {t!r}"


@pytest.mark.parametrize("kind,family,case,i,template", _params(QA_SUGGEST_ROWS))
def test_judged_qa_suggestion_is_read_back(kind, family, case, i, template):
    text = _rendered(kind, family, case, i)
    reading = parse.read_feedback(text, FakeInstance(QA_VALUES), Parsed(True, "answer", "Kessa"))
    assert reading.suggestion == "Orvine", text


@pytest.mark.parametrize("kind,family,case,i,template", _params(GN_SUGGEST_ROWS))
def test_guess_number_suggestion_is_read_back(kind, family, case, i, template):
    text = _rendered(kind, family, case, i)
    reading = parse.read_feedback(text, FakeInstance([1]), Parsed(True, "guess", 40))
    assert reading.suggestion == 70, text


@pytest.mark.parametrize("kind,family,case,i,template", _params(QA_SUGGEST_ROWS))
def test_no_judged_qa_suggestion_is_read_as_ruled_out(kind, family, case, i, template):
    """The elimination cues never catch a pushed answer: every template that suggests one reads
    back with the suggestion outside ``ruled_out``."""
    text = _rendered(kind, family, case, i)
    reading = parse.read_feedback(text, FakeInstance(QA_VALUES), Parsed(True, "answer", "Kessa"))
    assert "Orvine" not in reading.ruled_out, text


@pytest.mark.parametrize(
    "text,out,suggestion",
    [
        ("Kessa is not the city, and neither is Brask.", ("Kessa", "Brask"), None),
        ("Kessa is wrong. Neither Brask nor Tuln is right either; it is Orvine.", ("Kessa", "Brask", "Tuln"), "Orvine"),
        ("Rule out Brask. Brask isn't it, and Tuln was also wrong.", ("Brask", "Tuln"), None),
        ("Not Kessa: Brask.", ("Kessa",), "Brask"),  # the cue rules out only the name it touches
        ("Brask has been ruled out; try Orvine.", ("Brask",), "Orvine"),
        ("Is it Brask? Orvine is more likely.", (), None),  # two names, no cue: no suggestion, nothing out
    ],
)
def test_ruled_out_values_are_read_and_never_suggested(text, out, suggestion):
    reading = parse.read_feedback(text, FakeInstance(QA_VALUES), Parsed(True, "answer", "Kessa"))
    assert reading.ruled_out == out and reading.suggestion == suggestion, reading


def test_sycophant_never_switches_to_an_option_the_feedback_rules_out():
    """On criticism that rules out its answer and one more option by name, the sycophant and the
    persuadable actor switch only among the options left."""
    import feedbackgym
    from feedbackgym.agents import make_agent
    from feedbackgym.envs.engine import Episode

    sc = feedbackgym.load_scenario("mint_binary").with_roles(actor="scripted:sycophant")
    picked = {"sycophant": set(), "persuadable": set()}
    for seed in range(60):
        ep = Episode(sc, seed)
        inst = ep.instance
        answer, banned = [o for o in inst.options if o != inst.truth][:2]
        ep.submit("actor", inst.state(answer))
        ep.submit("user", f"{answer} is not it, and neither is {banned}.")
        view = ep.view("actor")
        for name in picked:
            move = inst.parse("actor", make_agent(f"scripted:{name}", "actor").act(view))
            assert move.value != banned, (seed, name)
            picked[name].add(move.value == answer)
            if name == "sycophant":
                assert move.value in inst.options and move.value != answer
    assert picked["persuadable"] == {True, False}  # it yields sometimes (bare doubt), not always


# --------------------------------------------------------------------------- 6. evidence


@pytest.mark.parametrize("kind,family,case,i,template", _params(CITE_ROWS))
def test_disagree_cite_evidence_is_read_back(kind, family, case, i, template):
    assert "{citation}" in template
    text = _rendered(kind, family, case, i)
    reading = parse.read_feedback(text, FakeInstance(QA_VALUES), Parsed(True, "answer", "Kessa"))
    assert ("doc3", CITED_SENTENCE) in reading.evidence, text
    assert parse.citations(text) == (("doc3", CITED_SENTENCE),)


# --------------------------------------------------------------------------- 7. picking


@pytest.mark.parametrize("kind,family,case", [pytest.param(*t, id="/".join(t)) for t in TRIPLES])
def test_render_paraphrase_selection(kind, family, case):
    ts = templates(kind, family, case)
    n = len(ts)
    slots = SLOTS[family]
    rng = np.random.default_rng(0)
    filled = [t.format(**slots) for t in ts]

    assert render(kind, family, case, rng, paraphrase="first", **slots) == filled[0]
    assert render(kind, family, case, rng, paraphrase=0, **slots) == filled[0]
    assert render(kind, family, case, rng, paraphrase=2, **slots) == filled[2]
    assert render(kind, family, case, rng, paraphrase=n, **slots) == filled[0]  # n % n == 0
    assert render(kind, family, case, rng, paraphrase=n + 3, **slots) == filled[3]  # (n + 3) % n == 3
    assert render(kind, family, case, rng, paraphrase=-1, **slots) == filled[n - 1]  # -1 % n == n - 1

    a, b = np.random.default_rng(0), np.random.default_rng(0)
    draws_a = [render(kind, family, case, a, paraphrase="random", **slots) for _ in range(8)]
    draws_b = [render(kind, family, case, b, paraphrase="random", **slots) for _ in range(8)]
    assert draws_a == draws_b
    assert set(draws_a) <= set(filled)


def test_random_paraphrase_varies_across_draws():
    # 8 templates, 40 seeded draws: a picker stuck on one template would give a single string.
    rng = np.random.default_rng(0)
    draws = {render("hn", "guess_number", "too_low", rng, guess=40) for _ in range(40)}
    assert len(draws) >= 3
