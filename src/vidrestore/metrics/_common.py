"""Input validation and colour conversion shared by the metrics (private)."""

from __future__ import annotations

from typing import Callable, TypedDict

import torch

from ..errors import UserError

_REDUCTIONS = ("mean", "none")


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (studio swing) of an RGB image or video, as BasicSR's ``rgb2ycbcr(y_only)``.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` with ``R, G, B`` in ``[0, 1]``, so
    ``Y`` lies in ``[16/255, 235/255]``. This equals BasicSR's ``bgr2ycbcr(img, y_only=True)``
    applied to the same pixels in BGR order (float path, no rounding).

    Args:
        x: ``(B, 3, ...)`` RGB in ``[0, 1]`` (image ``(B, 3, H, W)`` or video
            ``(B, 3, T, H, W)``).

    Returns:
        ``(B, 1, ...)`` luma in ``[0, 1]`` units, same dtype as ``x``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"rgb_to_y needs an RGB tensor (B, 3, ...), got {shape}")
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise UserError(f"unknown reduction {reduction!r}; valid: {', '.join(_REDUCTIONS)}")


def check_pair(x: torch.Tensor, ref: torch.Tensor, names: tuple[str, str] = ("x", "ref")) -> None:
    """Validate two tensors of equal ``(B, C, H, W)`` or ``(B, C, T, H, W)`` shape, finite."""
    for name, t in zip(names, (x, ref)):
        if not isinstance(t, torch.Tensor):
            raise UserError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim not in (4, 5):
            raise UserError(
                f"{name} must be an image (B, C, H, W) or video (B, C, T, H, W), got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise UserError(f"{name} must be a floating tensor, got {t.dtype}")
        if t.numel() == 0:
            raise UserError(f"{name} is empty: shape {tuple(t.shape)}")
    if x.shape != ref.shape:
        raise UserError(
            f"shape mismatch: {names[0]} {tuple(x.shape)} vs {names[1]} {tuple(ref.shape)}"
        )
    for name, t in zip(names, (x, ref)):
        if bool(torch.isnan(t).any()):
            raise UserError(f"{name} contains NaN values")
        if bool(torch.isinf(t).any()):
            raise UserError(f"{name} contains infinite values")


class FrameOptions(TypedDict, total=False):
    """Options shared by the per-frame fidelity metrics (:func:`per_frame_metric`)."""

    crop_border: int
    y_channel: bool
    data_range: float
    reduction: str


def per_frame_metric(
    x: torch.Tensor,
    ref: torch.Tensor,
    per_frame: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    data_range: float = 1.0,
    reduction: str = "mean",
) -> float | torch.Tensor:
    """Evaluate ``per_frame(xf, rf, data_range) -> (N,)`` on float64 frames of ``x`` and ``ref``
    (validated, border-cropped, optionally luma), then reduce: ``"mean"`` over frames and batch
    to a Python float, ``"none"`` to ``(B, T)`` for videos or ``(B,)`` for images."""
    check_reduction(reduction)
    xf, rf, lead = prepare_frames(x, ref, crop_border=crop_border, y_channel=y_channel, data_range=data_range)
    return reduce(per_frame(xf, rf, float(data_range)).reshape(lead), reduction)


def prepare_frames(
    x: torch.Tensor,
    ref: torch.Tensor,
    *,
    crop_border: int,
    y_channel: bool,
    data_range: float,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Validate, crop, optionally convert to Y, and flatten frames.

    Returns:
        ``(xf, rf, lead)``: float64 frames ``(N, C', H', W')`` with ``N = B*T`` (or ``B``
        for images) and the leading shape ``(B, T)`` or ``(B,)`` for reshaping per-frame
        results.
    """
    check_pair(x, ref)
    if data_range <= 0:
        raise UserError(f"data_range must be positive, got {data_range}")
    crop_border = int(crop_border)
    if crop_border < 0:
        raise UserError(f"crop_border must be >= 0, got {crop_border}")
    h, w = x.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise UserError(f"crop_border {crop_border} leaves no pixels of a {h}x{w} frame")
    if y_channel and x.shape[1] != 3:
        raise UserError(f"y_channel=True needs RGB input (C=3), got C={x.shape[1]}")

    is_video = x.ndim == 5
    lead = (x.shape[0], x.shape[2]) if is_video else (x.shape[0],)

    def frames(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().to(torch.float64)
        if is_video:
            b, c, tt, hh, ww = t.shape
            t = t.permute(0, 2, 1, 3, 4).reshape(b * tt, c, hh, ww)
        if crop_border:
            t = t[..., crop_border:-crop_border, crop_border:-crop_border]
        if y_channel:
            t = rgb_to_y(t / data_range) * data_range
        return t

    return frames(x), frames(ref), lead


def reduce(values: torch.Tensor, reduction: str) -> float | torch.Tensor:
    """``"mean"`` -> Python float over all entries; ``"none"`` -> the tensor itself."""
    if reduction == "none":
        return values
    return float(values.mean())
