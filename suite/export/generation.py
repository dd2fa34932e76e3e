"""Inputs for the encoder and decoder-with-past graphs of a generation student, built from tokenised prompts.

A caller gives prompts (``input_ids``, ``attention_mask``); the past a decoder step sees is computed by the PyTorch
model itself (through the same wrapper that is exported), so parity is checked on realistic caches, including the
empty past of the first step.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.config import check
from suite.export.spec import GenerationSpec
from suite.export.wrappers import CausalLMWithPast, Seq2SeqDecoderWithPast, Seq2SeqEncoder

Inputs = dict[str, torch.Tensor]

# (past_length, new_length) of the decoder inputs: the export traces with EXAMPLE_STEPS, parity cycles through
# HELDOUT_STEPS, so the first step (empty past), a single-token step and a multi-token step all differ in shape
# from the traced one.
EXAMPLE_STEPS = (2, 2)
HELDOUT_STEPS = ((0, 1), (3, 1), (1, 3))


def _empty_past(spec: GenerationSpec, batch: int) -> list[torch.Tensor]:
    shape = (batch, spec.num_heads, 0, spec.head_dim)
    return [torch.zeros(shape) for _ in spec.past_inputs]


def _past(wrapper: nn.Module, spec: GenerationSpec, inputs: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """The present the wrapper returns for ``inputs`` (a prefix), i.e. the past of the following step."""
    if inputs[0].shape[1] == 0:
        return _empty_past(spec, batch)
    return list(wrapper(*inputs, *_empty_past(spec, batch))[1:])


def causal_lm_inputs(model: nn.Module, spec: GenerationSpec, prompt: Inputs, past_length: int) -> Inputs:
    """Decoder inputs that feed ``prompt[:, past_length:]`` on top of the cache of ``prompt[:, :past_length]``."""
    ids, mask = prompt["input_ids"], prompt["attention_mask"]
    check(0 <= past_length < ids.shape[1], "export.past_length", f"must be in [0, {ids.shape[1]}), got {past_length}")
    with torch.no_grad():
        past = _past(CausalLMWithPast(model), spec, [ids[:, :past_length], mask[:, :past_length]], ids.shape[0])
    return {
        "input_ids": ids[:, past_length:],
        "attention_mask": mask,
        **dict(zip(spec.past_inputs, past, strict=True)),
    }


def seq2seq_inputs(
    model: nn.Module, spec: GenerationSpec, prompt: Inputs, past_length: int, new_length: int, seed: int = 0
) -> dict[str, Inputs]:
    """Encoder inputs (the prompt) and decoder inputs: ``new_length`` tokens after ``past_length`` cached ones.

    Decoder tokens are the start token followed by tokens drawn (seeded) from the prompt, so they are valid ids.
    """
    ids, mask = prompt["input_ids"], prompt["attention_mask"]
    generator = torch.Generator().manual_seed(seed)
    pool = ids[mask.bool()]
    drawn = pool[torch.randint(len(pool), (ids.shape[0], past_length + new_length - 1), generator=generator)]
    start = torch.full((ids.shape[0], 1), spec.decoder_start_token_id, dtype=ids.dtype)
    decoder_ids = torch.cat([start, drawn], dim=1)
    with torch.no_grad():
        hidden = Seq2SeqEncoder(model)(ids, mask)
        prefix = [decoder_ids[:, :past_length], mask, hidden]
        past = _past(Seq2SeqDecoderWithPast(model), spec, prefix, ids.shape[0])
    decoder = {"decoder_input_ids": decoder_ids[:, past_length:], "encoder_attention_mask": mask}
    decoder |= {"encoder_hidden_states": hidden, **dict(zip(spec.past_inputs, past, strict=True))}
    return {"encoder.onnx": {"input_ids": ids, "attention_mask": mask}, "decoder.onnx": decoder}


def component_inputs(
    model: nn.Module, spec: GenerationSpec, prompt: Inputs, steps: tuple[int, int], seed: int = 0
) -> dict[str, Inputs]:
    """Inputs of every ONNX file of ``spec`` for one prompt batch, keyed by file name.

    ``steps`` is (past_length, new_length); a causal LM feeds the rest of the prompt after ``past_length`` tokens,
    and ``past_length`` is clipped so at least one token is new.
    """
    if spec.family == "seq2seq":
        return seq2seq_inputs(model, spec, prompt, *steps, seed=seed)
    past_length = min(steps[0], prompt["input_ids"].shape[1] - 1)
    return {"decoder.onnx": causal_lm_inputs(model, spec, prompt, past_length)}
