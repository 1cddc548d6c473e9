"""Scenario files are untrusted input: every hostile kind of file is refused quickly, in little
memory, with a message that names the file, the line (or the field) and the reason, and quotes
no more than a short excerpt of what the file holds."""

import copy
import resource
import time
import typing
from pathlib import Path

import pytest
import yaml

import feedbackgym
from feedbackgym import ScenarioError, list_scenarios, load_scenario
from feedbackgym.cli import main
from feedbackgym.core import TASKS
from feedbackgym.envs.scenario import (
    EXCERPT_CHARS,
    MAX_PROBLEMS,
    MAX_SCENARIO_BYTES,
    MAX_SCENARIO_DEPTH,
    MAX_SCENARIO_NODES,
    scenario_dir,
)

GOOD = (scenario_dir() / "judged_qa.yaml").read_text()
GOOD_LINES = GOOD.count("\n")  # lines appended to GOOD start at GOOD_LINES + 1

#: What a refusal may cost (the issue's acceptance: none over 2 s or 500 MB).
SECONDS, BYTES = 2.0, 500 * 2**20
#: The longest message a refusal of one problem may print.
SHORT = 3 * EXCERPT_CHARS + 120


def write(tmp_path: Path, content: str | bytes, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def refused(path: Path) -> str:
    """The message `load_scenario` refuses ``path`` with, checked to have cost under 2 s and 500 MB."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) * 1024
    assert seconds < SECONDS and grown < BYTES, (seconds, grown)
    msg = str(e.value)
    assert str(path) in msg
    return msg


BILLION_LAUGHS = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def test_billion_laughs_is_refused_by_the_values_its_aliases_repeat(tmp_path):
    msg = refused(write(tmp_path, GOOD + BILLION_LAUGHS))
    # a0 = 11 values, a1 = 111, a2 = 1111, a3 = 11111: refused within lol3's aliases, nothing expanded
    assert f"line {GOOD_LINES + 4}," in msg and "more than 5000 values" in msg and "alias counts as the values it repeats" in msg
    assert len(msg) < SHORT and "lol, lol" not in msg


def test_anchors_and_aliases_read_as_yaml_writes_them(tmp_path):
    """``yaml.safe_dump`` writes an anchor for any value used twice (two seats sharing one params
    dict): such a file loads, each alias standing for its anchor's value."""
    data = yaml.safe_load((scenario_dir() / "judged_qa_critic.yaml").read_text())
    shared: dict = {}
    data["task"]["params"] = data["roles"]["critic"]["params"] = shared
    text = yaml.safe_dump(data)
    assert "&id001" in text and "*id001" in text
    sc = load_scenario(write(tmp_path, text))
    assert sc.roles["critic"].params == {} and sc.task.family == "judged_qa"


def test_an_undefined_or_recursive_alias_is_refused_where_it_stands(tmp_path):
    msg = refused(write(tmp_path, GOOD + "extra: *name\n"))
    assert f"line {GOOD_LINES + 1}, column 8" in msg and "name" in msg and "alias" in msg
    msg = refused(write(tmp_path, GOOD + "extra: &loop [1, *loop]\n"))
    assert f"line {GOOD_LINES + 1}, column 18" in msg and "an alias (*loop) inside the value of its own anchor" in msg


def test_a_merge_key_is_refused(tmp_path):
    msg = refused(write(tmp_path, GOOD.replace("protocol: {", "protocol: {<<: {rounds: 3}, ", 1)))
    line = next(i for i, s in enumerate(GOOD.splitlines(), 1) if s.startswith("protocol:"))
    assert f"line {line}, column 12" in msg and "merge key" in msg


def test_a_50_mb_file_is_refused_unread(tmp_path):
    p = tmp_path / "big.yaml"
    with p.open("w") as f:
        f.write(GOOD)
        f.write("description2: " + "x" * (50 * 2**20) + "\n")
    try:
        msg = refused(p)
    finally:
        p.unlink()  # 50 MB is not worth keeping among pytest's kept temp folders
    assert f"{50 * 2**20 + len(GOOD) + 15} bytes" in msg and f"at most {MAX_SCENARIO_BYTES}" in msg
    assert len(msg) < SHORT and "xxxx" not in msg


def test_the_size_limit_is_exact_and_does_not_trust_the_reported_size(tmp_path):
    at_limit = GOOD + "#" * (MAX_SCENARIO_BYTES - len(GOOD) - 1) + "\n"
    assert len(at_limit.encode()) == MAX_SCENARIO_BYTES
    assert load_scenario(write(tmp_path, at_limit)).name == "judged_qa"
    assert "at most" in refused(write(tmp_path, at_limit + "\n"))
    # a device says it is empty and never ends: only the limit is read
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    assert f"{MAX_SCENARIO_BYTES + 1} bytes or more" in refused(zero)


def test_a_duplicate_key_is_refused_naming_both_lines(tmp_path):
    # at the top level, where YAML alone would keep the last one silently
    msg = refused(write(tmp_path, GOOD + "name: other\n"))
    assert f"line {GOOD_LINES + 1}, column 1: duplicate key 'name' (first at line 1)" in msg
    # inside a nested mapping
    lines = GOOD.splitlines(keepends=True)
    first = next(i for i, s in enumerate(lines, 1) if s.startswith("  actor:"))
    lines.insert(first, "  actor: {agent: 'scripted:always-a'}\n")
    msg = refused(write(tmp_path, "".join(lines)))
    assert f"line {first + 1}, column 3: duplicate key 'actor' (first at line {first})" in msg


def test_non_utf8_bytes_are_refused_naming_file_line_and_byte(tmp_path):
    raw = GOOD.replace("One question", "One qu\xe9stion", 1).encode("latin-1")
    offset = raw.index(b"\xe9")
    line = raw[:offset].count(b"\n") + 1
    column = offset - raw.rfind(b"\n", 0, offset)
    msg = refused(write(tmp_path, raw))
    assert f"not UTF-8 text at line {line}, column {column} (byte {offset}: b'\\xe9sti')" in msg


def test_a_character_yaml_forbids_is_refused_with_its_line(tmp_path):
    msg = refused(write(tmp_path, GOOD + "extra: a\x00b\n"))
    assert f"line {GOOD_LINES + 1}, column 9" in msg and "'\\x00' is not allowed" in msg


N = 1000  # deep enough that yaml.safe_load raises RecursionError
# the top mapping is one level, so the 32nd bracket (or dash) opens the 33rd
DEEP = {
    "flow": ("extra: " + "[" * N + "]" * N + "\n", 1, len("extra: ") + MAX_SCENARIO_DEPTH),
    "mapping": ("extra: " + "{a: " * N + "1" + "}" * N + "\n", 1, len("extra: ") + 1 + 4 * (MAX_SCENARIO_DEPTH - 1)),
    "block": ("extra:\n" + "".join(" " * i + "-\n" for i in range(1, 200)), 1 + MAX_SCENARIO_DEPTH, 1 + MAX_SCENARIO_DEPTH),
}


@pytest.mark.parametrize("form", sorted(DEEP))
def test_deep_nesting_is_refused_before_recursion(tmp_path, form):
    body, line, column = DEEP[form]
    msg = refused(write(tmp_path, GOOD + body))
    assert f"line {GOOD_LINES + line}, column {column}: lists and mappings nested more than {MAX_SCENARIO_DEPTH} deep" in msg
    assert len(msg) < SHORT


def test_nesting_up_to_the_limit_is_only_refused_by_the_schema(tmp_path):
    # the top mapping, task and params are three levels; the value adds the rest
    deep = "[" * (MAX_SCENARIO_DEPTH - 3) + "]" * (MAX_SCENARIO_DEPTH - 3)
    msg = refused(write(tmp_path, GOOD.replace("params: {n_options: 4}", f"params: {{n_options: 4, x: {deep}}}", 1)))
    assert "task.params.x: got [[[" in msg and "no such field" in msg
    assert "nested" not in msg


def test_too_many_values_are_refused(tmp_path):
    msg = refused(write(tmp_path, GOOD + "extra: [" + ", ".join(["1"] * MAX_SCENARIO_NODES) + "]\n"))
    assert f"line {GOOD_LINES + 1}" in msg and f"more than {MAX_SCENARIO_NODES} values" in msg


@pytest.mark.parametrize(
    "value, words",
    [
        ("9" * 5000, ["line 5,", "cannot be read as int", "digits"]),
        ("2001-13-45", ["line 5,", "'2001-13-45' cannot be read as timestamp", "month"]),
    ],
    ids=["int of 5000 digits", "13th month"],
)
def test_a_scalar_python_cannot_build_is_refused_at_its_line(tmp_path, value, words):
    body = GOOD.replace("n_options: 4", f"n_options: {value}", 1)
    assert body.splitlines()[4].startswith("task:")
    msg = refused(write(tmp_path, body))
    for w in words:
        assert w in msg
    assert len(msg) < SHORT and "9" * 100 not in msg


def test_a_long_value_is_quoted_as_a_short_excerpt(tmp_path):
    msg = refused(write(tmp_path, GOOD.replace("name: judged_qa", "name: " + "X" * 60_000, 1)))
    assert "name: got 'XXXX" in msg and "..." in msg
    assert max(len(line) for line in msg.splitlines()) < SHORT and "X" * (EXCERPT_CHARS + 1) not in msg


def test_a_long_key_and_many_problems_are_cut_short(tmp_path):
    keys = "".join(f"k{'y' * 200}{i}: {i}\n" for i in range(100))
    msg = refused(write(tmp_path, GOOD + keys))
    lines = msg.splitlines()[1:]
    assert len(lines) == MAX_PROBLEMS + 1 and lines[-1].strip() == f"... and {100 - MAX_PROBLEMS} more problems"
    assert all(len(line) < SHORT for line in lines) and "no such field" in lines[0]


# "Every semantic constraint checked at load": a value that made the first episode fail.
@pytest.mark.parametrize(
    "old, new, words",
    [
        ("params: {n_options: 4}", "params: {n_options: 4, relations: []}", ["task.params.relations", "at least 1 item"]),
        ("params: {n_options: 4}", "params: {n_options: 4, relations: [colour]}", ["task.params.relations", "'colour'", "relations among"]),
        ("order: [actor, judge]", "order: []", ["protocol.order", "at least 1 item"]),
    ],
)
def test_an_empty_or_unknown_list_is_refused_at_load(tmp_path, old, new, words):
    assert old in GOOD
    msg = refused(write(tmp_path, GOOD.replace(old, new, 1)))
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "scenario, role, param, value, words",
    [
        ("askagain_open", "user", "form", "bogus", ["roles.user.params", "'bogus'", "expected one of"]),
        ("mint_binary", "user", "form", 3, ["roles.user.params.form", "got 3", "valid string"]),
        ("judged_qa_annotators", "judge", "k", 0, ["roles.judge.params", "'k': 0", "k=0: expected an integer of at least 1"]),
        ("judged_qa_annotators", "judge", "flip", 2, ["roles.judge.params", "flip=2: expected a probability in [0, 1]"]),
        ("judged_qa_annotators", "judge", "bias", -0.5, ["bias=-0.5: expected a probability in [0, 1]"]),
        ("mint_binary", "user", "accuracy", 1.5, ["roles.user.params", "accuracy=1.5: expected a probability"]),
        ("convsim_twenty_questions", "user", "patience", 0, ["patience=0: expected an integer of at least 1"]),
        ("convsim_twenty_questions", "user", "grace", -1, ["grace=-1: expected an integer of at least 0"]),
        ("judged_qa_annotators", "judge", "k", "many", ["roles.judge.params.k", "'many'", "valid integer"]),
        ("judged_qa_annotators", "judge", "flip", None, ["roles.judge.params.flip", "None", "valid number"]),
    ],
)
def test_a_scripted_agents_bad_param_value_is_refused_at_load(tmp_path, scenario, role, param, value, words):
    data = yaml.safe_load((scenario_dir() / f"{scenario}.yaml").read_text())
    data["roles"][role]["params"][param] = value
    msg = refused(write(tmp_path, yaml.safe_dump(data)))
    for w in words:
        assert w in msg, msg


def test_an_agent_spec_too_long_for_a_path_is_refused_as_a_field(tmp_path):
    old = 'judge: {agent: "scripted:malicious"}'
    assert old in GOOD
    msg = refused(write(tmp_path, GOOD.replace(old, 'judge: {agent: "lm:' + "p" * 300 + '"}', 1)))
    assert "roles.judge.agent: got 'lm:ppp" in msg and "expected an agent spec that can be checked" in msg
    assert "p" * (EXCERPT_CHARS + 1) not in msg


CLI = {
    "run": ["run", "{path}", "--actor", "scripted:always-a"],
    "eval": ["eval", "{path}", "--actors", "scripted:always-a", "--judges", "scripted:malicious"],
}


@pytest.mark.parametrize("command", CLI.values(), ids=CLI.keys())
def test_the_cli_prints_one_clear_line(tmp_path, capsys, command):
    path = write(tmp_path, GOOD + BILLION_LAUGHS)
    assert main([a.format(path=path) for a in command]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"feedbackgym {command[0]}: scenario {path}: refused at line {GOOD_LINES + 4}")


def test_shipped_scenarios_are_far_inside_the_limits():
    for name in list_scenarios():
        text = (scenario_dir() / f"{name}.yaml").read_text()
        assert len(text.encode()) < MAX_SCENARIO_BYTES // 10
        assert sum(1 for e in yaml.parse(text) if isinstance(e, (yaml.ScalarEvent, yaml.CollectionStartEvent))) < MAX_SCENARIO_NODES // 10


def _list_fields(data, path=()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _list_fields(v, (*path, k))
    elif isinstance(data, list):
        yield path


@pytest.mark.parametrize("name", list_scenarios())
def test_an_emptied_list_is_refused_at_load_or_plays(name):
    """Each list of a shipped scenario, and each list parameter of its task family, set to []:
    either the scenario is refused at load, or an episode plays to its end."""
    data = yaml.safe_load((scenario_dir() / f"{name}.yaml").read_text())
    paths = set(_list_fields(data))
    for field, info in TASKS[data["task"]["family"]].Params.model_fields.items():
        if typing.get_origin(info.annotation) is list:
            paths.add(("task", "params", field))
    for path in sorted(paths):
        changed = copy.deepcopy(data)
        node = changed
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = []
        try:
            sc = load_scenario(changed)
        except ScenarioError:
            continue
        env = feedbackgym.make(sc)
        env.reset(seed=0)
        for _ in range(50):
            *_, terminated, truncated, _info = env.step("A")
            if terminated or truncated:
                break
        env.close()
