"""Backward warping and flow resizing.

Flow convention (used throughout :mod:`vidrestore.flow`): a flow field has shape
``(B, 2, H, W)`` in pixels, channel 0 is the x (width) displacement and channel 1 the y
(height) displacement. Pixel ``(x, y)`` sits at integer coordinates (``x = 0 .. W-1``), so
warping uses ``grid_sample(..., align_corners=True)``. Warping is *backward*:

    ``warp(source, flow)(p) = source(p + flow(p))``

so a flow estimated with :func:`vidrestore.flow.estimate_flow(target, source)` satisfies
``warp(source, flow) ≈ target``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["warp", "inside_mask", "resize_flow", "flow_grid", "check_flow"]


def check_flow(flow: torch.Tensor, name: str = "flow") -> torch.Tensor:
    """Validate a ``(B, 2, H, W)`` floating flow tensor; raise :class:`UserError` otherwise."""
    if not isinstance(flow, torch.Tensor):
        raise UserError(f"{name} must be a torch.Tensor, got {type(flow).__name__}")
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise UserError(f"{name} must have shape (B, 2, H, W), got {tuple(flow.shape)}")
    if not flow.is_floating_point():
        raise UserError(f"{name} must be a floating tensor, got {flow.dtype}")
    return flow


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """Absolute sample positions ``p + flow(p)`` in pixels.

    Args:
        flow: ``(B, 2, H, W)`` displacement in pixels (x, y).

    Returns:
        ``(B, 2, H, W)`` sample coordinates in pixels: channel 0 is ``x + flow_x`` in
        ``[0, W-1]`` when inside the frame, channel 1 is ``y + flow_y``.
    """
    _, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack((gx, gy), dim=0).unsqueeze(0)  # (1, 2, H, W)
    return base + flow


def warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Backward-warp ``x`` by ``flow``: ``out(p) = x(p + flow(p))``.

    Differentiable with respect to ``x`` and (for ``mode="bilinear"``) ``flow``.

    Args:
        x: ``(B, C, H, W)`` image batch (any range, e.g. ``[0, 1]`` RGB, or a flow field).
        flow: ``(B, 2, H, W)`` backward flow in pixels (channel 0 = x, 1 = y), on the grid of
            the output. ``B`` must match ``x`` or be 1 (broadcast).
        mode: ``"bilinear"`` or ``"nearest"`` (passed to ``grid_sample``).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` for samples outside the
            frame (passed to ``grid_sample``).

    Returns:
        The warped ``(B, C, H, W)`` tensor (same dtype as ``x``). :func:`inside_mask` tells
        which samples came from inside the frame.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"warp input must have shape (B, C, H, W), got {shape}")
    check_flow(flow)
    if flow.shape[-2:] != x.shape[-2:]:
        raise UserError(
            f"flow size {tuple(flow.shape[-2:])} does not match input size {tuple(x.shape[-2:])}"
        )
    if flow.shape[0] not in (1, x.shape[0]):
        raise UserError(f"flow batch {flow.shape[0]} does not match input batch {x.shape[0]}")
    if mode not in ("bilinear", "nearest"):
        raise UserError(f"unknown warp mode {mode!r}; valid: 'bilinear', 'nearest'")
    h, w = x.shape[-2:]
    flow = flow.to(dtype=x.dtype) if x.is_floating_point() else flow
    pos = flow_grid(flow)  # (B, 2, H, W) pixels
    if flow.shape[0] == 1 and x.shape[0] > 1:
        pos = pos.expand(x.shape[0], -1, -1, -1)
    # Normalise to [-1, 1] with align_corners=True: pixel 0 -> -1, pixel W-1 -> +1.
    gx = 2.0 * pos[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * pos[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def inside_mask(flow: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Where backward warping by ``flow`` samples inside the frame.

    Args:
        flow: ``(B, 2, H, W)`` backward flow in pixels.
        dtype: dtype of the mask (default: the flow's).

    Returns:
        ``(B, 1, H, W)`` in ``{0, 1}``: 1 where ``p + flow(p)`` lies inside
        ``[0, W-1] x [0, H-1]`` (with a 1e-3 pixel tolerance for round-off on the border).
    """
    check_flow(flow)
    h, w = flow.shape[-2:]
    pos = flow_grid(flow)
    eps = 1e-3
    valid = (pos[:, 0] >= -eps) & (pos[:, 0] <= w - 1 + eps) & (pos[:, 1] >= -eps) & (pos[:, 1] <= h - 1 + eps)
    return valid.unsqueeze(1).to(dtype or flow.dtype)


def resize_flow(
    flow: torch.Tensor,
    size: tuple[int, int],
    *,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Resize a flow field to ``size`` and rescale its vectors by the size ratios.

    The field is interpolated with ``F.interpolate(..., align_corners=False)`` (pixel-area
    convention) and the x component is multiplied by ``W_new / W`` and the y component by
    ``H_new / H``, so a displacement of ``d`` pixels at the old resolution becomes ``d``
    times the scale at the new one.

    Args:
        flow: ``(B, 2, H, W)`` flow in pixels of the old resolution.
        size: target ``(H_new, W_new)``.
        mode: ``"bilinear"``, ``"bicubic"``, ``"area"`` or ``"nearest"``.

    Returns:
        ``(B, 2, H_new, W_new)`` flow in pixels of the new resolution.
    """
    check_flow(flow)
    h_new, w_new = int(size[0]), int(size[1])
    if h_new <= 0 or w_new <= 0:
        raise UserError(f"resize_flow size must be positive, got {tuple(size)}")
    h, w = flow.shape[-2:]
    if (h_new, w_new) == (h, w):
        return flow.clone()
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(flow, size=(h_new, w_new), mode=mode, **kwargs)
    scale = torch.tensor([w_new / w, h_new / h], device=flow.device, dtype=flow.dtype)
    return out * scale.view(1, 2, 1, 1)
