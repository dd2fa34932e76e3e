"""Generative students from the registry: sizes, shapes, special ids, save/load without pickle, generation, the
warm-started MiniLM BERT2BERT teacher, and the up-front vocabulary check for token-level KD."""

from __future__ import annotations

import pytest
import torch

from suite.errors import ConfigError
from suite.students import build_student
from suite.students.generative import SIZES, SpecialTokens, check_same_vocabulary, vocabulary_size
from suite.students.io import load_student, save_student
from suite.students.text import build_vocab_tokenizer

CORPUS = [
    "no acute cardiopulmonary abnormality",
    "the heart is normal in size and the lungs are clear",
    "small right pleural effusion with basilar atelectasis",
    "no pneumothorax or focal consolidation",
] * 5


@pytest.fixture(scope="module")
def tokenizer():
    return build_vocab_tokenizer(CORPUS, vocab_size=200)


def kwargs_for(tokenizer, **extra) -> dict:
    ids = SpecialTokens.of(tokenizer)
    return {"vocab_size": len(tokenizer), "pad_id": ids.pad, "start_id": ids.start, "end_id": ids.end, **extra}


@pytest.mark.parametrize(("name", "shape"), [("seq2seq", "t5"), ("seq2seq", "bart"), ("causal-lm", "gpt2"),
                                             ("causal-lm", "llama")])  # fmt: skip
def test_every_shape_builds_trains_one_step_and_generates_with_its_special_ids(tokenizer, name, shape):
    torch.manual_seed(0)
    model = build_student(name, **kwargs_for(tokenizer, size="2m", shape=shape))
    ids = SpecialTokens.of(tokenizer)
    assert model.generation_config.eos_token_id == ids.end and model.generation_config.pad_token_id == ids.pad
    assert vocabulary_size(model) == len(tokenizer)
    batch = tokenizer(CORPUS[:2], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    loss = model(**batch, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with torch.no_grad():
        out = model.eval().generate(**batch, max_new_tokens=5, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] >= 2


def test_sizes_are_ordered_and_the_2m_and_30m_ends_are_what_their_names_say(tokenizer):
    big_vocab = {**kwargs_for(tokenizer), "vocab_size": 8000}
    counts = {size: sum(p.numel() for p in build_student("seq2seq", **big_vocab, size=size).parameters())
              for size in SIZES}  # fmt: skip
    assert counts["2m"] < counts["8m"] < counts["30m"]
    assert 1.5e6 < counts["2m"] < 3e6 and 20e6 < counts["30m"] < 32e6


def test_a_trained_generator_saves_and_reloads_from_json_kwargs(tokenizer, tmp_path):
    torch.manual_seed(0)
    kwargs = kwargs_for(tokenizer, size="2m", shape="t5")
    model = build_student("seq2seq", **kwargs).eval()
    save_student(model, tmp_path / "s", "seq2seq", kwargs, tokenizer)
    again, again_tokenizer = load_student(tmp_path / "s")
    batch = tokenizer(CORPUS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.generate(**batch, max_new_tokens=6, do_sample=False)
        torch.testing.assert_close(again.generate(**batch, max_new_tokens=6, do_sample=False), expected)
    assert again_tokenizer.get_vocab() == tokenizer.get_vocab()


def test_unknown_size_or_shape_is_a_config_error(tokenizer):
    with pytest.raises(ConfigError, match="size"):
        build_student("seq2seq", **kwargs_for(tokenizer, size="7b"))
    with pytest.raises(ConfigError, match="shape"):
        build_student("causal-lm", **kwargs_for(tokenizer, shape="t5"))


def test_minilm_bert2bert_is_warm_started_from_the_packaged_weights():
    from suite import hub

    teacher = build_student("minilm-bert2bert")
    encoder, _ = hub.load_minilm()
    reference = encoder.state_dict()["embeddings.word_embeddings.weight"]
    torch.testing.assert_close(teacher.encoder.embeddings.word_embeddings.weight, reference)
    torch.testing.assert_close(teacher.decoder.bert.embeddings.word_embeddings.weight, reference)
    assert teacher.decoder.config.is_decoder and teacher.decoder.config.add_cross_attention
    assert 40e6 < sum(p.numel() for p in teacher.parameters()) < 60e6
    tokenizer = hub.load_tokenizer("minilm-l6")
    assert teacher.generation_config.decoder_start_token_id == tokenizer.cls_token_id
    batch = tokenizer(["no acute findings"], return_tensors="pt")
    with torch.no_grad():
        out = teacher.eval().generate(**batch, max_new_tokens=3, do_sample=False)
    assert out[0, 0].item() == tokenizer.cls_token_id
    from suite.students.generative import with_lora

    adapted = with_lora(teacher, rank=4)  # the teacher's fine-tuning option: adapters on query/value only
    names = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and ("query" in n or "value" in n) for n in names)


def test_a_local_generator_folder_loads_by_its_config(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_student("causal-lm", **kwargs_for(tokenizer, size="2m", shape="gpt2"))
    model.save_pretrained(tmp_path / "lm")
    loaded = build_student("hf-generator", path=str(tmp_path / "lm"))
    torch.testing.assert_close(loaded.state_dict()["lm_head.weight"], model.state_dict()["lm_head.weight"])


def test_different_vocabularies_are_refused_up_front_with_the_routes_that_work(tokenizer):
    other = build_vocab_tokenizer(["completely different words here"] * 3, vocab_size=50)
    teacher = build_student("seq2seq", **kwargs_for(tokenizer, size="2m"))
    student = build_student("seq2seq", **kwargs_for(other, size="2m"))
    check_same_vocabulary(teacher, teacher, tokenizer, tokenizer)
    with pytest.raises(ConfigError, match="sequence-level KD"):
        check_same_vocabulary(teacher, student, tokenizer, other)


def test_lora_trains_only_adapters_and_merges_into_a_plain_model_with_the_same_outputs(tokenizer, tmp_path):
    from suite.students.generative import merge_lora, with_lora

    torch.manual_seed(0)
    kwargs = kwargs_for(tokenizer, size="2m", shape="t5")
    base = build_student("seq2seq", **kwargs)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = with_lora(base, rank=4, alpha=8, dropout=0.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    batch = tokenizer(CORPUS[:4], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(3):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        adapted = model(**batch, labels=labels).logits
    merged = merge_lora(model)
    assert type(merged).__name__ == "T5ForConditionalGeneration"
    assert not any("lora_" in k for k in merged.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch, labels=labels).logits, adapted, rtol=1e-4, atol=1e-4)
    changed = [k for k, v in merged.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed  # the update now lives in the base weights
    save_student(merged, tmp_path / "merged", "seq2seq", kwargs, tokenizer)
    reloaded, _ = load_student(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch, labels=labels).logits, adapted, rtol=1e-4, atol=1e-4)
