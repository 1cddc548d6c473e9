"""Bridges to other projects' trainers and evaluators, each an optional extra.

- `feedbackgym.adapters.trl` (extra ``trl``): TRL's ``GRPOTrainer`` takes any scenario and seat,
  as an ``environment_factory`` class or as a ``rollout_func`` built on `feedbackgym.rollout.rollout`
  (token ids, log-probs, an env mask, the episode's return as the reward);
- `feedbackgym.adapters.verifiers` (extra ``verifiers``): a verifiers ``Env`` whose episode is
  a scenario's, the evaluated model in one seat and the scenario's agents in the others.

Nothing here is imported by the rest of the package (a layer beside ``learners``), and this
module imports neither library: each is imported by its own adapter module only.
"""
