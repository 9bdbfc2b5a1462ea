"""Image and video quality metrics (BasicSR conventions).

* :func:`psnr`, :func:`ssim` — per-frame fidelity to a ground truth, ``(B, C, T, H, W)``
  videos or ``(B, C, H, W)`` images in ``[0, 1]``, optional border crop and Y channel.
* :func:`warp_error` — temporal consistency E_warp (Lai et al., ECCV 2018) with
  forward–backward occlusion masks; :func:`compute_ref_flows` caches the reference flows.
* :func:`video_metrics`, :func:`format_table` — summaries and comparison tables.
* :func:`estimate_noise_sigma` — blind noise level of a measurement (Immerkær 1996, MAD).

Layering: imports :mod:`vidrestore.errors`, :mod:`vidrestore.tensor`, :mod:`vidrestore.flow`,
torch and numpy only.
"""

from ._common import rgb_to_y
from .aligned import aligned_frame_metrics, aligned_video_metrics, dft_registration
from .noise import NOISE_ESTIMATORS, estimate_noise_sigma
from .psnr import psnr
from .report import format_table, video_metrics
from .ssim import gaussian_window_1d, ssim
from .temporal import TemporalFlows, compute_ref_flows, warp_error

__all__ = [
    "aligned_frame_metrics",
    "aligned_video_metrics",
    "dft_registration",
    "NOISE_ESTIMATORS",
    "estimate_noise_sigma",
    "TemporalFlows",
    "compute_ref_flows",
    "format_table",
    "gaussian_window_1d",
    "psnr",
    "rgb_to_y",
    "ssim",
    "video_metrics",
    "warp_error",
]
