"""The bridges to other trainers: TRL's GRPOTrainer through `feedbackgym.adapters.trl` (its
``rollout_func`` and its ``environment_factory`` class) and a verifiers evaluation through
`feedbackgym.adapters.verifiers`, each with a tiny local model on CPU (nothing downloaded)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from feedbackgym.agents.prompts import cut_at_stop  # noqa: E402
from feedbackgym.envs.engine import Episode, play  # noqa: E402
from feedbackgym.envs.scenario import load_scenario  # noqa: E402
from feedbackgym.records import RecordWriter, read_records  # noqa: E402

#: guess_number over 1..3 in 3 turns: a tiny model that says numbers solves it often enough
#: that the returns of a GRPO group differ (so a reward that does not reach the trainer shows)
SMALL = """name: guess_small
task: {family: guess_number, params: {low: 1, high: 3}}
roles:
  actor: {agent: learner}
  user: {agent: "scripted:oracle"}
protocol: {order: [actor, user], max_turns: 3, max_turns_terminates: true}
feedback: {kinds: [hn]}
rewards: {actor: success, user: goal_met}
"""
HEAD = "Task: I am thinking of a whole number between 1 and 3. Guess it: reply with one number.\nactor:"


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "guess_small.yaml"
    path.write_text(SMALL)
    return str(path)


TEXTS = [f"{HEAD} {n}\n" for n in (1, 2, 3)] + ["user: Too low.", "user: Too high.", "user: Yes.", "env: Invalid move: no number found"]


def warm_up(model, tokenizer, texts, steps: int = 40) -> None:
    """A few seeded steps of supervised learning on ``texts``: the tiny model learns to answer
    with a number and a newline, so that its guesses are moves."""
    import torch

    rows = [torch.tensor([tokenizer(t)["input_ids"]]) for t in texts]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = sum(model(input_ids=r, labels=r).loss for r in rows) / len(rows)
            opt.zero_grad()
            loss.backward()
            opt.step()


def number_sayer(out):
    """A 1-layer GPT-2 (conftest's) that answers the plain transcript with 1, 2 or 3."""
    from conftest import save_tiny_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny_lm(out, TEXTS * 10)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    warm_up(model, tokenizer, [f"{HEAD} {n}\n" for n in (1, 2, 3)])
    tokenizer.padding_side = "left"  # TRL's requirement for its own forward passes
    return model, tokenizer


def runs(mask: list[int]) -> list[tuple[int, int, int]]:
    """Maximal runs of equal values: (value, start, end)."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((mask[start], start, i))
            start = i
    return out


def test_grpo_trainer_runs_two_steps_on_env_tokens_masked_and_env_returns_as_rewards(tmp_path, small, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, GRPOTrainer

    from feedbackgym.adapters import trl as fg_trl

    model, tokenizer = number_sayer(tmp_path / "lm")
    records = tmp_path / "records.jsonl"
    writer = RecordWriter(records)
    func = fg_trl.rollout_func(small, max_new_tokens=4, temperature=1.0, chat_template=False, writer=writer)
    outputs = []

    def rollout_func(prompts, trainer):
        outputs.append(func(prompts, trainer))
        return outputs[-1]

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4, max_steps=2, use_cpu=True,
        bf16=False, report_to=[], logging_steps=1, save_strategy="no", beta=0.0, learning_rate=1e-3, seed=0,
        disable_tqdm=True,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, args=args, train_dataset=fg_trl.dataset(small, range(8)),
        rollout_func=rollout_func, reward_funcs=fg_trl.env_return,
    )  # fmt: skip
    trainer.train()
    writer.close()
    assert trainer.state.global_step == 2 and len(outputs) == 2
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2

    recorded = list(read_records(records))
    assert len(recorded) == 8
    returns = []
    for out, trajectories, log in zip(outputs, func.history, logged):
        # a group: one seed, four episodes that differ by what the model said
        assert len(set(out["seed"])) == 1 and len(out["seed"]) == 4
        for i, traj in enumerate(trajectories):
            said = [s.action for s in traj.steps]
            rec = next(r for r in recorded if r.seed == traj.seed and [m.text for m in r.messages if m.role == "actor"] == said)
            # the reward TRL got is the episode's return as the engine accrued it
            assert out["env_return"][i] == pytest.approx(rec.returns["actor"])
            assert out["turn_rewards"][i] == [s.reward for s in traj.steps]
            returns.append(rec.returns["actor"])
            # env_mask is 1 exactly on the model's tokens: each run of 1s is one turn's
            # generation (its utterance as recorded), each run of 0s holds what the others said
            ids, mask = out["completion_ids"][i], out["env_mask"][i]
            assert len(ids) == len(mask) == len(out["logprobs"][i])
            assert tokenizer.decode(out["prompt_ids"][i]) == traj.steps[0].prompt
            spans = runs(mask)
            generated = [(a, b) for v, a, b in spans if v == 1]
            between = [(a, b) for v, a, b in spans if v == 0]
            assert len(generated) == len(said) and len(between) == len(said) - 1
            for (a, b), step_ in zip(generated, traj.steps):
                assert ids[a:b] == step_.token_ids
                assert cut_at_stop(tokenizer.decode(ids[a:b]), ("\n",)) == step_.action
            actor_at = [k for k, m in enumerate(rec.messages) if m.role == "actor"]
            for (a, b), lo, hi in zip(between, actor_at, actor_at[1:]):
                env_text = tokenizer.decode(ids[a:b])
                for m in rec.messages[lo + 1 : hi]:
                    assert m.role != "actor" and m.text in env_text
        # what TRL logged: the mean of those returns, and completion lengths counted on the mask
        assert log["reward"] == pytest.approx(sum(out["env_return"]) / 4)
        assert log["completions/mean_length"] == pytest.approx(sum(map(sum, out["env_mask"])) / 4)
    assert 0 < sum(returns) < len(returns)  # some episodes solved, some not: the check can fail
    # the rows of a group sample apart (on the episode's own seed they would all be the same)
    assert any(len({tuple(s.action for s in t.steps) for t in trajectories}) > 1 for trajectories in func.history)


def test_environment_factory_plays_the_engines_episode(small):
    from feedbackgym.adapters import trl as fg_trl
    from feedbackgym.agents import agents_for

    cls = fg_trl.environment_factory(small)
    assert [n for n in vars(cls) if not n.startswith("_") and callable(getattr(cls, n))] == ["reset", "say", "get_reward"]
    env = cls()
    assert env.reset(seed=5, prompt="ignored").startswith("I am thinking of a whole number between 1 and 3")
    moves = ["no number", "1", "2", "3"]
    replies = [env.say(m) for m in moves]
    # the same moves submitted to the engine itself, the scenario's oracle in the user's seat
    sc = load_scenario(small)
    ep = Episode(sc, 5, {r: a for r, a in agents_for(sc).items() if a is not None})
    said = []
    for m in moves:
        if ep.done:
            said.append(None)
            continue
        mark = len(ep.log)
        ep.submit("actor", m, source="learner")
        play(ep, "actor")
        said.append([x.text for x in ep.log[mark + 1 :]])
    assert env.get_reward() == ep.returns["actor"] and ep.terminate_reason == "success"
    last = max(k for k, texts in enumerate(said) if texts is not None)  # the move that ended it
    for k, (reply, texts) in enumerate(zip(replies, said)):
        if texts is None:
            assert reply == "The episode is over; nothing more can be said."
        else:
            assert all(t in reply for t in texts) and (texts or k == last)  # a right guess ends it unanswered
            assert ("over: success" in reply) == (k == last)
    # reset opens the episode afresh: nothing earned yet
    env.reset(seed=5)
    assert env.get_reward() == 0.0 and "over" not in env.say("no number")


@pytest.mark.slow  # a second GRPO run, through TRL's tool-calling loop
def test_grpo_trainer_through_environment_factory_calls_say_and_gets_the_episodes_return(tmp_path, small, monkeypatch):
    """A tiny model with TRL's bundled Qwen2.5 chat template (so TRL can render and parse tool
    calls), warmed up to call ``say("2")``; one seed whose secret is 2 and one whose is not."""
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    import trl
    from servers import save_chat_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from feedbackgym.adapters import trl as fg_trl

    cls = fg_trl.environment_factory(small)
    call = '<tool_call>\n{"name": "say", "arguments": {"text": "2"}}\n</tool_call>'
    path = save_chat_lm(tmp_path / "lm", [call, "I am thinking of a whole number between 1 and 3."] * 10, context=2048)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    marks = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
    tokenizer.add_special_tokens({"additional_special_tokens": marks})
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.eos_token_id = model.generation_config.eos_token_id = model.generation_config.pad_token_id = tokenizer.eos_token_id
    env = cls()
    chat = [{"role": "user", "content": env.reset(seed=0)}]
    prompt = tokenizer.apply_chat_template(chat, tools=[env.say], tokenize=False, add_generation_prompt=True)
    warm_up(model, tokenizer, [prompt + call + "<|im_end|>"], steps=60)
    tokenizer.padding_side = "left"
    secrets = {s: Episode(load_scenario(small), s).instance.secret for s in range(10)}
    seeds = [next(s for s, x in secrets.items() if x == 2), next(s for s, x in secrets.items() if x != 2)]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4, max_steps=2, use_cpu=True,
        bf16=False, report_to=[], logging_steps=1, save_strategy="no", beta=0.0, learning_rate=1e-3, seed=0,
        disable_tqdm=True, max_completion_length=64, max_tool_calling_iterations=3,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, args=args, train_dataset=fg_trl.dataset(small, seeds, chat=True),
        environment_factory=cls,
    )  # fmt: skip
    trainer.train()
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert trainer.state.global_step == 2 and len(logged) == 2
    assert all(h["tools/call_frequency"] > 0 for h in logged)  # the model spoke through say()
    # each step is one seed's group: the secret-2 seed pays 1 to the episodes that said 2
    name = f"rewards/{cls.__name__}/mean"
    assert sorted(h[name] for h in logged) == [0.0, pytest.approx(sum(h[name] for h in logged))]
    assert max(h[name] for h in logged) > 0
    last = trainer.environments  # the last step's episodes, one env per rollout
    assert logged[-1]["reward"] == pytest.approx(sum(e.get_reward() for e in last) / len(last))
    assert {e.env.episode.seed for e in last} <= set(seeds)


# ---------------------------------------------------------------------- verifiers
SEEDS = list(range(6))


@pytest.fixture(scope="module")
def served_two_sayer(tmp_path_factory):
    """A real ``transformers serve`` on 127.0.0.1 serving a tiny chat model (greedy) warmed up to
    answer guess_small's first chat with 2."""
    pytest.importorskip("verifiers")
    from servers import Server, save_chat_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from feedbackgym.agents.prompts import view_chat

    root = tmp_path_factory.mktemp("vf")
    (root / "guess_small.yaml").write_text(SMALL)
    path = save_chat_lm(root / "tiny", TEXTS * 10)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    first = Episode(load_scenario(root / "guess_small.yaml"), 0).view("actor")
    warm_up(model, tokenizer, [tokenizer.apply_chat_template(view_chat(first), tokenize=False, add_generation_prompt=True) + " 2\n"])
    model.save_pretrained(path)
    with Server(path, log=root / "serve.log") as server:
        yield server, str(root / "guess_small.yaml")


def test_verifiers_evaluation_of_a_scenario_pays_the_scenarios_return(served_two_sayer):
    import asyncio

    from feedbackgym.adapters import verifiers as fg_vf
    from feedbackgym.agents import agents_for
    from feedbackgym.agents.served import ServedAgent, ServedOptions
    from feedbackgym.rollout import rollout

    server, small = served_two_sayer
    episodes = asyncio.run(
        fg_vf.evaluate(small, model=server.model, base_url=server.url, seeds=SEEDS, max_tokens=8, temperature=0, stop=["\n"])
    )
    assert len(episodes) == len(SEEDS) and all(e.ok for e in episodes)
    direct = rollout(ServedAgent(server.model, ServedOptions(base_url=server.url, temperature=0, max_tokens=8)), small, seeds=SEEDS)
    sc = load_scenario(small)
    rewards = []
    for seed, episode, traj in zip(SEEDS, episodes, direct):
        (trace,) = episode.traces
        assert trace.info["seed"] == seed
        replies = [n.message.content.strip() for n in trace.nodes if n.message.role == "assistant"]
        # the reward is the scenario's: the engine, given the same replies, pays the same return
        ep = Episode(sc, seed, {r: a for r, a in agents_for(sc).items() if a is not None})
        play(ep, "actor")
        for reply in replies:
            ep.submit("actor", reply, source="learner")
            play(ep, "actor")
        assert ep.done and fg_vf.reward_of(episode) == ep.returns["actor"] and trace.info["turns"] == len(replies)
        rewards.append(fg_vf.reward_of(episode))
        # the same greedy model through rollout(): the first two requests are the same chat
        # (later ones differ: verifiers keeps each turn's ask in the conversation)
        said = [s.action for s in traj.steps]
        assert replies[:2] == said[:2]
        if len(said) <= 2 and len(replies) <= 2:
            assert fg_vf.reward_of(episode) == traj.total_reward
    assert 0 < sum(rewards) < len(rewards)  # some solved, some not: a reward that never arrives would show


# ---------------------------------------------------------------------- the examples
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a subprocess that imports TRL again (the same two steps are tested above)
def test_trl_example_runs_two_grpo_steps():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "trl_grpo.py"), "--steps", "2"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    steps = re.findall(r"^step (\d): seed \d+, 4 episodes, \d+ turns, reward ([0-9.]+)", out, re.M)
    assert [s for s, _ in steps] == ["1", "2"] and all(0 <= float(r) <= 1 for _, r in steps)


@pytest.mark.slow  # a subprocess that imports verifiers again (the evaluation itself is tested above)
def test_verifiers_example_prints_each_episodes_reward(served_two_sayer):
    server, small = served_two_sayer
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "verifiers_eval.py"), "--base-url", server.url, "--model", server.model,
         "--scenario", small, "--episodes", "3", "--max-tokens", "8"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    lines = re.findall(r"^seed (\d): reward ([0-9.]+), (\d) turns, (\w+)$", out, re.M)
    assert [int(s) for s, *_ in lines] == [0, 1, 2]
    mean = float(re.search(r"^mean reward ([0-9.]+) over 3 episodes$", out, re.M).group(1))
    assert mean == pytest.approx(sum(float(r) for _, r, *_ in lines) / 3, abs=1e-3)
