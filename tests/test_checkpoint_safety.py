"""A run folder may come from someone else: `--resume` never unpickles an object from it (a file
that would run code when unpickled is refused without running it, the SB3 model's pickled
entries are never loaded), and corrupt checkpoints are refused naming the file."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import zipfile

import cloudpickle
import pytest
import torch

from feedbackgym.learners import train

SMALL = dict(scenario="guess_number", num_envs=2, eval_every=2, eval_episodes=2, checkpoint_every=1)
SB3 = dict(num_steps=16, batch_size=16, update_epochs=1)


class RunsCode:
    """Unpickling this object runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def sb3_run(tmp_path_factory):
    """A finished two-iteration MaskablePPO run (a checkpoint after each iteration)."""
    out = tmp_path_factory.mktemp("sb3_run")
    cls = train.learner_class("maskable_ppo")
    train.run("maskable_ppo", train.TrainArgs(out=str(out), iterations=1, **SMALL), cls.Args(**SB3), quiet=True)
    return out


def resume(run, tmp_path, capsys, iterations=2):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out, lambda: (train.main(["maskable_ppo", "--quiet", "--out", str(out), "--resume", "--iterations", str(iterations)]),
                         capsys.readouterr().err)  # fmt: skip


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(sb3_run, tmp_path, capsys):
    out, go = resume(sb3_run, tmp_path, capsys)
    marker = tmp_path / "ran"
    torch.save({"learner": RunsCode(marker)}, out / "checkpoint.pt")
    torch.load(out / "checkpoint.pt", weights_only=False)  # a plain unpickler does run it: the test is real
    assert marker.exists()
    marker.unlink()
    code, err = go()
    assert code == 2 and not marker.exists()
    assert f"train: {out / 'checkpoint.pt'}: refused" in err and "system" in err, err


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "flipped"])
def test_a_corrupt_checkpoint_is_refused_naming_the_file(sb3_run, tmp_path, capsys, damage):
    out, go = resume(sb3_run, tmp_path, capsys)
    path = out / "checkpoint.pt"
    data = path.read_bytes()
    damaged = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "random": bytes(range(256)) * 64,
        "flipped": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],
    }[damage]
    path.write_bytes(damaged)
    code, err = go()
    assert code == 2, err
    assert f"train: {path}: " in err and ("not a readable checkpoint" in err or "refused" in err or "not a feedbackgym checkpoint" in err), err
    assert "Traceback" not in err


def _with_model_data(path, change) -> None:
    """Rewrite the SB3 zip inside the checkpoint with its "data" JSON changed by ``change``."""
    ck = torch.load(path, weights_only=False)  # the test's own file
    src = zipfile.ZipFile(io.BytesIO(ck["learner"]["model"]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name in src.namelist():
            blob = src.read(name)
            if name == "data":
                d = json.loads(blob)
                change(d)
                blob = json.dumps(d).encode()
            dst.writestr(name, blob)
    ck["learner"]["model"] = buf.getvalue()
    torch.save(ck, path)


def _payload(marker) -> dict:
    return {":type:": "<class 'object'>", ":serialized:": base64.b64encode(cloudpickle.dumps(RunsCode(marker))).decode()}


def test_the_sb3_models_pickled_entries_are_never_unpickled(sb3_run, tmp_path, capsys):
    out, go = resume(sb3_run, tmp_path, capsys)
    marker = tmp_path / "ran"
    _with_model_data(out / "checkpoint.pt", lambda d: d.update(lr_schedule=_payload(marker)))  # an entry SB3 has
    code, err = go()
    assert code == 0, err  # taken from the fresh model, built from the run's own arguments
    assert not marker.exists()
    assert [m["iteration"] for m in train.read_metrics(out / "metrics.jsonl")] == [0, 1, 2]


def test_an_unknown_pickled_entry_in_the_sb3_model_is_refused(sb3_run, tmp_path, capsys):
    out, go = resume(sb3_run, tmp_path, capsys)
    marker = tmp_path / "ran"
    _with_model_data(out / "checkpoint.pt", lambda d: d.update(surprise=_payload(marker)))
    code, err = go()
    assert code == 2 and "surprise" in err and "refused" in err, err
    assert not marker.exists()
