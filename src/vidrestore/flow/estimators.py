"""Optical-flow estimators (classical, OpenCV) behind a pluggable callable interface.

Direction convention (backward flow): ``estimate_flow(target, source)`` returns ``flow``
with ``target(p) ≈ source(p + flow(p))``, hence ``warp(source, flow) ≈ target``
(:func:`vidrestore.flow.warp`). OpenCV's dense estimators use exactly this convention for
``calc(I0=target, I1=source)``: ``I0(x, y) ≈ I1(x + u, y + v)``.

Estimators:

* ``"dis"`` — Dense Inverse Search, Kroeger et al., "Fast Optical Flow using Dense Inverse
  Search", ECCV 2016 (``cv2.DISOpticalFlow``), presets ``ultrafast`` / ``fast`` /
  ``medium``.
* ``"farneback"`` — Farnebäck, "Two-Frame Motion Estimation Based on Polynomial Expansion",
  SCIA 2003 (``cv2.calcOpticalFlowFarneback``).

Learned estimators (e.g. RAFT) can be plugged in later: anything matching
:class:`FlowEstimator` works wherever a method name is accepted.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from ..errors import UserError

__all__ = [
    "FlowEstimator",
    "estimate_flow",
    "get_flow_estimator",
    "flow_estimators",
    "dis_flow",
    "farneback_flow",
    "to_gray_u8",
    "DIS_PRESETS",
]

# BT.601 luma weights for R, G, B.
_LUMA = (0.299, 0.587, 0.114)

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@runtime_checkable
class FlowEstimator(Protocol):
    """Anything that maps ``(target, source) -> flow``.

    ``target`` and ``source`` are ``(B, C, H, W)`` in ``[0, 1]`` (C = 3 RGB or 1 gray); the
    result is the backward flow ``(B, 2, H, W)`` float32 in pixels (channel 0 = x, 1 = y)
    with ``warp(source, flow) ≈ target``, on the device of ``target``.
    """

    def __call__(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor: ...


def _check_pair(target: torch.Tensor, source: torch.Tensor) -> None:
    for name, t in (("target", target), ("source", source)):
        if not isinstance(t, torch.Tensor):
            raise UserError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise UserError(f"{name} must have shape (B, 1|3, H, W), got {tuple(t.shape)}")
    if target.shape != source.shape:
        raise UserError(
            f"target and source shapes differ: {tuple(target.shape)} vs {tuple(source.shape)}"
        )


def to_gray_u8(x: torch.Tensor) -> np.ndarray:
    """Convert ``(B, C, H, W)`` in ``[0, 1]`` to 8-bit gray ``(B, H, W)`` uint8.

    RGB (C = 3) uses BT.601 luma ``0.299 R + 0.587 G + 0.114 B``; C = 1 is taken as is.
    Values are clipped to ``[0, 1]``, scaled by 255 and rounded.
    """
    x = x.detach().to(device="cpu", dtype=torch.float32)
    if x.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        g = (x * w).sum(1)
    else:
        g = x[:, 0]
    g = (g.clamp(0.0, 1.0) * 255.0).round()
    return g.numpy().astype(np.uint8)


def _run_per_pair(
    target: torch.Tensor,
    source: torch.Tensor,
    calc: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> torch.Tensor:
    _check_pair(target, source)
    g_t = to_gray_u8(target)
    g_s = to_gray_u8(source)
    flows = [np.ascontiguousarray(calc(g_t[i], g_s[i]), dtype=np.float32) for i in range(g_t.shape[0])]
    out = torch.from_numpy(np.stack(flows, 0)).permute(0, 3, 1, 2).contiguous()  # (B, 2, H, W)
    return out.to(target.device)


def dis_flow(target: torch.Tensor, source: torch.Tensor, *, preset: str = "medium") -> torch.Tensor:
    """Dense Inverse Search flow (Kroeger et al., ECCV 2016) via ``cv2.DISOpticalFlow``.

    Args:
        target: ``(B, C, H, W)`` in ``[0, 1]``, C = 3 (RGB) or 1.
        source: same shape as ``target``.
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (accuracy vs speed).

    Returns:
        ``(B, 2, H, W)`` float32 backward flow in pixels: ``warp(source, flow) ≈ target``.
        Not differentiable (computed on 8-bit gray copies on the CPU).
    """
    if preset not in DIS_PRESETS:
        raise UserError(f"unknown DIS preset {preset!r}; valid: {', '.join(DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return _run_per_pair(target, source, lambda a, b: dis.calc(a, b, None))


def farneback_flow(
    target: torch.Tensor,
    source: torch.Tensor,
    *,
    pyr_scale: float = 0.5,
    levels: int = 4,
    winsize: int = 15,
    iterations: int = 3,
    poly_n: int = 5,
    poly_sigma: float = 1.1,
) -> torch.Tensor:
    """Farnebäck polynomial-expansion flow (SCIA 2003) via ``cv2.calcOpticalFlowFarneback``.

    Args:
        target: ``(B, C, H, W)`` in ``[0, 1]``, C = 3 (RGB) or 1.
        source: same shape as ``target``.
        pyr_scale, levels, winsize, iterations, poly_n, poly_sigma: OpenCV parameters
            (pyramid scale < 1, number of levels, averaging window in pixels, iterations
            per level, polynomial neighbourhood size and its Gaussian sigma).

    Returns:
        ``(B, 2, H, W)`` float32 backward flow in pixels: ``warp(source, flow) ≈ target``.
    """

    def calc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(
            a, b, None, pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0
        )

    return _run_per_pair(target, source, calc)


flow_estimators: dict[str, FlowEstimator] = {
    "dis": partial(dis_flow, preset="medium"),
    "dis_medium": partial(dis_flow, preset="medium"),
    "dis_fast": partial(dis_flow, preset="fast"),
    "dis_ultrafast": partial(dis_flow, preset="ultrafast"),
    "farneback": farneback_flow,
}
"""Registered estimators by name; add learned estimators here (or pass callables)."""


def get_flow_estimator(name: str | FlowEstimator) -> FlowEstimator:
    """Look up a flow estimator by name (a callable is returned unchanged).

    Args:
        name: one of ``flow_estimators`` (``"dis"``, ``"dis_medium"``, ``"dis_fast"``,
            ``"dis_ultrafast"``, ``"farneback"``) or a :class:`FlowEstimator` callable.

    Raises:
        UserError: (a ``ValueError``) for an unknown name; the message lists valid names.
    """
    if callable(name):
        return name
    try:
        return flow_estimators[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(flow_estimators))
        raise UserError(f"unknown flow method {name!r}; valid: {valid}") from None


def estimate_flow(
    target: torch.Tensor,
    source: torch.Tensor,
    *,
    method: str | FlowEstimator = "dis",
    preset: str = "medium",
) -> torch.Tensor:
    """Estimate the backward flow from ``target`` to ``source``.

    The result satisfies ``target(p) ≈ source(p + flow(p))``, i.e.
    ``warp(source, flow) ≈ target``. For consecutive video frames, ``estimate_flow(frame[t+1],
    frame[t])`` aligns frame ``t`` onto frame ``t+1``.

    Args:
        target: ``(B, C, H, W)`` in ``[0, 1]``, RGB (C = 3) or gray (C = 1).
        source: same shape as ``target``.
        method: ``"dis"`` (default), ``"farneback"``, another registered name (see
            :func:`get_flow_estimator`) or a :class:`FlowEstimator` callable.
        preset: DIS preset (``"ultrafast"``, ``"fast"``, ``"medium"``); used only when
            ``method="dis"``.

    Returns:
        ``(B, 2, H, W)`` float32 flow in pixels (channel 0 = x/width displacement,
        channel 1 = y/height), on ``target``'s device.
    """
    _check_pair(target, source)
    if method == "dis":
        fn: FlowEstimator = partial(dis_flow, preset=preset)
    else:
        fn = get_flow_estimator(method)
    with torch.no_grad():
        flow = fn(target, source)
    return flow.to(device=target.device, dtype=torch.float32)
