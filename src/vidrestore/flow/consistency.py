"""Forward–backward flow consistency (occlusion detection).

Meister, Hur & Roth, "UnFlow: Unsupervised Learning of Optical Flow with a Bidirectional
Census Loss", AAAI 2018 (following Sundaram et al., ECCV 2010): a pixel is occluded when the
flow to the other frame and the flow back do not cancel.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .warp import check_flow, inside_mask, warp

__all__ = ["fb_confidence", "fb_consistency"]


def fb_consistency(
    flow_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    alpha: float = 0.01,
    beta: float = 0.5,
    *,
    exclude_out_of_frame: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward–backward consistency mask and soft confidence.

    With ``flow_fw`` the backward flow from frame A (target) to frame B (source), i.e.
    ``A(p) ≈ B(p + f(p))``, and ``flow_bw`` the reverse (``B(q) ≈ A(q + b(q))``), the
    backward flow is sampled at the matched position, ``b̂(p) = b(p + f(p))`` (bilinear,
    border padding), and pixel ``p`` of A is marked occluded when

        ``|f + b̂|² > alpha (|f|² + |b̂|²) + beta``.

    Args:
        flow_fw: ``(B, 2, H, W)`` flow of frame A in pixels (convention of
            :func:`vidrestore.flow.estimate_flow(A, B)`).
        flow_bw: ``(B, 2, H, W)`` flow of frame B towards A (``estimate_flow(B, A)``).
        alpha: relative tolerance (unitless), 0.01 in UnFlow.
        beta: absolute tolerance in squared pixels, 0.5 in UnFlow.
        exclude_out_of_frame: also mark pixels whose match ``p + f(p)`` leaves the frame
            as invalid (0) in the mask and confidence.

    Returns:
        ``(mask, confidence)``, both ``(B, 1, H, W)`` on A's grid: ``mask`` is float in
        ``{0, 1}`` (1 = consistent / non-occluded); ``confidence`` is
        ``exp(-|f + b̂|² / (alpha (|f|² + |b̂|²) + beta))`` in ``(0, 1]``.
    """
    check_flow(flow_fw, "flow_fw")
    check_flow(flow_bw, "flow_bw")
    if flow_fw.shape != flow_bw.shape:
        raise UserError(
            f"flow_fw and flow_bw shapes differ: {tuple(flow_fw.shape)} vs {tuple(flow_bw.shape)}"
        )
    if alpha < 0 or beta <= 0:
        raise UserError(f"fb_consistency needs alpha >= 0 and beta > 0, got {alpha}, {beta}")
    bw_warped = warp(flow_bw, flow_fw, padding_mode="border")
    valid = inside_mask(flow_fw, bw_warped.dtype)
    diff = (flow_fw + bw_warped).square().sum(1, keepdim=True)
    bound = alpha * (flow_fw.square().sum(1, keepdim=True) + bw_warped.square().sum(1, keepdim=True)) + beta
    mask = (diff <= bound).to(flow_fw.dtype)
    confidence = torch.exp(-diff / bound)
    if exclude_out_of_frame:
        mask = mask * valid
        confidence = confidence * valid
    return mask, confidence


def fb_confidence(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """Soft forward–backward confidence ``exp(-||f + b̂||₂)`` (DiffIR2VR-Zero's flow score).

    Yeh et al., "DiffIR2VR-Zero: Zero-Shot Video Restoration with Diffusion-based Image
    Restoration Models" (arXiv 2407.01519), Eq. 5: the token-merging confidence of a flow
    correspondence. The released code uses the *un-squared* L2 norm of the round-trip
    residual, which is what this function returns (the paper writes the squared norm).

    Args:
        flow_fw: ``(B, 2, H, W)`` flow of frame A towards B (``estimate_flow(A, B)``).
        flow_bw: ``(B, 2, H, W)`` flow of frame B towards A (``estimate_flow(B, A)``).

    Returns:
        ``(B, 1, H, W)`` confidence in ``(0, 1]`` on A's grid (1 = perfect round trip).
    """
    check_flow(flow_fw, "flow_fw")
    check_flow(flow_bw, "flow_bw")
    if flow_fw.shape != flow_bw.shape:
        raise UserError(
            f"flow_fw and flow_bw shapes differ: {tuple(flow_fw.shape)} vs {tuple(flow_bw.shape)}"
        )
    bw_warped = warp(flow_bw, flow_fw, padding_mode="border")
    return torch.exp(-(flow_fw + bw_warped).square().sum(1, keepdim=True).sqrt())
