"""Denoisers: wrap a discrete-time diffusion network as an epsilon / x0 / v predictor.

**Denoiser protocol** (what samplers and solvers accept): any object with

* ``alphas_cumprod``: float64 tensor ``[N]`` (``abar_t`` for training timesteps ``t = 0..N-1``);
* ``eps_and_x0(x_t, t) -> (eps, x0)``: predicted noise and predicted clean image (Tweedie's
  posterior mean ``E[x_0 | x_t]``) for ``x_t`` in model space ``[-1, 1]`` with shape
  ``(N, C, H, W)`` or ``(B, C, T, H, W)``, and ``t`` an integer tensor ``[N]`` / ``[B]`` (or a
  Python int, broadcast over the batch). Both outputs have ``x_t``'s shape and dtype.

The forward process is ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (Ho et al. 2020, eq. 4),
so any one of ``eps``, ``x0`` and ``v = sqrt(abar) eps - sqrt(1 - abar) x0`` (Salimans & Ho 2022,
"Progressive Distillation", sec. 4) determines the other two given ``x_t``.

:class:`DenoiserBase` derives ``eps``/``x0``/``v``/``denoise_pixel`` from ``eps_and_x0``;
:class:`DiscreteDiffusionDenoiser` implements it for a network ``net(x_t, t)``, and
:class:`vidrestore.diffusion.gaussian.GaussianPrior` in closed form.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..errors import UserError
from ..tensor import append_dims, fold_time, to_model, to_pixel, unfold_time
from .schedules import alphas_cumprod as _alphas_cumprod
from .schedules import get_betas, timestep_from_sigma

__all__ = [
    "DenoiserBase",
    "DiscreteDiffusionDenoiser",
    "PREDICTIONS",
    "abar_at",
    "x0_from_eps",
    "eps_from_x0",
    "v_from_eps_x0",
    "x0_from_v",
    "eps_from_v",
    "normalize_timesteps",
    "denoise_pixel",
    "pixel_denoiser",
    "EvaluationCount",
    "count_evaluations",
]


@dataclass
class EvaluationCount:
    """Network evaluations counted by :func:`count_evaluations`: ``calls`` (network calls through
    :meth:`DiscreteDiffusionDenoiser.raw_output`) and ``images`` (images or frames passed)."""

    calls: int = 0
    images: int = 0


_EVALS: EvaluationCount | None = None


@contextmanager
def count_evaluations() -> Iterator[EvaluationCount]:
    """Count the network evaluations of every :class:`DiscreteDiffusionDenoiser` in this block
    (single-threaded use, not nestable). A ``(B, C, T, H, W)`` video counts ``B * T`` images."""
    global _EVALS
    if _EVALS is not None:
        raise RuntimeError("count_evaluations blocks cannot be nested")
    _EVALS = EvaluationCount()
    try:
        yield _EVALS
    finally:
        _EVALS = None

PREDICTIONS = ("eps", "x0", "v")


# ----------------------------------------------------------------------------------------------
# Parameterisation conversions. ``abar`` is broadcastable to ``x_t`` (see :func:`abar_at`).
# ----------------------------------------------------------------------------------------------


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)`` (Ho et al. 2020, eq. 4 solved for x0)."""
    return (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)``; undefined at ``abar = 1``."""
    return (x_t - abar.sqrt() * x0) / (1.0 - abar).sqrt()


def v_from_eps_x0(eps: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``v = sqrt(abar) eps - sqrt(1 - abar) x0`` (Salimans & Ho 2022)."""
    return abar.sqrt() * eps - (1.0 - abar).sqrt() * x0


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``x0 = sqrt(abar) x_t - sqrt(1 - abar) v`` (Salimans & Ho 2022)."""
    return abar.sqrt() * x_t - (1.0 - abar).sqrt() * v


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``eps = sqrt(1 - abar) x_t + sqrt(abar) v`` (Salimans & Ho 2022)."""
    return (1.0 - abar).sqrt() * x_t + abar.sqrt() * v


def normalize_timesteps(t: torch.Tensor | int, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer timesteps as an int64 tensor ``[batch]``.

    Args:
        t: Python int, 0-d integer tensor (broadcast), or integer tensor ``[batch]``.
        batch: Leading dimension of ``x_t``.
        device: Device of the result.

    Returns:
        int64 tensor ``[batch]``.

    Raises:
        ValueError: Non-integer dtype or wrong length.
    """
    t = torch.as_tensor(t, device=device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"timesteps must be integers, got dtype {t.dtype}")
    t = t.to(torch.int64)
    if t.ndim == 0:
        return t.expand(batch).clone()
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"timesteps must be an int or have shape [{batch}], got {tuple(t.shape)}")
    return t


def abar_at(alphas_cumprod: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """``abar_t`` per sample, shaped to broadcast against ``x``.

    Args:
        alphas_cumprod: ``[N]`` schedule (any float dtype; read as float64).
        t: Integer timesteps, int or ``[x.shape[0]]``; values in ``[0, N-1]``.
        x: Tensor ``(batch, ...)`` whose dtype, device and ndim the result follows.

    Returns:
        Tensor ``(batch, 1, ..., 1)`` in ``x.dtype`` on ``x.device``; ``(1, ..., 1)`` when ``t``
        is a Python int or a 0-d tensor (one level for the whole batch).
    """
    acp = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()
    if isinstance(t, int) or (isinstance(t, torch.Tensor) and t.ndim == 0):
        t = normalize_timesteps(t, 1, device="cpu")
        if not 0 <= int(t) < acp.shape[0]:
            raise ValueError(f"timesteps must lie in [0, {acp.shape[0] - 1}], got {int(t)}")
        return acp[t].to(device=x.device, dtype=x.dtype).reshape((1,) * x.ndim)
    t = normalize_timesteps(t, x.shape[0], device="cpu")
    if bool((t < 0).any()) or bool((t >= acp.shape[0]).any()):
        raise ValueError(f"timesteps must lie in [0, {acp.shape[0] - 1}], got {t.tolist()}")
    return append_dims(acp[t].to(device=x.device, dtype=x.dtype), x.ndim)


# ----------------------------------------------------------------------------------------------
# Base class.
# ----------------------------------------------------------------------------------------------


class DenoiserBase:
    """Derived predictions for anything implementing ``eps_and_x0`` and ``alphas_cumprod``.

    Subclasses set ``self.alphas_cumprod`` (float64 ``[N]``) and implement
    :meth:`eps_and_x0`.
    """

    alphas_cumprod: torch.Tensor

    @property
    def num_timesteps(self) -> int:
        """Number of training timesteps ``N``."""
        return int(self.alphas_cumprod.shape[0])

    def eps_and_x0(self, x_t: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted noise and clean image; see the module docstring for shapes."""
        raise NotImplementedError

    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Predicted noise ``eps`` (unit variance), shape of ``x_t``."""
        return self.eps_and_x0(x_t, t)[0]

    def x0(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Tweedie estimate ``E[x_0 | x_t]`` in model space ``[-1, 1]``, shape of ``x_t``."""
        return self.eps_and_x0(x_t, t)[1]

    def v(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Predicted velocity ``v = sqrt(abar) eps - sqrt(1 - abar) x0``, shape of ``x_t``."""
        eps, x0 = self.eps_and_x0(x_t, t)
        return v_from_eps_x0(eps, x0, abar_at(self.alphas_cumprod, t, x_t))

    def denoise_pixel(self, y: torch.Tensor, sigma_pixel: torch.Tensor | float) -> torch.Tensor:
        """One-step Tweedie denoising of a noisy pixel-space image; see :func:`denoise_pixel`."""
        return denoise_pixel(self, y, sigma_pixel)


# ----------------------------------------------------------------------------------------------
# Network wrapper.
# ----------------------------------------------------------------------------------------------


class DiscreteDiffusionDenoiser(DenoiserBase):
    """Wrap a discrete-time diffusion network ``net(x_t, t) -> output`` (DDPM / ADM / SD style).

    The network sees 4-D frame batches: a video ``(B, C, T, H, W)`` is folded to
    ``(B*T, C, H, W)`` with every frame of clip ``b`` at timestep ``t[b]``, and the output is
    unfolded again.

    Args:
        net: Callable ``net(x, t)`` with ``x`` ``(n, C, H, W)`` in model space and ``t`` an int64
            tensor ``[n]``; returns ``(n, C, H, W)``, or ``(n, 2C, H, W)`` for networks with
            learned variance (ADM, Nichol & Dhariwal 2021), of which only the first ``C``
            channels (the mean prediction) are used.
        alphas_cumprod: ``[N]`` cumulative alphas of the training schedule, or the name of a
            schedule known to :func:`~vidrestore.diffusion.schedules.get_betas` (1000 steps).
        prediction: What the network outputs: ``"eps"`` (noise), ``"x0"`` (clean image) or
            ``"v"`` (velocity).
        learned_sigma: ``True``: output has ``2C`` channels; ``False``: exactly ``C``;
            ``None`` (default): auto-detect, dropping the second half when the output has ``2C``.
        clip_x0: Default for clamping ``x0`` to ``[-1, 1]``; when clamped, ``eps`` is recomputed
            from the clamped ``x0`` (as guided-diffusion's DDIM sampler does).
        chunk_size: Run the network on at most this many frames at a time (memory control);
            ``None`` runs all frames at once.
        per_frame: ``True`` (default): 5-D videos are folded to frame batches as described
            above. ``False``: the network is a clip model (e.g. the channel-stacked LGC-VD
            UNet) and receives ``(B, C, T, H, W)`` and ``t`` ``[B]`` unchanged.
    """

    def __init__(
        self,
        net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        alphas_cumprod: torch.Tensor | str,
        *,
        prediction: str = "eps",
        learned_sigma: bool | None = None,
        clip_x0: bool = False,
        chunk_size: int | None = None,
        per_frame: bool = True,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        if isinstance(alphas_cumprod, str):
            alphas_cumprod = _alphas_cumprod(get_betas(alphas_cumprod, 1000))
        acp = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()
        if acp.ndim != 1 or acp.numel() == 0 or bool((acp <= 0).any()) or bool((acp >= 1).any()):
            raise ValueError("alphas_cumprod must be a non-empty 1-D tensor with values in (0, 1)")
        self.net = net
        self.alphas_cumprod = acp
        self.prediction = prediction
        self.learned_sigma = learned_sigma
        self.clip_x0 = clip_x0
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.per_frame = bool(per_frame)

    def raw_output(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Network output (first ``C`` channels) for images or videos, shape of ``x_t``.

        Args:
            x_t: ``(N, C, H, W)`` or ``(B, C, T, H, W)`` in model space.
            t: Integer timesteps, int or ``[N]`` / ``[B]``.

        Returns:
            The ``eps``, ``x0`` or ``v`` prediction (per ``self.prediction``), shape of ``x_t``.
        """
        t = normalize_timesteps(t, x_t.shape[0], device=x_t.device)
        if _EVALS is not None:
            _EVALS.calls += 1
            _EVALS.images += x_t.shape[0] * (x_t.shape[2] if x_t.ndim == 5 else 1)
        if x_t.ndim == 5 and not self.per_frame:
            return self._run_net(x_t, t)
        if x_t.ndim == 5:
            b, _, frames = x_t.shape[:3]
            out = self._run_net(fold_time(x_t), t.repeat_interleave(frames))
            return unfold_time(out, b)
        if x_t.ndim == 4:
            return self._run_net(x_t, t)
        raise UserError(f"x_t must be (N, C, H, W) or (B, C, T, H, W), got {tuple(x_t.shape)}")

    def _run_net(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        step = n if self.chunk_size is None else self.chunk_size
        outs = [self._keep_mean_channels(self.net(x[i : i + step], t[i : i + step]), x) for i in range(0, n, step)]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def _keep_mean_channels(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        oc = out.shape[1]
        if self.learned_sigma is True and oc != 2 * c:
            raise ValueError(f"learned_sigma=True expects {2 * c} output channels, got {oc}")
        if self.learned_sigma is False and oc != c:
            raise ValueError(f"learned_sigma=False expects {c} output channels, got {oc}")
        if oc == 2 * c and self.learned_sigma is not False:
            out = out[:, :c]  # ADM: [mean prediction, variance interpolation] along channels
        elif oc != c:
            raise ValueError(f"network returned {oc} channels for a {c}-channel input")
        return out

    def eps_and_x0(
        self, x_t: torch.Tensor, t: torch.Tensor | int, *, clip_x0: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted noise and Tweedie clean image.

        Args:
            x_t: ``(N, C, H, W)`` or ``(B, C, T, H, W)`` noisy input in model space.
            t: Integer timesteps in ``[0, N-1]``, int or ``[N]`` / ``[B]``.
            clip_x0: Override of ``self.clip_x0``.

        Returns:
            ``(eps, x0)``, each of ``x_t``'s shape; ``x0`` in model space.
        """
        abar = abar_at(self.alphas_cumprod, t, x_t)
        out = self.raw_output(x_t, t)
        if self.prediction == "eps":
            eps, x0 = out, x0_from_eps(x_t, out, abar)
        elif self.prediction == "x0":
            eps, x0 = eps_from_x0(x_t, out, abar), out
        else:
            eps, x0 = eps_from_v(x_t, out, abar), x0_from_v(x_t, out, abar)
        if self.clip_x0 if clip_x0 is None else clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = eps_from_x0(x_t, x0, abar)
        return eps, x0

    def x0(self, x_t: torch.Tensor, t: torch.Tensor | int, *, clip_x0: bool | None = None) -> torch.Tensor:
        """Tweedie estimate ``E[x_0 | x_t]`` in model space, optionally clamped to ``[-1, 1]``."""
        return self.eps_and_x0(x_t, t, clip_x0=clip_x0)[1]


# ----------------------------------------------------------------------------------------------
# Pixel-space one-step denoiser.
# ----------------------------------------------------------------------------------------------


def denoise_pixel(denoiser, y: torch.Tensor, sigma_pixel: torch.Tensor | float) -> torch.Tensor:
    """One-step Tweedie denoiser for a pixel-space image with additive Gaussian noise.

    Given ``y = x + n``, ``x`` in ``[0, 1]``, ``n ~ N(0, sigma_pixel^2 I)``:

    1. Model space: ``z = 2y - 1 = x_m + 2n``, i.e. VE noise level ``sigma = 2 sigma_pixel``.
    2. Pick the training timestep whose ``sqrt((1 - abar_t) / abar_t)`` is nearest to ``sigma``
       (in log-sigma, :func:`~vidrestore.diffusion.schedules.timestep_from_sigma`).
    3. VE -> VP scaling (Karras et al. 2022, eq. 4 with ``s = sqrt(abar)``):
       ``x_t = sqrt(abar_t) z``, whose noise std is ``sqrt(abar_t) sigma ~= sqrt(1 - abar_t)``.
    4. Return ``to_pixel(E[x_0 | x_t])``.

    The result is exact when ``2 sigma_pixel`` equals a schedule sigma; otherwise the denoiser
    sees a slightly mismatched noise level. Levels outside the schedule clamp to ``t = 0`` or
    ``t = N-1``. No clamping of the output.

    Args:
        denoiser: Object following the denoiser protocol (module docstring).
        y: Noisy image ``(N, C, H, W)`` or video ``(B, C, T, H, W)`` in pixel space ``[0, 1]``
            (values may stray outside because of the noise).
        sigma_pixel: Noise std in pixel ``[0, 1]`` units: float or tensor ``[N]`` / ``[B]``.

    Returns:
        Denoised estimate, shape of ``y``, in pixel space (not clamped).
    """
    sigma_pixel = torch.as_tensor(sigma_pixel, dtype=torch.float64).detach().cpu()
    if sigma_pixel.ndim > 1 or (sigma_pixel.ndim == 1 and sigma_pixel.shape[0] != y.shape[0]):
        raise ValueError(f"sigma_pixel must be a float or have shape [{y.shape[0]}], got {tuple(sigma_pixel.shape)}")
    # Step 1: pixel [0, 1] -> model [-1, 1]; the noise std doubles.
    z = to_model(y)
    sigma_model = 2.0 * sigma_pixel
    # Step 2: matching training timestep.
    t = timestep_from_sigma(denoiser.alphas_cumprod, sigma_model, mode="nearest")
    t = normalize_timesteps(t, y.shape[0])
    # Step 3: VE -> VP scaling.
    abar = abar_at(denoiser.alphas_cumprod, t, z)
    x_t = abar.sqrt() * z
    # Step 4: Tweedie posterior mean, back to pixel space.
    _, x0 = denoiser.eps_and_x0(x_t, t.to(y.device))
    return to_pixel(x0)


def pixel_denoiser(denoiser) -> Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]:
    """``f(y, sigma_pixel) -> x_hat``: :func:`denoise_pixel` bound to ``denoiser``."""

    def f(y: torch.Tensor, sigma_pixel: torch.Tensor | float) -> torch.Tensor:
        return denoise_pixel(denoiser, y, sigma_pixel)

    return f
