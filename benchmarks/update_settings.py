"""Measurements behind the learners' update settings: what summing micro-batch losses does under
Adam, and PPO's value clipping and learning rate compared on the same fixed episodes.

    python benchmarks/update_settings.py adam --actor models/actor
    python benchmarks/update_settings.py offline --actor models/actor --episodes 32 --updates 6

``adam``: two copies of the actor take ``--steps`` optimizer steps on the same 32 micro-batches
of next-token cross-entropy (token sequences drawn from a seeded generator), one with the
micro-batch losses summed (the anchor's accumulation), one with them averaged (ours); per step
the ratio of the two updates' norms ||delta theta_sum|| / ||delta theta_mean||, for Adam and,
for contrast, plain SGD, with and without clipping the gradient norm at 1.0 (as the learners do).
Adam divides by the root of its own running second moment, so a constant factor on the
gradient cancels: a ratio near 1 means summing does not raise the learning rate.

``offline``: PPO's update on a fixed set of episodes collected once with the actor (and as many
held out), so that settings compare on the same data. The value head: ``--updates`` updates with
the policy's lr at 0, clipped (±clip_coef on each value's change) and unclipped, the explained
variance of its values on the held-out episodes after each (mean ± sd over ``--seeds`` of the
head's initialisation). The policy: one default update at each of ``--lrs`` from the same
start, and how far it moved: KL(start || new) per token on the training episodes' tokens, and
PPO's clipped fraction.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch


# ---------------------------------------------------------------------- adam
def load_model(actor: str | None):
    if actor:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(actor, local_files_only=True, dtype=torch.float32)
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(vocab_size=2048, n_positions=256, n_embd=192, n_layer=4, n_head=4))


def update_norm_ratios(model, optimizer: str, clip: float | None, steps: int, micro: int = 32, rows: int = 8, length: int = 24) -> list[float]:
    """||delta_sum|| / ||delta_mean|| at each of ``steps`` steps, each copy on its own trajectory."""
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batches = [torch.randint(0, vocab, (rows, length), generator=gen) for _ in range(micro)]
    copies = {mode: copy.deepcopy(model).eval() for mode in ("sum", "mean")}  # no dropout: the same function for both
    make = (lambda p: torch.optim.Adam(p, lr=1e-4)) if optimizer == "adam" else (lambda p: torch.optim.SGD(p, lr=1e-4))
    opts = {mode: make(m.parameters()) for mode, m in copies.items()}
    ratios = []
    for _ in range(steps):
        deltas = {}
        for mode, m in copies.items():
            before = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
            for b in batches:
                loss = m(input_ids=b, labels=b).loss
                (loss if mode == "sum" else loss / micro).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
            opts[mode].step()
            opts[mode].zero_grad(set_to_none=True)
            deltas[mode] = float((torch.cat([p.detach().flatten() for p in m.parameters()]) - before).norm())
        ratios.append(deltas["sum"] / deltas["mean"])
    return ratios


def adam(a) -> int:
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # dropout draws
        model = load_model(a.actor)
        print(f"model: {a.actor or 'a 4-layer GPT-2 from its config'} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters); "
              f"32 micro-batches of 8 x 24 tokens; {a.steps} steps; ratio = ||update with summed losses|| / ||update with averaged losses||\n")  # fmt: skip
        print("| optimizer | gradient clip | ratio at step 1 | mean (min-max) over the steps |\n|---|---|---|---|")
        for optimizer in ("adam", "sgd"):
            for clip in (None, 1.0):
                r = update_norm_ratios(model, optimizer, clip, a.steps)
                print(f"| {optimizer} | {clip or 'none'} | {r[0]:.4f} | {np.mean(r):.4f} ({min(r):.4f}-{max(r):.4f}) |")
    return 0


# ---------------------------------------------------------------------- offline PPO updates
def offline(a) -> int:
    """PPO updates on a fixed set of episodes, from one actor: the value head with and without
    clipping, and the policy's move per iteration at several learning rates."""
    from feedbackgym.learners import ppo
    from feedbackgym.learners._policy import Policy
    from feedbackgym.rollout import rollout

    torch.set_num_threads(1)
    policy = Policy.load(a.actor, max_new_tokens=24)
    collector = ppo.PPO(policy, ppo.Args(), seed=0)
    with torch.no_grad():
        train = rollout(collector, a.scenario, 16, seeds=[7_000_000 + k for k in range(a.episodes)])
        held = rollout(collector, a.scenario, 16, seeds=[8_000_000 + k for k in range(a.episodes)])
    n_utt = sum(len(t.steps) for t in train)
    rets = [t.total_reward for t in train]
    print(f"PPO on {a.scenario} from {a.actor}: {a.episodes} training episodes ({n_utt} utterances, returns {min(rets):.0f}..{max(rets):.0f}, "
          f"mean {np.mean(rets):.2f}) and {a.episodes} held-out ones, collected once; n = {len(a.seeds)} value-head seeds\n")  # fmt: skip

    print("value head: explained variance on the held-out episodes after k updates (policy lr 0; mean ± sd over seeds)\n")
    print("| clip_vloss | " + " | ".join(f"k={k}" for k in range(1, a.updates + 1)) + " |\n|---|" + "---|" * a.updates)
    value_rows = {}
    for clip in (False, True):
        curves = []
        for seed in a.seeds:
            learner = ppo.PPO(copy.deepcopy(policy), ppo.Args(learning_rate=0.0, clip_vloss=clip), seed=seed)
            curve = []
            for _ in range(a.updates):
                learner.update(train, 0)
                with torch.no_grad():
                    curve.append(ppo.explained_variance(learner.batch(held)))
            curves.append(curve)
        c = np.array(curves)
        value_rows[str(clip)] = c.tolist()
        print(f"| {clip} | " + " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in zip(c.mean(0), c.std(0, ddof=1) if len(a.seeds) > 1 else 0 * c.mean(0))) + " |")

    print("\npolicy: one PPO update (2 epochs) on the training episodes from the same start; KL(start || new) per token on them and the clipped fraction\n")
    print("| learning_rate | KL per token (nats) | clip fraction |\n|---|---|---|")
    lr_rows = []
    for lr in a.lrs:
        learner = ppo.PPO(copy.deepcopy(policy), ppo.Args(learning_rate=lr), seed=0)
        stats = learner.update(train, 0)
        with torch.no_grad():
            b = learner.batch(train)  # old is now the updated policy; the reference is the start
        # the tokens were drawn from the start policy: -mean(log pi_new - log pi_start) over them estimates KL(start || new)
        kl = -float(np.mean(b.kl))
        lr_rows.append({"learning_rate": lr, "kl": kl, "clipfrac": stats["clipfrac"]})
        print(f"| {lr:g} | {kl:.4f} | {stats['clipfrac']:.3f} |")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "offline.json").write_text(json.dumps({"value": value_rows, "lr": lr_rows}, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("adam", help="update norms with summed vs averaged micro-batch losses")
    q.add_argument("--actor", default=None, help="a model folder (default: a 2.1M GPT-2 built from its config)")
    q.add_argument("--steps", type=int, default=10)
    q = sub.add_parser("offline", help="PPO updates on fixed episodes: value clipping, learning rates")
    q.add_argument("--actor", required=True, help="the starting actor's folder")
    q.add_argument("--scenario", default="twenty_questions")
    q.add_argument("--episodes", type=int, default=32, help="training episodes, and as many held out")
    q.add_argument("--updates", type=int, default=6)
    q.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    q.add_argument("--lrs", type=lambda s: [float(x) for x in s.split(",")], default=[1e-6, 1e-5, 1e-4, 1e-3])
    q.add_argument("--out", default="runs/update_settings")
    a = p.parse_args(argv)
    return adam(a) if a.what == "adam" else offline(a)


if __name__ == "__main__":
    sys.exit(main())
