"""Structural similarity (SSIM), per frame, BasicSR / Wang et al. conventions."""

from __future__ import annotations

from typing import Unpack

import torch
import torch.nn.functional as F

from ..errors import UserError
from ._common import FrameOptions, per_frame_metric

__all__ = ["ssim", "gaussian_window_1d"]

WINDOW_SIZE = 11
SIGMA = 1.5
_CHUNK = 16  # frames*channels processed per convolution call (bounds memory on long videos)


def gaussian_window_1d(size: int = WINDOW_SIZE, sigma: float = SIGMA, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (odd) and std ``sigma`` pixels, shape ``(size,)``.

    Same taps as ``cv2.getGaussianKernel(11, 1.5)`` and scikit-image's truncated Gaussian
    (``truncate=3.5`` gives radius 5 for ``sigma=1.5``).
    """
    r = (size - 1) / 2.0
    t = torch.arange(size, dtype=dtype) - r
    g = torch.exp(-(t**2) / (2.0 * sigma**2))
    return g / g.sum()


def _ssim_frames(xf: torch.Tensor, rf: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-frame SSIM of ``(N, C, H, W)`` float64 frames -> ``(N,)``."""
    n, c, h, w = xf.shape
    if min(h, w) < WINDOW_SIZE:
        raise UserError(f"ssim needs frames of at least {WINDOW_SIZE}x{WINDOW_SIZE} pixels, got {h}x{w}")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    g = gaussian_window_1d(dtype=xf.dtype).to(xf.device)
    kv = g.view(1, 1, -1, 1)
    kh = g.view(1, 1, 1, -1)
    xs = xf.reshape(n * c, 1, h, w)
    rs = rf.reshape(n * c, 1, h, w)
    out = []
    for i in range(0, n * c, _CHUNK):
        a, b = xs[i : i + _CHUNK], rs[i : i + _CHUNK]
        k = a.shape[0]
        # One separable 'valid' Gaussian pass over the five moment images.
        stack = torch.cat((a, b, a * a, b * b, a * b), 0)
        filt = F.conv2d(F.conv2d(stack, kv), kh)
        mu_a, mu_b, e_aa, e_bb, e_ab = filt.split(k, 0)
        var_a = e_aa - mu_a.square()
        var_b = e_bb - mu_b.square()
        cov = e_ab - mu_a * mu_b
        num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
        den = (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
        out.append((num / den).flatten(1).mean(1))
    return torch.cat(out).view(n, c).mean(1)


def ssim(x: torch.Tensor, ref: torch.Tensor, **options: Unpack[FrameOptions]) -> float | torch.Tensor:
    """Structural similarity index, per frame then averaged.

    Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error Visibility to
    Structural Similarity", IEEE TIP 2004, with BasicSR's ``calculate_ssim`` conventions:
    11x11 Gaussian window (sigma 1.5), ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` with
    ``L = data_range``, population (biased) statistics, 'valid' filtering (the 5-pixel
    border of the SSIM map is dropped), SSIM map averaged per channel and then over
    channels. Equals scikit-image's ``structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``. Implemented with separable float64
    ``conv2d`` on all frames at once; inputs are detached.

    Args:
        x: restored image ``(B, C, H, W)`` or video ``(B, C, T, H, W)`` in
            ``[0, data_range]``; frames must be at least 11x11 after cropping.
        ref: ground truth of the same shape.
        Keyword options (:class:`FrameOptions`, defaults 0 / False / 1.0 / "mean"):
        crop_border: pixels removed from each spatial border before the computation.
        y_channel: evaluate on BT.601 luma only (needs C = 3, RGB; see
            :func:`vidrestore.metrics.rgb_to_y`).
        data_range: peak signal value (1.0 for ``[0, 1]`` inputs).
        reduction: ``"mean"`` returns a Python float averaged over frames and batch;
            ``"none"`` returns per-frame values, float64 ``(B, T)`` for videos or ``(B,)``
            for images.

    Returns:
        SSIM in ``[-1, 1]`` (1 for identical frames).

    Raises:
        UserError: on mismatched shapes, NaN/inf values, frames smaller than the window,
            bad ``crop_border`` or ``y_channel`` on non-RGB input.
    """
    return per_frame_metric(x, ref, _ssim_frames, **options)

