"""Non-iterative baselines that users reach for before any solver: interpolation for
super-resolution and block-matching denoisers for pure denoising.

* :func:`solve_lift` undoes every factor of the operator cheaply (``op.lift``: bicubic
  upsampling for SR, identity for blurs and masks, frame repetition for frame dropping), with
  Lanczos-3 instead of bicubic for the SR factor when asked.
* :func:`solve_bm3d` denoises each frame with BM3D (Dabov et al., IEEE TIP 2007; Mäkinen et
  al. 2020 implementation, PyPI ``bm3d``) in the opponent colour space.
* :func:`solve_bm4d` denoises the whole clip as one spatio-temporal volume with BM4D
  (Maggioni et al., IEEE TIP 2013; PyPI ``bm4d``), block matching on the first opponent channel.

Both block-matching denoisers are for the identity operator (pure denoising) with a known
``sigma_y``; they need the optional ``bench`` extra (``pip install 'vidrestore[bench]'``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserError
from ..ops.base import Composition, Identity, LinearOperator
from ..ops.resize import Downsample

#: Opponent colour transform of BM3D's ``bm3d_rgb`` (orthogonal rows, so white noise stays white).
_OPP = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, -0.5], [0.25, -0.5, 0.25]])


def _factors(op: LinearOperator) -> list[LinearOperator]:
    return list(op.ops) if isinstance(op, Composition) else [op]


def lanczos_matrix(n: int, factor: int, a: int = 3) -> torch.Tensor:
    """``(n * factor, n)`` Lanczos-``a`` interpolation matrix for upsampling ``n`` samples by
    ``factor`` (pixel centres aligned as in ``align_corners=False``; taps beyond the border are
    folded back onto the edge sample; each row sums to 1)."""
    out = torch.zeros(n * factor, n, dtype=torch.float64)
    for i in range(n * factor):
        centre = (i + 0.5) / factor - 0.5
        for k in range(math.floor(centre) - a + 1, math.floor(centre) + a + 1):
            d = centre - k
            w = 1.0 if d == 0 else a * math.sin(math.pi * d) * math.sin(math.pi * d / a) / (math.pi * d) ** 2
            out[i, min(max(k, 0), n - 1)] += w
    return out / out.sum(dim=1, keepdim=True)


def _lanczos_up(y: torch.Tensor, factor: int) -> torch.Tensor:
    """Separable Lanczos-3 upsampling of every frame by ``factor``."""
    h, w = y.shape[-2:]
    mh = lanczos_matrix(h, factor).to(y)
    mw = lanczos_matrix(w, factor).to(y)
    return torch.einsum("ih,bcthw,jw->bctij", mh, y, mw)


def solve_lift(op: LinearOperator, y: torch.Tensor, *, kernel: str = "bicubic", callback=None) -> torch.Tensor:
    """Interpolation baseline: ``op.lift(y)`` factor by factor, last factor first.

    Args:
        op: any operator; only its ``sr`` factors are really undone (by interpolation).
        y: measurement ``(B, C, T', H', W')`` in pixel units.
        kernel: ``"bicubic"`` (torch, as ``op.lift``) or ``"lanczos"`` (separable Lanczos-3,
            :func:`lanczos_matrix`) for the SR factors.
        callback: called once with ``{"i": 0}`` when done (progress).

    Returns:
        ``(B, C, T, H, W)`` clamped to ``[0, 1]``.
    """
    if kernel not in ("bicubic", "lanczos"):
        raise UserError(f"kernel must be bicubic or lanczos, got {kernel!r}")
    x = y
    for f in reversed(_factors(op)):
        x = _lanczos_up(x, f.factor) if kernel == "lanczos" and isinstance(f, Downsample) else f.lift(x)
    if callback is not None:
        callback({"i": 0})
    return x.clamp(0, 1)


def _check_denoising(op: LinearOperator, sigma_y: float, name: str) -> None:
    if not all(isinstance(f, Identity) for f in _factors(op)):
        raise UserError(f"{name} is a pure denoiser: it needs the operator 'id', got {op.spec!r}")
    if not sigma_y > 0:
        raise UserError(f"{name} needs the noise level sigma_y > 0, got {sigma_y}")


def _import(name: str):
    try:
        return __import__(name)
    except ImportError:
        raise UserError(f"method {name} needs the package {name}: pip install 'vidrestore[bench]'") from None


def _to_opp(y: torch.Tensor) -> np.ndarray:
    """``(1, 3, T, H, W)`` RGB -> ``(3, T, H, W)`` opponent channels (float64)."""
    if y.shape[0] != 1 or y.shape[1] != 3:
        raise UserError(f"block-matching denoisers take one RGB clip (1, 3, T, H, W), got {tuple(y.shape)}")
    return np.einsum("ij,jthw->ithw", _OPP, y[0].detach().cpu().double().numpy())


def _from_opp(z: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    rgb = np.einsum("ij,jthw->ithw", np.linalg.inv(_OPP), z)
    return torch.from_numpy(rgb).unsqueeze(0).to(like.device, like.dtype).clamp(0, 1)


def _opp_sigmas(sigma_y: float) -> list[float]:
    """Noise std of each opponent channel for white RGB noise of std ``sigma_y``."""
    return [float(sigma_y * np.sqrt((row**2).sum())) for row in _OPP]


def solve_bm3d(op: LinearOperator, y: torch.Tensor, *, sigma_y: float, callback=None) -> torch.Tensor:
    """Per-frame BM3D of a noisy clip (operator ``id``); ``sigma_y`` is the true noise std in
    pixel units. ``callback({"i": t})`` after each frame. Returns ``(1, 3, T, H, W)`` in [0, 1]."""
    _check_denoising(op, sigma_y, "bm3d")
    bm3d = _import("bm3d")
    z = _to_opp(y)
    sig = _opp_sigmas(sigma_y)
    out = np.empty_like(z)
    for t in range(z.shape[1]):
        # bm3d_rgb's own path: opponent transform, matching on luma; done by hand here so the
        # per-channel noise levels are explicit and the colour transform is shared with bm4d.
        frame = np.stack([z[c, t] for c in range(3)], axis=-1)
        den = bm3d.bm3d(frame, np.array(sig)[None, None, :])
        out[:, t] = np.moveaxis(np.asarray(den).reshape(frame.shape), -1, 0)
        if callback is not None:
            callback({"i": t})
    return _from_opp(out, y)


def solve_bm4d(op: LinearOperator, y: torch.Tensor, *, sigma_y: float, callback=None) -> torch.Tensor:
    """BM4D of the whole clip as one ``H x W x T`` volume per opponent channel (operator ``id``);
    block matching on the first (luma-like) channel. Returns ``(1, 3, T, H, W)`` in [0, 1]."""
    _check_denoising(op, sigma_y, "bm4d")
    bm4d = _import("bm4d")
    z = _to_opp(y)  # (3, T, H, W)
    vol = np.ascontiguousarray(np.moveaxis(z, 1, -1))  # (3, H, W, T)
    sigmas = _opp_sigmas(sigma_y)
    den = np.array(bm4d.bm4d_multichannel(vol, sigmas), dtype=np.float64)
    for c in range(den.shape[0]):
        # The PyPI package's multichannel path can leave a few NaN voxels in the chroma channels
        # at the frame border (seen on a 128x128 clip, last frames, right edge). Such a channel
        # is denoised again on its own, and any voxel still not finite keeps its noisy value.
        bad = ~np.isfinite(den[c])
        if bad.any():
            alone = np.asarray(bm4d.bm4d(vol[c], sigmas[c]), dtype=np.float64).reshape(vol[c].shape)
            den[c][bad] = np.where(np.isfinite(alone[bad]), alone[bad], vol[c][bad])
    if callback is not None:
        callback({"i": 0})
    return _from_opp(np.moveaxis(den, -1, 1), y)
