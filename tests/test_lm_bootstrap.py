"""The bootstrapped actor: the data it clones, the prompts it is trained on, what it saves."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("torch")

from feedbackgym.agents import check_spec, make_agent  # noqa: E402
from feedbackgym.agents.lm import plain_prompt  # noqa: E402
from feedbackgym.envs.scenario import load_scenario  # noqa: E402
from feedbackgym.learners.bootstrap import (  # noqa: E402
    Args,
    actor_segments,
    add_parser,
    collect,
    encode,
    run,
    train_tokenizer,
    utterance_tokens,
)


def parse(*argv):
    parser = argparse.ArgumentParser(prog="feedbackgym")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bootstrap", *argv])


def test_the_mix_decides_who_plays_each_episode():
    episodes = collect(load_scenario("twenty_questions"), 10, mix=0.3, seed=4)
    experts = [k for k, ep in enumerate(episodes) if ep.agents["actor"].name == "expert"]
    assert experts == [3, 6, 9] and all(ep.agents["actor"].name == "random" for k, ep in enumerate(episodes) if k not in experts)
    assert [ep.seed for ep in episodes] == list(range(4, 14))


@pytest.mark.parametrize("merges", ["words", "lines"])
@pytest.mark.parametrize("task", ["twenty_questions", "judged_qa", "guess_number"])
def test_training_tokens_are_the_tokens_the_agent_prompts_with(task, merges):
    """Each actor turn's prompt, tokenized whole as LMAgent does, is a prefix of the episode's
    training sequence, and the loss starts exactly where the utterance does."""
    episodes = collect(load_scenario(task), 12, mix=0.5, seed=1)
    segments = [actor_segments(ep) for ep in episodes]
    tokenizer = train_tokenizer(("".join(t for t, _ in s) for s in segments), vocab_size=400, merges=merges)
    for ep, segs in zip(episodes, segments):
        ids, target = encode(tokenizer, segs, 10**6)
        messages = [(m.role, m.text) for m in ep.log]
        turns = [i for i, (role, _) in enumerate(messages) if role == "actor"]
        assert sum(target) > 0 and len(turns) == sum(1 for _, t in segs if t)
        for i in turns:
            prompt = tokenizer(plain_prompt("actor", ep.instance.instruction, "", messages[:i]))["input_ids"]
            assert ids[: len(prompt)] == prompt
            assert not target[len(prompt) - 1] and target[len(prompt)]


def test_bootstrap_saves_a_model_that_plays_any_seat(tmp_path):
    out = tmp_path / "actor"
    ns = parse("twenty_questions", "--out", str(out), "--episodes", "16", "--update-epochs", "1", "--batch-size", "8",
               "--vocab-size", "400", "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--n-positions", "256",
               "--eval-episodes", "4", "--num-envs", "4")  # fmt: skip
    assert ns.func(ns) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "loss.png", "bootstrap.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "bootstrap.json").read_text())
    assert report["args"]["mix"] == Args.mix and 0 <= report["success_sampled"] <= 1
    # questions are several tokens each: the utterance MDP is not the token MDP
    cloned = report["tokens_per_utterance"]["cloned"]
    assert cloned["mean"] > 3 and cloned["min"] >= 2 and cloned["n"] > 16
    assert report["tokens_per_utterance"]["sampled"]["n"] > 0
    assert check_spec(f"lm:{out}", "judge") is None
    assert isinstance(make_agent(f"lm:{out}", "user", {"temperature": 0}).act_batch([]), list)


def test_merges_stop_at_word_boundaries():
    """At the bootstrap's vocabulary every twenty_questions question is several tokens, one a
    word; with merges across a line (the first bootstrap's tokenizer) nearly every one was a
    single token, which this test must tell apart."""
    segments = [actor_segments(ep) for ep in collect(load_scenario("twenty_questions"), 200, mix=0.5, seed=0)]
    texts = ["".join(t for t, _ in s) for s in segments]
    words = train_tokenizer(texts, vocab_size=Args.vocab_size)
    counts = utterance_tokens(words, segments)
    assert sum(counts) / len(counts) > 3 and min(counts) >= 3
    question = " Can you hold it in one hand?\n"
    assert words.convert_ids_to_tokens(words(question)["input_ids"]) == ["ĠCan", "Ġyou", "Ġhold", "Ġit", "Ġin", "Ġone", "Ġhand", "?", "Ċ"]
    lines = utterance_tokens(train_tokenizer(texts, vocab_size=Args.vocab_size, merges="lines"), segments)
    assert sum(lines) / len(lines) < 1.5


def test_the_mix_must_be_a_share():
    ns = parse("twenty_questions", "--mix", "1.5")
    with pytest.raises(ValueError, match="--mix"):
        ns.func(ns)


@pytest.mark.slow
def test_default_bootstrap_succeeds_on_twenty_questions(tmp_path):
    """The acceptance run (minutes on 2 cores): ``feedbackgym bootstrap twenty_questions``."""
    report = run(Args(out=str(tmp_path / "actor")))
    assert report["success_sampled"] >= 0.3
