"""Generative students and teachers, built from transformers configs so they save, load and export like any HF model.

- :func:`seq2seq_student`: an encoder-decoder (``t5``- or ``bart``-shaped) for findings -> impression style tasks;
- :func:`causal_student`: a decoder-only LM (``gpt2``- or ``llama``-shaped) that reads ``prompt [SEP] target``;
- :func:`minilm_bert2bert`: the offline pretrained teacher, BERT2BERT-style (Rothe et al. 2020): the packaged
  all-MiniLM-L6-v2 warm-starts both the encoder and the decoder (cross-attention is new), ~49M parameters;
- :func:`hf_generator`: any local Hugging Face seq2seq or causal-LM folder.

Sizes are named by their parameter count with an 8k-piece domain vocabulary (:data:`SIZES`; the embedding grows
with the vocabulary). Every builder takes the vocabulary size and special-token ids, never a tokenizer object, so
:func:`suite.students.io.save_student` can rebuild a trained student from JSON keyword arguments alone. The model's
``generation_config`` carries the start, end and pad ids, which is what ``suite.export`` reads for the decoding loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from suite import hub
from suite.errors import ConfigError


@dataclass(frozen=True)
class Size:
    width: int  # d_model
    layers: int  # per stack (encoder and decoder each, for seq2seq)
    heads: int
    ffn: int


SIZES = {  # parameters with an 8,000-piece vocabulary (t5 / bart / gpt2 / llama), measured by the tests' builder
    "2m": Size(128, 2, 4, 512),  # 2.2M / 2.1M / 1.5M / 1.5M
    "8m": Size(256, 3, 4, 1024),  # 9.1M / 7.8M / 4.5M / 5.2M
    "30m": Size(512, 3, 8, 1536),  # 27.7M / 23.5M / 12.2M / 14.3M
}
SEQ2SEQ_SHAPES = ("t5", "bart")
CAUSAL_SHAPES = ("gpt2", "llama")


@dataclass(frozen=True)
class SpecialTokens:
    """The ids a generative model needs: padding, the decoder's start token and the end of a sequence. With the
    suite's BERT-style domain tokenizer these are [PAD], [CLS] and [SEP]."""

    pad: int
    start: int
    end: int

    @classmethod
    def of(cls, tokenizer: Any) -> SpecialTokens:
        start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if None in (tokenizer.pad_token_id, start, end):
            raise ConfigError("tokenizer: a generative student needs pad, start ([CLS]/bos) and end ([SEP]/eos) ids")
        return cls(tokenizer.pad_token_id, start, end)


def _size(size: str) -> Size:
    if size not in SIZES:
        raise ConfigError(f"size: '{size}' is not one of {', '.join(SIZES)}")
    return SIZES[size]


def _set_generation_ids(model: nn.Module, ids: SpecialTokens) -> nn.Module:
    for config in (model.config, model.generation_config):
        config.pad_token_id, config.eos_token_id = ids.pad, ids.end
        config.decoder_start_token_id = ids.start if model.config.is_encoder_decoder else None
        config.bos_token_id = ids.start
    return model


def seq2seq_student(
    vocab_size: int, pad_id: int, start_id: int, end_id: int, size: str = "8m", shape: str = "t5",
    max_positions: int = 512,
) -> nn.Module:  # fmt: skip
    """An encoder-decoder student: ``t5`` (relative positions, pre-norm, gated-GELU FFN) or ``bart`` (learned
    positions, post-norm); ``max_positions`` bounds bart's learned positions."""
    ids, s = SpecialTokens(pad_id, start_id, end_id), _size(size)
    if shape == "t5":
        from transformers import T5Config, T5ForConditionalGeneration

        config = T5Config(
            vocab_size=vocab_size, d_model=s.width, d_kv=s.width // s.heads, d_ff=s.ffn, num_layers=s.layers,
            num_decoder_layers=s.layers, num_heads=s.heads, feed_forward_proj="gated-gelu", tie_word_embeddings=True,
            pad_token_id=pad_id, eos_token_id=end_id, decoder_start_token_id=start_id, dropout_rate=0.1,
        )  # fmt: skip
        return _set_generation_ids(T5ForConditionalGeneration(config), ids)
    if shape == "bart":
        from transformers import BartConfig, BartForConditionalGeneration

        config = BartConfig(
            vocab_size=vocab_size, d_model=s.width, encoder_layers=s.layers, decoder_layers=s.layers,
            encoder_attention_heads=s.heads, decoder_attention_heads=s.heads, encoder_ffn_dim=s.ffn,
            decoder_ffn_dim=s.ffn, max_position_embeddings=max_positions, pad_token_id=pad_id, bos_token_id=start_id,
            eos_token_id=end_id, decoder_start_token_id=start_id, forced_eos_token_id=None, dropout=0.1,
        )  # fmt: skip
        return _set_generation_ids(BartForConditionalGeneration(config), ids)
    raise ConfigError(f"shape: '{shape}' is not a seq2seq shape ({', '.join(SEQ2SEQ_SHAPES)})")


def causal_student(
    vocab_size: int, pad_id: int, start_id: int, end_id: int, size: str = "8m", shape: str = "gpt2",
    max_positions: int = 512,
) -> nn.Module:  # fmt: skip
    """A decoder-only student: ``gpt2`` (learned positions, GELU) or ``llama`` (RoPE, RMSNorm, SwiGLU)."""
    ids, s = SpecialTokens(pad_id, start_id, end_id), _size(size)
    if shape == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=vocab_size, n_embd=s.width, n_layer=s.layers, n_head=s.heads, n_inner=s.ffn,
            n_positions=max_positions, bos_token_id=start_id, eos_token_id=end_id, pad_token_id=pad_id,
        )  # fmt: skip
        return _set_generation_ids(GPT2LMHeadModel(config), ids)
    if shape == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=vocab_size, hidden_size=s.width, intermediate_size=s.ffn, num_hidden_layers=s.layers,
            num_attention_heads=s.heads, num_key_value_heads=s.heads, max_position_embeddings=max_positions,
            bos_token_id=start_id, eos_token_id=end_id, pad_token_id=pad_id, tie_word_embeddings=True,
        )  # fmt: skip
        return _set_generation_ids(LlamaForCausalLM(config), ids)
    raise ConfigError(f"shape: '{shape}' is not a decoder-only shape ({', '.join(CAUSAL_SHAPES)})")


def minilm_bert2bert(max_length: int = 128) -> nn.Module:
    """all-MiniLM-L6-v2 as both encoder and decoder (``EncoderDecoderModel``): the decoder gets causal masking and
    fresh cross-attention; everything else starts pretrained. Uses MiniLM's own WordPiece vocabulary, so its
    tokenizer (``hub.load_tokenizer("minilm-l6")``) goes with it."""
    from transformers import EncoderDecoderModel
    from transformers.utils import logging

    path = str(hub.resolve_model_path("minilm-l6"))
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "some weights were newly initialized": the cross-attention, by design
    try:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    finally:
        logging.set_verbosity(verbosity)
    tokenizer = hub.load_tokenizer("minilm-l6")
    _set_generation_ids(model, SpecialTokens.of(tokenizer))
    model.config.vocab_size = model.config.decoder.vocab_size
    model.generation_config.max_length = max_length
    return model


def hf_generator(path: str) -> nn.Module:
    """A local Hugging Face seq2seq or causal-LM folder (``save_pretrained`` output), by its config."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    folder = hub.resolve_model_path(path)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return auto.from_pretrained(folder, local_files_only=True)


def vocabulary_size(model: nn.Module) -> int:
    """The number of logits the model's LM head produces (an encoder-decoder's decoder vocabulary)."""
    return int(model.get_output_embeddings().weight.shape[0])


def check_same_vocabulary(
    teacher: nn.Module, student: nn.Module, teacher_tokenizer: Any, student_tokenizer: Any
) -> None:
    """Token-level KD compares distributions id by id, so both models must share one vocabulary. A mismatch is a
    clear error up front, naming the routes that work across tokenizers."""
    sizes = vocabulary_size(teacher), vocabulary_size(student)
    same_tokens = teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab()
    if sizes[0] != sizes[1] or not same_tokens:
        raise ConfigError(
            f"token-level KD needs one vocabulary, but the teacher has {sizes[0]} logits and the student {sizes[1]}"
            f"{'' if same_tokens else ' with different tokens'}. Use the teacher's tokenizer for the student, or a "
            "cross-tokenizer route: sequence-level KD (train on the teacher's generated text) or sorted-probability "
            "matching (uld), which compares the two distributions sorted by probability"
        )


def with_lora(model: nn.Module, rank: int = 8, alpha: int = 16, dropout: float = 0.05,
              target_modules: list[str] | None = None) -> nn.Module:  # fmt: skip
    """Wrap ``model`` with LoRA adapters (peft; Hu et al. 2022): the base weights freeze and only the low-rank
    updates train. ``target_modules`` default to peft's choice for the architecture (attention projections);
    BERT-style models (the MiniLM BERT2BERT teacher) get ``query``/``value``."""
    from peft import LoraConfig, get_peft_model

    if target_modules is None and model.config.model_type in ("encoder-decoder", "bert"):
        target_modules = ["query", "value"]
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules)
    return get_peft_model(model, config)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the LoRA updates into the base weights (``W + B A * alpha / r``) and drop the adapters: the result is a
    plain transformers model that saves, exports and generates like any other."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def prune_vocabulary(teacher_tokenizer: Any, texts: list[str], model_max_length: int = 512) -> tuple[Any, list[int]]:
    """A student tokenizer keeping only the teacher's WordPiece pieces that ``texts`` use (plus the special tokens),
    and, for each student id, the teacher id of the same piece.

    A 30k-piece teacher vocabulary costs a small student most of its parameters; a domain corpus uses a few
    thousand. Because the kept pieces are a subset of the teacher's and WordPiece matches the longest piece first,
    the student tokenizer splits any text of the corpus exactly as the teacher's does, so token-level KD stays
    possible: the teacher's distribution is read at the kept ids and the rest is its tail
    (:class:`suite.generative.VocabularyMap`)."""
    from suite.students.text import wordpiece_tokenizer

    specials = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in teacher_tokenizer.get_vocab()]
    if len(specials) < 5:
        raise ConfigError("prune_vocabulary needs a BERT-style WordPiece teacher tokenizer ([PAD] [UNK] [CLS] ...)")
    used = sorted({i for ids in teacher_tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids})
    id_to_token = {i: t for t, i in teacher_tokenizer.get_vocab().items()}
    kept = [teacher_tokenizer.convert_tokens_to_ids(t) for t in specials]
    kept += [i for i in used if i not in kept]
    return wordpiece_tokenizer([id_to_token[i] for i in kept], model_max_length), kept
