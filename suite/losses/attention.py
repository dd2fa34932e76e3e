r"""Attention-map transfer (TinyBERT).

Jiao et al. (2020), "TinyBERT: Distilling BERT for Natural Language Understanding", Findings of EMNLP,
arXiv:1909.10351.
"""

from __future__ import annotations

from torch import Tensor

from suite.losses._reduce import masked_mean, upcast


def attention_transfer_loss(
    student_attn: Tensor, teacher_attn: Tensor, mask: Tensor | None = None, average_heads: bool = False
) -> Tensor:
    r"""MSE between attention maps of shape ``(B, H, T, T)``:

    .. math:: \mathcal{L}_{attn} = \frac{1}{|\mathcal{V}|} \sum_{(b,h,i,j) \in \mathcal{V}} (A^S_{bhij} - A^T_{bhij})^2

    ``mask (B, T)`` marks valid tokens; entry (i, j) counts when both query i and key j are valid, so padding rows and
    columns (which may hold ``-inf`` scores) are excluded. Head counts must match, unless ``average_heads=True``, which
    compares head-averaged maps ``(B, T, T)`` and so works across different head counts. Layer mapping is the
    caller's job: pass one (student layer, teacher layer) pair per call.
    """
    if student_attn.dim() != 4 or teacher_attn.dim() != 4:
        raise ValueError(
            f"attention maps must be (B, H, T, T), got student {tuple(student_attn.shape)}, "
            f"teacher {tuple(teacher_attn.shape)}"
        )
    if student_attn.shape[1] != teacher_attn.shape[1] and not average_heads:
        raise ValueError(
            f"student has {student_attn.shape[1]} attention heads, teacher has {teacher_attn.shape[1]}; "
            "pass average_heads=True to compare head-averaged maps"
        )
    if average_heads:
        student_attn, teacher_attn = student_attn.mean(1, keepdim=True), teacher_attn.mean(1, keepdim=True)
    if student_attn.shape[0] != teacher_attn.shape[0] or student_attn.shape[2:] != teacher_attn.shape[2:]:
        raise ValueError(
            f"student attention {tuple(student_attn.shape)} and teacher {tuple(teacher_attn.shape)} differ in B or T"
        )
    student_attn, teacher_attn = upcast(student_attn), upcast(teacher_attn)
    if mask is None:
        return (student_attn - teacher_attn).pow(2).mean()
    batch, _, seq, _ = student_attn.shape
    if mask.shape != (batch, seq):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected (B, T) = ({batch}, {seq})")
    valid = mask.bool()
    pair = (valid[:, :, None] & valid[:, None, :]).unsqueeze(1).expand_as(student_attn)  # (B, H, T, T)
    # Zero excluded entries before subtracting: a -inf score there would otherwise give NaN gradients.
    student_attn, teacher_attn = student_attn.where(pair, 0.0), teacher_attn.where(pair, 0.0)
    return masked_mean((student_attn - teacher_attn).pow(2), pair)
