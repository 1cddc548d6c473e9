"""Scenario files: every shipped one loads; a bad one is refused naming field, value and expectation."""


import pytest
import yaml

from feedbackgym import ScenarioError, list_scenarios, load_scenario

GOOD = {
    "name": "tmp",
    "task": {"family": "judged_qa", "params": {"n_options": 4}},
    "roles": {"actor": {"agent": "learner"}, "judge": {"agent": "scripted:malicious"}},
    "protocol": {"order": ["actor", "judge"], "rounds": 1, "final": ["actor"], "max_turns": 4},
    "feedback": {"kinds": ["critique"]},
    "rewards": {"actor": "final_correct"},
}


def write(tmp_path, data):
    p = tmp_path / "s.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def with_change(path, value):
    import copy

    data = copy.deepcopy(GOOD)
    node = data
    *parents, last = path
    for k in parents:
        node = node[k]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("name", list_scenarios())
def test_every_shipped_scenario_loads(name):
    sc = load_scenario(name)
    assert sc.name == name
    assert sc.learner_role == {"spc": "critic", "negotiation": "seller"}.get(sc.task.family, "actor")


def test_good_file_loads(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.protocol.rounds == 1 and sc.roles["judge"].agent == "scripted:malicious"


# Each kind of error: (change, words the message must contain: the field, the value, the expectation)
BAD = {
    "missing field": (("task",), KeyError, ["task", "missing"]),
    "unknown field": (("protocol", "roundz"), 3, ["protocol.roundz", "3", "no such field"]),
    "wrong type": (("protocol", "rounds"), "many", ["protocol.rounds", "'many'", "integer"]),
    "out of range": (("protocol", "max_turns"), 0, ["protocol.max_turns", "0", "greater than or equal to 1"]),
    "unknown family": (("task", "family"), "chess", ["task.family", "'chess'", "judged_qa"]),
    "unknown role": (("roles", "referee"), {"agent": "learner"}, ["roles", "'referee'", "actor"]),
    "unknown agent": (("roles", "judge", "agent"), "scripted:malicous", ["roles.judge.agent", "scripted:malicous", "scripted:malicious"]),
    "agent kind": (("roles", "judge", "agent"), "gpt4", ["roles.judge.agent", "'gpt4'", "KIND:NAME"]),
    "undeclared role in order": (("protocol", "order"), ["actor", "critic"], ["protocol.order.1", "'critic'", "declared"]),
    "order must open with actor": (("protocol", "order"), ["judge", "actor"], ["protocol.order.0", "'judge'", "actor"]),
    "unknown reward": (("rewards", "actor"), "accuracy", ["rewards.actor", "'accuracy'", "final_correct"]),
    "unknown feedback kind": (("feedback", "kinds"), ["hint"], ["feedback.kinds", "hint", "critique"]),
    "bad task param": (("task", "params"), {"n_options": 1}, ["task.params.n_options", "1", "greater than or equal to 2"]),
    "unknown task param": (("task", "params"), {"difficulty": "hard"}, ["task.params.difficulty", "'hard'", "no such field"]),
    "bad paraphrase": (("feedback", "paraphrase"), "shuffle", ["feedback.paraphrase", "'shuffle'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_names_field_value_and_expectation(tmp_path, case):
    path, value, words = BAD[case]
    p = write(tmp_path, with_change(path, value))
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, f"{case}: {w!r} not in:\n{msg}"


def test_invalid_yaml_names_line(tmp_path):
    p = write(tmp_path, "name: x\ntask: {family: judged_qa\nroles: [\n")
    with pytest.raises(ScenarioError, match=r"not valid YAML at line \d+"):
        load_scenario(p)


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ScenarioError, match="expected a mapping at the top level, got list"):
        load_scenario(write(tmp_path, "- a\n- b\n"))


def test_unknown_scenario_name_lists_shipped():
    with pytest.raises(ScenarioError, match="judged_qa"):
        load_scenario("no_such_scenario")


def test_judge_only_where_supported(tmp_path):
    data = with_change(("task", "family"), "guess_number")
    data["task"]["params"] = {}
    with pytest.raises(ScenarioError, match="roles.judge.agent.*plays only in arithmetic, judged_qa"):
        load_scenario(write(tmp_path, data))


def test_with_roles_none_removes_role_from_schedule_and_rewards():
    sc = load_scenario("judged_qa").with_roles(judge=None)
    assert "judge" not in sc.roles
    assert sc.protocol.order == ["actor"] and "judge" not in sc.rewards


def test_agent_params_are_checked_on_load(tmp_path):
    data = with_change(("roles", "judge"), {"agent": "scripted:malicious", "params": {"retreiver": "bm25"}})
    expected = r"roles.judge.params.retreiver: got 'bm25', expected a parameter of scripted:malicious: one of \['paraphrase', 'retriever'\]"
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(write(tmp_path, data))


def test_replacing_an_agent_drops_the_old_agents_params():
    sc = load_scenario("askagain_closed").with_roles(user="scripted:binary")
    assert sc.roles["user"].params == {}
    kept = load_scenario("askagain_closed").with_roles(user="scripted:askagain")
    assert kept.roles["user"].params == {"form": "closed"}


def test_every_seat_must_be_scheduled():
    with pytest.raises(ScenarioError, match="roles.judge: got 'scripted:malicious', expected a role the protocol schedules"):
        load_scenario("ufo").with_roles(judge="scripted:malicious")


def test_scenario_paraphrase_choice_reaches_every_feedback_giver():
    """feedback.paraphrase: first makes every critic use each case's first template."""
    from feedbackgym.envs.scenario import validate
    from feedbackgym.feedback import banks
    from feedbackgym.rollout import play_scenario as play

    data = load_scenario("judged_qa_critic").model_dump()
    data["feedback"]["paraphrase"] = "first"
    sc = validate(data).with_roles(actor="scripted:sycophant")
    checked = 0
    for seed in range(20):
        for m in play(sc, seed).log:
            if m.feedback:
                first = banks.templates(m.feedback.kind, "judged_qa", m.feedback.labels["case"])[0]
                opening = first.split("{")[0]
                assert m.text.startswith(opening[:1].upper() + opening[1:]), (m.text, first)
                checked += bool(opening)
    assert checked > 20
