"""FCP: a feedback-conditional policy, learned from what the other seats said, without a reward.

    feedbackgym train fcp --scenario guess_number --actor lm:models/actor_gn --out runs/fcp
    feedbackgym train fcp --scenario judged_qa --actor lm:smollm2 --records runs/tui.jsonl,runs/lm.jsonl --out runs/f

"Language Models Can Learn from Verbal Feedback Without Scalar Rewards": treat the feedback a
response received as a condition, learn pi(y | x, c) by maximum likelihood on (feedback c,
prompt x, response y) triples, and act under a *positive* condition. Here x is the learner's
prompt at one of its turns, y its utterance there, and c what came back (`condition`): every
other role's messages until the learner's next turn (a critique, a judge's verdict, a user's
"too high", an oracle's "No."; `Step.feedback`), and, on an episode's last turn, how it ended
in the engine's words (``outcome: success``, ``outcome: max_turns``, ``outcome: protocol_end``...). The condition is one line put before the prompt
(``Feedback: c``, the recipe's prefix). No scalar reward is read anywhere (the outcome is the
words the episode ended with, not its return).

- **Offline stage** (``records``): the triples of every learner-role turn in the given records
  files (`triples`; episodes from `feedbackgym run`, from any critic, and from the terminal UI,
  where a person played a seat), read once; the first update takes ``offline_steps``
  cross-entropy steps on them.
- **Online bootstrapping**: each iteration the policy plays ``rollout_size`` episodes under the
  positive condition (``positive``; evaluation too), whatever critic is in its seat (scripted of
  every kind, an LM, a served model); the feedback those responses got makes new triples, which
  join the pool; ``actor_steps`` steps on the pool, drawn uniformly.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import numpy as np

from feedbackgym.core import View
from feedbackgym.learners.args import LMOptimArgs
from feedbackgym.learners.filtered_bc import Imitator

PREFIX = "Feedback: "


@dataclass
class Args(LMOptimArgs):
    """FCP's fields (from the base: ``learning_rate`` 1e-4, ``batch_size`` 16 utterances a
    micro-batch, ``grad_accum`` 2)."""

    positive: str = "outcome: success"
    """the feedback the policy acts under (the condition it was told its responses would get)"""
    records: str = ""
    """records files (comma-separated) whose learner-role turns make the offline triples"""
    offline_steps: int = 100
    """cross-entropy steps on the offline triples, in the first update"""
    actor_steps: int = 4
    """cross-entropy steps on the whole pool per iteration"""


def condition(feedback: str, outcome: str | None = None) -> str:
    """The one-line condition: the feedback's lines joined with `` | ``, and the outcome on a last turn."""
    lines = [ln.strip() for ln in feedback.splitlines() if ln.strip()]
    if outcome is not None:
        lines.append(f"outcome: {outcome}")
    return " | ".join(lines)


def conditioned(c: str, prompt: str) -> str:
    return f"{PREFIX}{' '.join(c.split())}\n{prompt}"


def unconditioned(prompt: str) -> str:
    """The prompt without its condition line."""
    if not prompt.startswith(PREFIX) or "\n" not in prompt:
        raise ValueError(f"not a conditioned prompt: {prompt[:60]!r}")
    return prompt.split("\n", 1)[1]


def triples(policy, records, role: str) -> list[tuple[str, str, str]]:
    """(condition, prompt, utterance) for every message ``role`` said in ``records``: the prompt
    as the policy renders the view at that turn, the condition from what followed it."""
    from feedbackgym.envs.engine import Episode
    from feedbackgym.records import ABORTED

    out = []
    for rec in records:
        instance = Episode(rec.scenario, rec.seed, member=rec.member).instance
        log = rec.messages
        mine = [i for i, m in enumerate(log) if m.role == role]
        for n, i in enumerate(mine):
            end = mine[n + 1] if n + 1 < len(mine) else len(log)
            said = "\n".join(f"{m.role}: {m.text}" for m in log[i + 1 : end])
            last = n + 1 == len(mine)
            ended = last and rec.terminate_reason not in (None, ABORTED)  # one left before its end has no outcome
            outcome = rec.terminate_reason if ended else None
            c = condition(said, outcome)
            if c:
                view = View(role, None, instance, log[:i], 0, ())
                out.append((c, policy.prompt(view), log[i].text))
    return out


class FCP(Imitator):
    name = "fcp"
    Args = Args

    def __init__(self, policy, args: Args, seed: int):
        super().__init__(policy, args, seed)
        self.pool: list[tuple[str, list[int]]] = []  # (conditioned prompt, tokens)
        self.offline: list[tuple[str, list[int]]] = []
        self.offline_done = False

    def prompt(self, view) -> str:
        return conditioned(self.args.positive, self.policy.prompt(view))

    def replica_prompt(self):
        return functools.partial(conditioned, self.args.positive)

    def prepare(self, train_args, seats: dict) -> None:
        from feedbackgym.records import read_records
        from feedbackgym.rollout import scenario_for

        role = scenario_for(train_args.scenario, **seats).learner_role
        for path in filter(None, (p.strip() for p in self.args.records.split(","))):
            recs = read_records(path, on_error=lambda n, why, p=path: print(f"fcp: {p}:{n}: skipped: {why}", file=sys.stderr))
            found = triples(self.policy, recs, role)
            if not found:
                raise ValueError(f"--records {path}: no turn of the role {role!r} with feedback in its {len(recs)} records")
            self.offline += [(conditioned(c, x), self.tokens(y)) for c, x, y in found]

    def tokens(self, text: str) -> list[int]:
        return self.policy.tokenizer(f" {text}\n", add_special_tokens=False)["input_ids"]

    def update(self, trajectories: list, iteration: int) -> dict:
        a, metrics = self.args, {}
        if not self.offline_done:  # the offline stage, once
            if self.offline and a.offline_steps:
                metrics["offline_loss"] = float(np.mean(self.imitate(self.offline, a.offline_steps)))
            self.pool += self.offline
            self.offline_done = True
        for t in trajectories:
            for k, s in enumerate(t.steps):
                last = k + 1 == len(t.steps)
                c = condition(s.feedback, t.end if last and t.end else None)
                if s.token_ids and c:
                    self.pool.append((conditioned(c, unconditioned(s.prompt)), list(s.token_ids)))
        losses = self.imitate(self.pool) if self.pool else []
        return {**metrics, "bc_loss": float(np.mean(losses)) if losses else float("nan"), "triples": len(self.pool)}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "pool": list(self.pool), "offline_done": self.offline_done}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.pool, self.offline_done = list(state["pool"]), bool(state["offline_done"])
