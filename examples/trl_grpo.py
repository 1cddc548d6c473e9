"""TRL's GRPOTrainer on a scenario, through `feedbackgym.adapters.trl` (needs the ``trl`` extra).

The trainer's model plays the actor's seat of guess_number for whole episodes (the scenario's
oracle answers each guess); TRL gets each episode as one sequence whose env tokens (what the
oracle said) are masked out of the loss, and the episode's return as its reward. With no
``--model``, a tiny GPT-2 is built from a config (nothing is downloaded), so the run shows the
plumbing on CPU in seconds, not learning: its guesses are mostly noise and its rewards 0.

    python examples/trl_grpo.py --steps 2
    python examples/trl_grpo.py --model path/to/a/local/causal-lm --steps 50 --scenario judged_qa
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass


@dataclass
class Args:
    scenario: str = "guess_number"
    """a shipped scenario name or a YAML path"""
    seat: str = "actor"
    """the role the trained model plays"""
    model: str | None = None
    """a local causal LM folder (default: a tiny GPT-2 built here)"""
    steps: int = 2
    """GRPO steps"""
    group: int = 4
    """episodes per seed (GRPO's num_generations); also the batch"""
    max_new_tokens: int = 6
    """tokens per utterance"""
    seed: int = 0


def tiny_model(scenario: str):
    """A 1-layer GPT-2 with a byte-level BPE tokenizer trained on the scenario's opening text."""
    import torch

    from feedbackgym.envs.engine import Episode
    from feedbackgym.learners.bootstrap import build_model, train_tokenizer
    from feedbackgym.rollout import scenario_for

    sc = scenario_for(scenario)
    texts = [Episode(sc, s).instance.instruction for s in range(8)] + [f"actor: {n}" for n in range(101)]
    tokenizer = train_tokenizer(texts * 4, vocab_size=400)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=2048)
    return model, tokenizer


def main(args: Args) -> list[dict]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from feedbackgym.adapters import trl as fg_trl

    if args.model:
        tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True)
    else:
        model, tokenizer = tiny_model(args.scenario)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    func = fg_trl.rollout_func(args.scenario, args.seat, seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=1.0)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=args.group, num_generations=args.group, max_steps=args.steps,
            use_cpu=True, bf16=False, report_to=[], logging_steps=1, save_strategy="no", beta=0.0, seed=args.seed,
            disable_tqdm=True,
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=model, processing_class=tokenizer, args=config, rollout_func=func, reward_funcs=fg_trl.env_return,
            train_dataset=fg_trl.dataset(args.scenario, range(args.seed, args.seed + args.steps * args.group)),
        )  # fmt: skip
        trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    for step, (log, episodes) in enumerate(zip(logs, func.history), 1):
        turns = sum(len(t.steps) for t in episodes)
        print(
            f"step {step}: seed {episodes[0].seed}, {len(episodes)} episodes, {turns} turns, reward {log['reward']:.3f}, "
            f"model tokens per episode {log['completions/mean_length']:.1f}, loss {log['loss']:.4f}"
        )
    return logs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        kind = int if isinstance(default, int) else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    main(Args(**vars(parser.parse_args())))
