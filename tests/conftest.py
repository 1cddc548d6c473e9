import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def scripted(scenario):
    """``scenario`` with every learner seat given the first scripted behaviour that can play it."""
    from feedbackgym.agents import check_spec, scripted_names

    family = scenario.task.family
    fill = {
        role: next(f"scripted:{n}" for n in scripted_names(role) if check_spec(f"scripted:{n}", role, family) is None)
        for role, spec in scenario.roles.items()
        if spec.agent == "learner"
    }
    return scenario.with_roles(**fill) if fill else scenario


@pytest.fixture
def play():
    """Play a whole scripted episode of a scenario with role overrides (learner seats filled)."""
    from feedbackgym.envs.scenario import load_scenario
    from feedbackgym.rollout import play_scenario as _play

    def run(name, seed=0, **roles):
        sc = load_scenario(name)
        roles = {r: a for r, a in roles.items() if r in sc.roles}  # a role the game lacks is not added
        return _play(scripted(sc.with_roles(**roles) if roles else sc), seed)

    return run


def save_tiny_lm(out, texts):
    """A 1-layer GPT-2 built from a config, with a byte-level BPE tokenizer trained on ``texts``,
    saved to ``out`` (seeded: the same weights every time; nothing is downloaded)."""
    import torch

    from feedbackgym.learners.bootstrap import build_model, train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=300)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=512)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------------- the suite leaves nothing behind
# Tests write only under pytest's tmp_path. To catch what escapes, the controller process (the
# only one without ``config.workerinput``: pytest-xdist's workers, and every subprocess a test
# starts, inherit its environment) points TMPDIR at a folder of its own before any test runs,
# while pytest's basetemp stays where it was (PYTEST_DEBUG_TEMPROOT). Whatever our code or a
# library puts in "the system temp folder" then lands in that folder, which no other process on
# the machine uses: the check can be neither fooled nor tripped by other programs' temp files
# (the machine may be shared), and it needs no list of names to look for. It must be empty at
# the end. torch's per-user compile cache (``torchinductor_$USER``, made under TMPDIR when an
# optimizer first imports torch._dynamo; one fixed name, reused, not a per-run leftover) is sent
# beside it, and so is SB3_LOGDIR: SB3's default logger, in code that builds SB3 models itself
# (docs/lm.md's snippet, tests/test_wrappers.py), makes a folder SB3-<date> in the temp folder
# at every learn unless SB3_LOGDIR names one (feedbackgym's own SB3 learners make none: checked
# with SB3_LOGDIR unset by tests/test_checkpoint_safety.py); wandb's cache, config and data
# folders (``~/.cache/wandb`` and the like by default) and Ray's session folders go there as well. In the working tree, the untracked
# and ignored paths git reports at the end are compared with those at the start (caches
# excluded); a file someone else creates in the tree during the session is reported too, with
# its path, so it is easy to tell apart.
# pytest-textual-snapshot's snapshot_report.html, written when a snapshot test fails, is its report.
_CACHES = {"__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".import_linter_cache", "snapshot_report.html"}
_ROOT = Path(__file__).resolve().parents[1]
_LEAKS = pytest.StashKey[tuple]()


def _tree_extras() -> set[str] | None:
    """Untracked (one by one) and ignored (by folder) paths of the working tree; None outside git."""
    try:
        untracked = subprocess.run(["git", "-C", str(_ROOT), "ls-files", "-z", "--others", "--exclude-standard"],
                                   capture_output=True, check=True).stdout  # fmt: skip
        ignored = subprocess.run(["git", "-C", str(_ROOT), "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
                                 capture_output=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = {p for p in (untracked + ignored).decode("utf-8", "replace").split("\0") if p}
    return {p for p in paths if not _CACHES.intersection(p.rstrip("/").split("/")) and not p.rstrip("/").endswith(".egg-info")}


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    sandbox = Path(tempfile.mkdtemp(prefix="feedbackgym-tests-"))
    (sandbox / "tmp").mkdir()
    os.environ["TMPDIR"] = str(sandbox / "tmp")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(sandbox / "torchinductor"))
    os.environ.setdefault("SB3_LOGDIR", str(sandbox / "sb3_logs"))
    os.environ.setdefault("RAY_TMPDIR", str(sandbox / "ray"))  # Ray's session folders (else $TMPDIR/ray, kept after shutdown)
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):  # else ~/.cache/wandb, ~/.config/wandb
        os.environ.setdefault(var, str(sandbox / "wandb" / var.split("_")[1].lower()))
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    config.stash[_LEAKS] = (sandbox, _tree_extras())


@pytest.hookimpl(trylast=True)  # after the plugins' own clean-up (pytest-textual-snapshot's temp folder)
def pytest_sessionfinish(session, exitstatus):
    if _LEAKS not in session.config.stash:
        return
    sandbox, tree_before = session.config.stash[_LEAKS]
    for cache in ("torchinductor", "sb3_logs", "wandb", "ray"):
        shutil.rmtree(sandbox / cache, ignore_errors=True)
    # pymp-*: multiprocessing's own folder of a process (gymnasium's AsyncVectorEnv, Ray), removed
    # by that process's exit handler, which an xdist worker may not have run yet when this is read
    left = sorted(str(p.relative_to(sandbox / "tmp")) for p in (sandbox / "tmp").iterdir() if not p.name.startswith("pymp-"))
    tree_after = _tree_extras()
    new = sorted(tree_after - tree_before) if tree_before is not None and tree_after is not None else []
    if not left and not new:
        shutil.rmtree(sandbox, ignore_errors=True)
        return
    lines = [f"the system temp folder (TMPDIR={sandbox / 'tmp'}, kept for a look): {p}" for p in left[:20]]
    lines += [f"the working tree {_ROOT}: {p}" for p in new[:20]]
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_sep("=", "the tests left files behind outside their tmp_path", red=True)
        for line in lines:
            tr.write_line(line)
    else:
        print("the tests left files behind outside their tmp_path:", *lines, sep="\n  ", file=sys.stderr)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):  # an interrupted run stays so
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
