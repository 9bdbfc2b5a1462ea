"""Flow between two frames with its forward–backward reliability, in one call.

:func:`flow_pair` is the small interface used by video-consistency wrappers (DiffIR2VR-Zero,
:mod:`vidrestore.consistency`): ``flow_pair(frame_a, frame_b)`` returns the backward flow of
``frame_a`` into ``frame_b`` together with a binary occlusion mask and a soft confidence. The
estimator is pluggable: a registered name (``"dis"`` by default, OpenCV Dense Inverse Search,
no weights) or any :class:`~vidrestore.flow.FlowEstimator` callable, e.g. a learned network
(RAFT, GMFlow, PVDNet's BIMNet) wrapped by the caller as ``lambda target, source: net(...)``
returning ``(B, 2, H, W)`` pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .consistency import fb_confidence, fb_consistency
from .estimators import FlowEstimator, estimate_flow
from .warp import inside_mask, warp

__all__ = ["FlowPair", "flow_pair"]


class FlowPair(NamedTuple):
    """Flow from frame A into frame B plus its reliability, all on A's grid.

    Attributes:
        flow: ``(B, 2, H, W)`` float32 pixels (x, y): ``warp(frame_b, flow) ≈ frame_a``.
            ``flow.permute(0, 2, 3, 1)`` gives the ``(B, H, W, 2)`` layout.
        mask: ``(B, 1, H, W)`` float in ``{0, 1}``: 1 where the pixel of A passes the
            forward–backward check (UnFlow, alpha 0.01, beta 0.5) and its match lies inside B.
        confidence: ``(B, 1, H, W)`` soft confidence ``exp(-||f + b̂||₂)`` in ``(0, 1]``
            (DiffIR2VR-Zero Eq. 5 as released), 0 where the match leaves B.
    """

    flow: torch.Tensor
    mask: torch.Tensor
    confidence: torch.Tensor


def flow_pair(
    frame_a: torch.Tensor,
    frame_b: torch.Tensor,
    *,
    method: str | FlowEstimator = "dis",
    alpha: float = 0.01,
    beta: float = 0.5,
) -> FlowPair:
    """Backward flow of ``frame_a`` into ``frame_b`` with occlusion mask and confidence.

    Both directions are estimated (``a -> b`` and ``b -> a``) and checked against each other
    (:func:`~vidrestore.flow.fb_consistency`, :func:`~vidrestore.flow.fb_confidence`).

    Args:
        frame_a: ``(B, C, H, W)`` in ``[0, 1]`` (C = 3 or 1), the frame whose pixels are
            matched (the warp target).
        frame_b: same shape, the frame that is sampled (the warp source).
        method: flow estimator name or callable (see :func:`~vidrestore.flow.get_flow_estimator`).
        alpha, beta: tolerances of the forward–backward check.

    Returns:
        :class:`FlowPair` ``(flow, mask, confidence)`` on ``frame_a``'s grid.

    Example:
        >>> import torch
        >>> a = torch.rand(1, 3, 32, 32)
        >>> fp = flow_pair(a, a)
        >>> fp.flow.shape, bool(fp.mask.min() == 1)
        (torch.Size([1, 2, 32, 32]), True)
    """
    fw = estimate_flow(frame_a, frame_b, method=method)
    bw = estimate_flow(frame_b, frame_a, method=method)
    mask, _ = fb_consistency(fw, bw, alpha, beta, exclude_out_of_frame=True)
    inside = inside_mask(fw)
    conf = fb_confidence(fw, bw) * inside
    return FlowPair(fw, mask, conf)
