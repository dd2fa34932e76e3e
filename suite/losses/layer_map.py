r"""Intermediate-layer distillation for layer-truncated students (TinyBERT, Jiao et al. 2020).

A layer map :math:`g` sends each chosen student layer :math:`m` to a teacher layer :math:`g(m)`; with hidden states
:math:`H` (index 0: the embeddings, then one per layer, the Hugging Face convention) and attention maps :math:`A`
(index 1 = the first layer's),

.. math:: \mathcal{L} = \sum_m \Big[ w_h\, \mathrm{MSE}\big(H^S_m W, H^T_{g(m)}\big)
          + w_a\, \mathrm{MSE}\big(A^S_m, A^T_{g(m)}\big) \Big]

over unpadded tokens, with :math:`W` the identity when widths match (a MiniLM cut to its first layers) and a learnt
projection otherwise (:func:`~suite.losses.feature.feature_distillation_loss`'s FitNets projector). Attention maps
need equal head counts, or are compared head-averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from suite.config import check
from suite.losses.attention import attention_transfer_loss
from suite.losses.term import LossTerm


@dataclass
class LayerMapConfig:
    """Student layer -> teacher layer, and the weights of the hidden-state and attention parts."""

    layer_map: dict[int, int] = field(
        default_factory=lambda: {1: 3, 2: 6},
        metadata={"help": "student hidden-state index -> teacher's (0: embeddings; 2-layer student of a 6-layer "
                  "teacher: {1: 3, 2: 6}, TinyBERT's uniform map)"},
    )  # fmt: skip
    hidden: float = field(default=1.0, metadata={"help": "weight of the hidden-state MSE"})
    attention: float = field(default=1.0, metadata={"help": "weight of the attention-map MSE (0: hidden only)"})

    def __post_init__(self) -> None:
        self.layer_map = {int(k): int(v) for k, v in self.layer_map.items()}
        check(bool(self.layer_map), "layer_map", "at least one student layer")
        check(min(self.hidden, self.attention) >= 0 and self.hidden + self.attention > 0, "hidden",
              "weights must be >= 0 and not both 0")  # fmt: skip
        check(self.attention == 0 or 0 not in self.layer_map, "layer_map",
              "the embeddings (index 0) have no attention map: map them with attention: 0")  # fmt: skip


def masked_mse(student: Tensor, teacher: Tensor, mask: Tensor | None) -> Tensor:
    """Mean squared error over the features of unpadded tokens, ``(B, T, D)`` with ``mask (B, T)``."""
    squared = (student - teacher).pow(2).mean(-1)
    if mask is None:
        return squared.mean()
    mask = mask.to(squared.dtype)
    return (squared * mask).sum() / mask.sum().clamp_min(1.0)


class LayerMapKD(LossTerm):
    """The loss of the module docstring as a Distiller term; reads ``hidden_states`` (and ``attentions`` when the
    attention weight is > 0) from both models' outputs, which need a live teacher."""

    def __init__(self, student_dim: int, teacher_dim: int, config: LayerMapConfig | None = None):
        super().__init__()
        self.config = config or LayerMapConfig()
        same = student_dim == teacher_dim
        self.projectors = nn.ModuleDict({str(m): nn.Identity() if same else nn.Linear(student_dim, teacher_dim)
                                         for m in self.config.layer_map})  # fmt: skip

    def forward(self, student_out, teacher_out, batch):
        if teacher_out is None:
            raise ValueError("layer-map distillation needs a live teacher's hidden states")
        mask = batch["inputs"].get("attention_mask")
        total = torch.zeros((), device=student_out["logits"].device)
        for m, t in self.config.layer_map.items():
            if self.config.hidden:
                hidden = self.projectors[str(m)](student_out["hidden_states"][m])
                total = total + self.config.hidden * masked_mse(hidden, teacher_out["hidden_states"][t], mask)
            if self.config.attention:
                s_attn, t_attn = student_out["attentions"][m - 1], teacher_out["attentions"][t - 1]
                averaged = s_attn.shape[1] != t_attn.shape[1]  # unequal head counts: compare head means
                attention = attention_transfer_loss(s_attn, t_attn, mask, average_heads=averaged)
                total = total + self.config.attention * attention
        return total
