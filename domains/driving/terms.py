"""The driving objective as named Distiller terms: imitation plus the five reasoning-distillation losses.

Each term reads the planner's outputs (:mod:`suite.students.planner`) and the stored teacher targets
(:mod:`domains.driving.data`) and calls a generic loss from :mod:`suite.losses`. Terms that own parameters
(projectors, the reconstruction decoder) live here, in the Distiller, so the exported planner stays clean.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from domains.driving.scenarios import ACTIONS
from suite.losses import (
    MultiStageCosineAlignment,
    action_score_loss,
    cosine_alignment_loss,
    head_consistency_loss,
    imitation_loss,
    info_nce_loss,
    masked_reconstruction_loss,
    ssim_attention_loss,
)
from suite.losses.term import LossTerm

STAGES = ("perception", "prediction", "planning")
CLEARANCE_UNIT = 10.0  # metres: the clearance head's unit, so a few metres of error are on the Huber loss's scale


class Imitation(LossTerm):
    """Behaviour cloning of the expert: action cross-entropy + ``waypoint_weight`` x waypoint L2 (metres; 0.1 puts
    tens of metres on the cross-entropy's scale) + ``clearance_weight`` x the expert's clearance of every action.

    ``class_weights`` (A,) counter the expert's majority of IDLE; without them the planner never brakes.
    The clearances are the scores the expert decides by (metres of room each action leaves over its horizon): a
    small head, owned here and dropped at export, regresses them from the planning features, in units of 10 m
    (:func:`~suite.losses.action_score_loss`). A label says only which action won; the clearances say by how much,
    on every frame, which is what a planner waiting at a crossing has to judge. Off by default: at weight 1 it did
    not bring the imitation planner's progress at the intersection closer to the expert's
    (docs/results/driving_intersection).

    ``critical_weight`` counts the frames on which the expert found keeping lane and speed unsafe (its clearance
    of IDLE below ``keep_margin``: it had to brake or change lanes) 1 + ``critical_weight`` times in the
    cross-entropy: they are few, and a planner that misses them crashes. Frames without clearances (older shards)
    count once. Off by default: trained on the highway alone it did not lower the planner's collisions
    (docs/results/driving_highway).
    """

    needs_teacher = False

    def __init__(
        self,
        class_weights: torch.Tensor | None = None,
        waypoint_weight: float = 0.1,
        clearance_weight: float = 0.0,
        hidden: int = 0,
        num_actions: int = 0,
        critical_weight: float = 0.0,
        keep_margin: float = 1.0,
    ):
        super().__init__()
        self.register_buffer("class_weights", class_weights)
        self.waypoint_weight, self.clearance_weight = waypoint_weight, clearance_weight
        self.critical_weight, self.keep_margin = critical_weight, keep_margin
        if clearance_weight > 0 and min(hidden, num_actions) < 1:
            raise ValueError("the clearance head needs the planner's hidden size and its number of actions")
        self.clearance_head = nn.Linear(hidden, num_actions) if clearance_weight > 0 else None

    def forward(self, student_out, teacher_out, batch):
        labels = batch["labels"]
        loss = imitation_loss(
            student_out["logits"],
            labels["actions"],
            student_out["waypoints"],
            labels["waypoints"],
            labels["waypoint_mask"],
            waypoint_weight=self.waypoint_weight,
            class_weights=self.class_weights,
            sample_weights=self._critical_frames(labels["clearances"]) if self.critical_weight else None,
        )
        if self.clearance_head is None:
            return loss
        predicted = self.clearance_head(student_out["planning"])
        return loss + self.clearance_weight * action_score_loss(predicted, labels["clearances"], scale=CLEARANCE_UNIT)

    def _critical_frames(self, clearances: torch.Tensor) -> torch.Tensor:
        """(B,) frame weights: 1 + ``critical_weight`` where keeping lane and speed left the expert too little room
        (NaN, no clearance recorded, compares False: weight 1)."""
        unsafe = clearances[:, ACTIONS.index("IDLE")] < self.keep_margin
        return 1.0 + self.critical_weight * unsafe.float()


class StageAlignment(LossTerm):
    """VERDI, survey Eq. 10: each stage's features, projected, against the embedding of that stage's rationale."""

    def __init__(self, hidden: int, text_dim: int):
        super().__init__()
        self.align = MultiStageCosineAlignment(dict.fromkeys(STAGES, hidden), text_dim)

    def forward(self, student_out, teacher_out, batch):
        return self.align({k: student_out[k] for k in STAGES}, {k: teacher_out[k] for k in STAGES})


class AgentContrast(LossTerm):
    """VLP, survey Eq. 12: each agent's pooled token features vs the embedding of its description (InfoNCE).

    Negatives are the other agents of the batch (other cars of the same frame and of other frames), except those the
    teacher described with the same text: an identical description is the same positive, not a negative.
    """

    def __init__(self, token_dim: int, text_dim: int, temperature: float = 0.1):
        super().__init__()
        self.projector = nn.Linear(token_dim, text_dim)
        self.temperature = temperature

    def forward(self, student_out, teacher_out, batch):
        tokens = student_out["tokens"]  # (B, C, G, G)
        pooled = torch.einsum("bagh,bcgh->bac", teacher_out["agent_cells"], tokens)  # (B, A, C)
        mask = teacher_out["agent_mask"].bool()
        if mask.sum() < 2:
            return tokens.sum() * 0.0  # no negatives in this batch; keep the graph
        query = self.projector(pooled[mask])
        texts = teacher_out["agents"][mask]  # (N, D) embeddings: identical texts give identical rows
        groups = torch.unique(texts, dim=0, return_inverse=True)[1]
        return info_nce_loss(query, texts, temperature=self.temperature, groups=groups)


class MaskedTokens(LossTerm):
    """DiMA, survey Eq. 11: mask scene tokens, reconstruct the frame patch under each from its neighbours.

    A learnable mask token replaces a random ``ratio`` of the tokens; a light decoder (depthwise 3x3 conv, 1x1 conv)
    used only in training predicts the masked cells' pixels (the current frame pooled to one 4x4 patch per cell).
    """

    needs_teacher = False

    def __init__(self, token_dim: int, ratio: float = 0.5, patch: int = 4):
        super().__init__()
        self.ratio, self.patch = ratio, patch
        self.mask_token = nn.Parameter(torch.zeros(token_dim))
        # Depthwise 3x3 (each channel reads its neighbours) then 1x1: a full 3x3 conv here made every step of the
        # planners that use this term 1.5x slower on the CPU, for a decoder that is thrown away after training.
        self.decoder = nn.Sequential(
            nn.Conv2d(token_dim, token_dim, 3, padding=1, groups=token_dim),
            nn.GELU(),
            nn.Conv2d(token_dim, 3 * patch * patch, 1),
        )

    def forward(self, student_out, teacher_out, batch):
        tokens = student_out["tokens"]  # (B, C, Gh, Gw)
        b, c, rows, cols = tokens.shape
        masked = torch.rand(b, 1, rows, cols, device=tokens.device) < self.ratio
        filled = torch.where(masked, self.mask_token.view(1, c, 1, 1), tokens)
        pred = self.decoder(filled).flatten(2).transpose(1, 2)  # (B, Gh*Gw, 3*p*p)
        frame = batch["inputs"]["images"][:, -3:]  # the current frame, (B, 3, H, W)
        small = F.adaptive_avg_pool2d(frame, (rows * self.patch, cols * self.patch))
        target = F.unfold(small, self.patch, stride=self.patch).transpose(1, 2)  # (B, Gh*Gw, 3*p*p)
        return masked_reconstruction_loss(pred, target, masked.flatten(1))


class AttentionDistill(LossTerm):
    """Vi-LAD: SSIM between the perception stage's spatial attention and the teacher's relevance map."""

    def forward(self, student_out, teacher_out, batch):
        return ssim_attention_loss(student_out["attention"], teacher_out["relevance"], window_size=3)


class ReasoningConsistency(LossTerm):
    """DSDrive: the reasoning head learns the planning rationale, and its implied action must agree with the action
    head. The implied action is a softmax over the cosine of the reasoning vector with each action's prototype
    (the mean planning-rationale embedding of that action); the two heads meet in a symmetric KL.
    """

    def __init__(self, prototypes: torch.Tensor, temperature: float = 0.1):
        super().__init__()
        self.register_buffer("prototypes", prototypes)  # (A, D)
        self.temperature = temperature

    def forward(self, student_out, teacher_out, batch):
        reasoning = student_out["reasoning"]
        learn = cosine_alignment_loss(reasoning, teacher_out["planning"])
        intent = F.normalize(reasoning, dim=-1) @ self.prototypes.T / self.temperature  # (B, A)
        return learn + head_consistency_loss(intent, student_out["logits"])


def build_terms(
    variant_terms: tuple[str, ...],
    planner,
    prototypes: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    settings: Mapping[str, float] | None = None,
) -> dict[str, LossTerm]:
    """The named terms of one ablation variant (always with imitation). ``settings`` holds the recipe's
    ``waypoint_weight``, ``clearance_weight``, ``critical_weight``, ``keep_margin``, ``agents_temperature``,
    ``consistency_temperature`` and ``mask_ratio`` (defaults: 0.1, 0, 0, 1, 0.1, 0.1, 0.5)."""
    s = {"waypoint_weight": 0.1, "clearance_weight": 0.0, "critical_weight": 0.0, "keep_margin": 1.0,
         "agents_temperature": 0.1, "consistency_temperature": 0.1, "mask_ratio": 0.5, **(settings or {})}  # fmt: skip
    text_dim = prototypes.shape[1]
    factories = {
        "align": lambda: StageAlignment(planner.hidden, text_dim),
        "agents": lambda: AgentContrast(planner.token_dim, text_dim, s["agents_temperature"]),
        "recon": lambda: MaskedTokens(planner.token_dim, s["mask_ratio"]),
        "attention": lambda: AttentionDistill(),
        "consistency": lambda: ReasoningConsistency(prototypes, s["consistency_temperature"]),
    }
    unknown = sorted(set(variant_terms) - set(factories))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown}; choose from {sorted(factories)}")
    imitation = Imitation(class_weights, s["waypoint_weight"], s["clearance_weight"], planner.hidden,
                          planner.action_head.out_features, s["critical_weight"], s["keep_margin"])  # fmt: skip
    return {"imitation": imitation, **{name: factories[name]() for name in variant_terms}}


TERM_CLASSES = {
    "imitation": Imitation,
    "align": StageAlignment,
    "agents": AgentContrast,
    "recon": MaskedTokens,
    "attention": AttentionDistill,
    "consistency": ReasoningConsistency,
}


def distils_from_teacher(variant_terms: tuple[str, ...]) -> bool:
    """Whether any term of a variant learns from the teacher (DiMA's reconstruction learns from pixels only)."""
    return any(TERM_CLASSES[name].needs_teacher for name in variant_terms)
