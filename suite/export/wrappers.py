"""Small nn.Modules that turn a student's output dict (or a transformers model with a cache object) into the flat
tuple of tensors an ONNX graph returns, in the order of the spec's ``output_names``.

Generation wrappers rebuild transformers' cache objects from flat ``past`` tensors inside ``forward``, so the
traced graph takes and returns plain tensors: ``past_key_values.{i}.key/value`` in, ``present.{i}.key/value`` out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from suite.export.spec import ExportSpec


def _flat_cache(layers: Any) -> tuple[torch.Tensor, ...]:
    return tuple(t for layer in layers for t in (layer.keys, layer.values))


def _pairs(past: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(past[i], past[i + 1]) for i in range(0, len(past), 2)]


class ClassifierOutputs(nn.Module):
    """Calls a classifier student with the spec's inputs; returns the spec's outputs from its dict, in order.

    Text students take keyword inputs (``input_ids``, ``attention_mask``[, ``token_type_ids``]); vision students take
    the image positionally, whatever their argument is called (TinyConvNet's is ``images``).
    """

    def __init__(self, model: nn.Module, input_names: list[str], output_names: list[str], positional: bool):
        super().__init__()
        self.model, self.input_names, self.output_names, self.positional = model, input_names, output_names, positional

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = (
            self.model(*inputs) if self.positional else self.model(**dict(zip(self.input_names, inputs, strict=True)))
        )
        return tuple(out[name] for name in self.output_names)


class CausalLMWithPast(nn.Module):
    """(input_ids (B, T), attention_mask (B, P + T), past...) -> (logits (B, T, V), present...)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *past: torch.Tensor) -> tuple:
        from transformers import DynamicCache

        steps = input_ids.shape[1]
        # generate()'s positions: the number of real tokens before each one, so left padding does not shift them.
        position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)[:, -steps:]
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=DynamicCache(_pairs(past)),
            use_cache=True,
        )
        return (out.logits, *_flat_cache(out.cache.layers))


class Seq2SeqEncoder(nn.Module):
    """(input_ids (B, S), attention_mask (B, S)) -> encoder_hidden_states (B, S, D)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Seq2SeqDecoderWithPast(nn.Module):
    """(decoder_input_ids (B, T), encoder_attention_mask (B, S), encoder_hidden_states (B, S, D), past...) ->
    (logits (B, T, V), present...). The cross-attention cache starts empty, so it is recomputed every step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        decoder_input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple:
        from transformers import DynamicCache, EncoderDecoderCache

        out = self.model(
            encoder_outputs=(encoder_hidden_states,),
            attention_mask=encoder_attention_mask,
            decoder_input_ids=decoder_input_ids,
            cache=EncoderDecoderCache(DynamicCache(_pairs(past)), DynamicCache()),
            use_cache=True,
        )
        return (out.logits, *_flat_cache(out.cache.self_attention_cache.layers))


def wrap_for_export(model: nn.Module, spec: ExportSpec) -> nn.Module:
    """The wrapper whose ``forward(*inputs in spec order)`` returns the spec's outputs as a tuple."""
    if spec.component == "model":
        return ClassifierOutputs(model, spec.input_names, spec.output_names, positional=spec.family == "vision")
    if spec.component == "encoder":
        return Seq2SeqEncoder(model)
    return CausalLMWithPast(model) if spec.family == "causal-lm" else Seq2SeqDecoderWithPast(model)
