"""Optical flow: estimation, backward warping and occlusion checks.

Convention (backward flow): ``flow = estimate_flow(target, source)`` is ``(B, 2, H, W)``
float32 in pixels (channel 0 = x, 1 = y) with ``warp(source, flow) ≈ target``, i.e.
``target(p) ≈ source(p + flow(p))``.

Layering: imports only :mod:`vidrestore.errors`, :mod:`vidrestore.tensor`,
:mod:`vidrestore.linalg`, torch, numpy and OpenCV.
"""

from .consistency import fb_confidence, fb_consistency
from .estimators import (
    DIS_PRESETS,
    FlowEstimator,
    dis_flow,
    estimate_flow,
    farneback_flow,
    flow_estimators,
    get_flow_estimator,
    to_gray_u8,
)
from .pair import FlowPair, flow_pair
from .pyramid import pyramid_flow, pyramid_size
from .warp import check_flow, flow_grid, inside_mask, resize_flow, warp

__all__ = [
    "DIS_PRESETS",
    "FlowEstimator",
    "FlowPair",
    "check_flow",
    "dis_flow",
    "estimate_flow",
    "farneback_flow",
    "fb_confidence",
    "fb_consistency",
    "flow_pair",
    "flow_estimators",
    "flow_grid",
    "get_flow_estimator",
    "pyramid_flow",
    "pyramid_size",
    "resize_flow",
    "to_gray_u8",
    "warp",
    "inside_mask",
]
