r"""Relational KD: match the geometry of a batch of embeddings rather than the embeddings themselves.

Park, Kim, Lu & Cho (2019), "Relational Knowledge Distillation", CVPR, arXiv:1904.05068.

Embeddings are ``(N, D_S)`` for the student and ``(N, D_T)`` for the teacher: the dims may differ, since only
distances and angles within each set are compared, so no projector is needed. Both use the Huber loss
(``F.smooth_l1_loss``, :math:`\delta = 1`) as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.losses._reduce import upcast

_EPS = 1e-12


def _check_embeddings(student_emb: Tensor, teacher_emb: Tensor, min_count: int) -> None:
    if student_emb.dim() != 2 or teacher_emb.dim() != 2:
        raise ValueError(
            f"embeddings must be (N, D), got student {tuple(student_emb.shape)}, teacher {tuple(teacher_emb.shape)}"
        )
    if student_emb.shape[0] != teacher_emb.shape[0]:
        raise ValueError(f"student has {student_emb.shape[0]} embeddings, teacher {teacher_emb.shape[0]}")
    if student_emb.shape[0] < min_count:
        raise ValueError(f"need at least {min_count} embeddings, got {student_emb.shape[0]}")


def _normalised_distances(emb: Tensor) -> Tensor:
    """Distances of the N(N-1)/2 pairs i < j, divided by their mean so both sets share a scale."""
    i, j = torch.triu_indices(emb.shape[0], emb.shape[0], offset=1, device=emb.device)
    # Clamp before sqrt: duplicate embeddings would otherwise give an infinite gradient.
    distances = (emb[i] - emb[j]).pow(2).sum(-1).clamp_min(_EPS).sqrt()
    return distances / distances.mean()


def rkd_distance_loss(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    r"""RKD-D: :math:`\frac{1}{|P|}\sum_{(i,j) \in P} \ell_\delta\big(\psi_D(s_i, s_j), \psi_D(t_i, t_j)\big)`,

    with :math:`\psi_D(x_i, x_j) = \|x_i - x_j\|_2 / \mu`, :math:`\mu` the mean distance over the pairs
    :math:`P = \{(i, j): i < j\}` of the batch. (The paper's code averages over all N² entries, diagonal zeros
    included; averaging over distinct pairs only rescales the loss by (N-1)/N.)
    """
    _check_embeddings(student_emb, teacher_emb, min_count=2)
    return F.smooth_l1_loss(
        _normalised_distances(upcast(student_emb)), _normalised_distances(upcast(teacher_emb)), beta=1.0
    )


def _apex_cosines(emb: Tensor) -> Tensor:
    """cos of the angle at apex j between e_i - e_j and e_k - e_j, for all (j, i, k); (N, D) -> (N, N, N)."""
    directions = F.normalize(emb.unsqueeze(0) - emb.unsqueeze(1), dim=-1, eps=_EPS)  # [j, i] = unit(e_i - e_j)
    return directions @ directions.transpose(1, 2)


def rkd_angle_loss(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    r"""RKD-A: :math:`\frac{1}{|T|}\sum_{(i,j,k) \in T} \ell_\delta\big(\psi_A(s_i,s_j,s_k), \psi_A(t_i,t_j,t_k)\big)`,

    with :math:`\psi_A(x_i, x_j, x_k) = \langle \frac{x_i - x_j}{\|x_i - x_j\|}, \frac{x_k - x_j}{\|x_k - x_j\|}
    \rangle` the cosine of the angle at :math:`x_j`, over triplets :math:`T` of distinct indices. (The paper's code
    also counts degenerate triplets, whose cosines are 0 or 1 for both models.) Memory is O(N³).
    """
    _check_embeddings(student_emb, teacher_emb, min_count=3)
    n = student_emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=student_emb.device)
    distinct = ~(eye[:, :, None] | eye[:, None, :] | eye[None, :, :])  # [j, i, k]: j != i, j != k, i != k
    student_cos = _apex_cosines(upcast(student_emb))[distinct]
    teacher_cos = _apex_cosines(upcast(teacher_emb))[distinct]
    return F.smooth_l1_loss(student_cos, teacher_cos, beta=1.0)
