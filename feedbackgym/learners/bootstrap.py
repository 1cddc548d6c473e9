"""Bootstrap a small actor from nothing: behaviour cloning on scripted episodes.

    feedbackgym bootstrap twenty_questions --out models/actor
    feedbackgym run twenty_questions --actor lm:models/actor --episodes 100

1. Play ``--episodes`` episodes of the task's scenario, a share ``--mix`` of them with the
   scripted expert in the actor's seat and the rest with ``scripted:random`` (LMRL-Gym's
   datasets mix a competent and a poor policy the same way), so the clone is competent but not
   optimal and RL has room to improve on it.
2. Train a byte-level BPE tokenizer (the ``tokenizers`` library) on the text of those episodes.
   Its merges stop at word boundaries (GPT-2's pre-tokenizing regex), so a question is several
   tokens (twenty_questions: 5-11, 6.6 on average) and the utterance MDP differs from the token
   MDP; ``--merges lines`` restores merges across a line (a frequent utterance is one token).
3. Train a GPT-2-shaped model, built from a config, on the actor's turns. An episode is one
   sequence in the prompt format that `LMAgent` uses (each turn's prompt extends the previous
   one), and the loss covers only the actor's utterances and the newline that ends them.
4. Save model and tokenizer with ``save_pretrained`` (so ``lm:OUT`` plays any seat of any face),
   the loss curve as ``loss.png`` and the run's settings and results as ``bootstrap.json``; print
   the tokens per actor utterance (in the cloned episodes and in the model's own sampled ones)
   and the success rate of ``lm:OUT`` on fresh seeds, sampled (temperature 1, the default) and greedy.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from feedbackgym.agents.lm import LMAgent, plain_prompt
from feedbackgym.encoders import default_device, fast_bf16
from feedbackgym.envs.engine import Episode
from feedbackgym.envs.scenario import Scenario, load_scenario
from feedbackgym.learners._base import plot
from feedbackgym.learners.args import EVAL_SEED, OptimArgs, RunArgs, add_fields, given
from feedbackgym.rollout import play_scenario, rollout

END = "<|endoftext|>"


@dataclass
class Args(RunArgs, OptimArgs):
    """The bootstrap's fields. From the bases: ``seed`` (the episodes, the initial weights and
    the batch order), ``learning_rate`` (the peak lr: AdamW, linear warm-up, cosine decay),
    ``batch_size`` (episodes per optimizer step), ``max_grad_norm``, ``eval_episodes`` and
    ``num_envs`` (the fresh episodes on which the result is scored, and how many are in flight),
    ``threads``."""

    task: str = "twenty_questions"
    """task family or scenario (name or YAML path) whose actor is cloned"""
    out: str = "models/actor"
    """folder for the model, the tokenizer, loss.png and bootstrap.json"""
    mix: float = 0.5
    """share of the episodes played by scripted:expert, spread evenly; the rest by scripted:random"""
    episodes: int = 5000
    """scripted episodes to clone"""
    update_epochs: int = 4
    """passes over the episodes"""
    learning_rate: float = 2e-3
    batch_size: int = 32
    vocab_size: int = 2048
    """tokenizer vocabulary (at most: 20Q's episodes have ~950 distinct word pieces)"""
    merges: str = "words"
    """where BPE merges stop: words (GPT-2's pre-tokenizer: a question is several tokens) or lines
    (merges span a line: a frequent utterance is one token, so utterance and token MDP coincide)"""
    n_layer: int = 4
    """transformer blocks"""
    n_embd: int = 192
    """width"""
    n_head: int = 4
    """attention heads"""
    n_positions: int = 512
    """context length in tokens (a 20-question episode is up to ~330 word-level tokens)"""
    eval_episodes: int = 200
    num_envs: int = 64

    def __post_init__(self):
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"--mix must lie in [0, 1], got {self.mix}")
        if self.merges not in PRE_TOKENIZERS:
            raise ValueError(f"--merges {self.merges!r}: expected one of {', '.join(PRE_TOKENIZERS)}")


# ---------------------------------------------------------------------- data
def collect(scenario: Scenario, episodes: int, mix: float, seed: int) -> list[Episode]:
    """Whole episodes at seeds ``seed, seed + 1, ...``: a share ``mix`` of them, spread evenly,
    by the expert, the rest by ``scripted:random``."""
    expert, noisy = scenario.with_roles(actor="scripted:expert"), scenario.with_roles(actor="scripted:random")
    return [play_scenario(expert if math.floor((k + 1) * mix) > math.floor(k * mix) else noisy, seed + k) for k in range(episodes)]


def actor_segments(ep: Episode) -> list[tuple[str, bool]]:
    """The episode as the actor's prompt sees it: (text, is_actor_utterance) pieces whose
    concatenation up to each actor turn is that turn's `plain_prompt`."""
    segments: list[tuple[str, bool]] = []
    done = ""
    messages = [(m.role, m.text) for m in ep.log]
    for i, (role, text) in enumerate(messages):
        if role != "actor":
            continue
        prompt = plain_prompt("actor", ep.instance.instruction, "", messages[:i])
        if not prompt.startswith(done):
            raise ValueError("the prompt format is not append-only: a turn's prompt must extend the previous one")
        segments += [(prompt[len(done) :], False), (f" {text}\n", True)]
        done = prompt + f" {text}\n"
    return segments


def word_pieces() -> pre_tokenizers.PreTokenizer:
    """GPT-2's pre-tokenizer: text is split into words (with their leading space), runs of
    punctuation and runs of whitespace before byte-level BPE, so no merge crosses a word boundary."""
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def line_pieces() -> pre_tokenizers.PreTokenizer:
    """The first bootstrap's pre-tokenizer: merges may span spaces (as SentencePiece's may) but not
    the end of a line or the ``role:`` that opens one, so a frequent utterance with its line break
    becomes one token (every 20Q question was: the utterance MDP was the token MDP)."""
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"^[^ \n:]+:"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip


#: --merges NAME -> the pre-tokenizer that bounds the merges
PRE_TOKENIZERS = {"words": word_pieces, "lines": line_pieces}


def train_tokenizer(texts, vocab_size: int, merges: str = "words") -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer whose merges stop where ``PRE_TOKENIZERS[merges]`` splits. With
    either, a prompt (which ends with ``role:``) tokenizes as a prefix of the prompt and its
    continuation, and any text encodes (byte by byte at worst)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = PRE_TOKENIZERS[merges]()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END, pad_token=END, model_max_length=10**6)


def utterance_tokens(tokenizer, segments: list[list[tuple[str, bool]]]) -> list[int]:
    """Tokens in each actor utterance of the episodes (with the line break that ends it)."""
    return [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for segs in segments for text, is_actor in segs if is_actor]


def token_counts(counts) -> dict:
    """Mean, min, max and n of a list of token counts (None when empty)."""
    counts = list(counts)
    if not counts:
        return {"mean": None, "min": None, "max": None, "n": 0}
    return {"mean": round(float(np.mean(counts)), 2), "min": int(min(counts)), "max": int(max(counts)), "n": len(counts)}


def build_model(tokenizer, n_layer: int, n_embd: int, n_head: int, n_positions: int) -> GPT2LMHeadModel:
    end = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=end, eos_token_id=end, pad_token_id=end,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def encode(tokenizer, segments: list[tuple[str, bool]], max_len: int) -> tuple[list[int], list[bool]]:
    """Token ids of the pieces and which of them the loss covers, cut to ``max_len``."""
    ids, target = [], []
    for text, is_target in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        target += [is_target] * len(piece)
    return ids[:max_len], target[:max_len]


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """One epoch of shuffled batches. (Batches of similar lengths would pad less, but they put
    the long random episodes and the short expert ones in separate batches, which measurably
    slows the learning of the expert's deep questions.)"""
    order = rng.permutation(n).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def collate(data: list[tuple[list[int], list[bool]]], idx: list[int], pad: int):
    width = max(len(data[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq, target = data[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        labels[row, : len(seq)] = torch.where(torch.tensor(target), torch.tensor(seq), -100)
    return ids, mask, labels


# ---------------------------------------------------------------------- training
def train(model, data, args: Args, desc: str) -> list[float]:
    """Behaviour cloning: next-token cross-entropy on the actor's tokens; the loss per step.

    A step's batch is split by length into two halves, each padded only to its own longest
    episode (the random player's episodes run three times longer than the expert's)."""
    rng = np.random.default_rng(args.seed)
    plan = [b for _ in range(args.update_epochs) for b in batches(len(data), args.batch_size, rng)]
    opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, len(plan) // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.55 + 0.45 * math.cos(math.pi * min(1.0, s / len(plan))))
    )
    device = next(model.parameters()).device
    bf16 = fast_bf16(device)
    pad = model.config.pad_token_id
    losses = []
    bar = tqdm(plan, desc=desc, unit="step", file=sys.stderr)
    model.train()
    for idx in bar:
        idx = sorted(idx, key=lambda i: len(data[i][0]))
        n_target = sum(sum(data[i][1]) for i in idx)
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for part in (idx[: len(idx) // 2], idx[len(idx) // 2 :]):
            if not part:
                continue
            ids, mask, labels = (t.to(device) for t in collate(data, part, pad))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum"
            ) / n_target
            loss.backward()
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        opt.step()
        sched.step()
        losses.append(step_loss)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    return losses


def plot_losses(losses: list[float], path: Path) -> None:
    k = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    series = [(np.arange(len(losses)), losses, {"lw": 0.6, "alpha": 0.4, "label": "per step"}),
              (np.arange(k - 1, len(losses)), smooth, {"lw": 1.5, "label": f"mean of {k}"})]  # fmt: skip
    plot(path, series, "optimizer step", "cross-entropy per actor token", "behaviour cloning")


def success_rates(out: Path, task: str, episodes: int, n_envs: int) -> dict:
    """``lm:OUT`` in the actor's seat on the evaluation seeds, sampled (the default) and greedy:
    the success rate of each and the tokens of each utterance it said (`token_counts`)."""
    rates = {}
    for name, temperature in (("sampled", 1.0), ("greedy", 0.0)):
        agent = LMAgent.from_pretrained(str(out), temperature=temperature)
        runs = rollout(agent, task, n_envs=n_envs, episodes=episodes, seed=EVAL_SEED, actor="learner")
        rates[name] = sum(t.success for t in runs) / max(1, len(runs))
        rates[f"tokens_{name}"] = token_counts(len(s.token_ids) for t in runs for s in t.steps)
    return rates


def run(args: Args) -> dict:
    """The whole bootstrap; returns what ``bootstrap.json`` records."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scenario = load_scenario(args.task)
    episodes = collect(scenario, args.episodes, args.mix, args.seed)
    segments = [actor_segments(ep) for ep in episodes]
    tokenizer = train_tokenizer(("".join(t for t, _ in s) for s in segments), args.vocab_size, args.merges)
    cloned = token_counts(utterance_tokens(tokenizer, segments))
    print(f"bootstrap: {cloned['n']} actor utterances to clone, tokens per utterance (with its line break): "
          f"mean {cloned['mean']}, min {cloned['min']}, max {cloned['max']} (--merges {args.merges})", file=sys.stderr)  # fmt: skip
    data = [encode(tokenizer, s, args.n_positions) for s in segments]
    with torch.random.fork_rng(devices=[]):  # seeded init and dropout, without touching the caller's RNG
        torch.manual_seed(args.seed)
        model = build_model(tokenizer, args.n_layer, args.n_embd, args.n_head, args.n_positions).to(default_device())
        n_params = sum(p.numel() for p in model.parameters())
        losses = train(model, data, args, f"bootstrap {scenario.name} ({n_params / 1e6:.1f}M params, {len(data)} episodes)")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    plot_losses(losses, out / "loss.png")
    saved_s = time.perf_counter() - t0
    rates = success_rates(out, args.task, args.eval_episodes, args.num_envs)
    report = {
        "args": asdict(args),
        "parameters": n_params,
        "final_loss": float(np.mean(losses[-20:])),
        "seconds_until_saved": round(saved_s, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "tokens_per_utterance": {"cloned": cloned, "sampled": rates["tokens_sampled"], "greedy": rates["tokens_greedy"]},
        "success_sampled": rates["sampled"],
        "success_greedy": rates["greedy"],
    }
    (out / "bootstrap.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


# ---------------------------------------------------------------------- CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """``feedbackgym bootstrap TASK --out DIR [...]``: one flag per field of `Args`."""
    p = subparsers.add_parser("bootstrap", help="train a small actor from scripted episodes (behaviour cloning)")
    add_fields(p, Args, positional=("task",))
    p.set_defaults(func=cmd_bootstrap)
    return p


def cmd_bootstrap(ns: argparse.Namespace) -> int:
    args = Args(**given(ns, Args))
    r = run(args)
    print(
        f"saved lm:{args.out} ({r['parameters'] / 1e6:.1f}M parameters, final loss {r['final_loss']:.3f}) "
        f"{r['seconds_until_saved']:.0f} s after the start\n"
        f"tokens per actor utterance (mean, min-max): {tokens_line(r['tokens_per_utterance'])}\n"
        f"success on {args.eval_episodes} fresh {args.task} episodes: "
        f"{r['success_sampled']:.1%} sampled (temperature 1), {r['success_greedy']:.1%} greedy "
        f"[{r['seconds_total']:.0f} s in all; loss curve: {Path(args.out) / 'loss.png'}]"
    )
    return 0


def tokens_line(tokens: dict) -> str:
    return ", ".join(f"{k} {c['mean']} ({c['min']}-{c['max']}, n={c['n']})" for k, c in tokens.items() if c["n"])
