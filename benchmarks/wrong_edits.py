"""Wrong edits of the learners' update rules, each applied alone to a copy of the package: the
default suite's learner tests must catch every one.

    python benchmarks/wrong_edits.py                 # every edit, one after another
    python benchmarks/wrong_edits.py --only ppo      # the edits whose name starts with "ppo"

For each edit in `EDITS`: copy ``feedbackgym/`` (with the shipped scenarios), ``tests/`` and
``pyproject.toml`` into a fresh temporary folder, replace the exact strings the edit names
(the script stops, naming the edit and file, if a string is not found exactly once: an edit that
no longer applies must be rewritten, not skipped), and run `TESTS` there with ``PYTHONPATH``
pointing at the copy, in a child forked from this process once torch and transformers are
imported (they are the most of a run's cost; the package is imported only by the children).
First the copy is run unedited, which must pass (else "caught" would mean nothing). Each edited
copy stops at its first failing test (``--all-failures``: runs them all). Prints a table: edit,
caught (yes/no), by which test; exits 1 if any edit passed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_update_rules.py", "tests/test_multitoken.py", "tests/test_learners.py",
         "tests/test_grpo.py", "tests/test_fcp.py", "tests/test_critique_grpo.py"]  # fmt: skip


@dataclass(frozen=True)
class Edit:
    name: str
    why: str
    file: str
    """path inside feedbackgym/"""
    replace: tuple[tuple[str, str], ...]
    """(exact old text, new text) pairs, each old text found exactly once"""


def edit(name: str, why: str, file: str, *pairs: tuple[str, str]) -> Edit:
    return Edit(name, why, file, tuple(pairs))


EDITS = [
    # ------------------------------------------------------------------ PPO
    edit("ppo_pg_sign", "policy gradient sign flipped", "learners/ppo.py",
         ("pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))",
          "pg = torch.maximum(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))")),
    edit("ppo_no_ratio_clip", "no ratio clipping", "learners/ppo.py",
         ("pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))", "pg = -adv * ratio")),
    edit("ppo_kl_sign", "KL penalty sign flipped", "learners/ppo.py",
         ("r = [-kl_coef * (o - f) for o, f in zip(old, ref)]", "r = [kl_coef * (o - f) for o, f in zip(old, ref)]")),
    edit("ppo_reward_first_token", "the utterance's reward on its first token", "learners/ppo.py", ("r[-1] += reward", "r[0] += reward")),
    edit("ppo_returns_are_advantages", "returns set to the advantages (values not added)", "learners/ppo.py",
         ("ret_rows.append([x + v for x, v in zip(", "ret_rows.append([x + 0 * v for x, v in zip(")),
    edit("ppo_no_whitening", "advantages not whitened", "learners/ppo.py",
         ("A[j, A.shape[1] - n[j] :] = (torch.tensor(adv_rows[j]) - mu) / sd", "A[j, A.shape[1] - n[j] :] = torch.tensor(adv_rows[j])")),
    edit("ppo_no_truncation_bootstrap", "a truncated episode not bootstrapped (V(s') = 0)", "learners/ppo.py",
         ("final_v.get(id(t), 0.0)", "0.0")),
    edit("ppo_value_head_off_by_one", "the value read one position late (at the token, not where it is predicted)", "learners/_policy.py",
         ("h[row_idx[:, None], cols], h[row_idx", "h[row_idx[:, None], (cols + 1).clamp(max=width - 1)], h[row_idx")),
    edit("packed_position_off_by_one", "a packed turn's tokens read one position late in its episode's pass", "learners/_policy.py",
         ("+ len(prompts[i]) - 1 for i in range", "+ len(prompts[i]) for i in range")),
    edit("ppo_episode_order_ignored", "PPO's micro-batches in a fixed episode order, not the drawn one", "learners/ppo.py",
         ("    for e in order:\n", "    for e in sorted(order):\n")),
    edit("ppo_temperature_1", "old (and new) log-probs at temperature 1 whatever the sampling temperature", "learners/ppo.py",
         ("return token_logprobs(Tempered(model, sampling_temperature(self.policy)), ", "return token_logprobs(model, ")),
    edit("ppo_tokenless_dropped", "a step without tokens dropped with its reward", "learners/ppo.py",
         ("out[-1][1] += gamma ** out[-1][2] * float(s.reward)\n            out[-1][2] += 1", "pass")),
    edit("ppo_tokenless_undiscounted", "a tokenless step's reward folded without its discount", "learners/ppo.py",
         ("out[-1][1] += gamma ** out[-1][2] * float(s.reward)", "out[-1][1] += float(s.reward)")),
    edit("ppo_value_clip_default", "the value loss clipped at ±0.2 by default", "learners/ppo.py", ("clip_vloss: bool = False", "clip_vloss: bool = True")),
    # ------------------------------------------------------------------ CHAI
    edit("chai_argmin", "CHAI says the worst of k", "learners/chai.py", ("best = score.argmax(1).tolist()", "best = score.argmin(1).tolist()")),
    edit("chai_q1_only", "CHAI ranks by Qbar1 alone, not min(Qbar1, Qbar2)", "learners/chai.py",
         ("score = torch.minimum(q1, q2).view(len(prompts), k)", "score = q1.view(len(prompts), k)")),
    edit("chai_v_target_expectation", "CHAI's V target from the frozen actor's samples (no best-of-k)", "learners/chai.py",
         ("    def sample_actions(self, states", "    def _unused(self, states")),
    # ------------------------------------------------------------------ ArCHer
    edit("archer_target_critic_advantage", "the actor's advantage from the target critic", "learners/archer.py",
         ("adv = advantage(*self.critic.q(es, self.features(self.critic, [g.text for g in gens])), *self.critic.v(es))",
          "adv = advantage(*self.target.q(es, self.features(self.target, [g.text for g in gens])), *self.target.v(es))"),
         ("es = self.features(self.critic, states)\n            adv", "es = self.features(self.target, states)\n            adv")),
    edit("archer_advantage_max", "advantage with max instead of min over the twin heads", "learners/archer.py",
         ("return torch.minimum(q1, q2) - torch.minimum(v1, v2)", "return torch.maximum(q1, q2) - torch.maximum(v1, v2)")),
    edit("archer_warmup_not_frozen", "the actor trains during warm-up", "learners/archer.py",
         ("return iteration < self.args.warmup_iters", "return False")),
    edit("archer_fifo_order", "the replay ring's head wraps one slot late (passes a one-wrap check, breaks on the second)", "learners/_critic.py",
         ("self.head = (self.head + 1) % self.capacity", "self.head = (self.head + 1) % (self.capacity + 1)")),
    edit("archer_polyak_tau_flipped", "Polyak with tau and 1 - tau swapped", "learners/_critic.py",
         ("t.mul_(1.0 - tau).add_(o, alpha=tau)", "t.mul_(tau).add_(o, alpha=1.0 - tau)")),
    edit("archer_polyak_once", "Polyak once per iteration, not after every critic step", "learners/archer.py",
         ("        clipped_step(self.critic_opt, self.critic.parameters(), a.max_grad_norm)\n        polyak(self.target, self.critic, a.tau)\n",
          "        clipped_step(self.critic_opt, self.critic.parameters(), a.max_grad_norm)\n"),
         ("        out = {\"critic_loss\": float(np.mean(critic)), \"buffer\": len(self.buffer)}",
          "        polyak(self.target, self.critic, a.tau)\n        out = {\"critic_loss\": float(np.mean(critic)), \"buffer\": len(self.buffer)}")),
    edit("archer_bootstrap_after_termination", "Q target bootstraps after termination", "learners/archer.py",
         ("return reward + gamma * (1.0 - terminated.float()) * v_next", "return reward + gamma * v_next")),
    # ------------------------------------------------------------------ filtered BC and BC
    edit("fbc_bottom_fraction", "filtered BC keeps the worst trajectories", "learners/filtered_bc.py",
         ("key=lambda i: (-returns[i], i)", "key=lambda i: (returns[i], i)")),
    edit("fbc_floor", "filtered BC keeps floor(fraction * n)", "learners/filtered_bc.py",
         ("k = max(1, math.ceil(fraction * len(returns)))", "k = max(1, math.floor(fraction * len(returns)))")),
    edit("fbc_this_iteration_only", "filtered BC filters this iteration's trajectories, not all so far", "learners/filtered_bc.py",
         ("        for t in trajectories:\n            self.pool.append(",
          "        self.pool = []\n        for t in trajectories:\n            self.pool.append(")),
    edit("bc_mean_over_pads", "the NLL averaged over padded positions too", "learners/filtered_bc.py",
         ("return -logp.sum() / mask.sum().clamp(min=1)", "return -logp.sum() / mask.numel()")),
    edit("bc_ascent", "the NLL's sign flipped (likelihood minimised)", "learners/filtered_bc.py",
         ("return -logp.sum() / mask.sum().clamp(min=1)", "return logp.sum() / mask.sum().clamp(min=1)")),
    edit("bc_prompt_in_target", "BC's target tokens include the prompt", "learners/bc.py",
         ('ids = policy.tokenizer(f" {m.text}\\n", add_special_tokens=False)["input_ids"]',
          'ids = policy.tokenizer(policy.prompt(view) + f" {m.text}\\n", add_special_tokens=False)["input_ids"]')),
    # ------------------------------------------------------------------ GRPO
    edit("grpo_across_seeds", "advantages relative over the whole batch, not within each seed's group", "learners/grpo.py",
         ("        groups[t.seed].append(i)", "        groups[0].append(i)")),
    edit("grpo_no_std", "the group's std ignored with scale_rewards on", "learners/grpo.py",
         ("return (d / (x.std() + EPS) if scale else d).tolist()", "return d.tolist()")),
    edit("grpo_pg_sign", "policy gradient sign flipped", "learners/grpo.py",
         ("per_token = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip))",
          "per_token = torch.maximum(a * ratio, a * ratio.clamp(1 - clip, 1 + clip))")),
    edit("grpo_no_clip", "no ratio clipping", "learners/grpo.py",
         ("per_token = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip))", "per_token = -a * ratio")),
    edit("grpo_token_mean", "loss averaged over all tokens instead of per turn", "learners/grpo.py",
         ("loss = ((per_token * mask).sum(1) / tokens).mean()", "loss = (per_token * mask).sum() / tokens.sum()")),
    edit("grpo_kl_sign", "k3 KL estimate with the log-ratio flipped", "learners/grpo.py",
         ("d = ref - logp", "d = logp - ref")),
    edit("grpo_undiscounted", "returns-to-go not discounted", "learners/grpo.py", ("g = rewards[t] + gamma * g", "g = rewards[t] + g")),
    edit("grpo_turn_weight_ignored", "the turn advantage left out", "learners/grpo.py",
         ("out[i][t] += args.turn_weight * a", "out[i][t] += 0 * a")),
    edit("grpo_singleton_state", "a state group of one gets a nonzero turn advantage (its own return)", "learners/grpo.py",
         ("        return [0.0] * len(values)", "        return list(values)")),
    # ------------------------------------------------------------------ FCP
    edit("fcp_positive_condition", "online triples keep the positive condition they were sampled under", "learners/fcp.py",
         ("self.pool.append((conditioned(c, unconditioned(s.prompt)), list(s.token_ids)))", "self.pool.append((s.prompt, list(s.token_ids)))")),
    edit("fcp_outcome_dropped", "the last turn's condition without how the episode ended", "learners/fcp.py",
         ("c = condition(s.feedback, t.end if last and t.end else None)", "c = condition(s.feedback, None)")),
    edit("fcp_no_offline_stage", "the records' triples never trained on", "learners/fcp.py",
         ("metrics[\"offline_loss\"] = float(np.mean(self.imitate(self.offline, a.offline_steps)))", "pass")),
    edit("fcp_condition_from_the_turn_before", "a record's condition taken from what came before the turn", "learners/fcp.py",
         ('said = "\\n".join(f"{m.role}: {m.text}" for m in log[i + 1 : end])', 'said = "\\n".join(f"{m.role}: {m.text}" for m in log[max(0, i - 1) : i])')),
    # ------------------------------------------------------------------ Critique-GRPO and its refinement step
    edit("cgrpo_refinement_own_prompt", "a refinement trained at its own prompt (critique in view), not its draft's", "learners/critique_grpo.py",
         ("prompt = t.steps[k - 1].prompt if refinement else s.prompt", "prompt = s.prompt")),
    edit("cgrpo_worst_refinement", "the worst-scored refinements kept", "learners/critique_grpo.py",
         ("key=lambda x: -x.score)", "key=lambda x: x.score)")),
    edit("cgrpo_ratio_for_refinements", "refinement tokens get the clipped ratio, not the shaping", "learners/critique_grpo.py",
         ("per_token = torch.where(off[:, None], shaped, on)", "per_token = on")),
    edit("cgrpo_unshaped", "refinement tokens weighted by pi itself, not pi / (pi + gamma)", "learners/critique_grpo.py",
         ("shaped = -a * (p / (p + gamma))", "shaped = -a * p")),
    edit("cgrpo_unreadable_unscored", "an unreadable move gets no verdict (left out) instead of 0", "rollout.py",
         ('return False if m.kind == "invalid" or m.labels.get("valid") is False else m.labels.get("is_correct")',
          'return m.labels.get("is_correct")')),
    edit("refine_draft_spends_a_turn", "a draft counted against the turn budget", "envs/engine.py",
         ("        parsed = self.instance.parse(role, text)\n        self._last_invalid = not parsed.valid",
          "        parsed = self.instance.parse(role, text)\n        self.actor_turns += 1\n        self._last_invalid = not parsed.valid")),
    edit("refine_critique_of_the_move_before", "the critic handed the move before the draft", "envs/engine.py",
         ("        if parsed.valid:\n            self._last_parsed = parsed\n            labels = {",
          "        if parsed.valid:\n            labels = {")),
]  # fmt: skip


def make_copy(where: Path) -> Path:
    """The package (shipped scenarios inside it), the tests and pyproject.toml, under ``where``."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "__snapshots__")
    shutil.copytree(ROOT / "feedbackgym", where / "feedbackgym", ignore=skip)
    shutil.copytree(ROOT / "scenarios", where / "feedbackgym" / "scenarios", ignore=skip)
    shutil.copytree(ROOT / "tests", where / "tests", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    return where


def apply(e: Edit, copy: Path) -> None:
    path = copy / "feedbackgym" / e.file
    text = path.read_text()
    for old, new in e.replace:
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"wrong_edits: edit {e.name!r}: {count} occurrences (need exactly 1) in feedbackgym/{e.file} of:\n{old}")
        text = text.replace(old, new)
    path.write_text(text)


def preload() -> None:
    """Import the heavy libraries once, before any copy is tested: each copy's tests run in a
    child forked from this process (``feedbackgym`` itself is never imported here, so every child
    imports its own copy's)."""
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401
    from transformers import GPT2LMHeadModel  # noqa: F401

    if "feedbackgym" in sys.modules:
        raise SystemExit("wrong_edits: feedbackgym was imported before the copies were made")


def run_tests(copy: Path, first_failure: bool) -> tuple[int, list[str], str]:
    """pytest on the copy, in a forked child: exit code, failing tests, the output's tail."""
    log = copy / "pytest.log"
    pid = os.fork()
    if pid == 0:  # the child: the copy first on the path, for itself and for what it starts
        code = 3
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(copy)
            sys.path.insert(0, str(copy))
            os.environ["PYTHONPATH"] = str(copy)
            os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
            import pytest

            args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist", "-rfE", *(["-x"] if first_failure else []), *TESTS]
            code = int(pytest.main(args))
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    out = log.read_text(errors="replace")
    failed = re.findall(r"^(?:FAILED|ERROR) tests/\S+?::(\S+)", out, re.M)
    return os.waitstatus_to_exitcode(status), failed, out[-3000:]


def check(e: Edit | None, first_failure: bool = True) -> tuple[int, list[str], str]:
    with tempfile.TemporaryDirectory(prefix="wrong-edit-") as tmp:
        copy = make_copy(Path(tmp))
        if e is not None:
            apply(e, copy)
        return run_tests(copy, first_failure and e is not None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="only the edits whose name starts with this")
    p.add_argument("--all-failures", action="store_true", help="run every test on each copy (default: stop at the first failure)")
    a = p.parse_args(argv)
    edits = [e for e in EDITS if e.name.startswith(a.only)]
    for e in edits:  # every edit applies, before anything runs
        apply_check = (ROOT / "feedbackgym" / e.file).read_text()
        for old, _ in e.replace:
            if apply_check.count(old) != 1:
                raise SystemExit(f"wrong_edits: edit {e.name!r} does not apply to feedbackgym/{e.file}: {apply_check.count(old)} occurrences of:\n{old}")
    preload()
    code, failed, tail = check(None)
    if code != 0:
        print(f"the unedited copy fails {failed or ''}: fix that first\n{tail}", file=sys.stderr)
        return 2
    results = [check(e, not a.all_failures) for e in edits]
    print(f"tests run on each edited copy: {' '.join(TESTS)}\n")
    print("| edit | what it breaks | caught | by |\n|---|---|---|---|")
    missed = 0
    for e, (code, failed, _tail) in zip(edits, results):
        caught = code != 0
        missed += not caught
        by = ", ".join(failed) if failed else ("(collection or session error)" if caught else "-")
        print(f"| {e.name} | {e.why} | {'yes' if caught else 'NO'} | {by} |")
    print(f"\n{len(edits) - missed} of {len(edits)} edits caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
