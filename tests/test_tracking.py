"""``--report-to``: what `feedbackgym train` and `feedbackgym eval` log to TensorBoard and wandb is
read back from the files the backends wrote, and must be what metrics.jsonl and --json hold."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")

from conftest import save_tiny_lm  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from feedbackgym.cli import main  # noqa: E402
from feedbackgym.learners import train  # noqa: E402
from feedbackgym.tracking import ReportError, parse_report_to, scalars  # noqa: E402

TEXTS = ["Task: Guess the number between 1 and 100.\nactor: 50\nuser: Too low.\nactor: 75\nuser: Too high.\nactor:"] * 20
SMALL = dict(scenario="guess_number", rollout_size=4, num_envs=4, max_new_tokens=6, eval_every=2, eval_episodes=4)


@pytest.fixture(scope="module")
def tiny_actor(tmp_path_factory):
    return f"lm:{save_tiny_lm(tmp_path_factory.mktemp('tiny_actor'), TEXTS)}"


def tb_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def expected(lines: list[dict]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        for k, v in scalars(line).items():
            out.setdefault(k, []).append((line["iteration"], v))
    return out


def same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in want[tag]], rel=1e-6), tag  # float32 in the events


def test_train_logs_every_metrics_line_to_tensorboard_and_a_resume_logs_each_iteration_once(tiny_actor, tmp_path):
    out = tmp_path / "run"
    args = train.TrainArgs(actor=tiny_actor, out=str(out), iterations=3, checkpoint_every=2, report_to="tensorboard", **SMALL)
    train.run("filtered_bc", args, train.learner_class("filtered_bc").Args(batch_size=4, grad_accum=1, actor_steps=2), quiet=True)
    lines = train.read_metrics(out / "metrics.jsonl")
    assert [m["iteration"] for m in lines] == [0, 1, 2, 3]
    logged = tb_scalars(out / "tensorboard")
    same(logged, expected(lines))
    assert {"return", "eval_return", "bc_loss", "cost_s/collect", "cost_s/update", "episodes"} <= set(logged)
    # a run that crashed after its checkpoint of iteration 2 and logged iteration 3 before dying
    for f in (out / "checkpoints").glob("000003.*"):
        f.unlink()
    train.run("filtered_bc", train.TrainArgs(out=str(out), iterations=4), resume=True, quiet=True)
    lines = train.read_metrics(out / "metrics.jsonl")
    assert [m["iteration"] for m in lines] == [0, 1, 2, 3, 4]
    same(tb_scalars(out / "tensorboard"), expected(lines))  # iteration 3 once, not twice


def wandb_history(folder: Path) -> list[dict]:
    """The history records of the offline wandb run in ``folder``, read from its .wandb file
    (a 7-byte W&B header, then LevelDB's log format: 32 KiB blocks of records with a 7-byte
    header of crc, length and type; type 1 a whole record, 2/3/4 its first/middle/last part)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, records, part = 7, [], b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind == 1:
            records.append(chunk)
        elif kind in (2, 3):
            part = (part if kind == 3 else b"") + chunk
        elif kind == 4:
            records.append(part + chunk)
    history = []
    for chunk in records:
        r = pb.Record()
        r.ParseFromString(chunk)
        if r.WhichOneof("record_type") == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return history


def test_train_logs_to_an_offline_wandb_run(tiny_actor, tmp_path, monkeypatch):
    # wandb makes temporary folders at import (media, artifacts) and for its service, and removes
    # them only when the process exits, after the suite's check for leftovers: they go to tmp_path
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default, not something the test sets
    out = tmp_path / "run"
    args = train.TrainArgs(actor=tiny_actor, out=str(out), iterations=2, report_to="wandb", **SMALL)
    train.run("filtered_bc", args, train.learner_class("filtered_bc").Args(batch_size=4, grad_accum=1, actor_steps=2), quiet=True)
    lines = train.read_metrics(out / "metrics.jsonl")
    history = {h["_step"]: h for h in wandb_history(out)}
    assert sorted(history) == [0, 1, 2]
    for line in lines:
        got = {k: v for k, v in history[line["iteration"]].items() if not k.startswith("_")}
        assert got == pytest.approx(scalars(line))
    assert (out / "wandb" / "run_id").read_text().strip() in next((out / "wandb").glob("offline-run-*")).name


def test_eval_logs_one_tensorboard_run_per_row_with_the_json_figures(tmp_path, capsys):
    js = tmp_path / "m.json"
    code = main(["eval", "judged_qa", "--actors", "scripted:sycophant,scripted:stubborn", "--judges", "scripted:constructive,scripted:malicious",
                 "--episodes", "12", "--json", str(js), "--report-to", "tensorboard", "--quiet"])  # fmt: skip
    assert code == 0
    rows = json.loads(js.read_text())
    runs = sorted(p for p in (tmp_path / "m" / "tensorboard").iterdir() if p.is_dir())  # the log dir: --json without .json
    assert len(runs) == len(rows) == 4
    for run, row in zip(runs, rows):
        assert row["actor"].split(":")[1] in run.name and row["judge"].split(":")[1] in run.name
        logged = {tag: v for tag, [(step, v)] in tb_scalars(run).items()}
        want = scalars({k: v for k, v in row.items() if k not in ("seed",)})
        assert {k: v for k, v in logged.items()} == pytest.approx({k: want[k] for k in logged})
        assert {"misled_rate_all", "misled_rate_all_ci/low", "misled_rate_all_ci/high", "accuracy_drop"} <= set(logged)
        assert set(want) - set(logged) <= {"seed"}


def test_bad_report_to_values_are_refused_before_anything_runs(tmp_path, capsys):
    assert parse_report_to("none") == () and parse_report_to("tensorboard, tensorboard") == ("tensorboard",)
    with pytest.raises(ReportError, match="'tensorbored' is not a backend"):
        parse_report_to("tensorbored")
    code = main(["eval", "judged_qa", "--actors", "scripted:sycophant", "--judges", "scripted:constructive", "--episodes", "5",
                 "--report-to", "mlflow", "--log-dir", str(tmp_path / "e")])  # fmt: skip
    assert code == 2 and "'mlflow' is not a backend" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    assert train.main(["ppo", "--actor", "lm:x", "--out", str(tmp_path / "t"), "--report-to", "wandb,x"]) == 2
    assert "'x' is not a backend" in capsys.readouterr().err and not (tmp_path / "t").exists()
