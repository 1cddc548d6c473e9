"""Multi-token actors: sampling many states at once, and ArCHer's batched fresh samples.

A question of the word-level bootstrap is several tokens, so ArCHer's V targets sample whole
utterances at every replay state of every critic step. `Policy.sample` without conversation
keys batches them (a prompt that is a prefix of another reuses its KV cache), and ArCHer draws
all of an iteration's critic samples in one such call with the seeds it would have drawn one
call at a time: these tests pin that the batching changes no sample and no update."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import save_tiny_lm  # noqa: E402

from feedbackgym.agents.lm import plain_prompt  # noqa: E402
from feedbackgym.envs.scenario import load_scenario  # noqa: E402
from feedbackgym.learners import archer, ppo  # noqa: E402
from feedbackgym.learners._policy import Policy, packing_plan, shared_prefix_plan, token_logprobs  # noqa: E402
from feedbackgym.learners.bootstrap import actor_segments, collect  # noqa: E402
from feedbackgym.rollout import Step, Trajectory  # noqa: E402


@pytest.fixture(scope="module")
def episodes():
    return collect(load_scenario("twenty_questions"), 8, mix=0.5, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, episodes):
    texts = ["".join(t for t, _ in actor_segments(ep)) for ep in episodes]
    return save_tiny_lm(tmp_path_factory.mktemp("tiny20q"), texts)


def actor_prompts(ep) -> list[str]:
    messages = [(m.role, m.text) for m in ep.log]
    return [plain_prompt("actor", ep.instance.instruction, "", messages[:i]) for i, (r, _) in enumerate(messages) if r == "actor"]


def replay_steps(episodes) -> list[Step]:
    steps = []
    for ep in episodes:
        prompts = actor_prompts(ep)
        texts = [m.text for m in ep.log if m.role == "actor"]
        for j, (p, text) in enumerate(zip(prompts, texts)):
            last = j == len(prompts) - 1
            nxt = prompts[j + 1] if not last else p + f" {text}\n"
            steps.append(Step(p, text, [1, 2], [-0.5, -0.5], -1.0 if not last else 0.0, nxt, terminated=last))
    return steps


def test_shared_prefix_plan_groups_each_prompt_under_its_longest_extension():
    ids = [[1, 2], [1, 2, 3, 4], [5], [1, 2, 3], [1, 2, 3, 4], [5, 6, 7], [9, 9]]
    plan = shared_prefix_plan(ids, batch_tokens=8, max_rows=256)
    roots = [r for batch, _ in plan for r in batch]
    followers = {i: r for _, f in plan for i, r in f.items()}
    # [1,2] and [1,2,3] are prefixes of [1,2,3,4] (rows 1 and 4: one root for the equal prompts,
    # the first); [5] of [5,6,7]; [9,9] stands alone. Roots go by length, cut at 8 tokens a batch
    # (rows x longest).
    assert sorted(roots) == [1, 5, 6] and followers == {0: 1, 3: 1, 4: 1, 2: 5}
    assert [batch for batch, _ in plan] == [[6, 5], [1]]
    for batch, f in plan:  # a follower is in its root's batch
        assert all(r in batch for r in f.values())


def test_sampling_many_states_at_once_gives_each_the_utterance_it_gets_alone(tiny, episodes):
    policy = Policy.load(tiny, max_new_tokens=8)
    prompts = [p for ep in episodes for p in actor_prompts(ep)][::2]
    prompts += prompts[:3]  # the same state drawn twice
    seeds = list(range(7, 7 + len(prompts)))
    policy.batch_tokens = 600  # several batches
    plan = shared_prefix_plan(policy.agent.encode_all(prompts), policy.batch_tokens)
    assert len(plan) > 1 and sum(len(f) for _, f in plan) > 0
    together = policy.sample(prompts, seeds)
    alone = [policy.sample([p], [s])[0] for p, s in zip(prompts, seeds)]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]
    assert [g.text for g in together] == [g.text for g in alone]
    for a, b in zip(together, alone):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def run_update(tiny, steps, batch: bool):
    policy = Policy.load(tiny, max_new_tokens=6)
    calls = []
    sample = policy.sample
    policy.sample = lambda prompts, seeds_, keys=None, temperature=None: calls.append(len(prompts)) or sample(prompts, seeds_, keys, temperature)
    args = archer.Args(embedder="hashing", batch_size=4, grad_accum=2, critic_steps=3, actor_steps=2, warmup_iters=0, batch_v_samples=batch)
    learner = archer.ArCHer(policy, args, seed=0)
    metrics = learner.update([Trajectory(seed=0, steps=steps)], iteration=0)
    return learner, metrics, calls


def test_archer_batched_fresh_samples_change_no_update(tiny, episodes):
    """The same seeds in the same order: one call for all critic steps' V-target samples (and
    one per actor step) makes the very update that one call per micro-batch makes."""
    steps = replay_steps(episodes)
    batched, m1, calls1 = run_update(tiny, steps, batch=True)
    single, m2, calls2 = run_update(tiny, steps, batch=False)
    assert calls1 == [3 * 2 * 4, 2 * 4, 2 * 4] and calls2 == [4] * (3 * 2 + 2 * 2)
    assert batched.rng.bit_generator.state == single.rng.bit_generator.state
    for name in ("critic_loss", "actor_loss", "advantage"):
        assert m1[name] == pytest.approx(m2[name], rel=1e-5, abs=1e-6), name
    for (k, a), (_, b) in zip(batched.critic.state_dict().items(), single.critic.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k
    for a, b in zip(batched.policy.model.parameters(), single.policy.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert set(m1["cost_s"]) == {"critic", "v_samples", "actor"} and m1["cost_s"]["v_samples"] <= m1["cost_s"]["critic"]


def test_a_request_other_than_announced_is_drawn_afresh(tiny, episodes):
    """A subclass whose targets sample differently from `v_sample_requests` still gets samples
    of its own states (the prefetched ones are dropped)."""
    learner = archer.ArCHer(Policy.load(tiny, max_new_tokens=4), archer.Args(embedder="hashing"), seed=0)
    prompts = [p for ep in episodes for p in actor_prompts(ep)]
    learner.announce([(prompts[:2], 1)])
    learner.fill()
    gens = learner.sample_actions(prompts[2:5], 2)
    assert [len(g) for g in gens] == [2, 2, 2] and not learner._prefetched


# ---------------------------------------------------------------------- scoring an episode in one pass
def test_packing_plan_reads_each_turn_off_its_episode_s_last_turn():
    seqs = [[1, 2], [7], [1, 2, 3, 4], [1, 2, 3], [7, 8], [1, 2, 3, 4]]
    roots, root_of = packing_plan(seqs)
    assert roots == [2, 4]  # in their order; of equal rows the first is the root
    assert root_of == [2, 4, 2, 2, 4, 2]


def test_packed_scoring_equals_one_pass_per_turn(tiny, episodes):
    """Every turn of several episodes in one call (one forward pass per episode) gives each
    token the log-prob, and each predicting position the hidden state, that a pass of its turn
    alone gives; and the packing does happen (the turns are prefixes of their episode's last)."""
    policy = Policy.load(tiny)
    P, A = [], []
    for ep in episodes[:3]:
        ids = [policy.encode(p) for p in actor_prompts(ep)][:5]  # turns whose prompt is not cut to the tiny context
        for cur, nxt in zip(ids, ids[1:]):  # the tokens the next prompt adds: the utterance, the replies
            assert nxt[: len(cur)] == cur
            P, A = P + [cur], A + [nxt[len(cur) : len(cur) + 5]]
        P, A = P + [ids[-1]], A + [policy.tokenizer.encode(" Is it a cat?\n")]
    roots, _ = packing_plan([p + a for p, a in zip(P, A)])
    assert len(roots) == 3 < len(P)
    with torch.no_grad():
        logp, mask, h, h_prompt = token_logprobs(policy.model, P, A, policy.pad_id, hidden=True)
        w = logp.shape[1]
        for i, (p, a) in enumerate(zip(P, A)):
            lp1, m1, h1, hp1 = token_logprobs(policy.model, [p], [a], policy.pad_id, hidden=True)
            assert mask[i, w - len(a) :].tolist() == [1.0] * len(a) and mask[i, : w - len(a)].sum() == 0
            assert torch.allclose(logp[i, w - len(a) :], lp1[0], atol=1e-5), i
            assert torch.allclose(h[i, w - len(a) :], h1[0], atol=1e-5), i
            assert torch.allclose(h_prompt[i], hp1[0], atol=1e-5), i


def test_ppo_micro_batches_are_whole_episodes_in_the_drawn_order():
    episode = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    assert ppo.episode_batches(episode, [2, 0, 3, 1], size=5) == [[5, 6, 7, 8], [0, 1, 2, 9], [3, 4]]
    assert ppo.episode_batches(episode, [2, 0, 3, 1], size=2) == [[5, 6, 7, 8], [0, 1, 2], [9], [3, 4]]


# ---------------------------------------------------------------------- a pretrained start with LoRA
LORA_RUN = dict(scenario="twenty_questions", rollout_size=2, num_envs=2, max_new_tokens=4, eval_every=1, eval_episodes=2, lora=2)
LORA_ARCHER = dict(embedder="hashing", batch_size=4, grad_accum=1, critic_steps=2, actor_steps=1, warmup_iters=0)


def test_a_lora_policy_trains_saves_and_reloads_only_its_adapters(tiny, tmp_path):
    """`Policy.load(..., lora=r)`: only the adapters take gradients and are in the state a
    checkpoint saves; loading that state into a fresh LoRA policy gives the same model; the
    saved actor has the adapters merged (a plain model whose log-probs are the trained ones)."""
    policy = Policy.load(tiny, lora=2, seed=0)
    state = policy.model.state_dict()
    assert state and all(".lora_A." in k or ".lora_B." in k for k in state)
    before = {k: v.clone() for k, v in policy.model.named_parameters()}
    prompts, actions = ["Task: x\nactor:", "Task: y\nactor: Is"], [[5, 6, 7], [8]]
    opt = torch.optim.Adam(policy.model.parameters(), lr=0.05)
    (-policy.logprobs(prompts, actions)[0].sum()).backward()
    opt.step()
    moved = {k for k, v in policy.model.named_parameters() if not torch.equal(v, before[k])}
    assert moved and all(".lora_" in k for k in moved)
    fresh = Policy.load(tiny, lora=2, seed=1)  # other initial adapters
    fresh.model.load_state_dict(policy.model.state_dict())
    lp = policy.logprobs(prompts, actions)[0]
    assert torch.equal(fresh.logprobs(prompts, actions)[0], lp)
    policy.save(tmp_path / "merged")
    merged = Policy.load(tmp_path / "merged")
    assert merged.peft is None and not any("lora" in k for k in merged.model.state_dict())
    assert torch.allclose(merged.logprobs(prompts, actions)[0], lp, atol=1e-5)


@pytest.mark.slow
def test_lora_trains_only_the_adapters_and_resumes_exactly(tiny, tmp_path):
    """`feedbackgym train ... --lora 2`: checkpoints hold only the adapters, the base weights
    never move (only the adapted projections of the saved, merged actor differ from the start),
    and a run resumed from its checkpoint writes what the uninterrupted run writes."""
    from feedbackgym.learners import checkpoints, train

    def run(out, iterations, resume=False):
        args = train.TrainArgs(actor=f"lm:{tiny}", out=str(tmp_path / out), iterations=iterations, checkpoint_every=1, **LORA_RUN)
        return train.run("archer", args, None if resume else archer.Args(**LORA_ARCHER), resume=resume, quiet=True)

    run("whole", 2)
    state = checkpoints.load(train.newest_checkpoint(tmp_path / "whole"))["state"]["learner"]["policy"]
    assert state and all(".lora_A." in k or ".lora_B." in k for k in state)
    assert any(".lora_B." in k and bool(v.abs().sum() > 0) for k, v in state.items())  # B starts at zero: it trained
    start = Policy.load(tiny).model.state_dict()
    after = Policy.load(tmp_path / "whole" / "actor").model.state_dict()
    assert start.keys() == after.keys()
    changed = {k for k in start if not torch.equal(start[k], after[k])}
    assert changed and all(".attn.c_attn." in k for k in changed)  # GPT-2's LoRA target, merged in

    run("broken", 1)
    run("broken", 2, resume=True)
    clock = lambda out: [{k: v for k, v in m.items() if k not in train.CLOCK_FIELDS} for m in train.read_metrics(tmp_path / out / "metrics.jsonl")]  # noqa: E731
    assert clock("broken") == clock("whole") and [m["iteration"] for m in clock("whole")] == [0, 1, 2]
    assert (tmp_path / "broken" / "eval.jsonl").read_text() == (tmp_path / "whole" / "eval.jsonl").read_text()
