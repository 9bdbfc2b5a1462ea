"""Peak signal-to-noise ratio, per frame (BasicSR conventions)."""

from __future__ import annotations

from typing import Unpack

import torch

from ._common import FrameOptions, per_frame_metric, rgb_to_y

__all__ = ["psnr", "rgb_to_y"]


def psnr(x: torch.Tensor, ref: torch.Tensor, **options: Unpack[FrameOptions]) -> float | torch.Tensor:
    """PSNR in dB, ``10 log10(data_range² / MSE)``, computed per frame then averaged.

    Follows BasicSR's ``calculate_psnr`` (float path): the border of ``crop_border`` pixels is
    removed on each side, with ``y_channel=True`` the frames are converted to BT.601 luma
    (:func:`rgb_to_y`) first, and the MSE is taken over all channels and pixels of a frame.
    BasicSR works on 0–255 values; since ``data_range`` scales signal and error alike, the
    result is identical. Computed in float64; not differentiable (inputs are detached).

    Identical frames have MSE 0 and PSNR ``+inf``; a mean over frames that contains an
    infinite value is ``inf``.

    Args:
        x: restored image ``(B, C, H, W)`` or video ``(B, C, T, H, W)`` in
            ``[0, data_range]``.
        ref: ground truth of the same shape.
        Keyword options (:class:`FrameOptions`, defaults 0 / False / 1.0 / "mean"):
        crop_border: pixels removed from each spatial border before the computation.
        y_channel: evaluate on the luma channel only (needs C = 3, RGB).
        data_range: peak signal value (1.0 for ``[0, 1]`` inputs).
        reduction: ``"mean"`` returns a Python float averaged over frames and batch;
            ``"none"`` returns per-frame values, float64 ``(B, T)`` for videos or ``(B,)``
            for images.

    Returns:
        PSNR in dB (float or tensor, see ``reduction``).

    Raises:
        UserError: on mismatched shapes, NaN/inf values, bad ``crop_border`` or
            ``y_channel`` on non-RGB input.
    """
    return per_frame_metric(x, ref, _psnr_frames, **options)


def _psnr_frames(xf: torch.Tensor, rf: torch.Tensor, data_range: float) -> torch.Tensor:
    mse = (xf - rf).square().flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> +inf

