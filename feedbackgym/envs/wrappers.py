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
into `Box` embeddings in a `Dict` (for ``MultiInputPolicy``), adds the embedded transcript and,
on request, the embedded candidates and ``replies``: for each candidate, whether it was said this
episode and the polarity and direction (`feedbackgym.feedback.parse`) of what the others answered
to it. That last key is the memory a feed-forward policy needs: a bag of the transcript's words
does not say which question got the "no", or which guess was "too low".

Candidates per task family, read from the episode's instance (``Instance.candidates``, defined
in each family's own module):

| family | K | candidates |
|---|---|---|
| twenty_questions | attributes + objects (146) | the first phrasing of each attribute's question, then "Is it a <object>?" for each object |
| judged_qa | ``n_options`` | "The answer is <option>." for each option, in the instance's order |
| guess_number | ``high - low + 1`` | every number of the range |
| spc (critic) | ``steps + 1`` | "All steps are correct.", then "Step <k> is wrong." for each step |
| spc (generator) | ``1 + 4 steps`` | the correct solution, then one with each kind of error planted in each step |
| negotiation (seller, buyer) | ``high - low + 3`` | "How about $<p>?" for each whole price from ``low`` to ``high``, "Deal.", "No deal." |

The last two families' modules list no candidates (their moves are free text); their lists are
`LISTINGS` here, a function of the instance and the learner's role.

`CandidateAgents` is the same view for the PettingZoo face, where multi-agent libraries
(RLlib's ``PettingZooEnv``) want array spaces: each agent it is given acts with ``Discrete(K)``
and observes its four text fields embedded side by side (``examples/rllib_spc.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo.utils import BaseWrapper

from feedbackgym.core import TASKS
from feedbackgym.envs.tasks import spc
from feedbackgym.feedback.parse import direction, polarity


@dataclass(frozen=True)
class Listing:
    """The candidates of a family whose module lists none: ``candidates(instance, role)``;
    ``repeats``: whether saying a candidate again can be a new move (the same offer in a later game)."""

    candidates: Callable[[Any, str], list[str]]
    repeats: bool = False


def _spc_candidates(instance, role: str) -> list[str]:
    if role == "generator":  # a fixed generator: the list is a function of the instance alone
        return [spc.render_steps(instance.steps)] + [
            spc.sneaky(instance.steps, k, error, np.random.default_rng(0)) for k in range(len(instance.steps)) for error in spc.ERRORS
        ]
    return [instance.state(k) for k in range(len(instance.steps) + 1)]


def _negotiation_candidates(instance, role: str) -> list[str]:
    low, high = int(np.ceil(instance.p.low)), int(np.floor(instance.p.high))
    return [instance.state(price) for price in range(low, high + 1)] + ["Deal.", "No deal."]


#: family -> its candidates, for the families whose Instance defines no ``candidates()``
LISTINGS: dict[str, Listing] = {
    "spc": Listing(_spc_candidates),
    "negotiation": Listing(_negotiation_candidates, repeats=True),
}


def probe(task):
    """An instance of the scenario's task (seed 0): what fixes K, the number of candidates."""
    family = TASKS[task.family]
    return family.sample(np.random.default_rng(0), family.Params(**task.params))


def candidates_of(instance, role: str) -> list[str] | None:
    """The instance's own ``candidates()``, else its family's `LISTINGS` entry, else None."""
    own = instance.candidates()
    if own is not None:
        return own
    listing = LISTINGS.get(instance.family)
    return listing.candidates(instance, role) if listing else None


class CandidateActions(gym.Wrapper):
    """``Discrete(K)``: action ``i`` says the episode's ``i``-th candidate utterance.

    K is fixed by the scenario (every instance of a family has as many candidates). An action
    outside the episode's candidates is sent as empty text, an invalid move, never an error.
    ``mask_repeats``: in search tasks (twenty questions, guess the number), mask the candidates
    already said this episode (saying one again is legal but tells nothing new; not in
    negotiation, where the same offer in a later game is a new move).

    ``replies`` is a ``(K, 3)`` array: for each candidate said this episode, 1 and the polarity
    and direction of what the others said after it, before the learner's next turn (the latest
    time, if said more than once); zeros for the others.
    """

    def __init__(self, env: gym.Env, mask_repeats: bool = True):
        super().__init__(env)
        task = env.unwrapped.scenario.task
        first = probe(task)
        self.role = env.unwrapped.learner
        listed = candidates_of(first, self.role)
        if listed is None:
            raise ValueError(f"no candidate utterances for task family {task.family!r}: its Instance defines no candidates()")
        self.action_space = spaces.Discrete(len(listed))
        listing = LISTINGS.get(task.family)
        self.mask_repeats = mask_repeats and first.mode == "search" and not (listing and listing.repeats)
        self.candidates: list[str] = []
        self.replies = np.zeros((len(listed), 3), np.float32)
        self._said: set[int] = set()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.candidates = candidates_of(self.env.unwrapped.episode.instance, self.role)[: self.action_space.n]
        self._said = set()
        self.replies = np.zeros_like(self.replies)
        return obs, info

    def step(self, action):
        i = int(action)
        self._said.add(i)
        obs, reward, terminated, truncated, info = self.env.step(self.candidates[i] if 0 <= i < len(self.candidates) else "")
        if 0 <= i < len(self.replies):
            answer = "\n".join(m.text for m in info["messages"] if m.role != self.role)
            self.replies[i] = (1.0, polarity(answer), direction(answer))
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[: len(self.candidates)] = True
        if self.mask_repeats:
            mask[list(self._said)] = False
        return mask if mask.any() else np.arange(self.action_space.n) < len(self.candidates)


class CandidateAgents(BaseWrapper):
    """The PettingZoo face (AEC) with a candidate view for ``agents`` (default: all of them):
    each acts with ``Discrete(K)``, action ``i`` saying the episode's ``i``-th candidate as in
    `CandidateActions` (one outside the episode's candidates is sent as empty text, an invalid
    move), and observes ``Box(-1, 1, (4 * dim,))``: the ``embedder``'s embeddings of its
    ``instruction``, ``new``, ``feedback`` and ``private`` fields, side by side. Other agents keep
    the face's Text spaces. A dead agent's step still takes None."""

    FIELDS = ("instruction", "new", "feedback", "private")

    def __init__(self, env, embedder, agents=None):
        super().__init__(env)
        base = env.unwrapped
        if base.obs_format != "dict":
            raise ValueError(f"CandidateAgents embeds the dict observation: obs_format {base.obs_format!r} given")
        task = base.scenario.task
        first = probe(task)
        chosen = list(env.possible_agents if agents is None else agents)
        unknown = [a for a in chosen if a not in env.possible_agents]
        if unknown:
            raise ValueError(f"agents {unknown} are not in this env: {env.possible_agents}")
        self.embedder = embedder
        self.roles = {a: a.rsplit("_", 1)[0] for a in chosen}  # the face's agent names, "<role>_0"
        self.sizes: dict[str, int] = {}
        for agent, role in self.roles.items():
            listed = candidates_of(first, role)
            if listed is None:
                raise ValueError(f"no candidate utterances for role {role!r} of task family {task.family!r}")
            self.sizes[agent] = len(listed)
        self.candidates: dict[str, list[str]] = {a: [] for a in self.roles}
        box = spaces.Box(-1.0, 1.0, (len(self.FIELDS) * embedder.dim,), np.float32)
        self.action_spaces = {a: spaces.Discrete(self.sizes[a]) if a in self.roles else env.action_space(a) for a in env.possible_agents}
        self.observation_spaces = {a: box if a in self.roles else env.observation_space(a) for a in env.possible_agents}

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.env.reset(seed=seed, options=options)
        instance = self.env.unwrapped.episode.instance
        self.candidates = {a: candidates_of(instance, role)[: self.sizes[a]] for a, role in self.roles.items()}

    def step(self, action) -> None:
        agent = self.env.agent_selection
        if agent in self.roles and action is not None and not (self.terminations[agent] or self.truncations[agent]):
            i, said = int(action), self.candidates[agent]
            action = said[i] if 0 <= i < len(said) else ""
        self.env.step(action)

    def observe(self, agent: str):
        obs = self.env.observe(agent)
        if agent not in self.roles:
            return obs
        return self.embedder([obs[k] for k in self.FIELDS]).astype(np.float32).ravel()

    def last(self, observe: bool = True):
        agent = self.env.agent_selection
        _, reward, terminated, truncated, info = self.env.last(observe=False)
        return (self.observe(agent) if observe else None), reward, terminated, truncated, info


class EmbedObservation(gym.ObservationWrapper):
    """``Dict`` of ``Box(-1, 1, (dim,))`` embeddings: the text env's ``instruction``,
    ``observation`` and ``feedback``, plus ``transcript`` (everything the learner's role has
    seen this episode; left out with ``transcript=False``) and, with ``embed_candidates`` over a `CandidateActions` env,
    ``candidates`` (the K candidates' embeddings, flattened): needed when the candidates change
    between episodes (judged QA's options), and with ``replies`` over a `CandidateActions` env,
    ``replies`` (its ``(K, 3)`` table, flattened: said, polarity, direction per candidate), and
    with ``inferred`` (a `SimilarityTable` or an `AnswerTable`) over one, ``inferred`` (the
    rule's ``(K, 2)`` table, flattened: support and ruled out per candidate)."""

    TEXT_KEYS = ("instruction", "observation", "feedback")

    def __init__(self, env: gym.Env, embedder, embed_candidates: bool = False, replies: bool = False, transcript: bool = True, inferred=None):
        super().__init__(env)
        self.embedder = embedder
        dim = embedder.dim
        box = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.texts = (*self.TEXT_KEYS, "transcript") if transcript else self.TEXT_KEYS
        keys = {k: box for k in self.texts}
        self.embed_candidates = embed_candidates
        if embed_candidates:
            k = env.action_space.n
            keys["candidates"] = spaces.Box(-1.0, 1.0, (k * dim,), np.float32)
        self.with_replies = replies  # not `replies`: get_wrapper_attr("replies") finds CandidateActions' table
        if replies:
            keys["replies"] = spaces.Box(-1.0, 1.0, (env.action_space.n * 3,), np.float32)
        self.inferred = inferred
        self.last: dict[str, str] | None = None
        if inferred is not None:
            keys["inferred"] = spaces.Box(-2.0, 2.0, (env.action_space.n * 2,), np.float32)
        self.observation_space = spaces.Dict(keys)

    def refresh(self) -> dict[str, np.ndarray]:
        """The last observation again, its ``inferred`` table from the relations as they are now
        (an `AnswerTable` that merged new episodes since)."""
        return self.observation(self.last)

    def observation(self, obs: dict[str, str]) -> dict[str, np.ndarray]:
        self.last = obs
        texts = [obs[k] for k in self.TEXT_KEYS]
        if len(self.texts) > len(self.TEXT_KEYS):
            base = self.env.unwrapped
            texts.append(base.episode.view(base.learner).transcript)
        out = dict(zip(self.texts, self.embedder(texts)))
        if self.embed_candidates:
            cands = self.env.get_wrapper_attr("candidates")
            flat = np.zeros(self.observation_space["candidates"].shape, np.float32)
            if cands:
                emb = self.embedder(cands).ravel()
                flat[: emb.size] = emb
            out["candidates"] = flat
        if self.with_replies:
            out["replies"] = self.env.get_wrapper_attr("replies").ravel().copy()
        if self.inferred is not None:
            out["inferred"] = self.inferred_table().ravel()
        return out

    def inferred_table(self) -> np.ndarray:
        """``(K, 2)``: per candidate, its support from the answers so far and whether an answer
        rules it out, as the ``inferred`` rule (`SimilarityTable` or `AnswerTable`) reads them."""
        return self.inferred.table(tuple(self.env.get_wrapper_attr("candidates")), self.env.get_wrapper_attr("replies"))


class SimilarityTable:
    """The inferred table read from the candidates' text: per candidate, its *support* (the mean,
    over the candidates answered so far, of the answer's polarity times how much more alike the
    two candidates' embeddings are than the answered one is to candidates on average: a "yes" to
    "Is it an animal?" supports "Is it a dog?"), and whether a directional answer rules it out (in
    a list of numbers in increasing order, "higher" to one rules out it and those before it)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self._cached: tuple[tuple[str, ...], np.ndarray, bool] = ((), np.zeros((0, 0), np.float32), False)

    def table(self, candidates: tuple[str, ...], replies: np.ndarray) -> np.ndarray:
        """``(K, 2)`` from `CandidateActions`' ``candidates`` and ``replies`` table."""
        if self._cached[0] != candidates:
            self._cached = (candidates, *_similarity(self.embedder, list(candidates)))
        _, centred, ordered = self._cached
        out = np.zeros((replies.shape[0], 2), np.float32)
        n = len(candidates)
        answered = np.flatnonzero(replies[:n, 0] * replies[:n, 1])
        if answered.size:
            out[:n, 0] = np.clip(centred[:, answered] @ replies[answered, 1] / answered.size, -2.0, 2.0)
        if ordered:
            for i in np.flatnonzero(replies[:n, 0] * replies[:n, 2]):
                out[: i + 1, 1] = np.where(replies[i, 2] > 0, 1.0, out[: i + 1, 1])
                out[i:n, 1] = np.where(replies[i, 2] < 0, 1.0, out[i:n, 1])
        return out


class AnswerTable:
    """Relations between candidates learned in hindsight from won episodes: ``relations[i, j]``
    is the mean polarity of the answers candidate ``j`` got in the episodes won by saying
    candidate ``i`` (the winning move itself left out), less that mean over all the candidates
    ``i`` seen with ``j`` (0 where none was seen). In twenty_questions the row of an object is its
    column of the knowledge base, as far as the won episodes asked, contrasted with the other
    objects; a wrong guess, "no" in every episode won by another, relates to nothing (its column
    is 0). `support` reads "how well does each candidate agree with the answers so far". For
    candidates that are the same every episode (K fixed, in the same order).

    `record` keeps a won episode aside; `merge` adds those kept to the relations. A learner merges
    between rollouts, so that within one the observations stay a function of the state, and then
    has each env's last observation made again (`EmbedObservation.refresh`). The counts are its
    whole state (`state_dict`)."""

    def __init__(self, k: int):
        self.sums = np.zeros((k, k), np.float64)
        self.counts = np.zeros((k, k), np.int64)
        self.relations = np.zeros((k, k), np.float32)
        self.pending: list[tuple[int, np.ndarray]] = []
        self.episodes = 0  # merged so far

    def record(self, winner: int, replies: np.ndarray) -> None:
        """An episode won by saying candidate ``winner``, with its ``(K, 3)`` replies table at the end."""
        self.pending.append((int(winner), np.array(replies[:, :2], np.float64)))

    def support(self, replies: np.ndarray) -> np.ndarray:
        """``(K,)``: for each candidate ``i``, the mean of ``relations[i, j] * polarity_j`` over the
        candidates ``j`` answered so far (``replies``: `CandidateActions`' table) whose column
        relates to anything; 0 before any such answer."""
        answered = np.flatnonzero(replies[:, 0] * replies[:, 1])
        answered = answered[self.relations[:, answered].any(axis=0)]
        if not answered.size:
            return np.zeros(len(replies), np.float32)
        return (self.relations[:, answered] @ replies[answered, 1] / answered.size).astype(np.float32)

    def table(self, candidates: tuple[str, ...], replies: np.ndarray) -> np.ndarray:
        """``(K, 2)``: `support` and nothing ruled out (`SimilarityTable.table`'s shape)."""
        return np.stack([self.support(replies), np.zeros(len(replies), np.float32)], axis=1)

    def merge(self) -> int:
        """Add the recorded episodes to the relations; how many there were."""
        for winner, said_polarity in self.pending:
            said = said_polarity[:, 0] > 0
            said[winner] = False  # the winning move's own "yes" says nothing of the others
            self.sums[winner, said] += said_polarity[said, 1]
            self.counts[winner, said] += 1
        merged, self.pending = len(self.pending), []
        self.episodes += merged
        self._relate()
        return merged

    def _relate(self) -> None:
        seen = self.counts > 0
        mean = np.where(seen, self.sums / np.maximum(self.counts, 1), 0.0)
        column = mean.sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
        self.relations = np.where(seen, mean - column, 0.0).astype(np.float32)

    def state_dict(self) -> dict:
        if self.pending:
            raise RuntimeError(f"{len(self.pending)} recorded episodes not merged: merge before saving")
        return {"sums": self.sums.copy(), "counts": self.counts.copy(), "episodes": self.episodes}

    def load_state_dict(self, state: dict) -> None:
        sums, counts = np.asarray(state["sums"], np.float64), np.asarray(state["counts"], np.int64)
        if sums.shape != self.sums.shape or counts.shape != self.counts.shape:
            raise ValueError(f"an answer table of shape {sums.shape}, this one is {self.sums.shape}")
        self.sums, self.counts, self.pending, self.episodes = sums, counts, [], int(state["episodes"])
        self._relate()


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _similarity(embedder, candidates: list[str]) -> tuple[np.ndarray, bool]:
    """The candidates' cosine similarities, each column centred over the candidates, and whether
    the candidates are numbers in increasing order (one number each)."""
    if not candidates:
        return np.zeros((0, 0), np.float32), False
    vecs = embedder(candidates)
    sim = vecs @ vecs.T
    numbers = [_NUMBER.findall(c) for c in candidates]
    values = [float(n[0]) for n in numbers if len(n) == 1]
    ordered = len(values) == len(candidates) > 1 and all(a < b for a, b in zip(values, values[1:]))
    return (sim - sim.mean(axis=0, keepdims=True)).astype(np.float32), ordered
