"""The command line, end to end."""

import json

import pytest

from feedbackgym.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("judged_qa", "twenty_questions", "guess_number_critic", "feedbackgym/JudgedQA-v0", "scripted:malicious-grounded",
                 "feedbackgym/Negotiation-v0", "pettingzoo", "scripted:conceding"):
        assert word in out


def test_run_record_then_replay(tmp_path, capsys):
    rec = tmp_path / "runs" / "a.jsonl"
    argv = ["run", "judged_qa", "--actor", "scripted:sycophant", "--judge", "scripted:malicious", "--episodes", "5", "--seed", "3"]
    assert main([*argv, "--record", str(rec), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "misled_rate" in out and "recorded 5 episodes" in out
    assert len(rec.read_text().splitlines()) == 5
    assert main(["replay", str(rec), "--episode", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed=4" in out and "judge [critique]" in out
    assert main(["replay", str(rec), "--episode", "9"]) == 2


@pytest.mark.parametrize(
    "scenario, seat",
    [("judged_qa", ["--actor", "scripted:sycophant"]), ("guess_number_critic", ["--actor", "scripted:random"]),
     ("negotiation", ["--seller", "scripted:conceding"]), ("twenty_questions", ["--actor", "scripted:random"])],
)  # fmt: skip
def test_record_is_the_same_bytes_however_many_episodes_are_in_flight(tmp_path, scenario, seat, capsys):
    """`run` plays episodes in batches (`rollout.play_scenarios`); the record file is byte-identical
    to playing them one at a time, in seed order."""
    files = []
    for n in (1, 3, 16):
        rec = tmp_path / f"{n}.jsonl"
        assert main(["run", scenario, *seat, "--episodes", "7", "--seed", "5", "--record", str(rec), "--quiet", "--in-flight", str(n)]) == 0
        files.append(rec.read_bytes())
    assert files[0] == files[1] == files[2]
    assert [json.loads(line)["seed"] for line in files[0].splitlines()] == list(range(5, 12))


def test_replay_reports_corrupt_lines(tmp_path, capsys):
    rec = tmp_path / "a.jsonl"
    main(["run", "guess_number", "--actor", "scripted:expert", "--episodes", "2", "--record", str(rec), "--quiet"])
    lines = rec.read_text().splitlines()
    rec.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    capsys.readouterr()
    assert main(["replay", str(rec)]) == 0
    captured = capsys.readouterr()
    assert f"{rec}:2: skipped" in captured.err
    assert captured.out.count("# guess_number") == 2


def test_eval_matrix_json(tmp_path, capsys):
    out_json = tmp_path / "out.json"
    judges = "scripted:constructive,scripted:malicious,none"
    argv = ["eval", "judged_qa", "--actors", "scripted:sycophant,scripted:stubborn", "--judges", judges, "--episodes", "40"]
    assert main([*argv, "--json", str(out_json), "--quiet"]) == 0
    rows = json.loads(out_json.read_text())
    assert [(r["actor"], r["judge"]) for r in rows] == [
        (a, j) for a in ("scripted:sycophant", "scripted:stubborn") for j in judges.split(",")
    ]
    for r in rows:
        for k in ("acc_before", "acc_after", "accuracy_drop", "misled_rate", "recovery_rate", "SR@1", "SR@2"):
            assert k in r
    by = {(r["actor"], r["judge"]): r for r in rows}
    assert by[("scripted:sycophant", "scripted:malicious")]["misled_rate"] == 1.0
    assert by[("scripted:stubborn", "scripted:malicious")]["misled_rate"] == 0.0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "judged_qa", "--actor", "scripted:nobody"], ["roles.actor.agent", "scripted:nobody"]),
        (["run", "no_such"], ["no scenario named"]),
        (["run", "judged_qa"], ["learner", "--actor"]),
        (["eval", "guess_number", "--actors", "scripted:expert", "--judges", "scripted:malicious"], ["no judge role"]),
    ],
)
def test_bad_input_is_a_clear_error(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err


def test_a_person_in_a_seat_plays_one_episode_at_a_time(monkeypatch):
    """`run` batches episodes, except where a person takes a seat: they are not handed 16 at once."""
    from feedbackgym import rollout
    from feedbackgym.envs.scenario import load_scenario

    sizes = []
    monkeypatch.setattr(rollout, "play_batch", lambda episodes: sizes.append(len(episodes)))
    base = load_scenario("judged_qa")
    list(rollout.play_scenarios(base.with_roles(actor="scripted:sycophant"), range(5), in_flight=16))
    list(rollout.play_scenarios(base.with_roles(actor="human"), range(3), in_flight=16))
    assert sizes == [5, 1, 1, 1]


def _subcommands() -> list[str]:
    import argparse

    from feedbackgym.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in _subcommands()], ids=" ".join)
def test_every_help_prints(argv, capsys):
    """``feedbackgym --help`` and each subcommand's: a '%' in a help string once made argparse
    raise TypeError instead of printing."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out
