"""Temporal consistency: flow-based warping error E_warp.

Lai, Huang, Wang, Shechtman, Yumer & Yang, "Learning Blind Video Temporal Consistency",
ECCV 2018: each frame is compared with the previous frame warped onto it by optical flow,
ignoring occluded pixels. Occlusions are detected with the forward–backward check of Meister
et al. (UnFlow, AAAI 2018), see :func:`vidrestore.flow.fb_consistency`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import UserError
from ..flow import FlowEstimator, estimate_flow, fb_consistency, inside_mask, warp
from ._common import check_pair, check_reduction

__all__ = ["TemporalFlows", "compute_ref_flows", "warp_error"]


class TemporalFlows(NamedTuple):
    """Flows and validity masks between consecutive frames of a video.

    Attributes:
        flows: ``(B, 2, T-1, H, W)`` float32; ``flows[:, :, t]`` is the backward flow from
            frame ``t+1`` to frame ``t`` in pixels (x, y), so ``warp(V_t, flow) ≈ V_{t+1}``.
        masks: ``(B, 1, T-1, H, W)`` float32 in ``{0, 1}``; 1 where pixel ``p`` of frame
            ``t+1`` passes the forward–backward check and ``p + flow(p)`` is inside frame t.
    """

    flows: torch.Tensor
    masks: torch.Tensor


def _check_video(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"{name} must be a video (B, C, T, H, W), got {shape}")
    if x.shape[2] < 2:
        raise UserError(f"warp error needs at least 2 frames, {name} has T={x.shape[2]}")


def _pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, T, H, W)`` -> (frames 1..T-1, frames 0..T-2), each ``(B*(T-1), C, H, W)``."""
    b, c, t, h, w = x.shape
    f = x.permute(0, 2, 1, 3, 4)
    nxt = f[:, 1:].reshape(b * (t - 1), c, h, w)
    prv = f[:, :-1].reshape(b * (t - 1), c, h, w)
    return nxt, prv


def _to_pairs_layout(y: torch.Tensor, b: int) -> torch.Tensor:
    """``(B*(T-1), K, H, W)`` -> ``(B, K, T-1, H, W)``."""
    n, k, h, w = y.shape
    return y.reshape(b, n // b, k, h, w).permute(0, 2, 1, 3, 4)


def _from_pairs_layout(y: torch.Tensor) -> torch.Tensor:
    """``(B, K, T-1, H, W)`` -> ``(B*(T-1), K, H, W)``."""
    b, k, t, h, w = y.shape
    return y.permute(0, 2, 1, 3, 4).reshape(b * t, k, h, w)


def compute_ref_flows(
    ref: torch.Tensor,
    *,
    flow_method: str | FlowEstimator = "dis",
    alpha: float = 0.01,
    beta: float = 0.5,
) -> TemporalFlows:
    """Estimate consecutive-frame flows and occlusion masks of a (reference) video once.

    Use it when several outputs are compared against the same ground truth:
    ``rf = compute_ref_flows(gt); warp_error(out, flows=rf.flows, masks=rf.masks)``.

    Args:
        ref: ``(B, C, T, H, W)`` video in ``[0, 1]`` (C = 3 RGB or 1), ``T >= 2``.
        flow_method: flow estimator name or callable (see
            :func:`vidrestore.flow.get_flow_estimator`).
        alpha: relative tolerance of the forward–backward check.
        beta: absolute tolerance of the check, squared pixels.

    Returns:
        :class:`TemporalFlows` with ``flows`` ``(B, 2, T-1, H, W)`` (frame t+1 -> frame t)
        and ``masks`` ``(B, 1, T-1, H, W)`` (consistent and in-frame pixels of frame t+1).
    """
    _check_video(ref, "ref")
    if bool(torch.isnan(ref).any()):
        raise UserError("ref contains NaN values")
    b = ref.shape[0]
    nxt, prv = _pairs(ref.detach())
    fw = estimate_flow(nxt, prv, method=flow_method)  # warp(prv, fw) ≈ nxt
    bw = estimate_flow(prv, nxt, method=flow_method)  # warp(nxt, bw) ≈ prv
    mask, _ = fb_consistency(fw, bw, alpha, beta, exclude_out_of_frame=True)
    return TemporalFlows(_to_pairs_layout(fw, b), _to_pairs_layout(mask, b))


def warp_error(
    video: torch.Tensor,
    ref: torch.Tensor | None = None,
    *,
    flow_method: str | FlowEstimator = "dis",
    alpha: float = 0.01,
    beta: float = 0.5,
    reduction: str = "mean",
    flows: torch.Tensor | TemporalFlows | None = None,
    masks: torch.Tensor | None = None,
) -> float | torch.Tensor:
    """Flow warping error E_warp (Lai et al., ECCV 2018) between consecutive frames.

    For each pair ``(t, t+1)`` the backward flow ``F`` from frame ``t+1`` to frame ``t``
    is estimated on ``ref`` when given (the ground truth, so every method is judged with
    the same motion), else on ``video`` itself. With ``M`` the mask of pixels that pass the
    forward–backward check and whose sample lies inside frame ``t``,

        ``E_t = sum_p M(p) ||V_{t+1}(p) - warp(V_t, F)(p)||² / (C * sum_p M(p))``,

    i.e. the mean squared error over valid pixels and channels in ``[0, 1]`` units (lower is
    more temporally consistent), and ``E_warp`` is the mean of ``E_t`` over pairs (and
    batch). A pair with no valid pixel gives NaN and is skipped by the mean.

    Args:
        video: ``(B, C, T, H, W)`` video to evaluate, ``T >= 2``.
        ref: optional ground truth of the same shape used to estimate flows and masks
            (C = 3 or 1 when flows are estimated).
        flow_method: flow estimator name or callable (ignored if ``flows`` is given).
        alpha, beta: forward–backward check tolerances (see
            :func:`vidrestore.flow.fb_consistency`).
        reduction: ``"mean"`` (Python float) or ``"none"`` (float64 ``(B, T-1)``).
        flows: precomputed ``(B, 2, T-1, H, W)`` flows (or a :class:`TemporalFlows`, which
            also supplies ``masks``), e.g. from :func:`compute_ref_flows`.
        masks: precomputed ``(B, 1, T-1, H, W)`` masks to go with ``flows``; if ``flows``
            is given without masks, only out-of-frame samples are excluded.

    Returns:
        E_warp (float or per-pair tensor, see ``reduction``).

    Raises:
        UserError: for fewer than 2 frames, mismatched shapes or NaN input.
    """
    check_reduction(reduction)
    _check_video(video, "video")
    if ref is not None:
        check_pair(video, ref, ("video", "ref"))
    elif bool(torch.isnan(video).any()):
        raise UserError("video contains NaN values")
    if isinstance(flows, TemporalFlows):
        if masks is None:
            masks = flows.masks
        flows = flows.flows
    b, c, t, h, w = video.shape
    if flows is None:
        if masks is not None:
            raise UserError("masks were given without flows")
        flows, masks = compute_ref_flows(
            ref if ref is not None else video, flow_method=flow_method, alpha=alpha, beta=beta
        )
    expected = (b, 2, t - 1, h, w)
    if tuple(flows.shape) != expected:
        raise UserError(f"flows must have shape {expected}, got {tuple(flows.shape)}")
    if masks is not None and tuple(masks.shape) != (b, 1, t - 1, h, w):
        raise UserError(f"masks must have shape {(b, 1, t - 1, h, w)}, got {tuple(masks.shape)}")

    nxt, prv = _pairs(video.detach().float())
    f = _from_pairs_layout(flows.to(device=video.device, dtype=torch.float32))
    warped = warp(prv, f)
    valid = inside_mask(f, warped.dtype)
    m = valid if masks is None else valid * _from_pairs_layout(masks.to(device=video.device, dtype=torch.float32))
    sq = (nxt.double() - warped.double()).square().sum(1, keepdim=True)  # (N, 1, H, W)
    m = m.double()
    num = (m * sq).flatten(1).sum(1)
    den = m.flatten(1).sum(1) * c
    values = torch.where(den > 0, num / den.clamp_min(1e-12), torch.full_like(num, float("nan")))
    values = values.view(b, t - 1)
    if reduction == "none":
        return values
    return float(values.nanmean())
