"""An OpenAI-compatible endpoint as a generation teacher, against a real HTTP server on 127.0.0.1: its text becomes
sequence-level targets, its top_logprobs token-level targets in the student's (pruned) vocabulary; each prompt is
asked once; a generated token the student lacks is a clear error."""

from __future__ import annotations

import pytest
import torch

from suite.errors import ConfigError
from suite.generative import TextPair, VocabularyMap, collate_seq2seq, encode_seq2seq
from suite.generative_endpoint import endpoint_items
from suite.students.generative import prune_vocabulary
from suite.teachers.openai_compat import OpenAICompatibleTeacher
from tests.fake_llm import TextServer

PAIRS = [TextPair("heart size normal . lungs clear", "no acute disease"),
         TextPair("small left effusion", "small effusion")]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizers():
    from suite import hub

    teacher = hub.load_tokenizer("minilm-l6")
    texts = [t for p in PAIRS for t in (p.source, p.target)] + ["stable"]
    student, teacher_ids = prune_vocabulary(teacher, texts)
    return teacher, student, VocabularyMap(teacher_ids)


def writer(teacher_tokenizer, extra: str = "zebra"):
    """The 'LLM': answers a source with its pair's target, token by token; alternatives: the token itself, 'stable'
    (in the student's vocabulary) and ``extra`` (not in it); tokens as vLLM's token_id:<id>, the last as a piece."""
    vocab = teacher_tokenizer.get_vocab()
    targets = {p.source: p.target for p in PAIRS}

    def reply(prompt: str):
        pieces = teacher_tokenizer.tokenize(targets[prompt])
        steps = []
        for n, piece in enumerate(pieces):
            token = piece if n == len(pieces) - 1 else f"token_id:{vocab[piece]}"
            steps.append((token, [(token, -0.1), (f"token_id:{vocab['stable']}", -2.5), (extra, -3.0)]))
        return targets[prompt], steps, "stop"

    return reply


def backend(url: str, top_logprobs: int) -> OpenAICompatibleTeacher:
    return OpenAICompatibleTeacher(url, "served-teacher", top_logprobs=top_logprobs, max_retries=0)


def test_text_only_endpoint_gives_sequence_level_targets(tokenizers, tmp_path):
    teacher, student, vocab = tokenizers
    with TextServer(writer(teacher)) as server:
        items = endpoint_items(backend(server.url, 0), teacher, PAIRS, 32, 16, student.sep_token_id, tmp_path,
                               vocab=vocab, student_tokenizer=student, progress=False)  # fmt: skip
    assert items == encode_seq2seq(student, PAIRS, 32, 16)  # the server wrote the references
    assert "topk_ids" not in items[0]


def test_top_logprobs_become_token_level_targets_in_the_students_vocabulary(tokenizers, tmp_path):
    teacher, student, vocab = tokenizers
    with TextServer(writer(teacher)) as server:
        items = endpoint_items(backend(server.url, 3), teacher, PAIRS, 32, 16, student.sep_token_id, tmp_path,
                               vocab=vocab, student_tokenizer=student, progress=False)  # fmt: skip
        assert server.requests == 2
        again = endpoint_items(backend(server.url, 3), teacher, PAIRS, 32, 16, student.sep_token_id, tmp_path,
                               vocab=vocab, student_tokenizer=student, progress=False)  # fmt: skip
        assert server.requests == 2  # the store answered the rerun
    references = encode_seq2seq(student, PAIRS, 32, 16)
    stable = student.convert_tokens_to_ids("stable")
    for item, reference, again_item in zip(items, references, again, strict=True):
        assert item["labels"] == reference["labels"]  # generated tokens + the end token
        ids, logprobs = item["topk_ids"], item["topk_logprobs"]
        assert ids[:-1, 0].tolist() == item["labels"][:-1] and ids[:-1, 1].eq(stable).all()
        assert torch.allclose(logprobs[:-1, :2], torch.tensor([-0.1, -2.5]).expand(len(ids) - 1, 2))
        assert torch.isinf(logprobs[:, 2]).all()  # 'zebra' is not a student piece: its mass joins the tail
        assert ids[-1, 0] == student.sep_token_id and logprobs[-1, 0] == 0.0
        assert torch.equal(again_item["topk_ids"], ids)
    batch = collate_seq2seq(student.pad_token_id)(items)
    assert batch["teacher"]["topk_ids"].shape[:2] == batch["labels"].shape


def test_a_generated_token_outside_the_students_vocabulary_is_a_clear_error(tokenizers, tmp_path):
    teacher, student, vocab = tokenizers

    def reply(prompt: str):
        return "zebra", [("zebra", [("zebra", -0.1)])], "stop"

    with TextServer(reply) as server, pytest.raises(ConfigError, match="not in the student's vocabulary"):
        endpoint_items(backend(server.url, 1), teacher, PAIRS, 32, 16, student.sep_token_id, tmp_path,
                       vocab=vocab, student_tokenizer=student, progress=False)  # fmt: skip


def test_sampling_endpoints_are_refused(tokenizers, tmp_path):
    teacher, student, _ = tokenizers
    sampling = OpenAICompatibleTeacher("http://127.0.0.1:9", "m", temperature=0.7)
    with pytest.raises(ConfigError, match="temperature 0"):
        endpoint_items(sampling, teacher, PAIRS, 32, 16, student.sep_token_id, tmp_path)
