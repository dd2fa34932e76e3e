"""The rubric teacher against a real local OpenAI-compatible server that answers with top-k logprobs.

The server's first-token alternatives come from ``FirstTokenServer.reply(prompt)``, so a test chooses what the
"LLM" believes per prompt; the server records every prompt it was sent.
"""

from __future__ import annotations

import math

import pytest
import torch

from suite.errors import TeacherError
from suite.losses.kd import soft_label_kd_loss
from suite.pairs import stored_teacher_logits
from suite.teachers import OpenAICompatibleTeacher, TeacherOutputStore
from suite.teachers.rubric import UNLISTED_LOGPROB, RubricClassifierTeacher
from tests.fake_llm import Alternatives, FirstTokenServer

TEMPLATE = "Question: {text}\nStudent answer: {text_pair}\nReply with one word, correct or incorrect."
LABELS = ["incorrect", "correct"]


def rubric(url: str, top_logprobs: int = 8, template: str = TEMPLATE) -> RubricClassifierTeacher:
    backend = OpenAICompatibleTeacher(
        url, "judge", max_tokens=1, top_logprobs=top_logprobs, concurrency=2, timeout_s=5, max_retries=0
    )
    return RubricClassifierTeacher(backend, template, LABELS)


def log_softmax(*values: float) -> torch.Tensor:
    return torch.log_softmax(torch.tensor(values, dtype=torch.float64), 0).float()


# A tokenizer that splits "incorrect" into "in" + "correct"; the other alternatives must not count for either label
# ("correctness" scores higher than " correct" but is not a prefix of a label word, "Correct." is a weaker match).
SPLIT_REPLY = [
    ("correctness", -0.1),
    (" correct", -0.2),
    ("in", -1.8),
    (" the", -2.5),
    (" Correct.", -2.9),
    ("\n", -3.0),
]


def test_label_logits_are_the_label_logprobs_renormalised(tmp_path):
    with FirstTokenServer(lambda prompt: SPLIT_REPLY) as server:
        teacher = rubric(server.url)
        [out] = teacher.answer([{"text": "Why do boats float?", "text_pair": "they are less dense"}])

    torch.testing.assert_close(out.logits, log_softmax(-1.8, -0.2))
    assert out.logits.exp().sum().item() == pytest.approx(1.0)
    assert out.label == 1 and out.meta["listed"] is True
    sent = "Question: Why do boats float?\n"
    sent += "Student answer: they are less dense\nReply with one word, correct or incorrect."
    assert server.prompts == [sent]
    [body] = server.bodies
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 8


def test_a_label_missing_from_the_top_k_gets_the_floor_and_stays_kd_safe():
    with FirstTokenServer(lambda prompt: [(" correct", -0.05), (" yes", -3.5)]) as server:
        [out] = rubric(server.url).answer([{"text": "q", "text_pair": "a"}])
    torch.testing.assert_close(out.logits, log_softmax(UNLISTED_LOGPROB, -0.05))
    assert torch.isfinite(out.logits).all() and out.meta["listed"] is True
    student = torch.tensor([[3.0, -3.0]], requires_grad=True)  # confidently wrong
    loss = soft_label_kd_loss(student, out.logits[None], temperature=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()

    with FirstTokenServer(lambda prompt: [(" maybe", -0.1), (" yes", -2.0)]) as server:
        [out] = rubric(server.url).answer([{"text": "q", "text_pair": "a"}])
    torch.testing.assert_close(out.logits, torch.full((2,), math.log(0.5)))
    assert out.meta["listed"] is False  # neither label word was among the top-k


def test_store_run_twice_asks_the_server_once(tmp_path):
    inputs = [{"text": f"question {i}", "text_pair": f"answer {i}"} for i in range(5)]
    with FirstTokenServer(lambda prompt: SPLIT_REPLY) as server:
        teacher = rubric(server.url)
        first = TeacherOutputStore(tmp_path).run(teacher, inputs, batch_size=2, progress=False)
        assert len(server.bodies) == 5
        again = TeacherOutputStore(tmp_path).run(rubric(server.url), inputs, batch_size=2, progress=False)
        assert len(server.bodies) == 5  # all answers came from the store
        other = RubricClassifierTeacher(teacher.backend, TEMPLATE + " Be strict.", LABELS)
        TeacherOutputStore(tmp_path).run(other, inputs[:1], progress=False)
        assert len(server.bodies) == 6  # another template is another teacher
    assert sorted(server.prompts[:5]) == sorted(TEMPLATE.format(**x) for x in inputs)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a.logits, b.logits)
        assert a.label == b.label == 1


def test_a_server_without_logprobs_is_a_clear_error():
    with FirstTokenServer(lambda prompt: None) as server, pytest.raises(TeacherError, match="returned no logprobs"):
        rubric(server.url).answer([{"text": "q", "text_pair": "a"}])


def test_constructor_rejects_ambiguous_labels_and_a_small_top_k():
    backend = OpenAICompatibleTeacher("http://127.0.0.1:9", "judge", top_logprobs=5)
    with pytest.raises(TeacherError, match="distinct"):
        RubricClassifierTeacher(backend, TEMPLATE, ["Correct", " correct."])
    with pytest.raises(TeacherError, match="non-empty"):
        RubricClassifierTeacher(backend, TEMPLATE, ["correct", " "])
    for k in (0, 1):
        small = OpenAICompatibleTeacher("http://127.0.0.1:9", "judge", top_logprobs=k)
        with pytest.raises(TeacherError, match="top_logprobs >= 2"):
            RubricClassifierTeacher(small, TEMPLATE, LABELS)
    assert RubricClassifierTeacher(backend, TEMPLATE, LABELS).label_words == LABELS


def test_a_template_field_missing_from_the_input_is_named():
    with FirstTokenServer(lambda prompt: SPLIT_REPLY) as server:
        teacher = rubric(server.url, template="Rubric: {rubric}\n{text}\n{text_pair}")
        with pytest.raises(TeacherError, match=r"'rubric'.*\['text', 'text_pair'\]"):
            teacher.answer([{"text": "q", "text_pair": "a"}])
    assert server.bodies == []


def test_stored_teacher_logits_come_back_in_input_order(tmp_path):
    def reply(prompt: str) -> Alternatives:
        # "correct" with high probability iff the prompt holds the marker word
        return [(" correct", -0.1), ("in", -2.4)] if "MARKER" in prompt else [(" correct", -2.4), ("in", -0.1)]

    pairs = [
        ("a rather long question about the water cycle and evaporation " * 3, "MARKER"),
        ("short", "no"),
        ("a medium length question", "yes MARKER"),
        ("q", "x"),
        ("another long question about plants and photosynthesis in detail " * 2, "nothing"),
    ]
    marked = torch.tensor([int("MARKER" in b) for _, b in pairs])
    with FirstTokenServer(reply) as server:
        teacher = rubric(server.url)
        logits = stored_teacher_logits(teacher, pairs, tmp_path / "store", batch_size=2)
        assert len(server.bodies) == len(pairs)
        again = stored_teacher_logits(teacher, pairs, tmp_path / "store")
        assert len(server.bodies) == len(pairs)

    assert logits.shape == (5, 2) and logits.dtype == torch.float32
    assert logits.argmax(-1).tolist() == marked.tolist()
    for row, mark in zip(logits, marked, strict=True):
        torch.testing.assert_close(row, log_softmax(-2.4, -0.1) if mark else log_softmax(-0.1, -2.4))
    torch.testing.assert_close(again, logits)
