"""A run folder may come from someone else: `--resume` never unpickles anything from it.

Checkpoints are safetensors + JSON (`feedbackgym.learners.checkpoints`): a pickle placed where
the old ``checkpoint.pt`` was is refused without running it; a damaged tensor file (empty,
truncated, random bytes, a flipped byte) or JSON file is refused naming the file, and ``--resume``
then names the earlier checkpoint that ``--resume-from`` can use, which resumes exactly."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile

import numpy as np
import pytest
import torch

from feedbackgym.learners import checkpoints, train
from feedbackgym.rollout import Step, Trajectory

SMALL = dict(scenario="guess_number", num_envs=2, eval_every=1, eval_episodes=2, checkpoint_every=1)
SB3 = dict(num_steps=16, batch_size=16, update_epochs=1)


class RunsCode:
    """Unpickling this object runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def sb3_run(tmp_path_factory):
    """A finished two-iteration MaskablePPO run: checkpoints after iterations 1 and 2."""
    out = tmp_path_factory.mktemp("sb3_run")
    cls = train.learner_class("maskable_ppo")
    train.run("maskable_ppo", train.TrainArgs(out=str(out), iterations=2, **SMALL), cls.Args(**SB3), quiet=True)
    return out


def copy(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def resume(out, capsys, *extra, iterations=3) -> tuple[int, str]:
    code = train.main(["maskable_ppo", "--quiet", "--out", str(out), "--resume", "--iterations", str(iterations), *extra])
    return code, capsys.readouterr().err


def comparable(path) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in train.CLOCK_FIELDS} for m in train.read_metrics(path)]


# ---------------------------------------------------------------------- the format
def test_a_state_goes_through_tensors_and_json_and_comes_back_the_same():
    w = torch.randn(3, 4)
    state = {
        "model": {"embed.weight": w, "head.weight": w, "row": w[1]},  # tied weights, and a view of them
        "opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}}, "param_groups": [{"betas": (0.9, 0.999), "params": [0]}]},
        "rng": (3, tuple(range(5)), None), "keys": np.arange(4, dtype=np.uint32), "big": 2**100, "odd": [math.inf, -math.inf],
        "buffer": [Trajectory(seed=7, steps=[Step("p \ud800", "a", [1, 2], [-0.1, -2.5e-300], 1.0, "q", True)], success=True)],
        "$not_a_tag": 1,
    }  # fmt: skip
    tensors, skeleton = checkpoints.encode(state)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    assert "model/embed.weight" in tensors and "model/head.weight" not in tensors  # a tied tensor is stored once
    back = checkpoints.decode(json.loads(json.dumps(skeleton)), tensors)
    assert torch.equal(back["model"]["head.weight"], w) and torch.equal(back["model"]["row"], w[1])
    assert back["opt"]["state"][0]["step"].item() == 3.0 and back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["rng"] == (3, (0, 1, 2, 3, 4), None) and back["keys"].dtype == np.uint32 and back["big"] == 2**100
    assert back["odd"] == [math.inf, -math.inf] and back["$not_a_tag"] == 1
    assert back["buffer"] == state["buffer"]  # dataclass equality: every field, floats to the bit


def test_a_state_that_only_pickling_could_save_is_refused_naming_where():
    with pytest.raises(TypeError, match="learner/buffer/0: a .*RunsCode cannot be saved"):
        checkpoints.encode({"learner": {"buffer": [RunsCode("x")]}})


# ---------------------------------------------------------------------- refusals
def test_a_pickle_where_the_old_checkpoint_was_is_refused_without_running_it(sb3_run, tmp_path, capsys):
    out = copy(sb3_run, tmp_path)
    shutil.rmtree(out / "checkpoints")
    marker = tmp_path / "ran"
    torch.save({"learner": RunsCode(marker)}, out / "checkpoint.pt")
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()  # unpickling it does run the command: the test is real
    marker.unlink()
    code, err = resume(out, capsys)
    assert code == 2 and not marker.exists(), err
    assert f"train: {out / 'checkpoint.pt'}: " in err and "never read" in err and "nothing in it was run" in err, err


def test_a_checkpoint_json_naming_an_object_is_refused_without_building_it(sb3_run, tmp_path, capsys):
    out = copy(sb3_run, tmp_path)
    newest = train.newest_checkpoint(out)
    doc = json.loads(newest.read_text())
    doc["state"]["learner"]["started"] = {"$RunsCode": {"marker": "x"}}
    newest.write_text(json.dumps(doc))
    code, err = resume(out, capsys)
    assert code == 2 and f"train: {newest}: field state, learner/started: '$RunsCode'" in err, err


def damage(data: bytes, how: str) -> bytes:
    return {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "random": np.random.default_rng(0).bytes(len(data)),
        "flipped": data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],  # inside the safetensors header
    }[how]


@pytest.mark.parametrize("rehash", [False, True], ids=["as-damaged", "sha256-rewritten"])
@pytest.mark.parametrize("how", ["empty", "truncated", "random", "flipped"])
def test_a_damaged_tensor_file_is_refused_naming_it_and_the_earlier_checkpoint(sb3_run, tmp_path, capsys, how, rehash):
    """Refused by the sha256 the JSON recorded and, where someone rewrote that too, by the
    safetensors reader; either way the file is named, and so is the earlier checkpoint."""
    out = copy(sb3_run, tmp_path)
    newest = train.newest_checkpoint(out)
    st = newest.with_suffix(".safetensors")
    st.write_bytes(damage(st.read_bytes(), how))
    if rehash:
        doc = json.loads(newest.read_text())
        newest.write_text(json.dumps({**doc, "sha256": checkpoints.sha256(st)}))
    code, err = resume(out, capsys)
    assert code == 2 and f"train: {st}: " in err, err
    assert ("not a readable safetensors file" if rehash else "damaged, truncated or replaced") in err, err
    earlier = out / "checkpoints" / "000001.json"
    assert f"an earlier checkpoint {earlier} (iteration 1) is usable: resume from it with --resume --resume-from {earlier}" in err
    assert "Traceback" not in err and comparable(out / "metrics.jsonl") == comparable(sb3_run / "metrics.jsonl")  # nothing cut


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda text: text[: len(text) // 2], "not JSON (corrupt or truncated): "),
        (lambda text: "\x00\xff garbage", "not JSON"),
        (lambda text: "[1, 2]", "not a feedbackgym checkpoint (format 'list'"),
        (lambda text: text.replace('"algo": "maskable_ppo"', '"algo": "archer"'), "a checkpoint of a archer run, not of maskable_ppo"),
        (lambda text: text.replace('"version": 1', '"version": 99'), "checkpoint format version '99'"),
        (lambda text: text.replace('{"$tensor": "learner/policy/', '{"$tensor": "elsewhere/', 1), "which the tensor file lacks"),
        (lambda text: text.replace('"started": ', '"started_": ', 1), "does not fit this run's maskable_ppo learner: KeyError"),
        (lambda text: "[" * 100_000, "not a feedbackgym checkpoint"),
        (lambda text: text.replace('"iteration": 2, "algo"', '"iteration": 7, "algo"'), "named for iteration 2, says 7 and 2"),
        (lambda text: text.replace('"offsets": {"metrics": ', '"offsets": {"metrics": -'), "field state/offsets/metrics is '-"),
    ],
    ids=["truncated", "not-json", "foreign", "other-algo", "version", "missing-tensor", "missing-field", "deep", "renamed", "offsets"],
)
def test_a_damaged_or_foreign_json_is_refused_naming_it(sb3_run, tmp_path, capsys, change, says):
    out = copy(sb3_run, tmp_path)
    newest = train.newest_checkpoint(out)
    newest.write_text(change(newest.read_text()))
    code, err = resume(out, capsys)
    assert code == 2 and f"train: {newest}: " in err and says in err, err
    assert "an earlier checkpoint" in err and "Traceback" not in err, err


def test_with_no_usable_checkpoint_resume_says_so(sb3_run, tmp_path, capsys):
    out = copy(sb3_run, tmp_path)
    for p in (out / "checkpoints").glob("*.safetensors"):
        p.write_bytes(b"")
    code, err = resume(out, capsys)
    assert code == 2 and "no earlier checkpoint of this run is usable (1 other in" in err, err


# ---------------------------------------------------------------------- using the earlier one
def test_resume_from_the_earlier_checkpoint_is_exact_and_sets_the_damaged_one_aside(sb3_run, tmp_path, capsys):
    out = copy(sb3_run, tmp_path)
    newest = train.newest_checkpoint(out)
    newest.with_suffix(".safetensors").write_bytes(b"")
    earlier = out / "checkpoints" / "000001.json"
    code, err = resume(out, capsys, "--resume-from", str(earlier), iterations=2)
    assert code == 0, err
    assert "resuming from iteration 1; the later checkpoint(s) 000002.json moved to" in err
    assert (out / "checkpoints" / "set_aside" / "000002.safetensors").read_bytes() == b""  # kept, not deleted
    assert comparable(out / "metrics.jsonl") == comparable(sb3_run / "metrics.jsonl")  # as the uninterrupted run
    assert (out / "eval.jsonl").read_text() == (sb3_run / "eval.jsonl").read_text()
    assert [it for it, _ in checkpoints.found(out / "checkpoints")] == [2, 1]


def test_resume_from_a_file_of_another_run_is_refused(sb3_run, tmp_path, capsys):
    out = copy(sb3_run, tmp_path)
    other = copy(sb3_run, tmp_path / "other")
    code, err = resume(out, capsys, "--resume-from", str(other / "checkpoints" / "000001.json"))
    assert code == 2 and "expected a checkpoint of this run, one of" in err and str(out / "checkpoints" / "000002.json") in err, err


def test_what_a_kill_mid_write_leaves_is_ignored_and_cleared(sb3_run, tmp_path, capsys):
    """A kill between the tensor file and its JSON (or during either) leaves no checkpoint that
    `found` lists: resume goes on from the newest whole one, and the next save clears the rest."""
    out = copy(sb3_run, tmp_path)
    folder = out / "checkpoints"
    (folder / "000003.safetensors").write_bytes(b"half")
    (folder / ".000003.json.tmp").write_text("{")
    code, err = resume(out, capsys)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["000002.json", "000002.safetensors", "000003.json", "000003.safetensors"]
    assert [m["iteration"] for m in train.read_metrics(out / "metrics.jsonl")] == [0, 1, 2, 3]


# ---------------------------------------------------------------------- the final SB3 policy
def test_the_final_sb3_policy_is_read_back_without_its_zip(sb3_run, tmp_path):
    from sb3_contrib import MaskablePPO

    from feedbackgym.learners.sb3 import load_policy

    before = torch.get_rng_state()
    policy = load_policy(sb3_run).policy.state_dict()
    assert torch.equal(torch.get_rng_state(), before)  # building the fresh model drew nothing for the caller
    zipped = MaskablePPO.load(sb3_run / "model.zip", device="cpu").policy.state_dict()  # the test's own file
    assert policy.keys() == zipped.keys() and all(torch.equal(policy[k], zipped[k]) for k in policy)
    out = copy(sb3_run, tmp_path)
    (out / "policy.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(train.CheckpointError, match=f"{out / 'policy.safetensors'}: not a readable safetensors file"):
        load_policy(out)


def test_sb3_writes_no_log_folder_in_the_temp_folder(tmp_path, monkeypatch):
    """SB3's default logger makes SB3-<date> in the system temp folder at every learn."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    cls = train.learner_class("sb3_ppo")
    args = train.TrainArgs(out=str(tmp_path / "run"), iterations=1, **{**SMALL, "num_envs": 1, "eval_episodes": 1})
    train.run("sb3_ppo", args, cls.Args(num_steps=8, batch_size=8, update_epochs=1), quiet=True)
    assert list((tmp_path / "tmp").iterdir()) == []


# ---------------------------------------------------------------------- the suite's own hygiene
def test_a_test_session_that_leaves_a_temp_file_behind_fails_naming_it(tmp_path):
    """tests/conftest.py's check, on a session of one test that leaks (every clean run of the
    suite shows that it passes a session that leaks nothing)."""
    import subprocess
    import sys
    from pathlib import Path

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_leaks.py").write_text("import tempfile\n\ndef test_leaks():\n    tempfile.mkdtemp(prefix='SB3-')\n")
    (tmp_path / "sys_tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "sys_tmp"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # a quicker start
    env.pop("PYTEST_DEBUG_TEMPROOT", None)

    leaky = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_leaks.py"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert leaky.returncode == 1 and "1 passed" in leaky.stdout, leaky.stdout  # the test passed, the session did not
    assert "the tests left files behind outside their tmp_path" in leaky.stdout and "kept for a look): SB3-" in leaky.stdout, leaky.stdout
