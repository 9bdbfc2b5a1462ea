"""Tools around a prior: sample grids and image denoising at the matching timestep."""

from __future__ import annotations
import math
import torch
import torch.nn.functional as F
from ..diffusion.denoisers import denoise_pixel
from ..diffusion.samplers import sample_prior
from ..errors import UserError
from ..tensor import fold_time, unfold_time
from .base import Prior


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images into one ``(C, H', W')`` image.

    Args:
        images: Batch of images.
        nrow: Images per row (default ``ceil(sqrt(N))``).
        padding: Pixels between images and around the border.
        pad_value: Fill value of the padding.

    Returns:
        The grid, same dtype and device as ``images``.
    """
    n, c, h, w = images.shape
    nrow = max(1, min(n, nrow or math.ceil(math.sqrt(n))))
    rows = math.ceil(n / nrow)
    grid = images.new_full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y0 : y0 + h, x0 : x0 + w] = images[i]
    return grid


def sample_prior_grid(
    prior: Prior,
    n: int = 8,
    *,
    size: int = 64,
    steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    nrow: int | None = None,
) -> torch.Tensor:
    """Unconditional samples of a prior tiled into one image (a sanity check of a prior).

    Runs :func:`vidrestore.diffusion.samplers.sample_prior` (DDIM, Song et al. 2021, trailing
    timesteps) from seeded Gaussian noise and tiles the results with :func:`make_grid`.

    Args:
        prior: The prior (anything following the denoiser protocol with ``multiple``).
        n: Number of samples.
        size: Side of each square sample; a multiple of ``prior.multiple``.
        steps: DDIM steps.
        eta: DDIM stochasticity in ``[0, 1]``.
        seed: Seed of the noise (CPU generator: same samples on every device).
        device: Device to sample on (default: the prior's device).
        nrow: Samples per row of the grid (default ``ceil(sqrt(n))``).

    Returns:
        float32 CPU tensor ``(3, H, W)`` in ``[0, 1]`` (``(grid * 255).round().byte()`` for PNG).
    """
    if n < 1 or steps < 1:
        raise UserError(f"n and steps must be >= 1, got n={n}, steps={steps}")
    multiple = int(getattr(prior, "multiple", 1))
    if size < 1 or size % multiple:
        raise UserError(f"size must be a positive multiple of {multiple}, got {size}")
    channels = int(getattr(getattr(prior, "net", None), "in_channels", 3) or 3)
    if device is None:
        device = getattr(prior, "device", None)
    x = sample_prior(prior, (n, channels, size, size), steps=steps, eta=eta, seed=seed, device=device)
    return make_grid(x.float().cpu(), nrow=nrow)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, h, w
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w


def denoise_image(prior: Prior, y: torch.Tensor, sigma_pixel: float | torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """One-step Tweedie denoising of pixel images or videos with additive Gaussian noise.

    :func:`vidrestore.diffusion.denoisers.denoise_pixel` (Tweedie's formula, Efron 2011,
    "Tweedie's Formula and Selection Bias", at the training timestep whose noise level matches
    ``2 * sigma_pixel`` in model space) under ``torch.no_grad()``, with reflect-padding to the
    prior's size multiple and cropping back.

    Args:
        prior: The prior.
        y: Noisy ``(C, H, W)``, ``(N, C, H, W)`` or ``(B, C, T, H, W)`` tensor in pixel space.
        sigma_pixel: Noise standard deviation in ``[0, 1]`` units (e.g. ``25 / 255``).
        clamp: Clamp the result to ``[0, 1]``.

    Returns:
        The denoised estimate, shape, dtype and device of ``y``.
    """
    if y.ndim not in (3, 4, 5):
        raise UserError(f"image must be (C, H, W), (N, C, H, W) or (B, C, T, H, W), got {tuple(y.shape)}")
    squeeze = y.ndim == 3
    x = y[None] if squeeze else y
    batch = x.shape[0] if x.ndim == 5 else None
    sig = torch.as_tensor(sigma_pixel, dtype=torch.float64).detach().cpu()
    if batch is not None:
        if sig.ndim == 1:
            sig = sig.repeat_interleave(x.shape[2])  # one level per clip -> one per frame
        x = fold_time(x)
    xp, h, w = _pad_to_multiple(x, int(getattr(prior, "multiple", 1)))
    with torch.no_grad():
        out = denoise_pixel(prior, xp.to(getattr(prior, "device", xp.device)), sig)
    out = out[..., :h, :w].to(device=y.device, dtype=y.dtype)
    if clamp:
        out = out.clamp(0.0, 1.0)
    if batch is not None:
        out = unfold_time(out, batch)
    return out[0] if squeeze else out
