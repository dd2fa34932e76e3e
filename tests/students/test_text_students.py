"""Text students: the tiny Transformer, its tokenizer, and the (truncated) MiniLM classifiers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

from suite.errors import ConfigError
from suite.students import build_student
from suite.students.text import (
    MiniLMClassifier,
    TinyTextClassifier,
    build_vocab_tokenizer,
    count_parameters,
    learn_wordpiece_vocab,
    masked_mean,
    matched_pieces,
    minilm_token_vectors,
    second_segment,
    start_token_embedding,
    tiny_text_classifier,
)

CORPUS = [
    "Plants convert light energy into chemical energy through photosynthesis.",
    "The mitochondria produce energy for the cell by respiration.",
    "Water evaporates when heated and condenses when cooled.",
    "A force applied to an object changes its motion.",
    "The student explained that heat flows from warm objects to cold ones.",
] * 8
SENTENCES = ["Heat flows from warm to cold.", "Plants use light energy to make sugar in their leaves."]


@pytest.fixture(scope="module")
def tokenizer():
    return build_vocab_tokenizer(CORPUS, vocab_size=300)


@pytest.fixture(scope="module")
def minilm_pair():
    torch.manual_seed(0)
    return build_student("minilm-classifier", num_labels=3).eval(), build_student(
        "minilm-truncated", num_labels=3
    ).eval()


def test_count_parameters_counts_tied_weights_once():
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    assert count_parameters(nn.ModuleList([embedding, head])) == 40
    assert count_parameters(nn.Linear(3, 4)) == 16


def test_default_tiny_student_has_under_a_million_parameters_with_an_8k_vocab():
    assert 100_000 < count_parameters(TinyTextClassifier(vocab_size=8000, num_labels=4)) < 1_000_000


def test_tiny_student_output_contract(tokenizer):
    model = tiny_text_classifier(num_labels=3, tokenizer=tokenizer, layers=3).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    out = model(**batch)
    steps = batch["input_ids"].shape[1]
    assert out["logits"].shape == (2, 3) and out["pooled"].shape == (2, 64)
    assert [h.shape for h in out["hidden_states"]] == [(2, steps, 64)] * 4  # embeddings + 3 layers
    assert torch.allclose(out["pooled"], masked_mean(out["hidden_states"][-1], batch["attention_mask"]))


def test_tiny_student_ignores_padding(tokenizer):
    model = tiny_text_classifier(num_labels=3, tokenizer=tokenizer).eval()
    alone = tokenizer(SENTENCES[:1], return_tensors="pt")
    padded = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1]
    with torch.no_grad():
        expected, actual = model(**alone)["logits"][0], model(**padded)["logits"][0]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_tiny_factory_sizes_the_model_from_the_tokenizer(tokenizer):
    model = build_student("tiny-text", num_labels=2, tokenizer=tokenizer)
    assert model.tokenizer is tokenizer
    assert model.token_embedding.num_embeddings == len(tokenizer)
    assert model.token_embedding.padding_idx == tokenizer.pad_token_id == 0
    assert model.max_len == tokenizer.model_max_length


def test_vocab_tokenizer_is_deterministic_and_round_trips(tokenizer, tmp_path):
    again = build_vocab_tokenizer(CORPUS, vocab_size=300)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert len(tokenizer) <= 300
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    ids = tokenizer(SENTENCES[1])["input_ids"]
    assert reloaded(SENTENCES[1])["input_ids"] == ids
    assert tokenizer.convert_ids_to_tokens([ids[0], ids[-1]]) == ["[CLS]", "[SEP]"]


@pytest.mark.parametrize(("with_segments", "exact_match"), [(False, False), (True, False), (True, True)])
def test_tiny_student_exports_to_onnx_with_dynamic_batch_and_length(tokenizer, tmp_path, with_segments, exact_match):
    import onnxruntime

    class Logits(nn.Module):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids, attention_mask)["logits"]

    sep_id = tokenizer.sep_token_id if with_segments else None
    student = tiny_text_classifier(num_labels=3, tokenizer=tokenizer, sep_id=sep_id, exact_match=exact_match)
    model = Logits(student).eval()
    short = tokenizer(["heat"], return_tensors="pt")
    axes = {0: "batch", 1: "time"}
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        model, (short["input_ids"], short["attention_mask"]), path, input_names=["input_ids", "attention_mask"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes}, dynamo=False, opset_version=17,
    )  # fmt: skip
    second = SENTENCES[::-1] if with_segments else None  # pairs: the segment is read off the [SEP] in the graph
    batch = tokenizer(SENTENCES, second, padding=True, return_tensors="pt")
    if exact_match:  # the pairs share "to": the graph computes matches the trace (one text, "heat") never had
        assert matched_pieces(batch["input_ids"], batch["attention_mask"], tokenizer.sep_token_id).any()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {k: batch[k].numpy() for k in ("input_ids", "attention_mask")})
    with torch.no_grad():
        expected = model(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-5, rtol=1e-4)


def test_truncated_minilm_keeps_two_layers_of_the_full_model(minilm_pair):
    full, truncated = minilm_pair
    assert isinstance(truncated, MiniLMClassifier) and truncated.num_layers == 2 and full.num_layers == 6
    full_weights = full.state_dict()
    kept = {k: v for k, v in truncated.state_dict().items() if not k.startswith("model.classifier.")}
    assert any(".encoder.layer.1." in k for k in kept) and not any(".encoder.layer.2." in k for k in kept)
    for key, value in kept.items():
        assert torch.equal(value, full_weights[key]), key


def test_minilm_classifiers_follow_the_text_contract(minilm_pair):
    full, truncated = minilm_pair
    batch = full.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    steps = batch["input_ids"].shape[1]
    with torch.no_grad():
        full_out, truncated_out = full(**batch), truncated(**batch)
    assert full_out["logits"].shape == (2, 3) and full_out["pooled"].shape == (2, 384)
    assert len(full_out["hidden_states"]) == 7 and len(truncated_out["hidden_states"]) == 3
    assert truncated_out["hidden_states"][-1].shape == (2, steps, 384)
    # Same weights for the kept layers, so the first three hidden states agree exactly.
    for ours, theirs in zip(truncated_out["hidden_states"], full_out["hidden_states"][:3], strict=False):
        torch.testing.assert_close(ours, theirs)


def test_wordpiece_vocab_merges_most_frequent_pair_with_lexicographic_ties():
    # Sennrich et al. (2016)'s words. "##e ##s" and "##s ##t" both occur 6 + 3 = 9 times and "##e ##s" sorts first;
    # later "##o ##w" and "l ##o" tie at 5 + 2 = 7 and "#" sorts before "l".
    counts = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    base = learn_wordpiece_vocab(counts, vocab_size=0)
    assert base[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "##w" in base and "w" in base
    assert learn_wordpiece_vocab(counts, vocab_size=len(base) + 3)[len(base) :] == ["##es", "##est", "##ow"]
    assert learn_wordpiece_vocab({"ab": 1, "cd": 1}, vocab_size=100) == learn_wordpiece_vocab({"ab": 1, "cd": 1}, 0)


def test_minilm_token_vectors_put_synonyms_closer_than_unrelated_words():
    vocab = ["[PAD]", "[UNK]", "car", "automobile", "banana", "heat", "##heat", "warm", "cold", "energy", "plant"]
    vectors = minilm_token_vectors(vocab, dim=8)
    assert vectors.shape == (len(vocab), 8)
    assert torch.allclose(vectors.std(dim=0), torch.ones(8), atol=1e-4)
    torch.testing.assert_close(vectors[5], vectors[6])  # a continuation piece reads as its bare word
    cosine = torch.nn.functional.cosine_similarity
    car, automobile, banana = vectors[2], vectors[3], vectors[4]
    assert cosine(car, automobile, dim=0) > cosine(car, banana, dim=0)


def test_minilm_token_vectors_refuse_a_width_the_vocabulary_cannot_span():
    with pytest.raises(ConfigError, match="dim"):
        minilm_token_vectors(["[PAD]", "car", "tree"], dim=8)


def test_a_started_embedding_keeps_its_padding_row_at_zero(tokenizer):
    model = tiny_text_classifier(num_labels=2, tokenizer=tokenizer)
    vectors = torch.randn(len(tokenizer), model.token_embedding.embedding_dim)
    start_token_embedding(model, vectors)
    pad = tokenizer.pad_token_id
    assert model.token_embedding.weight[pad].abs().sum() == 0
    others = [i for i in range(len(tokenizer)) if i != pad]
    torch.testing.assert_close(model.token_embedding.weight[others], vectors[others])


def test_second_segment_marks_the_tokens_after_the_first_separator():
    cls, sep, pad = 2, 3, 0
    ids = torch.tensor([[cls, 7, 8, sep, 9, sep, pad], [cls, 7, sep, pad, pad, pad, pad]])
    assert second_segment(ids, sep).tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1]]


def test_matched_pieces_marks_pieces_the_other_text_has_and_nothing_special():
    cls, sep, pad = 2, 3, 0
    ids = torch.tensor([[cls, 7, 8, sep, 8, 9, sep, pad], [cls, 7, 7, sep, 9, sep, pad, pad]])
    mask = (ids != pad).long()
    # 8 is in both texts; 7 twice in the first text only is no match; [SEP] in both is special
    assert matched_pieces(ids, mask, sep).tolist() == [[0, 0, 1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
    bert = torch.tensor([[101, 2000, 102, 2000, 102]])  # BERT's vocabulary: [SEP] is 102, in both texts
    assert matched_pieces(bert, torch.ones_like(bert), 102).tolist() == [[0, 1, 0, 1, 0]]
    unmasked = torch.tensor([[cls, 7, sep, 9, sep, 7]])  # a 7 under the mask (padding) matches nothing
    assert matched_pieces(unmasked, torch.tensor([[1, 1, 1, 1, 1, 0]]), sep).sum() == 0


def test_exact_match_feeds_the_student_only_where_the_texts_share_a_piece(tokenizer):
    torch.manual_seed(0)
    model = tiny_text_classifier(num_labels=2, tokenizer=tokenizer, sep_id=tokenizer.sep_token_id, exact_match=True)
    model.eval()
    shared = tokenizer(["heat flows"], ["heat is warm"], return_tensors="pt")
    disjoint = tokenizer(["heat flows"], ["warm to cold"], return_tensors="pt")
    logits = lambda batch: model(batch["input_ids"], batch["attention_mask"])["logits"]  # noqa: E731
    with torch.no_grad():
        shared_before, disjoint_before = logits(shared), logits(disjoint)
        model.match_embedding.weight[1] += torch.randn(model.match_embedding.embedding_dim)
        assert not torch.allclose(logits(shared), shared_before)
        torch.testing.assert_close(logits(disjoint), disjoint_before)  # no piece in common: nothing marked
    plain = tiny_text_classifier(num_labels=2, tokenizer=tokenizer, sep_id=tokenizer.sep_token_id)
    assert not any(key.startswith("match_embedding") for key in plain.state_dict())  # off: the same weights as ever
    with pytest.raises(ConfigError, match="exact_match: needs sep_id"):
        tiny_text_classifier(num_labels=2, tokenizer=tokenizer, exact_match=True)


def test_a_student_with_segments_reads_which_text_a_token_is_in(tokenizer):
    torch.manual_seed(0)
    model = tiny_text_classifier(num_labels=2, tokenizer=tokenizer, sep_id=tokenizer.sep_token_id).eval()
    pair = tokenizer(["heat flows"], ["warm to cold"], return_tensors="pt")
    single = tokenizer(["heat flows"], return_tensors="pt")
    logits = lambda batch: model(batch["input_ids"], batch["attention_mask"])["logits"]  # noqa: E731
    with torch.no_grad():
        pair_before, single_before = logits(pair), logits(single)
        model.segment_embedding.weight[1] += torch.randn(model.segment_embedding.embedding_dim)
        assert not torch.allclose(logits(pair), pair_before)  # the second text's tokens changed
        torch.testing.assert_close(logits(single), single_before)  # a single text has no second segment
