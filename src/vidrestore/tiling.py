"""Spatial tiling with overlap and blending: run a local function on frames of any size.

A network that was trained on small crops, or whose memory grows faster than the number of
pixels (global self-attention grows with its square), is run on overlapping tiles of the frame;
the tile outputs are blended with weights that ramp linearly to zero across each overlap, so
neighbouring tiles fade into each other and no seam is visible. Weights are 1 on the frame's own
borders (no ramp there). The averaging of overlapping predictions is the MultiDiffusion fusion
(Bar-Tal et al., "MultiDiffusion: Fusing Diffusion Paths for Controlled Image Generation", ICML
2023) with feathered instead of uniform weights, as image restoration tools (Real-ESRGAN's
``--tile``) do for convolutional networks.

For a function whose output at a pixel depends only on inputs within ``r`` pixels, tiling with
``overlap >= 2 r`` and a ramp that is zero within ``r`` of a tile edge gives exactly the untiled
result; the linear ramp is an approximation of that for networks with a wide receptive field.
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import UserError
from .heartbeat import report_fraction

__all__ = ["tile_starts", "ramp", "tiled_map", "tile_boxes", "resolve_tile", "AUTO_TILE_PIXELS", "DEFAULT_TILE", "DEFAULT_TILE_OVERLAP"]

#: ``tile="auto"`` tiles frames with more pixels than this (512 x 512).
AUTO_TILE_PIXELS = 512 * 512
#: Tile side used by ``tile="auto"``, and the default overlap of neighbouring tiles (pixels).
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 32


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with at least
    ``overlap`` samples shared by neighbours; the last tile ends at ``size``."""
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise UserError(f"tile overlap must be at least 0 and below the tile size {tile}, got {overlap}")
    stride = tile - overlap
    n = -(-(size - tile) // stride) + 1  # ceil((size - tile) / stride) + 1 tiles
    # Spread the tiles evenly, so every overlap is at least `overlap` long.
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def ramp(length: int, before: int, after: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """``[length]`` blending weights: rise linearly over the first ``before`` samples and fall
    over the last ``after`` (0 = flat edge), strictly positive everywhere."""
    i = torch.arange(length, dtype=torch.float64, device=device) + 0.5
    w = torch.ones(length, dtype=torch.float64, device=device)
    if before > 0:
        w = torch.minimum(w, i / before)
    if after > 0:
        w = torch.minimum(w, (length - i) / after)
    return w.to(dtype)


def tiled_map(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int | tuple[int, int] | None, overlap: int = DEFAULT_TILE_OVERLAP,
              *, multiple: int = 1, callback: Callable[[dict], None] | None = None) -> torch.Tensor:
    """Apply ``fn`` to overlapping spatial tiles of ``x`` and blend the results.

    Args:
        fn: maps a tensor ``(..., h, w)`` to a tensor of the same shape (a crop of ``x``; it
            must act on every crop the same way, as convolutional networks do).
        x: ``(..., H, W)``: images, ``(N, C, H, W)``, or videos, ``(B, C, T, H, W)``.
        tile: tile side (or ``(height, width)``); ``None``, ``0`` or a tile that covers the frame
            calls ``fn(x)`` once. Rounded down to a multiple of ``multiple``.
        overlap: pixels shared by neighbouring tiles (the blending ramp's length).
        multiple: tile sides are multiples of this, for networks that need sides divisible by
            their total downsampling factor (the frame's own sides must be, too).
        callback: called with ``{"tile": k, "tiles": n}`` after each tile.

    Returns:
        ``(..., H, W)``: the blended output, same dtype as ``fn``'s outputs.
    """
    h, w = x.shape[-2:]
    boxes = tile_boxes(h, w, tile, overlap, multiple=multiple, device=x.device)
    if boxes is None:
        return fn(x)
    out = weight = None
    for k, (y0, x0, th, tw, wt) in enumerate(boxes):
        y = fn(x[..., y0 : y0 + th, x0 : x0 + tw])
        if y.shape[-2:] != (th, tw):
            raise ValueError(f"tiled_map: fn changed a tile's size from {(th, tw)} to {tuple(y.shape[-2:])}")
        if out is None:
            out = y.new_zeros(*y.shape[:-2], h, w)
            weight = y.new_zeros(h, w)
        wt = wt.to(y.dtype)
        out[..., y0 : y0 + th, x0 : x0 + tw] += y * wt
        weight[y0 : y0 + th, x0 : x0 + tw] += wt
        if callback is not None:
            callback({"tile": k + 1, "tiles": len(boxes)})
        report_fraction((k + 1) / len(boxes))
    return out / weight


def tile_boxes(h: int, w: int, tile: int | tuple[int, int] | None, overlap: int = DEFAULT_TILE_OVERLAP, *, multiple: int = 1,
               device=None) -> list[tuple[int, int, int, int, torch.Tensor]] | None:
    """The tiles :func:`tiled_map` uses for an ``h x w`` frame: ``(y0, x0, th, tw, weight)``
    with the ``(th, tw)`` blending weights of the tile (unnormalised; they ramp over the part
    shared with each neighbour), or ``None`` when one call covers the frame."""
    if not tile:
        return None
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    th, tw = max(multiple, th // multiple * multiple), max(multiple, tw // multiple * multiple)
    if th >= h and tw >= w:
        return None
    th, tw = min(th, h), min(tw, w)
    ys = tile_starts(h, th, min(overlap, th - 1))
    xs = tile_starts(w, tw, min(overlap, tw - 1))
    boxes = []
    for iy, y0 in enumerate(ys):
        # Ramps only where a neighbour overlaps: the actual overlap with the previous/next tile.
        top = ys[iy - 1] + th - y0 if iy > 0 else 0
        bottom = y0 + th - ys[iy + 1] if iy + 1 < len(ys) else 0
        wy = ramp(th, top, bottom, device=device)
        for ix, x0 in enumerate(xs):
            left = xs[ix - 1] + tw - x0 if ix > 0 else 0
            right = x0 + tw - xs[ix + 1] if ix + 1 < len(xs) else 0
            wx = ramp(tw, left, right, device=device)
            boxes.append((y0, x0, th, tw, wy[:, None] * wx[None, :]))
    return boxes


def resolve_tile(tile: int | str | None, height: int, width: int) -> int | None:
    """The tile side to use for ``height x width`` frames: ``None``/``0``/``"off"`` no tiling,
    ``"auto"`` (:data:`DEFAULT_TILE`) when the frame has more than :data:`AUTO_TILE_PIXELS`
    pixels, an integer (or its string) that side. UserError for anything else."""
    if tile is None or tile == 0 or tile == "off" or tile == "0":
        return None
    if tile == "auto":
        return DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else None
    try:
        side = int(tile)
    except (TypeError, ValueError):
        raise UserError(f"--tile must be auto, off, 0 or a tile side in pixels, got {tile!r}") from None
    if side < 16:
        raise UserError(f"--tile must be at least 16 pixels (or 0 for no tiling), got {side}")
    return side
