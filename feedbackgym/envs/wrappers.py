"""Views of the text env for learners that take no text (Stable-Baselines3, RLlib).

    import feedbackgym
    from sb3_contrib import MaskablePPO
    from feedbackgym.envs.wrappers import CandidateActions, EmbedObservation
    from feedbackgym.encoders import minilm

    env = EmbedObservation(CandidateActions(feedbackgym.make("feedbackgym/TwentyQuestions-v0")), minilm())
    model = MaskablePPO("MultiInputPolicy", env).learn(10_000)

`CandidateActions` turns the `Text` action into `Discrete(K)`: action ``i`` says the episode's
``i``-th candidate utterance (the DRRN / TextWorld "admissible commands" pattern), and
``action_masks()`` (what `MaskablePPO` asks for) rules out candidates that do not exist in this
episode and, in search tasks, those already said. `EmbedObservation` turns the `Text` fields
into `Box` embeddings in a `Dict` (for ``MultiInputPolicy``), adds the embedded transcript (the
memory a feed-forward policy lacks) and, on request, the embedded candidates.

Candidates per task family, read from the episode's instance (``Instance.candidates``, defined
in each family's own module):

| family | K | candidates |
|---|---|---|
| twenty_questions | attributes + objects (146) | the first phrasing of each attribute's question, then "Is it a <object>?" for each object |
| judged_qa | ``n_options`` | "The answer is <option>." for each option, in the instance's order |
| guess_number | ``high - low + 1`` | every number of the range |
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from feedbackgym.core import TASKS


class CandidateActions(gym.Wrapper):
    """``Discrete(K)``: action ``i`` says the episode's ``i``-th candidate utterance.

    K is fixed by the scenario (every instance of a family has as many candidates). An action
    outside the episode's candidates is sent as empty text, an invalid move, never an error.
    ``mask_repeats``: in search tasks (twenty questions, guess the number), mask the candidates
    already said this episode (saying one again is legal but tells nothing new).
    """

    def __init__(self, env: gym.Env, mask_repeats: bool = True):
        super().__init__(env)
        task = env.unwrapped.scenario.task
        family = TASKS[task.family]
        probe = family.sample(np.random.default_rng(0), family.Params(**task.params))
        listed = probe.candidates()
        if listed is None:
            raise ValueError(f"no candidate utterances for task family {task.family!r}: its Instance defines no candidates()")
        self.action_space = spaces.Discrete(len(listed))
        self.mask_repeats = mask_repeats and probe.mode == "search"
        self.candidates: list[str] = []
        self._said: set[int] = set()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.candidates = self.env.unwrapped.episode.instance.candidates()[: self.action_space.n]
        self._said = set()
        return obs, info

    def step(self, action):
        i = int(action)
        self._said.add(i)
        return self.env.step(self.candidates[i] if 0 <= i < len(self.candidates) else "")

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[: len(self.candidates)] = True
        if self.mask_repeats:
            mask[list(self._said)] = False
        return mask if mask.any() else np.arange(self.action_space.n) < len(self.candidates)


class EmbedObservation(gym.ObservationWrapper):
    """``Dict`` of ``Box(-1, 1, (dim,))`` embeddings: the text env's ``instruction``,
    ``observation`` and ``feedback``, plus ``transcript`` (everything the learner's role has
    seen this episode) and, with ``embed_candidates`` over a `CandidateActions` env,
    ``candidates`` (the K candidates' embeddings, flattened): needed when the candidates change
    between episodes (judged QA's options)."""

    TEXT_KEYS = ("instruction", "observation", "feedback")

    def __init__(self, env: gym.Env, embedder, embed_candidates: bool = False):
        super().__init__(env)
        self.embedder = embedder
        dim = embedder.dim
        box = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        keys = {k: box for k in (*self.TEXT_KEYS, "transcript")}
        self.embed_candidates = embed_candidates
        if embed_candidates:
            k = env.action_space.n
            keys["candidates"] = spaces.Box(-1.0, 1.0, (k * dim,), np.float32)
        self.observation_space = spaces.Dict(keys)

    def observation(self, obs: dict[str, str]) -> dict[str, np.ndarray]:
        base = self.env.unwrapped
        transcript = base.episode.view(base.learner).transcript
        vecs = self.embedder([obs[k] for k in self.TEXT_KEYS] + [transcript])
        out = {k: vecs[i] for i, k in enumerate((*self.TEXT_KEYS, "transcript"))}
        if self.embed_candidates:
            cands = self.env.get_wrapper_attr("candidates")
            flat = np.zeros(self.observation_space["candidates"].shape, np.float32)
            if cands:
                emb = self.embedder(cands).ravel()
                flat[: emb.size] = emb
            out["candidates"] = flat
        return out
