"""DDIM-family samplers: stateless step functions and a simple sampling loop.

Notation (model space ``[-1, 1]``): ``abar_t`` is the cumulative alpha at the current training
timestep ``t``, ``abar_prev`` the one at the next (less noisy) timestep of the sampling
sequence; ``abar_prev = 1`` at the end (the virtual timestep ``t = -1``, clean data).

Samplers accept any object following the denoiser protocol of
:mod:`vidrestore.diffusion.denoisers`: ``alphas_cumprod`` (float64 ``[N]``) and
``eps_and_x0(x_t, t) -> (eps, x0)``. They never import networks or operators and never disable
autograd themselves (except :func:`sample_prior`, which is unconditional), so gradient-guided
solvers can differentiate through a step. Progress is reported only through ``callback``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..tensor import append_dims, to_pixel
from .schedules import ddim_timesteps

__all__ = [
    "ETA_MODES",
    "ddim_coefficients",
    "ddim_step",
    "add_noise",
    "randn",
    "sample_ddim",
    "sample_prior",
]

ETA_MODES = ("ddim", "dds")

NoiseFn = Callable[[tuple[int, ...], "torch.Generator | None"], torch.Tensor]


def _coef(a: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``abar`` (float, 0-d, ``[N]`` or already broadcastable) as float64, broadcastable to ``x``."""
    a = torch.as_tensor(a, dtype=torch.float64)
    if a.ndim == 1 and x.ndim > 1 and a.shape[0] == x.shape[0]:
        a = append_dims(a, x.ndim)  # per-sample abar [N] -> (N, 1, ..., 1)
    return a


def ddim_coefficients(
    abar_t: torch.Tensor | float,
    abar_prev: torch.Tensor | float,
    *,
    eta: float = 0.0,
    eta_mode: str = "ddim",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coefficients of ``x_prev = c_x0 * x0 + c_eps * eps + c_noise * z``.

    * ``eta_mode="ddim"`` — Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12
      with eq. 16: ``sigma_t = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``,
      ``c_eps = sqrt(1 - abar_prev - sigma_t^2)``, ``c_noise = sigma_t``. ``eta = 1`` is DDPM's
      ancestral sampler (posterior variance ``beta~_t``), ``eta = 0`` deterministic DDIM.
    * ``eta_mode="dds"`` — the parameterisation of the Decomposed Diffusion Sampler code
      (Chung et al. 2024, "Decomposed Diffusion Sampler for Accelerating Large-Scale Inverse
      Problems", ICLR): ``c_noise = eta sqrt(1 - abar_prev)``,
      ``c_eps = sqrt(1 - abar_prev) sqrt(1 - eta^2)``. The marginal noise level is
      ``sqrt(1 - abar_prev)`` for every ``eta``; ``eta = 1`` re-noises ``x0`` with fresh noise only.

    Both share ``c_x0 = sqrt(abar_prev)``; at ``eta = 0`` the two modes coincide.

    Note: with an exact denoiser, ``"ddim"`` converges to the data distribution as the step
    count grows for every ``eta``, but ``"dds"`` with ``eta > 0`` does not: re-noising the
    posterior *mean* with fresh noise discards the posterior variance of ``x0``, so unconditional
    samples come out too narrow (for a Gaussian prior with std 0.5, ``eta = 1`` gives std ~0.35
    even with 1000 steps). DDS uses it together with a data-consistency step on ``x0``.
    Finite step counts shrink the variance in both modes (DDIM, 50 trailing steps, std 0.5:
    ~0.47); tests compare against the exact linear-Gaussian recursion.

    Args:
        abar_t: ``abar`` at the current timestep, in ``(0, 1)``; float or tensor.
        abar_prev: ``abar`` at the target timestep, in ``[abar_t, 1]``; float or tensor.
        eta: Stochasticity in ``[0, 1]``.
        eta_mode: ``"ddim"`` or ``"dds"``.

    Returns:
        ``(c_x0, c_eps, c_noise)``, float64 tensors broadcast from ``abar_t`` and ``abar_prev``.

    Raises:
        ValueError: Unknown ``eta_mode`` or ``eta`` outside ``[0, 1]``.
    """
    if eta_mode not in ETA_MODES:
        raise ValueError(f"eta_mode must be one of {ETA_MODES}, got {eta_mode!r}")
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    abar_t = torch.as_tensor(abar_t, dtype=torch.float64)
    abar_prev = torch.as_tensor(abar_prev, dtype=torch.float64)
    c_x0 = abar_prev.sqrt()
    if eta_mode == "ddim":
        # Song et al. 2021, eq. 16: sigma_t(eta); eq. 12: direction pointing to x_t.
        sigma = eta * ((1.0 - abar_prev) / (1.0 - abar_t)).sqrt() * (1.0 - abar_t / abar_prev).clamp_min(0.0).sqrt()
        c_eps = (1.0 - abar_prev - sigma**2).clamp_min(0.0).sqrt()
        c_noise = sigma
    else:
        # DDS code: c1 (fresh noise) and c2 (predicted noise) share the level sqrt(1 - abar_prev).
        c_noise = eta * (1.0 - abar_prev).sqrt()
        c_eps = (1.0 - abar_prev).sqrt() * (1.0 - eta**2) ** 0.5
    c_x0, c_eps, c_noise = torch.broadcast_tensors(c_x0, c_eps, c_noise)
    return c_x0, c_eps, c_noise


def randn(
    shape: Sequence[int], generator: torch.Generator | None, *, like: torch.Tensor | None = None
) -> torch.Tensor:
    """i.i.d. standard normal noise; the default ``noise_fn`` of the samplers.

    Draws on the generator's device (so a CPU generator gives the same numbers whatever the
    target device) and moves the result to ``like``'s device and dtype.

    Args:
        shape: Output shape.
        generator: Random generator, or ``None`` for the global RNG.
        like: Tensor whose device and dtype the result follows (default float32 on the
            generator's device / CPU).

    Returns:
        Tensor of ``shape``.
    """
    device = generator.device if generator is not None else (like.device if like is not None else None)
    dtype = like.dtype if like is not None else torch.float32
    z = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    return z if like is None else z.to(like.device)


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    x0: torch.Tensor,
    abar_t: torch.Tensor | float,
    abar_prev: torch.Tensor | float,
    *,
    eta: float = 0.0,
    eta_mode: str = "ddim",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One DDIM / DDS update ``x_t -> x_prev``.

    ``x_prev = sqrt(abar_prev) x0 + c_eps eps + c_noise z``; see :func:`ddim_coefficients` for
    ``c_eps`` and ``c_noise`` in each ``eta_mode``. ``x_t`` itself only fixes shape, dtype and
    device (its information enters through ``eps`` and ``x0``).

    Args:
        x_t: Current sample, model space, ``(N, ...)``.
        eps: Noise estimate, broadcastable to ``x_t`` (unit variance).
        x0: Clean-image estimate in model space, broadcastable to ``x_t``.
        abar_t: ``abar`` of the current timestep: float, 0-d, per-sample ``[N]`` or a tensor
            broadcastable to ``x_t``.
        abar_prev: ``abar`` of the target timestep (``1`` for the final step), same forms.
        eta: Stochasticity in ``[0, 1]``.
        eta_mode: ``"ddim"`` (Song et al. 2021) or ``"dds"`` (Chung et al. 2024).
        noise: Fresh noise ``z`` broadcastable to ``x_t``; drawn with :func:`randn` if ``None``
            and needed (``c_noise > 0``).
        generator: Used only when ``noise`` is ``None``.

    Returns:
        ``x_prev`` with ``x_t``'s shape and dtype.
    """
    c_x0, c_eps, c_noise = ddim_coefficients(_coef(abar_t, x_t), _coef(abar_prev, x_t), eta=eta, eta_mode=eta_mode)
    c_x0, c_eps, c_noise = (c.to(device=x_t.device, dtype=x_t.dtype) for c in (c_x0, c_eps, c_noise))
    x_prev = c_x0 * x0 + c_eps * eps
    if bool((c_noise != 0).any()):
        if noise is None:
            noise = randn(x_t.shape, generator, like=x_t)
        x_prev = x_prev + c_noise * noise
    return x_prev.expand_as(x_t) if x_prev.shape != x_t.shape else x_prev


def add_noise(x0: torch.Tensor, abar: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Forward process ``x_t = sqrt(abar) x0 + sqrt(1 - abar) noise`` (Ho et al. 2020, eq. 4).

    Args:
        x0: Clean data in model space, ``(N, ...)``.
        abar: float, 0-d, per-sample ``[N]`` or broadcastable tensor.
        noise: Standard normal noise, broadcastable to ``x0``.

    Returns:
        ``x_t`` with ``x0``'s shape and dtype.
    """
    a = _coef(abar, x0).to(device=x0.device, dtype=x0.dtype)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def sample_ddim(
    denoiser,
    x_T: torch.Tensor,
    timesteps: Sequence[int] | torch.Tensor,
    *,
    eta: float = 0.0,
    eta_mode: str = "ddim",
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    noise_fn: NoiseFn | None = None,
) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021, Algorithm of eq. 12) along a given timestep sequence.

    For ``i = 0 .. K-1`` with ``t = timesteps[i]`` and ``t' = timesteps[i+1]`` (``t' = -1``,
    ``abar = 1`` after the last):

    1. ``(eps, x0) = denoiser.eps_and_x0(x, t)``;
    2. ``callback(dict(i=i, t=t, x=x, x0=x0))`` — ``x`` is the input ``x_t`` of this step;
    3. ``x = ddim_step(x, eps, x0, abar_t, abar_t', eta, eta_mode, z)`` with
       ``z = noise_fn(x.shape, generator)`` when noise is needed.

    The last step lands on ``abar = 1``, so the result equals the final ``x0`` prediction.
    Autograd is left as the caller set it (wrap in ``torch.no_grad()`` for plain sampling).

    Args:
        denoiser: Object following the denoiser protocol.
        x_T: Starting sample in model space, ``(N, C, H, W)`` or ``(B, C, T, H, W)``, at noise
            level ``timesteps[0]`` (pure ``N(0, I)`` when that is ``N-1`` of a schedule whose
            ``abar_{N-1} ~ 0``; see :func:`add_noise` for partial starts).
        timesteps: Strictly decreasing integer training timesteps, e.g. from
            :func:`~vidrestore.diffusion.schedules.ddim_timesteps`.
        eta: Stochasticity in ``[0, 1]``.
        eta_mode: ``"ddim"`` or ``"dds"`` (see :func:`ddim_coefficients`).
        generator: Random generator for the fresh noise.
        callback: Called once per step with ``dict(i, t, x, x0)``.
        noise_fn: ``noise_fn(shape, generator) -> tensor`` supplying the fresh noise (e.g. one
            draw shared across frames); default i.i.d. :func:`randn`.

    Returns:
        The sample in model space, shape of ``x_T`` (not clamped).
    """
    ts = [int(t) for t in torch.as_tensor(timesteps).reshape(-1).tolist()]
    if not ts:
        raise ValueError("timesteps must not be empty")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing, got {ts}")
    acp = torch.as_tensor(denoiser.alphas_cumprod, dtype=torch.float64).detach().cpu()
    if ts[-1] < 0 or ts[0] >= acp.shape[0]:
        raise ValueError(f"timesteps must lie in [0, {acp.shape[0] - 1}]")
    x = x_T
    for i, t in enumerate(ts):
        abar_t = acp[t]
        abar_prev = acp[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=torch.float64)
        eps, x0 = denoiser.eps_and_x0(x, t)
        if callback is not None:
            callback(dict(i=i, t=t, x=x, x0=x0))
        noise = None
        if eta > 0 and float(abar_prev) < 1.0:
            noise = noise_fn(tuple(x.shape), generator) if noise_fn is not None else randn(x.shape, generator, like=x)
            noise = noise.to(device=x.device, dtype=x.dtype)
        x = ddim_step(x, eps, x0, abar_t, abar_prev, eta=eta, eta_mode=eta_mode, noise=noise, generator=generator)
    return x


def sample_prior(
    denoiser,
    shape: Sequence[int],
    *,
    steps: int = 50,
    eta: float = 0.0,
    eta_mode: str = "ddim",
    seed: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    callback: Callable[[dict], None] | None = None,
    noise_fn: NoiseFn | None = None,
) -> torch.Tensor:
    """Unconditional samples from a diffusion prior, in pixel space.

    Draws ``x_T`` (``noise_fn`` or i.i.d. normal), runs :func:`sample_ddim` over
    ``ddim_timesteps(steps, N)`` (trailing spacing, starting at ``N-1``) under
    ``torch.no_grad()``, and maps the result to ``[0, 1]`` with clamping.

    Args:
        denoiser: Object following the denoiser protocol.
        shape: ``(N, C, H, W)`` or ``(B, C, T, H, W)``.
        steps: Number of denoiser evaluations.
        eta: Stochasticity in ``[0, 1]``.
        eta_mode: ``"ddim"`` or ``"dds"``.
        seed: Seeds a CPU generator when ``generator`` is ``None`` (results then do not depend
            on ``device``).
        generator: Explicit random generator (overrides ``seed``).
        device: Device of the samples.
        dtype: dtype of the samples.
        callback: Per-step callback, see :func:`sample_ddim`.
        noise_fn: ``noise_fn(shape, generator)``; used for ``x_T`` and the fresh noise.

    Returns:
        Samples of ``shape`` in pixel space ``[0, 1]``.
    """
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    like = torch.empty((), dtype=dtype, device=device)
    shape = tuple(int(s) for s in shape)
    x_T = noise_fn(shape, generator) if noise_fn is not None else randn(shape, generator, like=like)
    x_T = x_T.to(device=like.device, dtype=dtype)
    timesteps = ddim_timesteps(steps, int(denoiser.alphas_cumprod.shape[0]))
    with torch.no_grad():
        x = sample_ddim(
            denoiser, x_T, timesteps, eta=eta, eta_mode=eta_mode, generator=generator, callback=callback, noise_fn=noise_fn
        )
    return to_pixel(x).clamp(0.0, 1.0)
