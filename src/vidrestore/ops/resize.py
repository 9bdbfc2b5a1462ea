"""Spatial downsampling (super-resolution measurement)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from . import functional as Fn
from .base import LinearOperator


def bicubic_matrix(n: int, factor: int) -> torch.Tensor:
    """``(n // factor, n)`` matrix of PyTorch's antialiased bicubic downsampling (a = -0.75
    cubic stretched by ``factor``, weights renormalised at the borders), obtained exactly by
    resizing the identity basis."""
    # A width of 4 (not 1) avoids a degenerate path of the antialiased kernel for width-1 inputs.
    eye = torch.eye(n, dtype=torch.float64)[:, None, :, None].expand(n, 1, n, 4).contiguous()
    out = F.interpolate(eye, size=(n // factor, 4), mode="bicubic", antialias=True, align_corners=False)
    return out[:, 0, :, 0].T.contiguous()


class Downsample(LinearOperator):
    """Integer-factor downsampling: ``(B, C, T, H, W)`` -> ``(B, C, T, H/f, W/f)``.

    ``kind='box'`` is ``f x f`` average pooling (the SR operator of the SVI/VISION-XL code);
    ``kind='bicubic'`` is antialiased bicubic downsampling as a separable matrix.
    ``H`` and ``W`` must be divisible by ``f``.
    """

    def __init__(self, factor: int, kind: str = "box"):
        super().__init__()
        if factor < 1:
            raise UserError(f"SR factor must be >= 1, got {factor}")
        if kind not in ("box", "bicubic"):
            raise UserError(f"unknown downsampling {kind!r}; choose box or bicubic")
        self.factor = int(factor)
        self.kind = kind
        self.spec = f"sr:{factor}" + ("" if kind == "box" else f":{kind}")
        self._mats: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _matrices(self, h: int, w: int):
        key = (h, w)
        if key not in self._mats:
            self._mats[key] = (bicubic_matrix(h, self.factor), bicubic_matrix(w, self.factor))
        return self._mats[key]

    def A(self, x):  # noqa: N802
        if self.kind == "box":
            return Fn.box_downsample(x, self.factor)
        mh, mw = self._matrices(x.shape[3], x.shape[4])
        return Fn.separable_matrix(x, mh, mw)

    def A_adjoint(self, y):  # noqa: N802
        if self.kind == "box":
            return Fn.box_downsample_adjoint(y, self.factor)
        h, w = y.shape[3] * self.factor, y.shape[4] * self.factor
        mh, mw = self._matrices(h, w)
        return Fn.separable_matrix_adjoint(y, mh, mw)

    def lift(self, y):
        b, c, t, h, w = y.shape
        f = self.factor
        frames = y.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        up = F.interpolate(frames, size=(h * f, w * f), mode="bicubic", align_corners=False)
        return up.reshape(b, t, c, h * f, w * f).permute(0, 2, 1, 3, 4)

    def output_shape(self, in_shape):
        b, c, t, h, w = in_shape
        f = self.factor
        if h % f or w % f:
            raise UserError(f"operator {self.spec!r}: SR factor {f} does not divide the frame size {h}x{w}")
        return (b, c, t, h // f, w // f)

    def input_shape(self, out_shape):
        b, c, t, h, w = out_shape
        return (b, c, t, h * self.factor, w * self.factor)
