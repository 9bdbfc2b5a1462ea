"""Spatial blur operators (reflect boundary): Gaussian, linear motion, user kernel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from . import functional as Fn
from .base import LinearOperator


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Isotropic normalised Gaussian kernel, default size ``2*ceil(3*sigma)+1`` (odd)."""
    if sigma <= 0:
        raise UserError(f"Gaussian blur sigma must be > 0, got {sigma}")
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
    if size < 1 or size % 2 == 0:
        raise UserError(f"blur kernel size must be a positive odd integer, got {size}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    k = torch.outer(g, g)
    return k / k.sum()


def motion_kernel(length: float, angle_deg: float, supersample: int = 16) -> torch.Tensor:
    """Linear motion-blur kernel: a centred segment of ``length`` pixels at ``angle_deg``
    (counter-clockwise from the +x axis, image y pointing down), anti-aliased by
    supersampling points along the segment with bilinear splatting; normalised to sum 1.
    The size is the smallest odd square that holds the segment."""
    if length <= 0:
        raise UserError(f"motion blur length must be > 0, got {length}")
    half = int(math.ceil(length / 2)) + 1
    size = 2 * half + 1
    k = np.zeros((size, size), dtype=np.float64)
    a = math.radians(angle_deg)
    n = max(2, int(math.ceil(length * supersample)))
    for s in np.linspace(-length / 2, length / 2, n):
        x = half + s * math.cos(a)
        y = half - s * math.sin(a)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    k[y0 + dy, x0 + dx] += wy * wx
    return torch.from_numpy(k / k.sum())


#: A spatial kernel may be at most this many times the frame's height / width (checked by
#: :meth:`SpatialBlur.output_shape`, before any convolution allocates its padded frames).
KERNEL_FRAME_FACTOR = 4


def load_kernel(path: str | Path, max_side: int = 1025) -> torch.Tensor:
    """Load a 2-D real kernel from ``.npy`` (no pickles), odd sizes up to ``max_side``,
    finite, normalised to sum 1. The header is checked (memory-mapped) before the data are
    read; any unreadable, non-``.npy`` (e.g. ``.npz``), non-numeric or oversized file is a
    :class:`UserError`."""
    p = Path(path)
    try:
        if not p.is_file():
            raise UserError(f"blur kernel file not found: {p}")
        k = np.load(p, mmap_mode="r", allow_pickle=False)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 -- numpy raises many types for corrupt files
        raise UserError(f"cannot read blur kernel {p}: {e}") from None
    if not isinstance(k, np.ndarray):  # an .npz archive loads as a mapping of arrays
        getattr(k, "close", lambda: None)()
        raise UserError(f"blur kernel {p} must be a .npy array file, not an archive")
    if not (np.issubdtype(k.dtype, np.integer) or np.issubdtype(k.dtype, np.floating)) or k.dtype == np.bool_:
        raise UserError(f"blur kernel {p} must hold real numbers, got dtype {k.dtype}")
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise UserError(f"blur kernel {p} must be a 2-D array with odd height and width, got shape {k.shape}")
    if max(k.shape) > max_side:
        raise UserError(f"blur kernel {p} has shape {k.shape}; the limit is {max_side} pixels per side")
    try:
        k = np.array(k, dtype=np.float64)
    except (OSError, ValueError) as e:  # truncated data behind a valid header
        raise UserError(f"cannot read blur kernel {p}: {e}") from None
    if not np.isfinite(k).all() or abs(float(k.sum())) < 1e-12 or not math.isfinite(float(k.sum())):
        raise UserError(f"blur kernel {p} must be finite with a non-zero sum")
    return torch.from_numpy(k / k.sum())


class SpatialBlur(LinearOperator):
    """Per-frame 2-D convolution with a fixed kernel, reflect (half-sample symmetric) boundary.

    Equals ``scipy.ndimage.convolve(frame, kernel, mode='reflect')`` on every frame and channel.
    Input and output ``(B, C, T, H, W)``.
    """

    def __init__(self, kernel: torch.Tensor, spec: str | None = None, boundary: str = "reflect"):
        super().__init__()
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise UserError(f"blur kernel must be 2-D with odd sizes, got {tuple(kernel.shape)}")
        self.register_buffer("kernel", kernel.to(torch.float64))
        self.boundary = boundary
        self.spec = spec or f"blur:custom{tuple(kernel.shape)}"
        # Rank-one kernels (Gaussian, box) run as two 1-D passes: same operator, fewer flops.
        factors = Fn.separable_factors(self.kernel)
        self._separable = factors is not None
        if factors is not None:
            self.register_buffer("col", factors[0])
            self.register_buffer("row", factors[1])

    def A(self, x):  # noqa: N802
        if self._separable:
            return Fn.separable_conv(x, self.col, self.row, self.boundary)
        return Fn.spatial_conv(x, self.kernel, self.boundary)

    def output_shape(self, in_shape):
        kh, kw = self.kernel.shape
        h, w = in_shape[3], in_shape[4]
        if kh > KERNEL_FRAME_FACTOR * h or kw > KERNEL_FRAME_FACTOR * w:
            raise UserError(f"operator {self.spec!r}: its {kh}x{kw} kernel is larger than {KERNEL_FRAME_FACTOR}x the {h}x{w} frames")
        return tuple(in_shape)

    def A_adjoint(self, y):  # noqa: N802
        if self._separable:
            return Fn.separable_conv_adjoint(y, self.col, self.row, self.boundary)
        return Fn.spatial_conv_adjoint(y, self.kernel, self.boundary)
