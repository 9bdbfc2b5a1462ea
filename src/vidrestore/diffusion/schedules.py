"""Discrete-time noise schedules and the conversions between their parameterisations.

A discrete variance-preserving (VP) diffusion with ``N`` training steps is fully described by
``betas`` (shape ``[N]``) or equivalently by ``alphas_cumprod`` (``abar``, shape ``[N]``):

    x_t = sqrt(abar_t) * x_0 + sqrt(1 - abar_t) * eps,    eps ~ N(0, I),    t = 0 .. N-1

(Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eq. 4). The same process written in
the variance-exploding (VE) form of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", EDM) is ``x_t / sqrt(abar_t) = x_0 + sigma_t * eps`` with

    sigma_t = sqrt((1 - abar_t) / abar_t).

Every ``sigma`` in this module is that **VE sigma in model space** (data in ``[-1, 1]``), unless a
name says otherwise. All arithmetic is float64; results are float64 torch tensors.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

__all__ = [
    "linear_betas",
    "scaled_linear_betas",
    "cosine_betas",
    "SCHEDULES",
    "get_betas",
    "alphas_cumprod",
    "sigma_from_alpha_bar",
    "alpha_bar_from_sigma",
    "timestep_from_sigma",
    "ddim_timesteps",
]


def linear_betas(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear beta schedule of DDPM / ADM.

    Ho et al. 2020 use ``beta`` linear from ``1e-4`` to ``0.02`` over 1000 steps. Like
    guided-diffusion's ``get_named_beta_schedule("linear", n)`` (Dhariwal & Nichol 2021), both
    endpoints are multiplied by ``1000 / num_timesteps`` so that a schedule with fewer steps
    reaches about the same final ``abar``.

    Args:
        num_timesteps: Number of training steps ``N`` (> 0).
        beta_start: ``beta_0`` for ``N = 1000`` (scaled by ``1000 / N``).
        beta_end: ``beta_{N-1}`` for ``N = 1000`` (scaled by ``1000 / N``).

    Returns:
        float64 tensor ``[N]`` of betas in ``(0, 1)``.
    """
    _check_n(num_timesteps)
    scale = 1000.0 / num_timesteps
    betas = np.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=np.float64)
    return torch.from_numpy(betas)


def scaled_linear_betas(
    num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """"Scaled linear" schedule of latent diffusion / Stable Diffusion (Rombach et al. 2022).

    ``sqrt(beta)`` is linear from ``sqrt(beta_start)`` to ``sqrt(beta_end)``; betas are its square.

    Args:
        num_timesteps: Number of training steps ``N`` (> 0).
        beta_start: ``beta_0``.
        beta_end: ``beta_{N-1}``.

    Returns:
        float64 tensor ``[N]`` of betas in ``(0, 1)``.
    """
    _check_n(num_timesteps)
    roots = np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), num_timesteps, dtype=np.float64)
    return torch.from_numpy(roots**2)


def cosine_betas(num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule of Nichol & Dhariwal 2021 ("Improved DDPM", eq. 17).

    ``abar(u) = f(u) / f(0)`` with ``f(u) = cos(((u + s) / (1 + s)) * pi / 2)^2`` for ``u`` in
    ``[0, 1]``; ``beta_i = min(1 - abar((i+1)/N) / abar(i/N), max_beta)`` (the clip keeps the
    last steps from being singular). ``f(0)`` cancels in the ratio.

    Args:
        num_timesteps: Number of training steps ``N`` (> 0).
        s: Small offset that keeps ``beta_0`` away from 0.
        max_beta: Upper clip for each beta.

    Returns:
        float64 tensor ``[N]`` of betas in ``(0, max_beta]``.
    """
    _check_n(num_timesteps)
    u = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    f = np.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return torch.from_numpy(betas)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_betas,
    "scaled_linear": scaled_linear_betas,
    "cosine": cosine_betas,
}


def get_betas(name: str, num_timesteps: int = 1000) -> torch.Tensor:
    """Named beta schedule with default parameters.

    Args:
        name: One of ``SCHEDULES`` (``"linear"``, ``"scaled_linear"``, ``"cosine"``).
        num_timesteps: Number of training steps ``N``.

    Returns:
        float64 tensor ``[N]``.

    Raises:
        ValueError: Unknown ``name`` (the message lists the known names).
    """
    try:
        fn = SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown beta schedule {name!r}; known: {', '.join(sorted(SCHEDULES))}") from None
    return fn(num_timesteps)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """``abar_t = prod_{s<=t} (1 - beta_s)`` (Ho et al. 2020, notation of eq. 4).

    Args:
        betas: ``[N]`` betas in ``(0, 1)``.

    Returns:
        float64 tensor ``[N]``, strictly decreasing in ``(0, 1)``.
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def sigma_from_alpha_bar(abar: torch.Tensor | float) -> torch.Tensor:
    """VE sigma (model space) of a VP level: ``sigma = sqrt((1 - abar) / abar)``.

    Args:
        abar: ``abar`` values in ``(0, 1]``, any shape.

    Returns:
        float64 tensor of the same shape, ``>= 0``.
    """
    abar = torch.as_tensor(abar, dtype=torch.float64)
    return ((1.0 - abar) / abar).sqrt()


def alpha_bar_from_sigma(sigma: torch.Tensor | float) -> torch.Tensor:
    """Inverse of :func:`sigma_from_alpha_bar`: ``abar = 1 / (1 + sigma^2)``.

    Args:
        sigma: VE sigma in model space, ``>= 0``, any shape.

    Returns:
        float64 tensor of the same shape in ``(0, 1]``.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return 1.0 / (1.0 + sigma**2)


def timestep_from_sigma(
    alphas_cumprod: torch.Tensor, sigma: torch.Tensor | float, *, mode: str = "nearest"
) -> torch.Tensor:
    """Training timestep whose VE sigma matches ``sigma``.

    Matching is done in ``log sigma`` (sigma_t is increasing in t), as k-diffusion's
    ``DiscreteSchedule.sigma_to_t`` does. Sigmas outside the schedule's range clamp to
    ``t = 0`` or ``t = N-1``.

    Args:
        alphas_cumprod: ``[N]`` cumulative alphas of the schedule.
        sigma: VE sigma in model space (``[-1, 1]`` data units), ``>= 0``, any shape.
        mode: ``"nearest"`` (integer timestep with the closest log-sigma) or ``"interp"``
            (fractional timestep, linear interpolation of ``t`` against ``log sigma_t``).

    Returns:
        Tensor of ``sigma``'s shape: int64 for ``"nearest"``, float64 for ``"interp"``.

    Raises:
        ValueError: Unknown ``mode`` or negative sigma.
    """
    acp = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()
    sigma = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu()
    if bool((sigma < 0).any()):
        raise ValueError("sigma must be >= 0")
    log_sigmas = sigma_from_alpha_bar(acp).log().numpy()  # increasing in t
    # sigma = 0 maps below every schedule sigma, i.e. clamps to t = 0.
    log_sigma = sigma.clamp_min(1e-300).log().numpy()
    if mode == "nearest":
        idx = np.abs(log_sigma[..., None] - log_sigmas).argmin(axis=-1)
        return torch.as_tensor(idx, dtype=torch.int64)
    if mode == "interp":
        t = np.interp(log_sigma, log_sigmas, np.arange(len(log_sigmas), dtype=np.float64))
        return torch.as_tensor(t, dtype=torch.float64)
    raise ValueError(f"unknown mode {mode!r}; known: 'interp', 'nearest'")


def ddim_timesteps(num_steps: int, num_train: int = 1000, t_start: int | None = None) -> torch.Tensor:
    """Descending integer timesteps for a ``num_steps``-step DDIM-style sampler.

    Uses **"trailing" uniform spacing** (Lin et al. 2024, "Common Diffusion Noise Schedules and
    Sample Steps are Flawed", Table 2; diffusers' ``timestep_spacing="trailing"``): with
    ``T = t_start + 1`` (default ``T = num_train``),

        t_i = round(T * (num_steps - i) / num_steps) - 1,    i = 0 .. num_steps-1,

    rounding half up.
    So the first timestep is always ``t_start`` (default ``num_train - 1``, the pure-noise end)
    and the last is ``round(T / num_steps) - 1`` (e.g. 19 for 50 of 1000 steps; 0 when
    ``num_steps == T``). Samplers take one more step from the last timestep to ``t = -1``
    (``abar = 1``, the clean image). Contrast the "leading" spacing of the DDIM paper code
    (``0, k, 2k, ...``), which never visits ``num_train - 1``.

    Args:
        num_steps: Number of denoiser evaluations, ``1 <= num_steps <= T``.
        num_train: Number of training timesteps ``N``.
        t_start: First (largest) timestep, ``0 <= t_start <= N-1``; e.g. for SDEdit-style
            partial sampling from a noised input. Default ``N - 1``.

    Returns:
        int64 tensor ``[num_steps]``, strictly decreasing.

    Raises:
        ValueError: Out-of-range arguments.
    """
    if t_start is None:
        t_start = num_train - 1
    if not 0 <= t_start < num_train:
        raise ValueError(f"t_start must be in [0, {num_train - 1}], got {t_start}")
    span = t_start + 1
    if not 1 <= num_steps <= span:
        raise ValueError(f"num_steps must be in [1, {span}] for t_start={t_start}, got {num_steps}")
    i = np.arange(num_steps, dtype=np.float64)
    # Round half up (not numpy's half-to-even) so consecutive values never collide.
    t = np.floor(span * (num_steps - i) / num_steps + 0.5).astype(np.int64) - 1
    return torch.from_numpy(t)


def _check_n(num_timesteps: int) -> None:
    if int(num_timesteps) <= 0:
        raise ValueError(f"num_timesteps must be positive, got {num_timesteps}")
