"""Blind estimation of additive white Gaussian noise in a video or measurement.

Two classical estimators of the noise standard deviation ``sigma`` (pixel units, the same as
``--sigma-y``), both computed per frame and channel and combined by the median:

* ``"immerkaer"``: J. Immerkær, "Fast Noise Variance Estimation", CVIU 64(2), 1996. The image
  is filtered with the 3x3 mask ``M = [[1,-2,1],[-2,4,-2],[1,-2,1]]`` (the difference of two
  Laplacians, which cancels constant, linear and most quadratic image structure); for white
  noise ``E|M * n| = sigma * sqrt(36) * sqrt(2 / pi)``, so
  ``sigma = sqrt(pi / 2) / 6 * mean(|M * I|)``.
* ``"mad"``: D. Donoho, "De-noising by soft-thresholding", IEEE TIT 41(3), 1995: the median
  absolute value of the finest diagonal Haar wavelet coefficients divided by 0.6745 (robust
  to edges, biased upwards by fine texture).

Both overestimate on strongly textured content and cannot see noise that an operator has
already blurred away; they are meant for measurements whose noise was added last
(``y = A x + sigma_y n``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["NOISE_ESTIMATORS", "estimate_noise_sigma"]

NOISE_ESTIMATORS = ("immerkaer", "mad")

_MASK = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def _frames(y: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` or ``(B, C, H, W)`` -> ``(N, 1, H, W)`` float64 planes."""
    if y.ndim == 5:
        b, c, t, h, w = y.shape
        return y.permute(0, 2, 1, 3, 4).reshape(b * t * c, 1, h, w).double()
    if y.ndim == 4:
        b, c, h, w = y.shape
        return y.reshape(b * c, 1, h, w).double()
    raise UserError(f"noise estimation expects (B, C, T, H, W) or (B, C, H, W), got shape {tuple(y.shape)}")


def estimate_noise_sigma(y: torch.Tensor, method: str = "immerkaer") -> float:
    """Estimate the std of additive white Gaussian noise in ``y`` (pixel units).

    Args:
        y: video ``(B, C, T, H, W)`` or images ``(B, C, H, W)``; frames at least 4x4. An
            iterable of such tensors (consecutive chunks of one video) gives the same value
            as their concatenation, with one chunk in memory at a time.
        method: ``"immerkaer"`` or ``"mad"`` (see the module docstring).

    Returns:
        The median over frames and channels of the per-plane estimates (a float >= 0).
    """
    if method not in NOISE_ESTIMATORS:
        raise UserError(f"noise estimator must be one of {', '.join(NOISE_ESTIMATORS)}, got {method!r}")
    if not isinstance(y, torch.Tensor):  # chunks of one video: per-plane estimates, one median
        per = [_plane_estimates(chunk, method) for chunk in y]
        if not per:
            raise UserError("noise estimation got no frames")
        return float(torch.cat(per).median())
    return float(_plane_estimates(y, method).median())


def _plane_estimates(y: torch.Tensor, method: str) -> torch.Tensor:
    """Per frame-and-channel estimates ``(N,)`` (float64) of :func:`estimate_noise_sigma`."""
    planes = _frames(y)
    if planes.shape[-1] < 4 or planes.shape[-2] < 4:
        raise UserError(f"noise estimation needs frames of at least 4x4 pixels, got {tuple(planes.shape[-2:])}")
    if method == "immerkaer":
        r = F.conv2d(planes, _MASK.to(planes)[None, None])  # valid part: (H-2) x (W-2)
        per = r.abs().mean(dim=(1, 2, 3)) * math.sqrt(math.pi / 2.0) / 6.0
    else:
        h, w = (planes.shape[-2] // 2) * 2, (planes.shape[-1] // 2) * 2
        p = planes[..., :h, :w]
        hh = (p[..., 0::2, 0::2] - p[..., 0::2, 1::2] - p[..., 1::2, 0::2] + p[..., 1::2, 1::2]) / 2.0
        per = hh.abs().flatten(1).median(dim=1).values / 0.6745
    return per
