"""Run a flow estimator at a reduced scale and bring its flow back to full resolution.

A learned estimator trained on small crops (PVDNet's BIMNet learned on 96x96 crops) is
only reliable near its training size: its coarsest pyramid levels never saw more than a
few feature cells, and at 256x320 or larger its flow can be worse than no flow at all.
:func:`pyramid_flow` keeps such an estimator in range by estimating on a copy of the two
frames downscaled so that the shorter side is about ``short_side`` pixels, then upsampling
the flow and multiplying each component by the size ratio of its axis
(:func:`~vidrestore.flow.warp.resize_flow`). Motion shrinks with the image, so the
estimator also sees displacements closer to those of its training data; the price is
resolution: flow detail finer than the downscale factor is lost, and errors of the coarse
flow are multiplied by the factor.

Downscaling is antialiased (``F.interpolate(mode="bilinear", antialias=True)``), the
analogue of building one level of an image pyramid (Burt & Adelson, "The Laplacian
Pyramid as a Compact Image Code", IEEE Trans. Communications 1983).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from .estimators import FlowEstimator
from .warp import resize_flow

__all__ = ["pyramid_size", "pyramid_flow"]


def pyramid_size(h: int, w: int, short_side: int = 128, multiple: int = 32) -> tuple[int, int]:
    """Size at which :func:`pyramid_flow` estimates a ``h x w`` pair.

    The factor ``f = min(h, w) / short_side`` (at least 1: frames are never upscaled)
    divides both sides, which are then rounded to the nearest multiple of ``multiple``
    (at least ``multiple``), so networks that need sizes divisible by 32 see the whole
    frame without a cropped border. Frames whose shorter side is at most ``short_side``
    keep their size.

    Returns:
        ``(h_small, w_small)``.
    """
    if short_side < multiple:
        raise UserError(f"short_side must be at least {multiple}, got {short_side}")
    f = min(h, w) / float(short_side)
    if f <= 1.0:
        return h, w

    def snap(n: float) -> int:
        return max(multiple, int(round(n / multiple)) * multiple)

    return snap(h / f), snap(w / f)


def pyramid_flow(
    estimator: FlowEstimator,
    target: torch.Tensor,
    source: torch.Tensor,
    *,
    short_side: int = 128,
    multiple: int = 32,
) -> torch.Tensor:
    """Backward flow ``target -> source`` estimated on downscaled copies, in full-size pixels.

    Args:
        estimator: ``(target, source) -> (B, 2, h, w)`` backward flow in pixels of its input
            (``warp(source, flow) ≈ target``), e.g. a learned network's wrapper or
            :func:`~vidrestore.flow.dis_flow`.
        target, source: ``(B, C, H, W)`` frames in ``[0, 1]``.
        short_side: the shorter side of the copy the estimator sees (about; see
            :func:`pyramid_size`). Frames already that small are passed through unchanged.
        multiple: the copy's sides are multiples of this.

    Returns:
        ``(B, 2, H, W)`` backward flow in pixels of the full-size frames: the estimate
        upsampled bilinearly with its x component multiplied by ``W / w`` and its y
        component by ``H / h``.
    """
    if target.shape != source.shape or target.ndim != 4:
        raise UserError(f"pyramid_flow needs two (B, C, H, W) frames of one shape, got {tuple(target.shape)} and {tuple(source.shape)}")
    h, w = target.shape[-2:]
    hs, ws = pyramid_size(h, w, short_side, multiple)
    if (hs, ws) == (h, w):
        return estimator(target, source)

    def down(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)

    flow = estimator(down(target), down(source))
    return resize_flow(flow.float(), (h, w))
