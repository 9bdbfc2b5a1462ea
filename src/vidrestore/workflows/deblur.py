"""Blind video deblurring with PVDNet (Son et al., ACM TOG 2021): load weights and run the
recurrence frame by frame (``vidrestore restore -m pvdnet`` reaches it through
:data:`~vidrestore.workflows.methods.METHODS`).

Two trained models ship in ``vidrestore/weights``: ``pvdnet-medium`` (the default, with a
trained BIMNet) and ``pvdnet-small`` (faster, DIS flow); :func:`load_pvdnet` takes a folder or
one of these names. A model's ``config.json`` names the flow that feeds the pixel volume by default (``"flow"``): ``"bimnet"`` (the
network's own LiteFlowNet, as in the paper), ``"dis"`` (OpenCV DIS on the blurry frames) or
``"zero"`` (no motion compensation, an ablation). The official release files of the paper's
authors (``--weights PVDNet_DVD.pytorch``) load too (:mod:`.pvdnet_official`).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import from_pretrained
from ..errors import UserError
from ..nets import PVDNetDeblur
from ..nets.pvdnet import deblur_frames
from ..tiling import DEFAULT_TILE_OVERLAP, resolve_tile, tile_boxes
from .progress import progress

__all__ = ["BUNDLED_PVDNET", "DEFAULT_PVDNET", "FLOWS", "load_pvdnet", "resolve_pvdnet_weights", "pvdnet_flow_fn", "deblur_video_pvdnet", "deblur_stream"]

_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
#: Bundled PVDNet weight folders, selectable by name (``--weights pvdnet-small``).
BUNDLED_PVDNET = ("pvdnet-small", "pvdnet-medium")
DEFAULT_PVDNET = _WEIGHTS / "pvdnet-medium"
FLOWS = ("bimnet", "dis", "zero")


def resolve_pvdnet_weights(weights: str | Path | None) -> Path:
    """A weight folder path: ``None`` -> the default bundled model; a bundled name
    (:data:`BUNDLED_PVDNET`) that is not an existing path -> that bundled folder; else the path."""
    if not weights:
        return DEFAULT_PVDNET
    path = Path(weights)
    if not path.exists() and str(weights) in BUNDLED_PVDNET:
        return _WEIGHTS / str(weights)
    return path


def load_pvdnet(weights: str | Path | None = None, device: str | torch.device = "cpu", bimnet: str | Path | None = None) -> PVDNetDeblur:
    """Load a PVDNet weight folder or bundled model name (default: :data:`DEFAULT_PVDNET`),
    or an official release file (``PVDNet_DVD.pytorch``, ...; see :mod:`.pvdnet_official`).

    ``bimnet``: an official ``BIMNet.pytorch`` or a BIMNet weight folder whose flow network
    replaces the model's own; the default flow then becomes ``"bimnet"``.
    """
    from .pvdnet_official import is_state_dict_file, load_bimnet, load_official_pvdnet

    path = resolve_pvdnet_weights(weights)
    if not path.exists() and path.suffix in (".pytorch", ".pth", ".pt"):
        raise UserError(f"weights file not found: {path}")
    if is_state_dict_file(path):
        return load_official_pvdnet(path, bimnet, device)
    net = from_pretrained(path, device=device)
    if not isinstance(net, PVDNetDeblur):
        raise UserError(f"{path} holds a {type(net).__name__}, not a PVDNet model")
    if bimnet is not None:
        net.bimnet = load_bimnet(bimnet, device).eval()
        net.config = {**net.config, "bimnet": net.bimnet.config}
        net.pretrained_config = {**net.pretrained_config, "flow": "bimnet", "bimnet": str(bimnet)}
    return net


def pvdnet_flow_fn(net: PVDNetDeblur, flow: str | None) -> tuple[str, Callable | None, bool]:
    """``(name, flow_fn, zero_flow)`` for :func:`vidrestore.nets.pvdnet.deblur_frames`.

    ``flow=None`` takes the default stored in the weights' config (else ``"bimnet"``).
    """
    name = flow or getattr(net, "pretrained_config", {}).get("flow", "bimnet")
    if name not in FLOWS:
        raise UserError(f"unknown flow {name!r} for pvdnet; choose one of {', '.join(FLOWS)}")
    if name == "dis":
        from ..flow import dis_flow

        return name, (lambda cur, prev: dis_flow(cur, prev).to(cur.device)), False
    return name, None, name == "zero"


def deblur_video_pvdnet(
    video: torch.Tensor,
    net: PVDNetDeblur,
    *,
    flow: str | None = None,
    quiet: bool = True,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Deblur ``(B, 3, T, H, W)`` in ``[0, 1]`` recurrently (constant memory per frame).

    Returns the deblurred video on the CPU, same shape, in ``[0, 1]``.
    """
    if video.ndim != 5 or video.shape[1] != 3:
        raise UserError(f"pvdnet needs an RGB video (B, 3, T, H, W), got {tuple(video.shape)}")
    if min(video.shape[-2:]) < 32:
        raise UserError(f"pvdnet needs frames of at least 32x32 pixels, got {video.shape[-2]}x{video.shape[-1]}")
    _, flow_fn, zero = pvdnet_flow_fn(net, flow)
    dev = next(net.parameters()).device
    frames = (video[:, :, t].to(dev) for t in range(video.shape[2]))
    outs = []
    with torch.no_grad(), progress(video.shape[2], "pvdnet", quiet) as cb:
        for out in deblur_frames(net, frames, zero_flow=zero, flow_fn=flow_fn):
            outs.append(out.float().cpu())
            cb()
            if callback is not None:
                callback()
    return torch.stack(outs, 2)


def deblur_stream(
    chunks,
    shape,
    net: PVDNetDeblur,
    sink: Callable[[torch.Tensor], None],
    *,
    flow: str | None = None,
    quiet: bool = True,
    chunk: int = 8,
    tile: int | str | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
) -> None:
    """:func:`deblur_video_pvdnet` on a stream: ``chunks`` of ``(B, 3, n, H, W)`` frames in
    ``[0, 1]`` (``shape``: the whole clip's ``(B, 3, T, H, W)``, for checks and progress) go in,
    deblurred ``(B, 3, m, H, W)`` chunks of up to ``chunk`` frames go to ``sink`` in order.
    Memory holds a few frames, whatever the clip length; the frames equal
    :func:`deblur_video_pvdnet`'s.

    ``tile`` (:func:`vidrestore.tiling.resolve_tile`: ``"auto"``, ``"off"``, a side in pixels):
    every spatial tile runs its own recurrence (its own previous output) and the tiles' frames
    are blended over ``tile_overlap`` pixels, the same result as
    :func:`vidrestore.tiling.tiled_map` around :func:`deblur_video_pvdnet`."""
    if len(shape) != 5 or shape[1] != 3:
        raise UserError(f"pvdnet needs an RGB video (B, 3, T, H, W), got {tuple(shape)}")
    if min(shape[-2:]) < 32:
        raise UserError(f"pvdnet needs frames of at least 32x32 pixels, got {shape[-2]}x{shape[-1]}")
    _, flow_fn, zero = pvdnet_flow_fn(net, flow)
    dev = next(net.parameters()).device
    h, w = int(shape[-2]), int(shape[-1])
    side = resolve_tile(tile, h, w)
    if side is not None and tile_overlap >= min(side, h, w):
        raise UserError(f"--tile-overlap must be below the tile side {side}, got {tile_overlap}")
    # Tiles are multiples of 4 (the network's stride; it copies a smaller frame's remainder).
    boxes = tile_boxes(h, w, side, tile_overlap, multiple=4, device=dev)

    def frames():
        for c in chunks:
            for t in range(c.shape[2]):
                yield c[:, :, t].to(dev)

    outputs = deblur_frames(net, frames(), zero_flow=zero, flow_fn=flow_fn) if boxes is None else _tiled_frames(net, frames(), boxes, zero, flow_fn)
    buf: list[torch.Tensor] = []
    with torch.no_grad(), progress(int(shape[2]), "pvdnet", quiet) as cb:
        for out in outputs:
            buf.append(out.float().cpu())
            cb()
            if len(buf) == chunk:
                sink(torch.stack(buf, 2))
                buf = []
    if buf:
        sink(torch.stack(buf, 2))


class _Feed:
    """An iterator fed from outside: ``put`` frames in, ``close`` at the end of the stream."""

    def __init__(self):
        self.items: deque = deque()
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.items:
            return self.items.popleft()
        if self.closed:
            raise StopIteration
        raise RuntimeError("tiled PVDNet stream read ahead of its input")


def _tiled_frames(net, frames, boxes, zero, flow_fn):
    """Deblurred frames of a stream, one recurrence per spatial tile, blended. Each tile's
    recurrence yields frame t once it has read frame t+1, so all tiles advance together."""
    feeds = [_Feed() for _ in boxes]
    runs = [deblur_frames(net, f, zero_flow=zero, flow_fn=flow_fn) for f in feeds]
    norm = None

    def blend():
        nonlocal norm
        out = None
        for (y0, x0, th, tw, wt), run in zip(boxes, runs):
            o = next(run)
            if out is None:
                out = o.new_zeros(*o.shape[:-2], *frame_hw)
            out[..., y0 : y0 + th, x0 : x0 + tw] += o * wt.to(o.dtype)
        if norm is None:
            norm = out.new_zeros(frame_hw)
            for y0, x0, th, tw, wt in boxes:
                norm[y0 : y0 + th, x0 : x0 + tw] += wt.to(out.dtype)
        return out / norm

    n = 0
    for f in frames:
        frame_hw = tuple(f.shape[-2:])
        for feed, (y0, x0, th, tw, _) in zip(feeds, boxes):
            feed.items.append(f[..., y0 : y0 + th, x0 : x0 + tw])
        n += 1
        if n >= 2:
            yield blend()
    for feed in feeds:
        feed.closed = True
    if n:
        yield blend()
