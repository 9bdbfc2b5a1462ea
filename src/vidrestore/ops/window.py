"""Restriction operators: an operator on a padded grid (:func:`pad_operator`, with
:class:`SpatialCrop`) and the exact operator of a temporal window of a video
(:func:`window_operator`, with :class:`FrameSelect`). Used by
:mod:`vidrestore.solvers.windows`; docs/windows.md explains why the restrictions are exact.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import UserError
from .base import Composition, Identity, LinearOperator
from .blur import SpatialBlur
from .functional import pad_indices
from .mask import Inpaint
from .resize import Downsample
from .temporal import FrameDrop, TemporalBlur

__all__ = ["crop_to", "SpatialCrop", "pad_operator", "FrameSelect", "window_operator"]


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo a bottom/right padding: keep the top-left ``size = (H, W)`` of the last two dims."""
    return x[..., : size[0], : size[1]]


class SpatialCrop(LinearOperator):
    """Crop ``(B, C, T, Hp, Wp)`` to its top-left ``(H, W)``; the adjoint zero-pads.

    Composed before an operator (``op @ SpatialCrop(...)``) it lets a solver work on a padded
    grid while the measurement only sees the original pixels. ``lift`` reflect-pads, so
    solver initialisations start from a continued image rather than from zeros.
    """

    def __init__(self, height: int, width: int, padded_height: int, padded_width: int):
        super().__init__()
        if not (0 < height <= padded_height and 0 < width <= padded_width):
            raise UserError(f"bad crop {height}x{width} of {padded_height}x{padded_width}")
        self.size = (int(height), int(width))
        self.padded = (int(padded_height), int(padded_width))
        self.spec = f"crop:{height}x{width}"

    def A(self, x):  # noqa: N802
        return crop_to(x, self.size)

    def A_adjoint(self, y):  # noqa: N802
        ph, pw = self.padded[0] - y.shape[-2], self.padded[1] - y.shape[-1]
        return torch.nn.functional.pad(y, (0, pw, 0, ph))

    def lift(self, y):
        ih = pad_indices(y.shape[-2], 0, self.padded[0] - y.shape[-2], "reflect", device=y.device)
        iw = pad_indices(y.shape[-1], 0, self.padded[1] - y.shape[-1], "reflect", device=y.device)
        return y.index_select(-2, ih).index_select(-1, iw)

    def output_shape(self, in_shape):
        return tuple(in_shape[:3]) + self.size

    def input_shape(self, out_shape):
        return tuple(out_shape[:3]) + self.padded


def pad_operator(op: LinearOperator, x_shape: Sequence[int], multiple: int) -> tuple[LinearOperator, tuple[int, ...]]:
    """The operator on a grid padded to ``multiple``: ``op ∘ crop`` (exact, see module doc).

    Args:
        op: Operator on videos of shape ``x_shape``.
        x_shape: ``(B, C, T, H, W)`` of the unknown video.
        multiple: Size multiple required by the prior.

    Returns:
        ``(op_padded, padded_shape)``; ``op`` itself when no padding is needed.
    """
    b, c, t, h, w = (int(s) for s in x_shape)
    hp, wp = h + (-h) % multiple, w + (-w) % multiple
    if (hp, wp) == (h, w):
        return op, (b, c, t, h, w)
    return Composition([SpatialCrop(h, w, hp, wp), op]), (b, c, t, hp, wp)


class FrameSelect(LinearOperator):
    """Keep the frames at ``positions`` of a ``num_frames``-frame video; the adjoint zero-fills.

    ``(B, C, num_frames, H, W)`` -> ``(B, C, len(positions), H, W)``. ``lift`` holds each kept
    frame over its nearest unkept neighbours (a cheap initialisation, not an inverse).
    """

    def __init__(self, positions: Sequence[int], num_frames: int):
        super().__init__()
        pos = [int(p) for p in positions]
        if not pos or len(set(pos)) != len(pos) or min(pos) < 0 or max(pos) >= num_frames:
            raise UserError(f"bad frame selection {pos} of {num_frames} frames")
        self.register_buffer("positions", torch.tensor(pos, dtype=torch.long), persistent=False)
        self.num_frames = int(num_frames)
        self.spec = f"select:{len(pos)}/{num_frames}"

    def A(self, x):  # noqa: N802
        return x.index_select(2, self.positions.to(x.device))

    def A_adjoint(self, y):  # noqa: N802
        shape = list(y.shape)
        shape[2] = self.num_frames
        return y.new_zeros(shape).index_add_(2, self.positions.to(y.device), y)

    def lift(self, y):
        pos = self.positions.to(torch.float64)
        frames = torch.arange(self.num_frames, dtype=torch.float64)
        nearest = (frames[:, None] - pos[None, :]).abs().argmin(dim=1)
        return y.index_select(2, nearest.to(y.device))

    def output_shape(self, in_shape):
        if in_shape[2] != self.num_frames:
            raise UserError(f"frame selection built for {self.num_frames} frames, got {in_shape[2]}")
        return (in_shape[0], in_shape[1], int(self.positions.numel()), in_shape[3], in_shape[4])

    def input_shape(self, out_shape):
        return (out_shape[0], out_shape[1], self.num_frames, out_shape[3], out_shape[4])


class _WindowInpaint(Inpaint):
    """A perframe :class:`Inpaint` restricted to the frames with absolute indices ``frame_ids``."""

    def __init__(self, base: Inpaint, frame_ids: Sequence[int]):
        super().__init__(base.ratio, base.mode, seed=base.seed)
        self._base = base
        self.frame_ids = [int(f) for f in frame_ids]
        self.spec = base.spec

    def mask(self, t: int, h: int, w: int, *, t0: int = 0) -> torch.Tensor:
        if t0 + t > len(self.frame_ids):
            raise UserError(f"window inpainting mask holds {len(self.frame_ids)} frames, asked for {t0 + t}")
        return torch.cat([self._base.mask(1, h, w, t0=f) for f in self.frame_ids[t0 : t0 + t]], dim=2)


_PER_FRAME = (SpatialBlur, Downsample, Identity)


def _flatten(op: LinearOperator) -> list[LinearOperator]:
    return list(op.ops) if isinstance(op, Composition) else [op]


def window_operator(op: LinearOperator, frame_ids: Sequence[int], num_frames: int) -> tuple[LinearOperator, list[int]]:
    """Exact restriction of a whole-video operator to a window of frames.

    Args:
        op: Whole-video operator (a chain of :mod:`vidrestore.ops` operators).
        frame_ids: Absolute indices (in ``[0, num_frames)``) of the window's frames, in order;
            consecutive, or consecutive modulo ``num_frames`` (ring windows for circular blurs).
        num_frames: Frame count ``T`` of the whole video.

    Returns:
        ``(op_w, out_ids)``: ``op_w`` maps the window's ``(B, C, len(frame_ids), H, W)`` video
        to the measurement frames ``y[:, :, out_ids]`` of the whole video, exactly.

    Raises:
        UserError: For an operator type with unknown temporal behaviour, or a window that
            observes no measurement frame.
    """
    ids = [int(f) for f in frame_ids]
    total = int(num_frames)
    chain: list[LinearOperator] = []
    for o in _flatten(op):
        if isinstance(o, TemporalBlur):
            k = o.width
            left, right = k // 2, k - 1 - k // 2
            n = len(ids)
            if n < k:
                raise UserError(f"window of {n} frames is shorter than the temporal kernel of {o.spec!r}")
            # Source frame of every tap: whole video (boundary rule at the true ends) vs window.
            whole = pad_indices(total, left, right, o.boundary).tolist()
            w_boundary = "replicate" if o.boundary == "circular" else o.boundary
            local = pad_indices(n, left, right, w_boundary).tolist()
            valid = [
                p
                for p in range(n)
                if all(ids[local[p + j]] == whole[ids[p] + j] for j in range(k))
            ]
            chain.append(TemporalBlur(o.weights, w_boundary, spec=o.spec))
            if len(valid) < n:
                if not valid:
                    raise UserError(f"window of {n} frames observes no frame of {o.spec!r}")
                chain.append(FrameSelect(valid, n))
            ids = [ids[p] for p in valid]
        elif isinstance(o, FrameDrop):
            kept = [p for p, f in enumerate(ids) if f % o.factor == 0]
            if not kept:
                raise UserError(f"window holds no kept frame of {o.spec!r}")
            chain.append(FrameSelect(kept, len(ids)))
            ids = [ids[p] // o.factor for p in kept]
            total = -(-total // o.factor)
        elif isinstance(o, Inpaint):
            chain.append(_WindowInpaint(o, ids) if o.mode == "perframe" else o)
        elif isinstance(o, _PER_FRAME):
            chain.append(o)
        else:
            raise UserError(f"cannot split operator {o.spec!r} ({type(o).__name__}) into temporal windows")
    op_w = chain[0] if len(chain) == 1 else Composition(chain)
    return op_w, ids
