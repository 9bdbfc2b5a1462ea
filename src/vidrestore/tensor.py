"""Shape and range helpers shared by every layer.

Videos are ``(B, C, T, H, W)``; per-frame 2-D networks see ``(B*T, C, H, W)`` via
:func:`fold_time` / :func:`unfold_time`. Pixel space is ``[0, 1]``; model space (diffusion
only) is ``[-1, 1]``. :func:`to_model` and :func:`to_pixel` are the only conversions.
"""

from __future__ import annotations

import torch

from .errors import UserError


def append_dims(x: torch.Tensor, target_ndim: int) -> torch.Tensor:
    """Append trailing singleton dims so ``x`` (e.g. sigma of shape ``[B]``) broadcasts."""
    missing = target_ndim - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_ndim is {target_ndim}")
    return x[(...,) + (None,) * missing]


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B*T, C, H, W)`` (frames become a batch)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B*T, C, H, W)`` -> ``(B, C, T, H, W)``; inverse of :func:`fold_time`."""
    bt, c, h, w = x.shape
    if bt % batch:
        raise ValueError(f"cannot unfold {bt} frames into batch {batch}")
    return x.reshape(batch, bt // batch, c, h, w).permute(0, 2, 1, 3, 4)


def to_model(x: torch.Tensor) -> torch.Tensor:
    """Pixel space ``[0, 1]`` -> model space ``[-1, 1]``."""
    return x * 2.0 - 1.0


def to_pixel(z: torch.Tensor) -> torch.Tensor:
    """Model space ``[-1, 1]`` -> pixel space ``[0, 1]`` (no clamping)."""
    return (z + 1.0) * 0.5


def check_video(x: torch.Tensor, name: str = "video", *, allow_nonfinite: bool = False) -> torch.Tensor:
    """Validate a ``(B, C, T, H, W)`` floating tensor; raise :class:`UserError` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 5:
        raise UserError(f"{name} must have shape (B, C, T, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UserError(f"{name} must be a floating tensor, got {x.dtype}")
    if min(x.shape) == 0:
        raise UserError(f"{name} is empty: shape {tuple(x.shape)}")
    if not allow_nonfinite and not bool(torch.isfinite(x).all()):
        raise UserError(f"{name} contains NaN or infinite values")
    return x


def resolve_device(device: str | None) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:N`` (``None``: cpu); UserError for an unknown device or
    when CUDA is not available."""
    name = device or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available on this machine")
    return dev
