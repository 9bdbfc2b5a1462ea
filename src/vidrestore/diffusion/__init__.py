"""Diffusion core: noise schedules, denoiser wrappers, DDIM-family samplers, a Gaussian prior.

Layering: imports only torch, numpy, :mod:`vidrestore.tensor` and :mod:`vidrestore.errors`;
never networks, operators or solvers. Model space is ``[-1, 1]``; every sigma here is the
variance-exploding sigma ``sqrt((1 - abar) / abar)`` in model space unless named ``*_pixel``.
"""

from .denoisers import (
    PREDICTIONS,
    DenoiserBase,
    DiscreteDiffusionDenoiser,
    EvaluationCount,
    abar_at,
    count_evaluations,
    denoise_pixel,
    eps_from_v,
    eps_from_x0,
    normalize_timesteps,
    pixel_denoiser,
    v_from_eps_x0,
    x0_from_eps,
    x0_from_v,
)
from .gaussian import GaussianPrior
from .samplers import ETA_MODES, add_noise, ddim_coefficients, ddim_step, randn, sample_ddim, sample_prior
from .schedules import (
    SCHEDULES,
    alpha_bar_from_sigma,
    alphas_cumprod,
    cosine_betas,
    ddim_timesteps,
    get_betas,
    linear_betas,
    scaled_linear_betas,
    sigma_from_alpha_bar,
    timestep_from_sigma,
)

__all__ = [
    "PREDICTIONS",
    "ETA_MODES",
    "SCHEDULES",
    "DenoiserBase",
    "DiscreteDiffusionDenoiser",
    "EvaluationCount",
    "count_evaluations",
    "GaussianPrior",
    "abar_at",
    "add_noise",
    "alpha_bar_from_sigma",
    "alphas_cumprod",
    "cosine_betas",
    "ddim_coefficients",
    "ddim_step",
    "ddim_timesteps",
    "denoise_pixel",
    "eps_from_v",
    "eps_from_x0",
    "get_betas",
    "linear_betas",
    "normalize_timesteps",
    "pixel_denoiser",
    "randn",
    "sample_ddim",
    "sample_prior",
    "scaled_linear_betas",
    "sigma_from_alpha_bar",
    "timestep_from_sigma",
    "v_from_eps_x0",
    "x0_from_eps",
    "x0_from_v",
]
