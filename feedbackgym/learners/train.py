"""``feedbackgym train ALGO``: train the learner's seat of a scenario, with checkpoints and resume.

    feedbackgym bootstrap twenty_questions --out models/actor
    feedbackgym train archer --scenario twenty_questions --actor lm:models/actor --out runs/a --iterations 40
    feedbackgym train archer --out runs/a --resume           # after a crash: continues exactly
    feedbackgym train ppo --scenario twenty_questions --actor lm:smollm2 --lora 16 --out runs/s   # a pretrained start
    python -m feedbackgym.learners.train ppo --scenario guess_number --actor lm:models/gn --out runs/p

ALGO is one of `ALGOS`. For the LM learners each iteration collects ``rollout_size`` episodes
with `feedbackgym.rollout.rollout` through the Gymnasium face (or, with ``--face pettingzoo``,
the PettingZoo face), the learner in the learner's seat (episode seeds ``seed * 10**7 + 0, 1,
...`` in order), then calls the learner's ``update``; the SB3 learners (``sb3_ppo``, ``maskable_ppo``,
`feedbackgym.learners.sb3`) run one ``learn`` chunk per iteration. Written under ``--out``:

- ``args.json``: the run's settings (``--resume`` reads them back; only ``--iterations`` may change);
- ``metrics.jsonl``: one line per iteration (line 0: the starting policy's evaluation);
  ``wall_s`` is the only field that depends on the clock;
- ``checkpoints/NNNNNN.safetensors`` + ``.json`` every ``checkpoint_every`` iterations
  (`feedbackgym.learners.checkpoints`: tensors and JSON, never a pickle; written atomically; the
  newest two kept): the policy, the learner's critic, optimizers, replay buffer and generator, the
  global python/numpy/torch RNG states, the episode counter, and how long ``metrics.jsonl`` and
  ``eval.jsonl`` were, so that a resumed run first cuts them back to that point and then writes
  what the uninterrupted run would. ``--resume`` refuses a damaged or foreign newest checkpoint
  naming it, and names the earlier one that ``--resume-from`` can use;
- with ``--report-to tensorboard|wandb``: the same lines as TensorBoard events in ``tensorboard/``
  and as a wandb run in ``wandb/`` (`feedbackgym.tracking`; step = iteration);
- ``eval.jsonl``: the evaluation episodes (fixed seeds ``args.EVAL_SEED + j``) as records, for
  ``feedbackgym replay``; ``curve.png``: the learning curve; ``actor/``: the final policy
  (``lm:RUN/actor`` plays any seat), or, for an SB3 learner, ``policy.safetensors`` (read back by
  `feedbackgym.learners.sb3.load_policy`) and SB3's own ``model.zip``.

The loop (`run`) drives a *session*: `LMSession` wraps an LM learner (`Learner`), and an SB3
learner class is its own session; either has ``evaluate``, ``iterate``, ``state_dict``,
``load_state_dict`` and ``save``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from feedbackgym.learners import checkpoints
from feedbackgym.learners._base import Learner, plot
from feedbackgym.learners._policy import Policy
from feedbackgym.learners.args import EVAL_SEED, RunArgs, add_fields, from_saved, given
from feedbackgym.learners.checkpoints import CheckpointError
from feedbackgym.records import RecordWriter
from feedbackgym.rollout import FACES, rollout
from feedbackgym.tracking import Reporter, parse_report_to

#: ALGO -> "module:class"
ALGOS = {
    "archer": "feedbackgym.learners.archer:ArCHer",
    "chai": "feedbackgym.learners.chai:CHAI",
    "ppo": "feedbackgym.learners.ppo:PPO",
    "filtered_bc": "feedbackgym.learners.filtered_bc:FilteredBC",
    "grpo": "feedbackgym.learners.grpo:GRPO",
    "fcp": "feedbackgym.learners.fcp:FCP",
    "critique_grpo": "feedbackgym.learners.critique_grpo:CritiqueGRPO",
    "bc": "feedbackgym.learners.bc:BC",
    "sb3_ppo": "feedbackgym.learners.sb3:SB3PPO",
    "maskable_ppo": "feedbackgym.learners.sb3:SB3MaskablePPO",
}
#: metric fields that may differ between an interrupted-and-resumed run and an uninterrupted one
#: (read from the clock: ``cost_s`` holds an iteration's seconds per phase)
CLOCK_FIELDS = ("wall_s", "cost_s")


@dataclass
class TrainArgs(RunArgs):
    """The loop's fields. From the base: ``seed`` (the episodes, the learner's generator, the
    critic's, SB3: the policy's, initial weights), ``num_envs`` (episodes in flight during
    collection, anchor 16), ``eval_episodes`` (anchor eval_size 32), ``threads``."""

    scenario: str = "twenty_questions"
    """scenario name or YAML path; its learner seat is the role trained"""
    actor: str = ""
    """lm:NAME, the starting policy: a folder written by `feedbackgym bootstrap` or save_pretrained, or a pretrained LM
    (lm:smollm2, the embedded SmolLM2-135M-Instruct; a GGUF file); LM learners only"""
    lora: int = 0
    """LoRA rank: 0 trains every weight of the actor; r > 0 adds peft LoRA adapters of rank r (the `lora` extra) and
    trains only them (checkpoints hold only the adapters; actor/ is saved with them merged)"""
    out: str = "runs/run"
    """run folder: metrics.jsonl, checkpoints/, eval.jsonl, curve.png, actor/ (an SB3 learner: policy.safetensors, model.zip)"""
    iterations: int = 40
    """iterations (collect, then update) in all"""
    rollout_size: int = 16
    """episodes collected per iteration (anchor 128)"""
    max_new_tokens: int = 24
    """most tokens per utterance (anchor 32)"""
    temperature: float = 1.0
    """sampling temperature of the policy, in training and evaluation (anchor 1.0)"""
    eval_every: int = 5
    """evaluate every this many iterations (and before the first, and after the last)"""
    checkpoint_every: int = 5
    """write a checkpoint every this many iterations (and after the last)"""
    seats: str = ""
    """role=spec overrides, comma-separated, e.g. 'judge=learner,actor=scripted:expert'"""
    face: str = "gymnasium"
    """gymnasium or pettingzoo: the face the LM learners collect episodes through (same engine, same episodes)"""
    workers: int = 1
    """processes that collect and evaluate the LM learners' episodes: N > 1 plays them on N Ray actors, each with a copy
    of the current policy (the ray extra; the same episodes as one process)"""
    device: str = "cpu"
    """where the LM learners' policy, critics and value heads train: cpu, cuda, cuda:N (initial weights are drawn on the
    CPU, so a seed starts from the same weights on every device; --workers collect on the CPU; SB3: SB3's device)"""
    report_to: str = "none"
    """also log each metrics line to tensorboard, wandb (offline unless WANDB_MODE says otherwise) or both,
    comma-separated, under --out (feedbackgym.tracking); none: metrics.jsonl only"""

    def __post_init__(self):
        if self.face not in FACES:
            raise ValueError(f"--face {self.face!r}: expected one of {', '.join(FACES)}")
        parse_report_to(self.report_to)
        check_device(self.device)


def check_device(name: str) -> None:
    """A clear error for a device torch cannot parse or does not have, before any model loads."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {name!r}: not a torch device (cpu, cuda, cuda:N): {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: expected cpu, cuda or cuda:N")


def learner_class(algo: str):
    if algo not in ALGOS:
        raise ValueError(f"unknown learner {algo!r}; known: {sorted(ALGOS)}")
    module, cls = ALGOS[algo].split(":")
    return getattr(importlib.import_module(module), cls)


def parse_seats(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, spec = part.partition("=")
        if not sep:
            raise ValueError(f"--seats: expected role=spec, got {part!r}")
        out[role.strip()] = None if spec.strip() == "none" else spec.strip()
    return out


def actor_path(spec: str) -> str:
    if not spec.startswith("lm:"):
        raise ValueError(f"--actor must be lm:DIR (a trainable language model), got {spec!r}")
    return spec[3:]


# ---------------------------------------------------------------------- checkpoints
def rng_states() -> dict:
    """The global generators' states (ints, tuples, arrays: what a checkpoint's JSON and tensors hold)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])


#: what every checkpoint's state holds besides the learner's own
STATE_KEYS = ("iteration", "episodes", "env_steps", "wall_s", "learner", "rng", "offsets")
#: where checkpoints were before 2026-12-03: a pickle, which is never read
LEGACY = "checkpoint.pt"


def checkpoint_folder(out: Path) -> Path:
    return Path(out) / "checkpoints"


def newest_checkpoint(out: str | Path) -> Path | None:
    """The JSON of the run's newest checkpoint (None before the first)."""
    cks = checkpoints.found(checkpoint_folder(Path(out)))
    return cks[0][1] if cks else None


def load_checkpoint(path: str | Path, algo: str | None = None) -> dict:
    """The state saved in checkpoint ``path`` (``RUN/checkpoints/NNNNNN.json`` or its
    ``.safetensors``), read as tensors and JSON, never unpickled; a foreign, damaged or truncated
    checkpoint raises `CheckpointError` naming the file and what is wrong."""
    ck = checkpoints.load(Path(path), algo)
    state = ck["state"]
    missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{ck_json(path)}: not a checkpoint of feedbackgym train (its state lacks {', '.join(missing)})")
    where = ck_json(path)
    offsets = state["offsets"] if isinstance(state["offsets"], dict) else {}
    counts = {k: state[k] for k in ("iteration", "episodes", "env_steps")} | {f"offsets/{k}": offsets.get(k) for k in ("metrics", "eval")}
    bad = next(((k, v) for k, v in counts.items() if type(v) is not int or v < 0), None)
    if bad or not isinstance(state["wall_s"], (int, float)):
        k, v = bad or ("wall_s", state["wall_s"])
        raise CheckpointError(f"{where}: field state/{k} is {str(v)[:40]!r}, expected a {'number' if k == 'wall_s' else 'count (an integer >= 0)'}")
    named = int(where.stem) if where.stem.isdigit() else state["iteration"]
    if not state["iteration"] == ck["iteration"] == named:
        raise CheckpointError(f"{where}: named for iteration {named}, says {str(ck['iteration'])[:20]} and {state['iteration']} in its state")
    return state


def ck_json(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix(".json") if path.suffix == ".safetensors" else path


def resume_point(out: Path, algo: str, session, chosen: str | None = None) -> dict | None:
    """Load the checkpoint to resume from into ``session``: ``chosen`` (``--resume-from``) or the
    newest; its state, or None when the run has none yet. A checkpoint that cannot be read or
    does not fit the run is refused naming the file and what is wrong, and, if an earlier one
    reads cleanly, naming it and how to resume from it (never a silent fall-back)."""
    folder = checkpoint_folder(out)
    cks = checkpoints.found(folder)
    if chosen is not None:
        path = ck_json(chosen)
        if not path.exists() or path.resolve().parent != folder.resolve():
            raise CheckpointError(f"--resume-from {chosen}: expected a checkpoint of this run, one of "
                                  f"{', '.join(str(p) for _, p in cks) or f'the files in {folder} (it has none)'}")  # fmt: skip
    elif cks:
        path = cks[0][1]
    elif (out / LEGACY).exists():
        raise CheckpointError(f"{out / LEGACY}: a checkpoint in the pickle format of feedbackgym before 2026-12-03, which is "
                              "never read (unpickling a file runs the code it names); nothing in it was run. Start the run "
                              "again in a new --out, or resume it with the feedbackgym that wrote it")  # fmt: skip
    else:
        return None
    try:
        state = load_checkpoint(path, algo)
        try:
            session.load_state_dict(state["learner"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"{path}: does not fit this run's {algo} learner: {type(e).__name__}: {str(e)[:200]}") from None
    except CheckpointError as e:
        if chosen is None:
            for it, earlier in cks[1:]:
                try:
                    load_checkpoint(earlier, algo)
                except CheckpointError:
                    continue
                raise CheckpointError(f"{e}\n  an earlier checkpoint {earlier} (iteration {it}) is usable: resume from it with "
                                      f"--resume --resume-from {earlier} (the iterations after {it} are run again)") from None  # fmt: skip
            raise CheckpointError(f"{e}\n  no earlier checkpoint of this run is usable ({len(cks) - 1} other"
                                  f"{'' if len(cks) == 2 else 's'} in {folder}): start the run again in a new --out") from None  # fmt: skip
        raise
    later = [p for it, p in cks if it > state["iteration"]]
    if later:  # set aside (not deleted) so that they are not taken for the newest again
        aside = folder / "set_aside"
        aside.mkdir(exist_ok=True)
        for p in later:
            for f in (p, p.with_suffix(".safetensors")):
                if f.exists():
                    os.replace(f, aside / f.name)
        print(f"train: resuming from iteration {state['iteration']}; the later checkpoint(s) "
              f"{', '.join(p.name for p in later)} moved to {aside}", file=sys.stderr)  # fmt: skip
    return state


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def cut(path: Path, n: int) -> None:
    """Drop what an interrupted run wrote after its last checkpoint."""
    if path.exists():
        with open(path, "r+b") as f:
            f.truncate(n)


# ---------------------------------------------------------------------- sessions
def eval_seeds(args: TrainArgs) -> list[int]:
    return [EVAL_SEED + j for j in range(args.eval_episodes)]


def summary(results, prefix: str = "") -> dict:
    """Mean return and success rate of ``(return, success)`` pairs (None for no episodes)."""
    results = list(results)
    if not results:
        return {f"{prefix}return": None, f"{prefix}success": None}
    return {f"{prefix}return": float(np.mean([r for r, _ in results])), f"{prefix}success": float(np.mean([s for _, s in results]))}


class LMSession:
    """An LM learner in the loop: each iteration collects ``rollout_size`` episodes with its
    policy through ``args.face``, then calls its ``update``."""

    def __init__(self, cls, args: TrainArgs, algo_args, seats: dict):
        if args.workers > 1 and not cls.replicable:
            raise ValueError(f"--workers {args.workers}: {cls.name} acts with more than its policy's samples, which a worker cannot play; use --workers 1")
        self.args, self.seats = args, seats
        self.policy = Policy.load(**self.load_args, device=args.device)
        self.learner = cls(self.policy, algo_args, args.seed)
        if hasattr(self.learner, "prepare"):
            self.learner.prepare(args, seats)

    @staticmethod
    def check(args: TrainArgs) -> None:
        if not args.actor:
            raise ValueError("--actor lm:DIR is required (make one with `feedbackgym bootstrap TASK --out DIR`, or start from lm:smollm2)")
        actor_path(args.actor)
        if args.lora < 0:
            raise ValueError(f"--lora must be 0 (no adapters) or a rank >= 1, got {args.lora}")

    def collect(self, seeds: list[int], writer=None, members: int = 1):
        """The learner's trajectories on ``seeds`` (a fresh KV cache: the weights may have changed),
        ``members`` episodes a seed (`rollout`'s groups). With ``--workers`` N > 1 they are played
        on Ray actors by `Replica`s of the policy."""
        a = self.args
        self.policy.forget()
        agent = self.learner if a.workers <= 1 else Replica(self.load_args, self.policy.model.state_dict(), self.learner.replica_prompt())
        return rollout(agent, a.scenario, a.num_envs, seeds=seeds, face=a.face, writer=writer, workers=a.workers, members=members, **self.seats)

    @property
    def load_args(self) -> dict:
        a = self.args
        return {"name": actor_path(a.actor), "lora": a.lora, "seed": a.seed, "max_new_tokens": a.max_new_tokens, "temperature": a.temperature}

    def evaluate(self, writer) -> dict:
        with torch.no_grad():
            trajs = self.collect(eval_seeds(self.args), writer)
        return summary(((t.total_reward, t.success) for t in trajs), "eval_")

    def iterate(self, it: int, episodes: int) -> tuple[int, int, dict]:
        """One iteration; returns (episodes, env steps, metrics) of it. ``cost_s``: its seconds
        per phase, collection and update (and the learner's own breakdown of the update)."""
        t0 = time.perf_counter()
        k = getattr(self.learner, "group_size", 1)  # a group learner (GRPO): rollout_size / k seeds, k members each
        trajs = self.collect([self.args.seed * 10**7 + episodes + g for g in range(self.args.rollout_size // k)], members=k)
        t1 = time.perf_counter()
        metrics = self.learner.update(trajs, it)
        cost = {"collect": round(t1 - t0, 3), "update": round(time.perf_counter() - t1, 3), **metrics.pop("cost_s", {})}
        steps = [s for t in trajs for s in t.steps]
        tokens = {"tokens_per_utterance": float(np.mean([len(s.token_ids) for s in steps]))} if steps else {}
        return len(trajs), len(steps), {**summary((t.total_reward, t.success) for t in trajs), **tokens, **metrics, "cost_s": cost}

    def state_dict(self) -> dict:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)

    def save(self, out: Path) -> None:
        self.policy.save(out / "actor")


class Replica:
    """The learner's seat on a Ray worker (``--workers``): what is sent is how the policy was
    loaded and its current weights (a ``state_dict``: tensors; with LoRA only the adapters), not
    the model object. The worker loads the policy once (`Policy.load`, the same arguments: the
    same model and adapters) and puts the weights in whenever they change; it samples as the
    learner does (`Learner.generate`: each row seeded from its view's generator), so the episodes
    are the ones the learner would have played itself."""

    _loaded: dict[str, tuple[Policy, str]] = {}  # in each worker: load arguments -> (policy, version of its weights)

    def __init__(self, load_args: dict, weights: dict, wrap: Callable[[str], str] | None = None):
        self.load_args, self.weights = load_args, {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}  # workers: CPU
        self.wrap = wrap  # the learner's change to the prompt (`Learner.replica_prompt`: FCP's condition line)
        self.version = uuid.uuid4().hex  # one a collection: a worker loads these weights once
        self._seat: Learner | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_seat": None}

    def seat(self) -> Learner:
        if self._seat is None:
            key = json.dumps(self.load_args, sort_keys=True)
            policy, version = self._loaded.get(key) or (Policy.load(**self.load_args), None)
            if version != self.version:
                policy.model.load_state_dict(self.weights)
                policy.forget()
            self._loaded[key] = (policy, self.version)
            self._seat = Learner(policy, None, 0) if self.wrap is None else WrappedSeat(policy, self.wrap)
        return self._seat

    def prompt(self, view) -> str:
        return self.seat().prompt(view)

    def generate(self, views) -> list:
        return self.seat().generate(views)


class WrappedSeat(Learner):
    """A worker's seat that samples at ``wrap`` of the policy's prompt (`Learner.replica_prompt`)."""

    def __init__(self, policy, wrap: Callable[[str], str]):
        super().__init__(policy, None, 0)
        self.wrap = wrap

    def prompt(self, view) -> str:
        return self.wrap(super().prompt(view))


def session_class(cls):
    """`LMSession` for an LM learner; an SB3 learner class is its own session."""
    return LMSession if issubclass(cls, Learner) else cls


def open_session(cls, args: TrainArgs, algo_args, seats: dict):
    return LMSession(cls, args, algo_args, seats) if session_class(cls) is LMSession else cls(args, algo_args, seats)


# ---------------------------------------------------------------------- the loop
def run(algo: str, args: TrainArgs, algo_args=None, resume: bool = False, quiet: bool = False, resume_from: str | None = None) -> list[dict]:
    """Train; returns every metrics line of the run (also in ``OUT/metrics.jsonl``). ``resume``:
    go on from the newest checkpoint in ``args.out`` (``resume_from``: from that checkpoint)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cls = learner_class(algo)
    ckpt_dir, metrics_path, eval_path = checkpoint_folder(out), out / "metrics.jsonl", out / "eval.jsonl"
    if resume:
        saved = json.loads((out / "args.json").read_text())
        if saved["algo"] != algo:
            raise ValueError(f"{out} holds a {saved['algo']} run, not {algo}")
        args = from_saved(TrainArgs, {**saved["train"], "iterations": args.iterations})
        algo_args = from_saved(cls.Args, saved["learner"])
    else:
        if checkpoints.found(ckpt_dir) or (out / LEGACY).exists():
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
        algo_args = algo_args or cls.Args()
        session_class(cls).check(args)
    config = {"algo": algo, "train": asdict(args), "learner": asdict(algo_args)}  # args.json; the experiment logs' config
    if not resume:
        (out / "args.json").write_text(json.dumps(config, indent=2) + "\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    session = open_session(cls, args, algo_args, parse_seats(args.seats))
    start, episodes, env_steps, wall = 0, 0, 0, 0.0
    ck = resume_point(out, algo, session, resume_from) if resume else None
    if ck is not None:
        set_rng_states(ck["rng"])
        start, episodes, env_steps, wall = ck["iteration"], ck["episodes"], ck["env_steps"], ck["wall_s"]
        cut(metrics_path, ck["offsets"]["metrics"])
        cut(eval_path, ck["offsets"]["eval"])
    elif resume:  # killed before its first checkpoint: start over
        cut(metrics_path, 0)
        cut(eval_path, 0)
    lines: list[dict] = []
    reporter = Reporter(parse_report_to(args.report_to), out, out.name, config, resume_step=(start + 1 if ck is not None else 0) if resume else None)
    with RecordWriter(eval_path) as writer, open(metrics_path, "a", encoding="utf-8") as mf, reporter:

        def log(line: dict) -> None:
            lines.append(line)
            mf.write(json.dumps(line) + "\n")
            mf.flush()
            reporter.log(line, line["iteration"])

        if start == 0 and size(metrics_path) == 0:
            t0 = time.perf_counter()
            log({"iteration": 0, "episodes": 0, "env_steps": 0, **session.evaluate(writer), "wall_s": round(time.perf_counter() - t0, 3)})
        bar = tqdm(range(start, args.iterations), desc=f"{algo} {Path(args.scenario).stem}", unit="it", file=sys.stderr,
                   initial=start, total=args.iterations, disable=quiet)  # fmt: skip
        for it in bar:
            t0 = time.perf_counter()
            new_episodes, new_steps, metrics = session.iterate(it, episodes)
            episodes += new_episodes
            env_steps += new_steps
            line = {"iteration": it + 1, "episodes": episodes, "env_steps": env_steps, **metrics}
            if (it + 1) % args.eval_every == 0 or it + 1 == args.iterations:
                line.update(session.evaluate(writer))
            wall += time.perf_counter() - t0
            line["wall_s"] = round(wall, 3)
            log(line)
            cost = " ".join(f"{k} {v:.1f}" for k, v in line.get("cost_s", {}).items())
            bar.set_postfix(**{k: f"{line[k]:.2f}" for k in ("return", "eval_return") if line.get(k) is not None}, **({"s": cost} if cost else {}))
            if (it + 1) % args.checkpoint_every == 0 or it + 1 == args.iterations:
                checkpoints.save(ckpt_dir, it + 1, {
                    "iteration": it + 1, "episodes": episodes, "env_steps": env_steps, "wall_s": wall,
                    "learner": session.state_dict(), "rng": rng_states(),
                    "offsets": {"metrics": mf.tell(), "eval": size(eval_path)},
                }, {"algo": algo})  # fmt: skip
    session.save(out)
    plot_curve(read_metrics(metrics_path), out / "curve.png", f"{algo} on {Path(args.scenario).stem}")
    return lines


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curve(lines: list[dict], path: Path, title: str) -> None:
    train = [m for m in lines if m.get("return") is not None]
    ev = [m for m in lines if m.get("eval_return") is not None]
    series = []
    if train:
        series.append(([m["episodes"] for m in train], [m["return"] for m in train], {"lw": 1, "alpha": 0.6, "label": "training episodes (mean)"}))
    if ev:
        series.append(([m["episodes"] for m in ev], [m["eval_return"] for m in ev], {"marker": "o", "lw": 1.5, "label": "evaluation (fixed seeds)"}))
    plot(path, series, "episodes collected", "return", title)


# ---------------------------------------------------------------------- CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``feedbackgym train ALGO --scenario S [--actor lm:DIR] --out RUN [--resume] [...]``."""
    p = subparsers.add_parser("train", help=f"train the learner seat of a scenario ({', '.join(ALGOS)})")
    algos = p.add_subparsers(dest="algo", required=True, metavar="ALGO")
    for algo in ALGOS:
        cls = learner_class(algo)
        a = algos.add_parser(algo, help=getattr(cls, "help", None) or (importlib.import_module(cls.__module__).__doc__ or "").split("\n")[0])
        add_fields(a, TrainArgs, defaults_none=True, skip=getattr(cls, "unused_train_args", ()))
        add_fields(a, cls.Args, defaults_none=True)
        a.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
        a.add_argument("--resume-from", metavar="PATH", help="continue the run in --out from this checkpoint of it "
                       "(OUT/checkpoints/NNNNNN.json), e.g. the earlier one when the newest is damaged")  # fmt: skip
        a.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(ns: argparse.Namespace) -> int:
    cls = learner_class(ns.algo)
    if ns.resume or ns.resume_from:
        saved = Path(ns.out or TrainArgs.out) / "args.json"
        if not saved.exists():
            raise ValueError(f"--resume: {saved} does not exist")
        iterations = given(ns, TrainArgs).get("iterations", json.loads(saved.read_text())["train"]["iterations"])
        args = TrainArgs(out=ns.out or TrainArgs.out, iterations=iterations)
        lines = run(ns.algo, args, resume=True, quiet=ns.quiet, resume_from=ns.resume_from)
    else:
        args = TrainArgs(**given(ns, TrainArgs))
        lines = run(ns.algo, args, cls.Args(**given(ns, cls.Args)), quiet=ns.quiet)
    ev = [m for m in read_metrics(Path(args.out) / "metrics.jsonl") if "eval_return" in m]
    if ev:
        n_eval = json.loads((Path(args.out) / "args.json").read_text())["train"]["eval_episodes"]
        print(f"{ns.algo}: evaluation return {ev[0]['eval_return']:.2f} -> {ev[-1]['eval_return']:.2f} "
              f"(success {ev[0]['eval_success']:.0%} -> {ev[-1]['eval_success']:.0%}; {n_eval} evaluation episodes each) "
              f"after {ev[-1]['episodes']} training episodes; "
              f"{len(lines)} new metric lines in {args.out}/metrics.jsonl, curve in {args.out}/curve.png")  # fmt: skip
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m feedbackgym.learners.train")
    sub = p.add_subparsers(dest="command", required=True)
    add_parser(sub)
    ns = p.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return ns.func(ns)
    except ValueError as e:
        print(f"train: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
