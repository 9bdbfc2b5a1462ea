"""Temporal operators: temporal blur (frame averaging, Gaussian PSF) and frame dropping."""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from . import functional as Fn
from .base import LinearOperator


def uniform_taps(k: int) -> torch.Tensor:
    """``k`` equal taps summing to one (frame averaging over ``k`` frames)."""
    return torch.full((k,), 1.0 / k, dtype=torch.float64)


def gaussian_taps(sigma: float, size: int | None = None) -> torch.Tensor:
    """Normalised Gaussian taps; default width ``2*ceil(3*sigma)+1``."""
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-0.5 * (r / sigma) ** 2)
    return w / w.sum()


class TemporalBlur(LinearOperator):
    """Temporal PSF: each output frame is a weighted average of its neighbours in time.

    ``y[t] = sum_j w[j] x[t + j - K//2]`` with the ``boundary`` rule for frames outside the
    clip; the frame count is preserved. With ``boundary='circular'`` and a uniform kernel this
    is the operator of SVI (Kwon & Ye, ICLR 2025), which is symmetric (``A^T = A``).

    Input ``(B, C, T, H, W)``, output ``(B, C, T, H, W)``. ``T`` must be at least ``K``.
    """

    def __init__(self, weights: torch.Tensor, boundary: str = "circular", spec: str | None = None):
        super().__init__()
        if boundary not in Fn.BOUNDARIES:
            raise UserError(f"unknown temporal boundary {boundary!r}; choose one of {', '.join(Fn.BOUNDARIES)}")
        self.register_buffer("weights", weights.to(torch.float64))
        self.boundary = boundary
        self.spec = spec or f"tblur:taps{weights.numel()}:{boundary}"

    @property
    def width(self) -> int:
        return self.weights.numel()

    def A(self, x):  # noqa: N802
        return Fn.temporal_filter(x, self.weights, self.boundary)

    def A_adjoint(self, y):  # noqa: N802
        return Fn.temporal_filter_adjoint(y, self.weights, self.boundary)

    def output_shape(self, in_shape):
        if in_shape[2] < self.width:
            raise UserError(
                f"operator {self.spec!r} needs at least {self.width} frames, the video has {in_shape[2]}"
            )
        return tuple(in_shape)


class FrameDrop(LinearOperator):
    """Keep every ``K``-th frame (frames ``0, K, 2K, ...``): the measurement of frame interpolation.

    Input ``(B, C, T, H, W)``, output ``(B, C, ceil(T/K), H, W)``. The adjoint needs the
    original frame count: ``num_frames`` if given, else ``(T'-1)*K + 1`` (the frames after
    the last kept one are not observed).
    """

    def __init__(self, factor: int, num_frames: int | None = None):
        super().__init__()
        if factor < 1:
            raise UserError(f"fdrop factor must be >= 1, got {factor}")
        self.factor = int(factor)
        self.num_frames = num_frames
        self.spec = f"fdrop:{factor}"

    def _frames_in(self, t_out: int) -> int:
        if self.num_frames is not None:
            return self.num_frames
        return (t_out - 1) * self.factor + 1

    def A(self, x):  # noqa: N802
        return Fn.frame_drop(x, self.factor)

    def A_adjoint(self, y):  # noqa: N802
        return Fn.frame_drop_adjoint(y, self.factor, self._frames_in(y.shape[2]))

    def lift(self, y):
        """Nearest-frame repetition: each kept frame is held for ``K`` frames."""
        return y.repeat_interleave(self.factor, dim=2)[:, :, : self._frames_in(y.shape[2])]

    def output_shape(self, in_shape):
        t = in_shape[2]
        if self.num_frames is not None and t != self.num_frames:
            raise UserError(f"operator {self.spec!r} was built for {self.num_frames} frames, got {t}")
        return (in_shape[0], in_shape[1], -(-t // self.factor), in_shape[3], in_shape[4])

    def input_shape(self, out_shape):
        return (out_shape[0], out_shape[1], self._frames_in(out_shape[2]), out_shape[3], out_shape[4])
