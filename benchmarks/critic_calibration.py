"""How well an ArCHer (or CHAI) run's critic predicts the return: V(s) against the Monte-Carlo
discounted return-to-go of the same transitions.

    python benchmarks/critic_calibration.py runs/sample_efficiency/twenty_questions_archer_s0

Reads the run's newest checkpoint (``checkpoints/NNNNNN.json`` and ``.safetensors``: critic, replay
buffer, feature cache) and ``args.json``, and scores the last ``--last`` transitions of the replay buffer whose episodes are complete in it:
the range and mean of min(V1, V2)(s) and of the discounted return-to-go (the run's gamma), their
correlation, and the mean bias V - return. A critic that bootstraps past the end of a game
drifts below the lowest return the game allows; this is how that was found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def returns_to_go(transitions: list, gamma: float) -> np.ndarray:
    """Discounted return from each transition to its episode's end (the buffer keeps episodes in order)."""
    out, acc = [], 0.0
    for t in reversed(transitions):
        if t.terminated or t.truncated:
            acc = 0.0
        acc = t.reward + gamma * acc
        out.append(acc)
    return np.array(out[::-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run folder of `feedbackgym train archer|chai`")
    p.add_argument("--last", type=int, default=2000, help="transitions scored, from the end of the replay buffer")
    a = p.parse_args(argv)
    from feedbackgym.learners import train
    from feedbackgym.learners._policy import Policy

    run = Path(a.run)
    saved = json.loads((run / "args.json").read_text())
    torch.set_num_threads(1)
    cls = train.learner_class(saved["algo"])
    learner = cls(Policy.load(run / "actor"), cls.Args(**saved["learner"]), saved["train"]["seed"])
    newest = train.newest_checkpoint(run)
    if newest is None:
        raise SystemExit(f"critic_calibration: {run} holds no checkpoint ({train.checkpoint_folder(run)}/NNNNNN.json)")
    learner.load_state_dict(train.load_checkpoint(newest, saved["algo"])["learner"])  # tensors and JSON, never unpickled
    items = learner.buffer.items[learner.buffer.head :] + learner.buffer.items[: learner.buffer.head]  # oldest first
    items = items[-a.last :]
    ends = [i for i, t in enumerate(items) if t.terminated or t.truncated]
    items = items[: ends[-1] + 1] if ends else []  # whole episodes only (the first may have lost its start)
    if not items:
        print("no complete episode in the replay buffer", file=sys.stderr)
        return 1
    with torch.no_grad():
        v = torch.minimum(*learner.critic.v(learner.features(learner.critic, [t.prompt for t in items]))).numpy()
    g = returns_to_go(items, learner.args.gamma)
    print(json.dumps({
        "run": str(run), "transitions": len(items), "gamma": learner.args.gamma,
        "v_min": round(float(v.min()), 2), "v_max": round(float(v.max()), 2), "v_mean": round(float(v.mean()), 2),
        "return_min": round(float(g.min()), 2), "return_max": round(float(g.max()), 2), "return_mean": round(float(g.mean()), 2),
        "correlation": correlation(v, g), "bias": round(float((v - g).mean()), 2),
    }))  # fmt: skip
    return 0


def correlation(v: np.ndarray, g: np.ndarray) -> float | None:
    """Pearson's r of values and returns; None (JSON null) when either is constant, where r is
    undefined (numpy would print NaN, which is not JSON, with a RuntimeWarning)."""
    if len(v) < 2 or np.ptp(v) == 0 or np.ptp(g) == 0:
        return None
    return round(float(np.corrcoef(v, g)[0, 1]), 3)


if __name__ == "__main__":
    sys.exit(main())
