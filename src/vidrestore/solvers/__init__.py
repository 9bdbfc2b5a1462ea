"""Inverse solvers (classical and diffusion-based) over operators from :mod:`vidrestore.ops`.

Layering (L3): solvers import :mod:`vidrestore.ops`, :mod:`vidrestore.diffusion`,
:mod:`vidrestore.linalg`, :mod:`vidrestore.tensor` and :mod:`vidrestore.errors`; they receive a
denoiser object and never import networks, checkpoints or priors.
"""

from .classical import NOISY_ADMM_START_LAM, admm_tv_defaults, grad3, grad3_adjoint, solve_admm_tv, solve_cg
from .svi import DATA_STEPS, measurement_to_model, solve_dds, solve_dps, solve_svi
from .windows import (
    FrameSelect,
    SpatialCrop,
    Stitcher,
    Window,
    WindowedProblem,
    blend_weights,
    crop_to,
    pad_operator,
    pad_to_multiple,
    plan_windows,
    solve_in_windows,
    window_operator,
)

__all__ = [
    "DATA_STEPS",
    "NOISY_ADMM_START_LAM",
    "admm_tv_defaults",
    "FrameSelect",
    "SpatialCrop",
    "Window",
    "blend_weights",
    "crop_to",
    "grad3",
    "grad3_adjoint",
    "measurement_to_model",
    "pad_operator",
    "pad_to_multiple",
    "plan_windows",
    "solve_admm_tv",
    "solve_cg",
    "solve_dds",
    "solve_dps",
    "Stitcher",
    "WindowedProblem",
    "solve_in_windows",
    "solve_svi",
    "window_operator",
]
