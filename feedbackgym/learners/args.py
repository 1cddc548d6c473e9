"""The arguments every learner shares, one name per idea (CleanRL's names), and the one helper that
turns a dataclass of arguments into command-line flags.

A learner's ``Args`` is a dataclass whose fields each carry a one-line docstring under them (the
``--help`` text); it subclasses the bases here for what it shares with the others:

- `RunArgs`: seeding, threads and how many episodes are in flight and evaluated
  (`feedbackgym train`'s `TrainArgs`, `feedbackgym bootstrap`'s `Args`);
- `OptimArgs`: the policy's optimiser (every learner); `LMOptimArgs` adds the micro-batches the
  LM learners accumulate;
- `PPOArgs`: PPO's fields (token PPO and SB3's PPO).

A subclass may redeclare a field to change its default; the base's docstring still describes it.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap
from dataclasses import dataclass, fields, is_dataclass

#: Evaluation episodes use seeds ``EVAL_SEED + j``: far from every training seed
#: (``seed * 10**7 + n`` in `feedbackgym train`, ``seed + k`` in `feedbackgym bootstrap`).
EVAL_SEED = 2_000_000_000

#: names that arguments had before they took CleanRL's (read from an older run's ``args.json``)
RENAMED = {
    "lr": "learning_rate", "actor_lr": "learning_rate", "value_lr": "critic_lr", "lam": "gae_lambda",
    "clip": "clip_coef", "clip_range": "clip_coef", "epochs": "update_epochs", "n_epochs": "update_epochs",
    "steps": "actor_steps", "n_steps": "num_steps", "n_envs": "num_envs", "eval_envs": "num_envs",
    "capacity": "buffer_size",
}  # fmt: skip


@dataclass
class RunArgs:
    """What every command that trains shares: seeding, threads, episodes in flight and evaluated."""

    seed: int = 0
    """seed of the run: its episodes, the initial weights and every later draw"""
    num_envs: int = 16
    """episodes in flight (one batched model call per round; SB3: the envs of its DummyVecEnv)"""
    eval_episodes: int = 32
    """evaluation episodes, on the fixed seeds EVAL_SEED + j"""
    threads: int = 1
    """torch CPU threads (0: as an LM seat settles them: one for a small model, else the cores this
    process may use; one is the fastest for small models on a shared 2-core machine)"""


@dataclass
class OptimArgs:
    """The policy's optimiser (every learner)."""

    learning_rate: float = 1e-4
    """Adam lr of the policy"""
    batch_size: int = 16
    """samples per minibatch (the LM learners: utterances or transitions per micro-batch)"""
    max_grad_norm: float = 1.0
    """gradient clipping: the largest global norm"""


@dataclass
class LMOptimArgs(OptimArgs):
    """The LM learners' optimiser: gradients accumulated over micro-batches."""

    grad_accum: int = 2
    """micro-batches per optimizer step, their losses averaged"""


@dataclass
class PPOArgs(OptimArgs):
    """PPO's fields (token PPO, SB3's PPO), CleanRL's names."""

    gamma: float = 0.95
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip_coef: float = 0.2
    """PPO's clipping of the probability ratio and of the value change"""
    update_epochs: int = 2
    """passes over each rollout"""
    vf_coef: float = 0.5
    """weight of the value loss"""


def field_docs(cls) -> dict[str, str]:
    """The one-line docstring under each field of a dataclass and of its dataclass bases (a
    subclass's own docstring wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):  # defined where the source cannot be read
            continue
        for a, b in zip(body, body[1:]):
            if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                docs[a.target.id] = str(b.value.value)
    return docs


def add_fields(parser: argparse.ArgumentParser, cls, defaults_none: bool = False, skip=(), positional=()) -> None:
    """One flag per field of the dataclass ``cls`` (``--batch-size``; ``--x/--no-x`` for a bool),
    with its docstring and default as help; a field in ``positional`` is a positional argument.
    ``defaults_none``: flags not given parse as None (see `given`)."""
    docs = field_docs(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        doc, default = docs.get(f.name, ""), None if defaults_none else f.default
        if f.name in positional:
            parser.add_argument(f.name, help=doc)
        elif isinstance(f.default, bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=default, help=doc)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=default, help=f"{doc} (default: {f.default})")


def given(ns: argparse.Namespace, cls) -> dict:
    """The fields of ``cls`` that ``ns`` holds a value for."""
    return {f.name: getattr(ns, f.name) for f in fields(cls) if getattr(ns, f.name, None) is not None}


def from_saved(cls, saved: dict):
    """``cls`` from a saved ``asdict`` (an ``args.json``), older names read as their new ones."""
    names = {f.name for f in fields(cls)}
    return cls(**{(RENAMED[k] if k not in names and RENAMED.get(k) in names else k): v for k, v in saved.items()})
