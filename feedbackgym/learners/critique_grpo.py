"""Critique-GRPO: GRPO whose groups also hold the refinements the actor wrote after a critique.

    feedbackgym train critique_grpo --scenario judged_qa_refine --actor lm:models/actor_qa --out runs/cg

"Critique-GRPO: Advancing LLM Reasoning with Natural Language and Numerical Feedback": each
prompt gets a group of on-policy responses, each is scored and critiqued, the model refines
after the critique, and the refinements join the group, trained as responses to the *original*
prompt. The refinement tokens were not sampled from the policy at that prompt, so their
importance ratio is replaced by the shaping f(pi) = pi / (pi + gamma) (the reference's
``off_policy_reshape: p_div_p_0.1``: gamma 0.1), which weights unlikely correct tokens up.

Here the scenario supplies the critique step (``protocol.refine``: the actor's draft, the
critique of it, the refinement that counts; `judged_qa_refine`) and every seat plays as in any
scenario (a scripted critic of any kind, an LM, a served model, a deceptive judge). Each
iteration collects ``rollout_size / group_size`` groups of ``group_size`` episodes of one task
instance (GRPO's `Episode` members). On the learner's turns:

1. **samples** (`samples`): each draft is an on-policy response at its prompt x; each
   refinement is posed as a response at its draft's prompt x (the critique and the draft cut
   away), off-policy. Both are scored by the task's verdict on them as moves (`Step.verdict`:
   1 right, 0 wrong or unreadable), the rule-based verifier of the paper; turns without a verdict
   (questions) are not trained;
2. **groups**: the samples of one seed's episodes at the same prompt x (every member's first
   draft shares it); of a group's refinements, the ``refinements`` best-scored are kept (the
   reference keeps one: a correct one if there is one); the advantage is GRPO's
   (score - mean) / (std + eps) over the group (``scale_rewards`` off: unscaled), 0 in a group
   of one;
3. **loss** (`critique_loss`): on-policy tokens get GRPO's clipped surrogate against the sampling
   distribution; refinement tokens -A f(pi), pi the policy's probability of the token at the
   sampling temperature; the per-turn mean over tokens, then the mean over samples (as `grpo`).

``refinements`` 0 leaves plain GRPO on the drafts' verdicts, the baseline the paper compares
with; the episode's scalar return is never read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from feedbackgym.learners.args import LMOptimArgs
from feedbackgym.learners.grpo import GRPO, aligned, relative


@dataclass
class Args(LMOptimArgs):
    """Critique-GRPO's fields (from the base: ``learning_rate`` 1e-4, ``batch_size`` 16 samples a
    micro-batch, ``grad_accum`` 2, ``max_grad_norm`` 1.0)."""

    group_size: int = 4
    """episodes per group, each on the group's task instance (rollout_size must be a multiple of it)"""
    refinements: int = 1
    """refinements kept per group, the best-scored first (0: GRPO on the drafts alone)"""
    shaping: float = 0.1
    """gamma of the refinement tokens' shaping pi / (pi + gamma)"""
    scale_rewards: bool = True
    """divide by the group's standard deviation (off: unscaled advantages)"""
    clip_coef: float = 0.2
    """clipping of the on-policy tokens' probability ratio"""
    update_epochs: int = 1
    """passes over each iteration's samples"""


@dataclass(frozen=True)
class Sample:
    prompt: str
    """the prompt it is trained at: its own (a draft), its draft's (a refinement)"""
    tokens: tuple[int, ...]
    score: float
    refinement: bool
    group: tuple[int, str]
    """(seed, prompt): the samples it is compared with"""


def samples(trajectories: list, args: Args) -> list[tuple[Sample, float]]:
    """Every trained sample with its advantage (module docstring, steps 1-2)."""
    groups: dict[tuple[int, str], list[Sample]] = defaultdict(list)
    for t in trajectories:
        for k, s in enumerate(t.steps):
            if not s.token_ids or s.verdict is None:
                continue
            refinement = s.refines and k > 0
            prompt = t.steps[k - 1].prompt if refinement else s.prompt
            groups[t.seed, prompt].append(Sample(prompt, tuple(s.token_ids), float(s.verdict), refinement, (t.seed, prompt)))
    out = []
    for members in groups.values():
        drafts = [x for x in members if not x.refinement]
        refined = sorted((x for x in members if x.refinement), key=lambda x: -x.score)[: args.refinements]
        kept = drafts + refined
        out += zip(kept, relative([x.score for x in kept], args.scale_rewards))
    return out


def critique_loss(logp, old, adv, mask, off, clip: float, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean over samples of each one's mean token loss: on-policy rows (``off`` False) the
    clipped surrogate max(-A ratio, -A clip(ratio, 1 - clip, 1 + clip)), ratio = exp(logp - old);
    refinement rows -A f(pi), f(pi) = pi / (pi + gamma), pi = exp(logp); and the on-policy
    tokens' clipped fraction. ``adv`` and ``off``: one per row."""
    a = adv[:, None]
    ratio = torch.exp(logp - old)
    on = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip))
    p = torch.exp(logp)
    shaped = -a * (p / (p + gamma))
    per_token = torch.where(off[:, None], shaped, on)
    tokens = mask.sum(1).clamp(min=1)
    loss = ((per_token * mask).sum(1) / tokens).mean()
    on_mask = mask * (~off[:, None]).float()
    clipped = ((((ratio - 1).abs() > clip).float() * on_mask).sum() / on_mask.sum().clamp(min=1)).detach()
    return loss, clipped


class CritiqueGRPO(GRPO):
    name = "critique_grpo"
    Args = Args

    def prepare(self, train_args, seats: dict) -> None:
        from feedbackgym.rollout import scenario_for

        super().prepare(train_args, seats)
        scenario = scenario_for(train_args.scenario, **seats)
        if scenario.protocol.refine is None:
            raise ValueError(
                f"critique_grpo trains on refinements: scenario {scenario.name!r} has no protocol.refine "
                "(the role that critiques each draft; see scenarios/judged_qa_refine.yaml)"
            )
        if scenario.learner_role != "actor":
            raise ValueError(f"critique_grpo trains the actor, who refines; scenario {scenario.name!r} has the learner as {scenario.learner_role!r}")

    def update(self, trajectories: list, iteration: int) -> dict:
        a = self.args
        scored = samples(trajectories, a)
        if not scored:
            return {"samples": 0}
        prompts = [self.policy.encode(x.prompt) for x, _ in scored]
        actions = [list(x.tokens) for x, _ in scored]
        A = torch.tensor([v for _, v in scored], dtype=torch.float32, device=self.device)
        off = torch.tensor([x.refinement for x, _ in scored], device=self.device)
        stats: dict[str, list[float]] = {"pg_loss": [], "clipfrac": []}
        old = self.fixed(self.policy.model, prompts, actions)

        def loss(rows: list[int]) -> torch.Tensor:
            lp, m = self._logprobs(self.policy.model, [prompts[r] for r in rows], [actions[r] for r in rows])
            value, clipped = critique_loss(lp, aligned(rows, old, lp.shape[1]), A[rows], m, off[rows], a.clip_coef, a.shaping)
            stats["pg_loss"].append(float(value.detach()))
            stats["clipfrac"].append(float(clipped))
            return value

        self.descend(len(scored), loss)
        self.policy.forget()
        drafts = [x.score for x, _ in scored if not x.refinement]
        refined = [x.score for x, _ in scored if x.refinement]
        out = {k: float(np.mean(v)) for k, v in stats.items()}
        out.update(samples=len(scored), refinements=len(refined), zero_adv_share=float(np.mean(np.abs(A.cpu().numpy()) < 1e-9)))
        if drafts:
            out["draft_score"] = float(np.mean(drafts))
        if refined:
            out["refinement_score"] = float(np.mean(refined))
        return out
