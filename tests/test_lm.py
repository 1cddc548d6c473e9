"""LM agents: a tiny GPT-2 built from a config plays every seat; batching and the prompt cache
change nothing; the log-probs it reports are the model's."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import feedbackgym  # noqa: E402
from feedbackgym.agents import check_spec, make_agent  # noqa: E402
from feedbackgym.agents.lm import LMAgent, LMOptions, chat_messages, plain_prompt  # noqa: E402
from feedbackgym.envs.scenario import load_scenario  # noqa: E402
from feedbackgym.learners.bootstrap import build_model, train_tokenizer  # noqa: E402
from feedbackgym.rollout import play_scenario as play  # noqa: E402

TEXTS = [
    "Task: Answer a question about a fictional world. In which city does the Brae Guild have its seat?",
    "actor: The answer is Voudom.\njudge: I disagree: [doc1] says Hestoth.\nuser: Is that final?\n",
    "Known only to the judge: Correct answer (do not reveal it as such): Voudom",
] * 20

PROMPTS = [
    "Task: x\nactor:",
    "Task: Answer a question about a fictional world.\nactor: The answer is Voudom.\njudge: I disagree.\nactor:",
    "judge:",
]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A 2-layer GPT-2 from a config with a byte-level BPE tokenizer trained here, saved."""
    out = tmp_path_factory.mktemp("tiny_lm")
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    torch.manual_seed(0)
    model = build_model(tokenizer, n_layer=2, n_embd=48, n_head=2, n_positions=256)
    model.config.initializer_range = 0.3  # larger random weights: varied, position-sensitive output
    model.init_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture
def greedy(lm_dir):
    return LMAgent.from_pretrained(lm_dir, temperature=0.0, max_new_tokens=8, stop=["zzz"])


def scenario_all_lm(tmp_path, lm_dir, actor):
    path = tmp_path / "judged_qa_lm.yaml"
    path.write_text(
        f"""name: judged_qa_lm
task: {{family: judged_qa}}
roles:
  actor: {{agent: "{actor}", params: {{max_new_tokens: 12}}}}
  judge: {{agent: "lm:{lm_dir}", params: {{max_new_tokens: 12}}}}
  user: {{agent: "lm:{lm_dir}", params: {{max_new_tokens: 12, temperature: 0.7, top_p: 0.9}}}}
protocol: {{order: [actor, judge, user], rounds: 2, final: [actor], max_turns: 4}}
rewards: {{actor: final_correct}}
""",
        encoding="utf-8",
    )
    return path


def transcript(log):
    return [(m.role, m.kind, m.text) for m in log]


@pytest.mark.filterwarnings("ignore:.*not within the observation space")  # random weights, random bytes
def test_lm_plays_every_seat_through_both_faces_reproducibly(tmp_path, lm_dir):
    engine = load_scenario(scenario_all_lm(tmp_path, lm_dir, f"lm:{lm_dir}"))
    first, second = play(engine, seed=3), play(engine, seed=3)
    assert transcript(first.log) == transcript(second.log)
    assert {m.role for m in first.log} >= {"actor", "judge", "user"}
    assert all(m.labels.get("source") == f"lm:{lm_dir}" for m in first.log if m.role == "actor")

    # The Gymnasium face: the same LM in the learner's seat, driven from outside, sampling from
    # the same per-role generators: the same transcript.
    actor = LMAgent.from_pretrained(lm_dir, max_new_tokens=12)
    for _ in range(2):
        env = feedbackgym.make(str(scenario_all_lm(tmp_path, lm_dir, "learner")))
        env.reset(seed=3)
        done = False
        while not done:
            base = env.unwrapped
            _, _, terminated, truncated, _ = env.step(actor.act(base.episode.view(base.learner)))
            done = terminated or truncated
        assert transcript(base.episode.log) == transcript(first.log)


def test_batched_left_padded_greedy_equals_one_at_a_time(greedy):
    batched = greedy.generate_text(PROMPTS, seeds=[1, 2, 3])
    for prompt, seed, row in zip(PROMPTS, [1, 2, 3], batched):
        alone = greedy.generate_text([prompt], seeds=[seed])[0]
        assert alone.token_ids == row.token_ids
        assert alone.logprobs == pytest.approx(row.logprobs, abs=1e-4)
    assert len({tuple(g.token_ids) for g in batched}) > 1  # the rows really differ


def test_prompt_cache_changes_nothing(lm_dir):
    cached = LMAgent.from_pretrained(lm_dir, temperature=0.0, max_new_tokens=6, stop=["zzz"])
    fresh = LMAgent.from_pretrained(lm_dir, temperature=0.0, max_new_tokens=6, stop=["zzz"], prompt_cache=0)
    conversations = list(PROMPTS)
    for _ in range(3):  # each turn's prompt extends the last: only the new tokens are fed
        a = cached.generate_text(conversations, seeds=[1, 2, 3], keys=["a", "b", "c"])
        b = fresh.generate_text(conversations, seeds=[1, 2, 3], keys=["a", "b", "c"])
        assert [g.token_ids for g in a] == [g.token_ids for g in b]
        assert [g.logprobs for g in a] == [pytest.approx(g.logprobs, abs=1e-4) for g in b]
        conversations = [c + " " + g.text + "\nuser: Yes.\nactor:" for c, g in zip(conversations, a)]
    assert set(cached._kv) == {"a", "b", "c"} and not fresh._kv


def test_the_reserved_cache_layer_holds_what_concatenation_would_and_grows_past_its_room():
    """Decoding writes each new position into room reserved ahead (no copy of the cache a
    token); past the room it grows; either way it holds what `DynamicLayer` would."""
    from transformers.cache_utils import DynamicLayer

    from feedbackgym.agents.lm import ReservedLayer

    g = torch.Generator().manual_seed(0)
    k0, v0 = torch.randn(3, 2, 5, 4, generator=g), torch.randn(3, 2, 5, 4, generator=g)
    plain, reserved = DynamicLayer(), ReservedLayer.around(k0, v0, room=2)
    plain.update(k0, v0)
    buffer = reserved._buf[0].data_ptr()
    for new in (1, 1, 3, 1):  # the third step is past the room
        k, v = torch.randn(3, 2, new, 4, generator=g), torch.randn(3, 2, new, 4, generator=g)
        want, got = plain.update(k, v), reserved.update(k, v)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert reserved.get_seq_length() == plain.get_seq_length()
        if new == 1 and plain.get_seq_length() <= 7:
            assert reserved._buf[0].data_ptr() == buffer  # written in place
    assert reserved._buf[0].data_ptr() != buffer
    # DynamicLayer's own methods replace the views; the next update goes on from what they left
    for change in (lambda la: la.crop(-2), lambda la: la.batch_select_indices(torch.tensor([2, 0])), lambda la: la.reset()):
        change(plain), change(reserved)
        k, v = torch.randn(len(plain.keys) if plain.keys is not None else 2, 2, 1, 4, generator=g), None
        v = torch.randn_like(k)
        want, got = plain.update(k, v), reserved.update(k, v)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_decoding_into_reserved_room_draws_what_concatenation_draws(lm_dir, monkeypatch):
    """The same sampled tokens and log-probs from a conversation's cached turns, with the cache
    reserved ahead (the default) or grown by concatenation (transformers' own)."""
    runs = {}
    for reserve in (True, False):
        monkeypatch.setattr(LMAgent, "reserve_cache", reserve)
        agent = LMAgent.from_pretrained(lm_dir, temperature=1.0, max_new_tokens=6, stop=["zzz"])
        conversations, got = list(PROMPTS), []
        for _ in range(3):
            gens = agent.generate_text(conversations, seeds=[4, 5, 6], keys=["a", "b", "c"])
            got.append([(g.token_ids, g.logprobs) for g in gens])
            conversations = [c + " " + g.text + "\nuser: No.\nactor:" for c, g in zip(conversations, gens)]
        runs[reserve] = got
    for turn_a, turn_b in zip(runs[True], runs[False]):
        assert [t for t, _ in turn_a] == [t for t, _ in turn_b]
        assert [lp for _, lp in turn_a] == [pytest.approx(lp, abs=1e-5) for _, lp in turn_b]


def test_logprobs_of_greedy_output_match_a_separate_forward_pass(greedy):
    for g in greedy.generate_text(PROMPTS, seeds=[0, 0, 0]):
        ids = torch.tensor([greedy.encode(g.prompt) + g.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(greedy.model(ids).logits[0].float(), -1)
        n = len(g.token_ids)
        expected = logp[-n - 1 : -1].gather(-1, torch.tensor(g.token_ids)[:, None]).squeeze(-1)
        assert g.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
        assert g.token_ids == logp[-n - 1 : -1].argmax(-1).tolist()  # greedy: each token is the argmax


def test_sampling_is_seeded_per_row(lm_dir):
    agent = LMAgent.from_pretrained(lm_dir, temperature=1.0, max_new_tokens=8, stop=["zzz"])
    forward = agent.generate_text(PROMPTS, seeds=[5, 6, 7])
    backward = agent.generate_text(PROMPTS[::-1], seeds=[7, 6, 5])[::-1]
    assert [g.token_ids for g in forward] == [g.token_ids for g in backward]
    assert agent.generate_text(PROMPTS[:1], seeds=[8])[0].token_ids != forward[0].token_ids


def test_stop_strings_cut_the_utterance(lm_dir):
    agent = LMAgent.from_pretrained(lm_dir, temperature=0.0, max_new_tokens=8, stop=["zzz"])
    full = agent.generate_text(PROMPTS[:1], seeds=[0])[0]
    first = agent.tokenizer.decode(full.token_ids[:1])
    cut = LMAgent.from_pretrained(lm_dir, temperature=0.0, max_new_tokens=8, stop=[first])
    g = cut.generate_text(PROMPTS[:1], seeds=[0])[0]
    assert g.token_ids == full.token_ids[:1] and first not in g.text


def test_prompts_by_role():
    messages = [("actor", "The answer is B."), ("judge", "No: C.")]
    text = plain_prompt("judge", "Pick one.", "The truth is C.", messages)
    assert text == "Task: Pick one.\nKnown only to the judge: The truth is C.\nactor: The answer is B.\njudge: No: C.\njudge:"
    chat = chat_messages("actor", "Pick one.", "", messages)
    assert [m["role"] for m in chat] == ["user", "assistant", "user"]
    assert chat[2]["content"] == "judge: No: C."


def test_chat_template_is_used_when_the_tokenizer_has_one(lm_dir):
    agent = LMAgent.from_pretrained(lm_dir)
    agent.tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    try:
        chat = LMAgent(agent.model, agent.tokenizer, LMOptions())
        env = feedbackgym.make("feedbackgym/JudgedQA-v0")
        env.reset(seed=0)
        prompt = chat.prompt(env.unwrapped.episode.view("actor"))
        assert prompt.startswith("<user>You are the actor") and prompt.endswith("<assistant>")
    finally:
        agent.tokenizer.chat_template = None


def test_specs_are_checked_and_options_passed(tmp_path, lm_dir):
    assert check_spec(f"lm:{lm_dir}", "judge") is None
    missing = check_spec(f"lm:{tmp_path / 'nothing'}", "actor")
    assert "never downloaded" in missing and "bootstrap" in missing
    (tmp_path / "empty").mkdir()
    assert "config.json" in check_spec(f"lm:{tmp_path / 'empty'}", "actor")
    agent = make_agent(f"lm:{lm_dir}", "user", {"temperature": 0, "max_new_tokens": 5, "stop": "."})
    assert agent.options.temperature == 0 and agent.options.max_new_tokens == 5 and agent.options.stop == (".",)
    with pytest.raises(ValueError, match="unknown LM option.*'temprature'"):
        make_agent(f"lm:{lm_dir}", "user", {"temprature": 0})
    with pytest.raises(ValueError, match="top_p"):
        LMOptions(top_p=0)


def test_temperature_schedule_feedback_friction():
    """Feedback Friction's mitigation: the temperature rises 0.15 a turn, capped at 1.5; the first
    turn is greedy; per-row temperatures leave a greedy row greedy."""
    from feedbackgym.agents.lm import sample

    opts = LMOptions(temperature_step=0.15)
    assert [opts.temperature_for(n) for n in (0, 1, 4, 20)] == [0.0, 0.15, 0.6, 1.5]
    assert LMOptions(temperature=0.7).temperature_for(5) == 0.7
    logits = torch.tensor([[0.0, 3.0, 1.0], [0.0, 3.0, 1.0]])
    uniforms = torch.tensor([0.001, 0.001])  # the first token of the CDF when sampled
    out = sample(logits, torch.tensor([0.0, 1.0]), 1.0, uniforms)
    assert out.tolist() == [1, 0]  # row 0 greedy (argmax), row 1 drawn
    assert sample(logits, 1.0, 1.0, uniforms).tolist() == [0, 0]  # the scalar path is unchanged


def test_agents_share_weights_until_the_folder_is_rewritten(tmp_path, lm_dir):
    import shutil

    folder = shutil.copytree(lm_dir, tmp_path / "model")
    first, second = LMAgent.from_pretrained(str(folder)), LMAgent.from_pretrained(str(folder))
    assert first.model is second.model
    retrained = build_model(first.tokenizer, n_layer=2, n_embd=48, n_head=2, n_positions=256)
    retrained.save_pretrained(folder)
    again = LMAgent.from_pretrained(str(folder))
    assert again.model is not first.model
    assert torch.equal(again.model.transformer.wte.weight, retrained.transformer.wte.weight)


def test_top_p_sorts_only_the_head_of_the_vocabulary_and_draws_the_same(monkeypatch):
    """Top-p sampling sorts the top NUCLEUS_K tokens, the whole vocabulary only when a row's
    nucleus is larger: the draws equal those of a full sort, peaked rows and flat rows alike."""
    from feedbackgym.agents import lm as lm_module

    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(6, 5000, generator=g) * 8  # a nucleus of a few tokens
    flat = torch.randn(2, 5000, generator=g) * 0.01  # a nucleus of thousands: falls back to the full sort
    uniforms = torch.rand(8, generator=g)
    for logits in (peaked, torch.cat([peaked[:6], flat])):
        u = uniforms[: len(logits)]
        head = lm_module.sample(logits, 0.7, 0.9, u)
        monkeypatch.setattr(lm_module, "NUCLEUS_K", logits.shape[-1])
        full = lm_module.sample(logits, 0.7, 0.9, u)
        monkeypatch.undo()
        assert torch.equal(head, full)
