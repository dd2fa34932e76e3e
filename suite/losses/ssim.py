r"""SSIM between attention/relevance maps: Vi-LAD attention distillation (survey section 3.5).

Vi-LAD (2025), "Vision-Language Attention Distillation for socially-aware robot navigation";
Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error visibility to structural similarity",
IEEE TIP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.losses._reduce import check_same_shape, upcast


def ssim(
    x: Tensor, y: Tensor, window_size: int = 5, sigma: float = 1.0, c1: float = 0.01**2, c2: float = 0.03**2
) -> Tensor:
    r"""Mean SSIM of two map batches ``(B, 1, H, W)`` or ``(B, H, W)``, averaged over the batch and pixels:

    .. math:: \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
              {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}

    with local means, variances and covariance taken under a normalised Gaussian window (``window_size`` odd,
    ``sigma``). The maps are reflect-padded by ``window_size // 2``, so the output keeps the input size and small maps
    (8x8) work without a zero border dragging the edge statistics down; reflect padding needs H, W > window_size // 2.
    The default C1, C2 are :math:`(0.01 L)^2, (0.03 L)^2` for a data range L = 1.
    """
    check_same_shape(x, y, "maps")
    if x.dim() == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"maps must be (B, 1, H, W) or (B, H, W), got {tuple(x.shape)}")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {window_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    pad = window_size // 2
    if min(x.shape[-2:]) <= pad:
        raise ValueError(f"maps of size {tuple(x.shape[-2:])} are too small for window_size {window_size}")
    x, y = upcast(x), upcast(y)

    offsets = torch.arange(window_size, dtype=x.dtype, device=x.device) - pad
    gauss = torch.exp(-offsets.pow(2) / (2 * sigma**2))
    gauss = gauss / gauss.sum()
    window = torch.outer(gauss, gauss).expand(5, 1, window_size, window_size)  # one filter per statistic
    # One depthwise conv gives all five local moments: E[x], E[y], E[x^2], E[y^2], E[xy].
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5, H, W)
    moments = F.conv2d(F.pad(moments, (pad, pad, pad, pad), mode="reflect"), window, groups=5)
    mu_x, mu_y, xx, yy, xy = moments.unbind(dim=1)
    var_x, var_y, cov = xx - mu_x.pow(2), yy - mu_y.pow(2), xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean()


def ssim_attention_loss(student_map: Tensor, teacher_map: Tensor, window_size: int = 5, sigma: float = 1.0) -> Tensor:
    r"""Vi-LAD attention distillation: :math:`\mathcal{L} = 1 - \mathrm{SSIM}(\bar A^S, \bar A^T)`, in [0, 2].

    :math:`\bar A = A / \max(\max_{hw} A, \epsilon)` rescales each non-negative map to [0, 1] per sample, so the loss
    compares where the maps attend, not their scale (``A`` and ``3A`` give 0); an all-zero map stays zero.
    Shapes and windowing as in :func:`ssim`.
    """
    check_same_shape(student_map, teacher_map, "maps")
    return 1.0 - ssim(_max_normalise(student_map), _max_normalise(teacher_map), window_size, sigma)


def _max_normalise(attn: Tensor) -> Tensor:
    attn = upcast(attn)
    peak = attn.flatten(1).amax(dim=1).clamp_min(1e-8)  # (B,)
    return attn / peak.view(-1, *([1] * (attn.dim() - 1)))
