"""Alignment-based PSNR/SSIM: the video-deblurring evaluation protocol of Koehler et al.

Used by Su et al. (DeepVideoDeblurring) and PVDNet (Son et al., ACM TOG 2021; their MATLAB
``evaluation.m``). Per frame (:func:`aligned_frame_metrics`):

1. crop ``border`` (16) pixels on every side of output ``z`` and ground truth ``x``; values
   are taken in 0..255;
2. least-squares intensity gain over all RGB values: ``zs = (sum x z / sum z z) z``;
3. global translation by DFT registration (Guizar-Sicairos et al., Opt. Lett. 2008) of the
   channel means of ``x`` and ``zs``: the cross-correlation peak, in whole pixels
   (``upsample=1``, the paper) or refined to ``1/upsample`` pixel by the matrix-multiply DFT;
4. ``zs`` and an all-ones mask are shifted by that amount with zero fill ('same' size);
   ``x`` is multiplied by the shifted mask;
5. PSNR (``10 log10(255² / MSE)``, the zeroed pixels included) and SSIM (Wang et al.: 11x11
   Gaussian window, sigma 1.5, K = (0.01, 0.03), L = 255) on luma
   ``Y = 0.299 R + 0.587 G + 0.114 B`` (no rounding or clipping after the gain).

:func:`aligned_video_metrics` skips the first frame and averages over all scored frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .psnr import psnr
from .ssim import ssim

__all__ = ["dft_registration", "shift_image", "aligned_frame_metrics", "aligned_video_metrics"]

_LUMA = (0.299, 0.587, 0.114)


def _upsampled_dft(data: np.ndarray, n_out: int, usfac: int, roff: float, coff: float) -> np.ndarray:
    """Cross-correlation upsampled by ``usfac`` on an ``n_out x n_out`` patch around (roff, coff)."""
    nr, nc = data.shape
    kern_c = np.exp((-1j * 2 * np.pi / (nc * usfac)) * (np.fft.ifftshift(np.arange(nc))[:, None] - nc // 2) * (np.arange(n_out)[None] - coff))
    kern_r = np.exp((-1j * 2 * np.pi / (nr * usfac)) * (np.arange(n_out)[:, None] - roff) * (np.fft.ifftshift(np.arange(nr))[None] - nr // 2))
    return kern_r @ data @ kern_c


def dft_registration(ref: np.ndarray, moving: np.ndarray, upsample: int = 1) -> tuple[float, float]:
    """Translation ``(dy, dx)`` that registers ``moving`` onto ``ref`` (2-D float arrays).

    ``shift_image(moving, dy, dx)`` (``out(p) = moving(p - (dy, dx))``) best matches ``ref``.
    Whole pixels for ``upsample=1``; otherwise refined to ``1/upsample`` pixel
    (Guizar-Sicairos, Thurman & Fienup, "Efficient subpixel image registration algorithms",
    Opt. Lett. 33(2), 2008).
    """
    f1, f2 = np.fft.fft2(ref), np.fft.fft2(moving)
    prod = f1 * np.conj(f2)
    cc = np.fft.ifft2(prod)
    nr, nc = cc.shape
    r, c = np.unravel_index(int(np.argmax(np.abs(cc))), cc.shape)
    dy = r - nr if r > nr // 2 else r
    dx = c - nc if c > nc // 2 else c
    if upsample > 1:
        dy, dx = round(dy * upsample) / upsample, round(dx * upsample) / upsample
        n_out = math.ceil(upsample * 1.5)
        off = n_out // 2
        up = _upsampled_dft(np.conj(prod), n_out, upsample, off - dy * upsample, off - dx * upsample)
        rr, cc2 = np.unravel_index(int(np.argmax(np.abs(up))), up.shape)
        dy = dy + (rr - off) / upsample
        dx = dx + (cc2 - off) / upsample
    return float(dy), float(dx)


def shift_image(img: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """``out(p) = img(p - (dy, dx))`` with zero fill; ``img`` is ``(C, H, W)``.

    Integer shifts are exact copies; fractional ones use bilinear interpolation.
    """
    c, h, w = img.shape
    if float(dy).is_integer() and float(dx).is_integer():
        dy, dx = int(dy), int(dx)
        out = torch.zeros_like(img)
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        if abs(dy) < h and abs(dx) < w:
            out[:, yd, xd] = img[:, ys, xs]
        return out
    yy, xx = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    gx = 2 * (xx - dx) / max(w - 1, 1) - 1
    gy = 2 * (yy - dy) / max(h - 1, 1) - 1
    return F.grid_sample(img[None], torch.stack((gx, gy), -1)[None], mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def aligned_frame_metrics(out: torch.Tensor, gt: torch.Tensor, *, border: int = 16, upsample: int = 1) -> dict:
    """Koehler-protocol PSNR/SSIM of one frame (see the module docstring).

    Args:
        out, gt: ``(3, H, W)`` RGB in ``[0, 1]``.
        border: pixels cropped on every side first.
        upsample: registration precision ``1/upsample`` pixel (1: whole pixels, the paper).

    Returns:
        ``{"psnr", "ssim", "gain", "shift": (dy, dx)}``.
    """
    if out.shape != gt.shape or out.ndim != 3 or out.shape[0] != 3:
        raise UserError(f"aligned metrics need two (3, H, W) frames of equal shape, got {tuple(out.shape)} and {tuple(gt.shape)}")
    h, w = out.shape[-2:]
    if h - 2 * border < 11 or w - 2 * border < 11:
        raise UserError(f"frames of {h}x{w} are too small for a {border}-pixel border crop")
    z = out.double()[:, border : h - border, border : w - border] * 255.0
    x = gt.double()[:, border : h - border, border : w - border] * 255.0
    zz = float((z * z).sum())
    gain = float((x * z).sum()) / zz if zz > 0 else 1.0
    zs = gain * z
    dy, dx = dft_registration(x.mean(0).numpy(), zs.mean(0).numpy(), upsample)
    zr = shift_image(zs, dy, dx)
    mask = shift_image(torch.ones_like(zs[:1]), dy, dx)
    xr = x * mask
    ly = lambda t: (_LUMA[0] * t[0] + _LUMA[1] * t[1] + _LUMA[2] * t[2])[None, None]  # noqa: E731
    yx, yz = ly(xr), ly(zr)
    return {
        "psnr": float(psnr(yz, yx, data_range=255.0)),
        "ssim": float(ssim(yz, yx, data_range=255.0)),
        "gain": gain,
        "shift": (dy, dx),
    }


def aligned_video_metrics(out: torch.Tensor, gt: torch.Tensor, *, border: int = 16, upsample: int = 1, skip_first: bool = True) -> dict:
    """Koehler-protocol metrics of a video, mean over frames ``2..T`` (all frames if ``T = 1``
    or ``skip_first=False``) and over the batch.

    Args:
        out, gt: ``(B, 3, T, H, W)`` in ``[0, 1]``.

    Returns:
        ``{"psnr", "ssim", "frames_scored", "per_frame": [{"frame", "psnr", "ssim", "shift"}]}``
        (per-frame values of the first batch element).
    """
    if out.shape != gt.shape or out.ndim != 5:
        raise UserError(f"aligned metrics need two (B, 3, T, H, W) videos of equal shape, got {tuple(out.shape)} and {tuple(gt.shape)}")
    t_len = out.shape[2]
    first = 1 if (skip_first and t_len > 1) else 0
    rows, ps, ss = [], [], []
    for b in range(out.shape[0]):
        for t in range(first, t_len):
            m = aligned_frame_metrics(out[b, :, t], gt[b, :, t], border=border, upsample=upsample)
            ps.append(m["psnr"])
            ss.append(m["ssim"])
            if b == 0:
                rows.append({"frame": t, "psnr": m["psnr"], "ssim": m["ssim"], "shift": list(m["shift"])})
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "frames_scored": len(ps), "per_frame": rows, "border": border, "upsample": upsample}
