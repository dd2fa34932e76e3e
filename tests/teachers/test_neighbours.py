"""The graded-neighbours teacher: leave-one-out votes from the graded answers to the same context."""

import numpy as np
import pytest

from suite.errors import ConfigError
from suite.teachers import TeacherOutputStore
from suite.teachers.neighbours import GradedNeighbourTeacher

VECTORS = {  # answers on a circle: the angle between two is how different they are
    "plants make food": 0.0,
    "plants make sugar": 0.3,
    "plants eat soil": 2.0,
    "leaves make food": 0.1,
    "roots eat soil": 2.1,
}


def embed(texts):
    return np.array([[np.cos(VECTORS[t]), np.sin(VECTORS[t])] for t in texts])


GRADED = [("Q1", "plants make food", 1), ("Q1", "plants make sugar", 1), ("Q1", "plants eat soil", 0)]


def probs(teacher, context, answer):
    return np.exp(teacher.answer([{"text": context, "text_pair": answer}])[0].logits.numpy())


def test_votes_follow_the_nearest_graded_answer():
    teacher = GradedNeighbourTeacher(GRADED, num_labels=2, k=1, smoothing=0.1, embed=embed)
    assert probs(teacher, "Q1", "leaves make food") == pytest.approx([0.05 / 1.1, 1.05 / 1.1])
    assert probs(teacher, "Q1", "roots eat soil") == pytest.approx([1.05 / 1.1, 0.05 / 1.1])


def test_weights_are_a_softmax_of_similarity_over_the_k_nearest():
    teacher = GradedNeighbourTeacher(GRADED, num_labels=2, k=3, temperature=0.5, smoothing=0.2, embed=embed)
    similarity = np.cos(np.array([0.1, 0.2, 1.9]))  # "leaves make food" against the three graded answers
    weights = np.exp(similarity / 0.5) / np.exp(similarity / 0.5).sum()
    correct = weights[0] + weights[1]
    expected = np.array([1 - correct, correct]) + 0.2 * 0.5
    assert probs(teacher, "Q1", "leaves make food") == pytest.approx(expected / 1.2)


def test_an_answer_never_votes_for_itself():
    teacher = GradedNeighbourTeacher(GRADED, num_labels=2, k=1, embed=embed)
    # without leave-one-out "plants eat soil" would find itself (label 0); its nearest other answer is correct
    output = teacher.answer([{"text": "Q1", "text_pair": "plants eat soil"}])[0]
    assert output.label == 1 and output.meta["neighbours"] == 1


def test_a_context_with_no_graded_answers_is_uniform():
    teacher = GradedNeighbourTeacher(GRADED, num_labels=3, embed=embed)
    output = teacher.answer([{"text": "Q2", "text_pair": "plants make food"}])[0]
    assert probs(teacher, "Q2", "plants make food") == pytest.approx([1 / 3] * 3)
    assert output.meta["neighbours"] == 0


def test_through_the_store_and_keyed_by_the_graded_answers(tmp_path):
    calls = []

    def counting(texts):
        calls.append(list(texts))
        return embed(texts)

    teacher = GradedNeighbourTeacher(GRADED, num_labels=2, embed=counting)
    store = TeacherOutputStore(tmp_path)
    inputs = [{"text": "Q1", "text_pair": "leaves make food"}]
    first = store.run(teacher, inputs, progress=False)[0].logits
    asked = len(calls)
    assert store.run(teacher, inputs, progress=False)[0].logits.tolist() == first.tolist()
    assert len(calls) == asked  # answered from the store
    other = GradedNeighbourTeacher(GRADED[:2], num_labels=2, embed=embed)
    assert other.teacher_id != teacher.teacher_id


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="graded"):
        GradedNeighbourTeacher([("Q1", "a", 2)], num_labels=2, embed=embed)
    with pytest.raises(ConfigError, match="at least one neighbour"):
        GradedNeighbourTeacher(GRADED, num_labels=2, k=0, embed=embed)


def test_real_minilm_embeddings_find_the_paraphrase():
    graded = [("Q", "The plant makes its own food from sunlight.", 1), ("Q", "The plant eats dirt.", 0)]
    teacher = GradedNeighbourTeacher(graded, num_labels=2, k=1)
    assert teacher.answer([{"text": "Q", "text_pair": "Plants make food using light."}])[0].label == 1
