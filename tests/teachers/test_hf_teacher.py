"""HFTeacher on tiny models built and saved here (a few units wide), loaded back offline."""

from __future__ import annotations

import json

import pytest
import torch

from suite.errors import ModelNotFoundError
from suite.teachers import HFTeacher, TeacherOutputStore

WORDS = ["the", "a", "patient", "has", "fever", "cough", "pain", "no", "yes", "is", "and", "of", "to"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]"]
VOCAB = {token: i for i, token in enumerate(SPECIAL + WORDS)}
PROMPTS = ["the patient has fever", "no cough", "pain is"]


def save_tokenizer(path, with_cls: bool) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if with_cls:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        eos_token="[EOS]",
    )  # fmt: skip
    wrapped.save_pretrained(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import transformers as tf

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    bert = tf.BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, num_labels=3,
    )  # fmt: skip
    gpt2 = tf.GPT2Config(
        vocab_size=len(VOCAB), n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=VOCAB["[EOS]"],
        eos_token_id=VOCAB["[EOS]"], pad_token_id=VOCAB["[PAD]"],
    )  # fmt: skip
    t5 = tf.T5Config(
        vocab_size=len(VOCAB), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=VOCAB["[EOS]"],
    )  # fmt: skip
    built = {
        "classification": (tf.BertForSequenceClassification(bert), True),
        "encoder": (tf.BertModel(bert), True),
        "causal-lm": (tf.GPT2LMHeadModel(gpt2), False),
        "seq2seq": (tf.T5ForConditionalGeneration(t5), False),
    }
    paths = {}
    for task, (model, with_cls) in built.items():
        paths[task] = root / task
        model.save_pretrained(paths[task])
        save_tokenizer(paths[task], with_cls)
    return paths


def test_classification_logits_and_frozen_params(models, tmp_path):
    teacher = HFTeacher(models["classification"], "classification", max_length=8)
    inputs = [*PROMPTS, {"text": "the patient", "text_pair": "has fever"}]
    outputs = TeacherOutputStore(tmp_path).run(teacher, inputs, batch_size=2, progress=False)
    assert all(o.logits.shape == (3,) and o.label == int(o.logits.argmax()) for o in outputs)
    assert not any(p.requires_grad for p in teacher.model.parameters()) and not teacher.model.training
    # Padding must not change an answer: a prompt alone and in a batch of longer prompts agree.
    alone = teacher.answer([PROMPTS[1]])[0].logits
    torch.testing.assert_close(alone, outputs[1].logits, atol=1e-5, rtol=1e-5)


def test_encoder_embeddings_have_unit_norm(models):
    teacher = HFTeacher(models["encoder"], "encoder")
    outputs = teacher.answer(PROMPTS)
    norms = torch.stack([o.embedding.norm() for o in outputs])
    torch.testing.assert_close(norms, torch.ones(3))
    assert outputs[0].embedding.shape == (16,) and not torch.equal(outputs[0].embedding, outputs[1].embedding)


@pytest.mark.parametrize("task", ["causal-lm", "seq2seq"])
def test_generation_returns_text_and_topk(models, task, tmp_path):
    teacher = HFTeacher(models[task], task, max_new_tokens=4, top_k=3)
    outputs = TeacherOutputStore(tmp_path).run(teacher, PROMPTS, batch_size=3, progress=False)
    for out in outputs:
        steps = len(out.meta["generated_ids"])
        assert isinstance(out.text, str) and 1 <= steps <= 4
        assert out.topk_ids.shape == (steps, 3) and out.topk_ids.dtype == torch.int64
        assert out.topk_logprobs.shape == (steps, 3) and out.topk_logprobs.dtype == torch.float32
        assert (out.topk_logprobs <= 0).all() and (out.topk_logprobs.diff(dim=-1) <= 0).all()
        assert out.topk_ids[:, 0].tolist() == out.meta["generated_ids"]  # greedy picks the top-1 token
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_vision_teacher_from_a_timm_checkpoint(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "test_resnet", "num_classes": 4}))
    teacher = HFTeacher(tmp_path, "vision")
    images = [torch.randn(3, 32, 32) for _ in range(2)]
    outputs = teacher.answer(images)
    with torch.no_grad():
        expected = model.eval()(torch.stack(images))
    torch.testing.assert_close(torch.stack([o.logits for o in outputs]), expected)
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_missing_model_and_changed_config(models, tmp_path):
    with pytest.raises(ModelNotFoundError, match="teacher model not found .*nowhere"):
        HFTeacher(tmp_path / "nowhere", "classification")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        HFTeacher(tmp_path, "classification")
    path = models["encoder"]
    before = HFTeacher(path, "encoder").teacher_id
    config = path / "config.json"
    original = config.read_text()
    assert '"hidden_dropout_prob": 0.1' in original
    config.write_text(original.replace('"hidden_dropout_prob": 0.1', '"hidden_dropout_prob": 0.2'))
    try:
        assert HFTeacher(path, "encoder").teacher_id != before
    finally:
        config.write_text(original)


def test_retrained_weights_at_the_same_path_are_a_new_teacher_to_the_store(tmp_path):
    import transformers as tf

    config = tf.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=32, num_labels=3)  # fmt: skip
    path, store = tmp_path / "teacher", TeacherOutputStore(tmp_path / "store")
    torch.manual_seed(0)
    tf.BertForSequenceClassification(config).save_pretrained(path)
    save_tokenizer(path, with_cls=True)
    first = store.run(HFTeacher(path, "classification"), PROMPTS, progress=False)

    # "Retrain": same config.json byte for byte, new weights written over the old ones.
    torch.manual_seed(1)
    tf.BertForSequenceClassification(config).save_pretrained(path)
    retrained = HFTeacher(path, "classification")
    second = store.run(retrained, PROMPTS, progress=False)
    fresh = retrained.answer(PROMPTS)
    assert not torch.allclose(first[0].logits, second[0].logits)
    for stored, answered in zip(second, fresh, strict=True):
        torch.testing.assert_close(stored.logits, answered.logits)
    assert len(store) == 2 * len(PROMPTS)
