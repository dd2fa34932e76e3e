r"""Self-distillation and simultaneous training (survey 3.4): the student's deepest layer teaches its shallow ones,
and two students teach each other.

**Shallow exits** (Zhang et al. 2019, "Be Your Own Teacher"). A classifier head on the mean-pooled output of an
intermediate layer :math:`i` gives logits :math:`z_i`; the student's own head gives :math:`z_C`. Each exit learns

.. math:: \mathcal{L}_i = (1 - \alpha)\, \mathrm{CE}(\sigma(z_i), y)
          + \alpha\, \tau^2\, \mathrm{KL}\big(\sigma(z_C / \tau) \,\|\, \sigma(z_i / \tau)\big)
          + \lambda\, \lVert \bar h_i - \bar h_C \rVert_2^2

with the deepest output (:math:`z_C`, :math:`\bar h_C`) held fixed (no gradient), so the exits learn from it and
their hints shape the shared lower layers. The exit heads belong to the loss term, so the exported student is
unchanged; the deepest head keeps learning from the labels through the task term.

**Mutual learning** (Zhang et al. 2018, "Deep Mutual Learning"): two models trained together, each with CE plus
:math:`\tau^2 \mathrm{KL}(p_{\text{other}} \| p_{\text{self}})` against the other's (fixed) prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from suite.config import check
from suite.losses._reduce import masked_mean
from suite.losses.kd import soft_label_kd_loss
from suite.losses.term import LossTerm


@dataclass
class ShallowExitsConfig:
    """Which layers get an exit and how each learns (Zhang et al. 2019's defaults: alpha 0.3, tau 3)."""

    layers: list[int] = field(default_factory=lambda: [1], metadata={"help": "hidden_states indices given an exit"})
    alpha: float = field(default=0.3, metadata={"help": "KL-to-deepest weight; 1 - alpha weights the exit's CE"})
    temperature: float = field(default=3.0, metadata={"help": "softmax temperature of the KL"})
    hint: float = field(default=0.03, metadata={"help": "lambda: weight of the feature hint to the deepest layer"})

    def __post_init__(self) -> None:
        check(bool(self.layers), "layers", "at least one exit")
        check(0.0 <= self.alpha <= 1.0, "alpha", f"must be in [0, 1], got {self.alpha}")
        check(self.temperature > 0 and self.hint >= 0, "temperature", "temperature > 0 and hint >= 0")


def pooled(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    """Mean of ``hidden (B, T, D)`` over the unpadded positions: the students' own sentence pooling."""
    from suite.students.text import masked_mean as mean_over_tokens

    return hidden.mean(1) if attention_mask is None else mean_over_tokens(hidden, attention_mask)


def exit_loss(exit_logits: Tensor, exit_features: Tensor, deepest_logits: Tensor, deepest_features: Tensor,
              labels: Tensor, config: ShallowExitsConfig) -> Tensor:  # fmt: skip
    """:math:`\\mathcal{L}_i` of one exit (module docstring); the deepest output is detached here."""
    ce = F.cross_entropy(exit_logits, labels)
    kl = soft_label_kd_loss(exit_logits, deepest_logits.detach(), temperature=config.temperature)
    hint = (exit_features - deepest_features.detach()).pow(2).sum(-1).mean()
    return (1 - config.alpha) * ce + config.alpha * kl + config.hint * hint


class ShallowExits(LossTerm):
    """The exits' losses, summed, as a Distiller term (``needs_teacher`` is False: the student teaches itself).
    Reads ``student_out["hidden_states"]`` (embeddings then one per layer) and ``["logits"]``."""

    needs_teacher = False

    def __init__(self, dim: int, num_labels: int, config: ShallowExitsConfig | None = None):
        super().__init__()
        self.config = config or ShallowExitsConfig()
        self.heads = nn.ModuleDict({str(layer): nn.Linear(dim, num_labels) for layer in self.config.layers})

    def exit_logits(self, hidden_states: tuple[Tensor, ...], attention_mask: Tensor | None) -> dict[int, Tensor]:
        """Each exit's logits: for reports of how early the student could stop."""
        return {int(k): head(pooled(hidden_states[int(k)], attention_mask)) for k, head in self.heads.items()}

    def forward(self, student_out, teacher_out, batch):
        hidden, mask = student_out["hidden_states"], batch["inputs"].get("attention_mask")
        deepest = pooled(hidden[-1], mask)
        losses = [exit_loss(self.heads[str(layer)](features := pooled(hidden[layer], mask)), features,
                            student_out["logits"], deepest, batch["labels"], self.config)
                  for layer in self.config.layers]  # fmt: skip
        return torch.stack(losses).sum()


def mutual_learning_losses(logits_a: Tensor, logits_b: Tensor, labels: Tensor, temperature: float = 1.0,
                           mask: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Deep mutual learning: ``(L_a, L_b)``, each CE plus :math:`\\tau^2 \\mathrm{KL}` to the other's detached
    prediction; backpropagate their sum to train both models in one step."""
    ce_a = masked_mean(F.cross_entropy(logits_a, labels, reduction="none"), mask)
    ce_b = masked_mean(F.cross_entropy(logits_b, labels, reduction="none"), mask)
    kl_a = soft_label_kd_loss(logits_a, logits_b.detach(), temperature=temperature, mask=mask)
    kl_b = soft_label_kd_loss(logits_b, logits_a.detach(), temperature=temperature, mask=mask)
    return ce_a + kl_a, ce_b + kl_b


class MutualPair(nn.Module):
    """A student and a peer trained together in one loop (deep mutual learning, or a teacher trained simultaneously
    with its student): the student's outputs, plus the peer's logits as ``peer_logits``. Only the student ships."""

    def __init__(self, student: nn.Module, peer: nn.Module):
        super().__init__()
        self.student, self.peer = student, peer

    def forward(self, **inputs):
        out = dict(self.student(**inputs))
        return out | {"peer_logits": self.peer(**inputs)["logits"]}


class MutualKD(LossTerm):
    """The ``mutual`` term on a :class:`MutualPair`: the student's KL to the peer, and the peer's own CE + KL to the
    student (:func:`mutual_learning_losses` without the student's CE, which the ``task`` term carries)."""

    needs_teacher = False

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_out, teacher_out, batch):
        student, peer, labels = student_out["logits"], student_out["peer_logits"], batch["labels"]
        loss_student, loss_peer = mutual_learning_losses(student, peer, labels, self.temperature)
        return loss_student - F.cross_entropy(student, labels) + loss_peer
