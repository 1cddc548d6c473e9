"""Every registered Gymnasium id has an SB3 view (candidate actions + embedded observations) that
passes SB3's checker and trains, and the ``replies`` table says what was answered to what."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402

import feedbackgym  # noqa: E402
from feedbackgym.encoders import HashingEmbedder  # noqa: E402
from feedbackgym.envs.registration import ENV_IDS  # noqa: E402
from feedbackgym.envs.wrappers import AnswerTable, CandidateActions, EmbedObservation, SimilarityTable  # noqa: E402
from feedbackgym.rollout import scenario_for  # noqa: E402


def sb3_view(env, **kwargs):
    env = feedbackgym.make(env) if isinstance(env, str) else env
    return EmbedObservation(CandidateActions(env), HashingEmbedder(16), replies=True, **kwargs)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_every_id_has_an_sb3_view_that_checks_and_learns(env_id):
    env = sb3_view(env_id, embed_candidates=True)
    check_env(env)
    env.reset(seed=3)
    instance, role = env.unwrapped.episode.instance, env.unwrapped.learner
    candidates = env.get_wrapper_attr("candidates")
    assert len(candidates) == env.action_space.n >= 2
    assert all(instance.parse(role, c).valid for c in candidates), candidates  # each candidate is a real move
    model = MaskablePPO("MultiInputPolicy", env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16


def test_spc_generator_seat_has_candidates_with_one_planted_error_each():
    env = feedbackgym.make(scenario_for("spc", generator="learner", critic="scripted:checker"))
    view = sb3_view(env)
    check_env(view)
    view.reset(seed=0)
    instance = view.unwrapped.episode.instance
    wrong_steps = [instance.parse("generator", c).value for c in view.get_wrapper_attr("candidates")]
    assert wrong_steps[0] == 0 and all(1 <= k <= len(instance.steps) for k in wrong_steps[1:])
    assert sorted(set(wrong_steps)) == list(range(len(instance.steps) + 1))  # every step can be the tampered one


def test_negotiation_offers_may_be_repeated_and_searches_may_not():
    seller = CandidateActions(feedbackgym.make("feedbackgym/Negotiation-v0"))
    seller.reset(seed=0)
    seller.step(5)
    assert seller.action_masks().all()  # the same offer again (or in the next game) is a move
    guesser = CandidateActions(feedbackgym.make("feedbackgym/GuessNumber-v0"))
    guesser.reset(seed=0)
    guesser.step(5)
    assert not guesser.action_masks()[5]


def test_replies_pair_each_guess_with_its_direction():
    env = sb3_view("feedbackgym/GuessNumber-v0")
    obs, _ = env.reset(seed=4)
    secret = env.unwrapped.episode.instance.secret
    assert not obs["replies"].any()
    low, high = (secret - 2, secret + 3) if 3 <= secret <= 97 else (0, 99)
    for number in (low, high):
        obs, *_ = env.step(number - 1)  # action i says the number i + 1
    table = obs["replies"].reshape(100, 3)
    for number in (low, high):
        said, polarity, direction = table[number - 1]
        assert said == 1 and polarity == -1 and direction == np.sign(secret - number)
    assert np.count_nonzero(table[:, 0]) == 2


def test_replies_tell_yes_from_no_in_twenty_questions():
    env = sb3_view("feedbackgym/TwentyQuestions-v0")
    env.reset(seed=0)
    instance = env.unwrapped.episode.instance
    attributes = dict(instance.hidden()["attributes"])
    questions = env.get_wrapper_attr("candidates")[: len(attributes)]
    for i in range(len(questions)):
        obs, *_ = env.step(i)
    answers = obs["replies"].reshape(-1, 3)[: len(questions), 1]
    truth = [instance.parse("actor", q).value for q in questions]
    expected = [1 if attributes[a] else -1 for a in truth]
    assert answers.tolist() == expected and 1 in expected and -1 in expected


def test_inferred_table_rules_out_by_direction_in_an_ordered_list_only():
    env = sb3_view("feedbackgym/GuessNumber-v0", inferred=SimilarityTable(HashingEmbedder(64)))
    env.reset(seed=4)
    secret = env.unwrapped.episode.instance.secret  # 25
    for number in (secret - 10, secret + 20):
        obs, *_ = env.step(number - 1)
    ruled_out = obs["inferred"].reshape(100, 2)[:, 1]
    still = np.flatnonzero(ruled_out == 0) + 1  # the numbers no answer has ruled out
    assert still.tolist() == list(range(secret - 9, secret + 20))
    qa = sb3_view("feedbackgym/Arithmetic-v0", inferred=SimilarityTable(HashingEmbedder(64)))  # options in no order: nothing ruled out
    qa.reset(seed=0)
    obs, *_ = qa.step(0)
    assert not obs["inferred"].reshape(-1, 2)[:, 1].any()


def test_inferred_support_follows_the_answer_and_the_similarity():
    class Fixed:
        """Three directions: the two questions and the objects that share their words."""

        dim = 3

        def __call__(self, texts):
            rows = [[1.0, 0, 0] if "alive" in t or t in ("Is it a dog?", "Is it a cat?") else [0, 1.0, 0] for t in texts]
            return np.array(rows, np.float32)

    env = sb3_view("feedbackgym/TwentyQuestions-v0", inferred=SimilarityTable(Fixed()))
    env.reset(seed=0)
    candidates = env.get_wrapper_attr("candidates")
    alive = candidates.index("Is it alive?")
    obs, *_ = env.step(alive)
    answer = obs["replies"].reshape(-1, 3)[alive, 1]
    support = obs["inferred"].reshape(-1, 2)[:, 0]
    dog, spoon = candidates.index("Is it a dog?"), candidates.index("Is it a spoon?")
    assert answer in (-1, 1) and np.sign(support[dog]) == answer and np.sign(support[spoon]) == -answer


def replies_of(k: int, answers: dict[int, int]) -> np.ndarray:
    """A `CandidateActions` replies table: candidate -> polarity of its answer (said)."""
    table = np.zeros((k, 3), np.float32)
    for i, polarity in answers.items():
        table[i] = (1.0, polarity, 0.0)
    return table


def test_answer_table_learns_the_winners_answers_in_hindsight_and_contrasts_them():
    """Candidates 0, 1 are questions, 2, 3 objects. Won by 2: "yes" to 0, "no" to 1 and to the
    guess 3; won by 3: "no" to 0, 1 and 2. Question 1 was "no" for both (it tells them apart not
    at all) and a wrong guess is "no" whoever won: only question 0 relates anything."""
    table = AnswerTable(4)
    table.record(2, replies_of(4, {0: 1, 1: -1, 3: -1, 2: 1}))
    table.record(3, replies_of(4, {0: -1, 1: -1, 2: -1, 3: 1}))
    assert not table.relations.any()  # kept aside until merged
    assert table.merge() == 2 and table.merge() == 0
    expected = np.zeros((4, 4), np.float32)
    expected[2, 0], expected[3, 0] = 1.0, -1.0  # each winner's answer to 0, less the mean of both (0)
    np.testing.assert_array_equal(table.relations, expected)
    np.testing.assert_array_equal(table.support(replies_of(4, {0: 1, 1: -1})), [0, 0, 1, -1])  # a "yes" to 0 supports 2
    np.testing.assert_array_equal(table.support(replies_of(4, {0: -1})), [0, 0, -1, 1])
    np.testing.assert_array_equal(table.support(replies_of(4, {1: -1, 3: -1})), [0, 0, 0, 0])  # relates nothing
    again = AnswerTable(4)
    again.load_state_dict(table.state_dict())
    np.testing.assert_array_equal(again.relations, table.relations)
    table.record(2, replies_of(4, {0: 1}))
    with pytest.raises(RuntimeError, match="not merged"):
        table.state_dict()


def test_answer_table_support_reaches_the_inferred_observation():
    """Over twenty_questions, with the knowledge base's own answers as the relations: after "yes"
    or "no" to a question, every object the answer fits has more support than every one it
    contradicts."""
    from feedbackgym.envs.tasks.twenty_questions import knowledge_base

    kb = knowledge_base()
    n_q = len(kb.attributes)
    table = AnswerTable(n_q + len(kb.names))
    for o in range(len(kb.names)):
        table.record(n_q + o, replies_of(table.relations.shape[0], {j: 1 if kb.matrix[o, j] else -1 for j in range(n_q)}))
    table.merge()
    env = sb3_view("feedbackgym/TwentyQuestions-v0", inferred=table)
    env.reset(seed=0)
    obs, *_ = env.step(0)
    yes = obs["replies"].reshape(-1, 3)[0, 1] > 0
    support = obs["inferred"].reshape(-1, 2)[n_q:, 0]
    fits = kb.matrix[:, 0] == yes
    assert fits.any() and (~fits).any() and support[fits].min() > support[~fits].max()
