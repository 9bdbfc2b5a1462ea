"""Blind video deblurring with PVDNet (Son et al., ACM TOG 2021): load weights and run the
recurrence frame by frame (``vidrestore restore -m pvdnet`` reaches it through
:data:`~vidrestore.workflows.methods.METHODS`).

Three trained models ship in ``vidrestore/weights``: ``pvdnet-r4`` (the default: 12 residual
blocks at 1/4 resolution, trained on named blur families with DIS flow), ``pvdnet-medium``
(with a trained BIMNet) and ``pvdnet-small`` (fastest, DIS flow); :func:`load_pvdnet` takes a
folder or one of these names. Flow sources for the pixel volume (:data:`FLOWS`): ``"auto"`` (by frame
size, :func:`auto_flow`), ``"bimnet"`` (the network's own LiteFlowNet at full size, as in the
paper), ``"bimnet-pyramid"`` (BIMNet on a copy downscaled to about its training size),
``"dis"`` (OpenCV DIS on the blurry frames) or ``"zero"`` (no motion compensation, an
ablation). A model's ``config.json`` names its default (``"flow"``); a stored ``"bimnet"``
resolves to ``"auto"`` (:func:`pvdnet_flow_fn`), so ``pvdnet-medium`` defaults to ``auto`` and
``pvdnet-r4`` and ``pvdnet-small`` to ``dis``. The official release files of the paper's authors
(``--weights PVDNet_DVD.pytorch``) load too (:mod:`.pvdnet_official`).
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..checkpoint import from_pretrained
from ..errors import UserError, warn
from ..nets import PVDNetDeblur
from ..tiling import DEFAULT_TILE_OVERLAP, resolve_tile, tile_boxes
from .progress import progress

__all__ = ["BUNDLED_PVDNET", "DEFAULT_PVDNET", "FLOWS", "load_pvdnet", "resolve_pvdnet_weights", "pvdnet_flow_fn", "auto_flow", "bimnet_train_size", "colour_correct", "flow_fails", "deblur_video_pvdnet", "deblur_stream"]

_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
#: Bundled PVDNet weight folders, selectable by name (``--weights pvdnet-small``).
BUNDLED_PVDNET = ("pvdnet-small", "pvdnet-medium", "pvdnet-r4")
DEFAULT_PVDNET = _WEIGHTS / "pvdnet-r4"
#: Flow sources for the pixel volume: ``auto`` (by frame size, :func:`auto_flow`), the
#: network's BIMNet at full size (``bimnet``) or on a copy downscaled to about its training
#: size (``bimnet-pyramid``, :func:`vidrestore.flow.pyramid_flow`), OpenCV DIS (``dis``),
#: or none (``zero``, an ablation).
FLOWS = ("auto", "bimnet", "bimnet-pyramid", "dis", "zero")
#: ``bimnet-pyramid`` estimates on a copy whose shorter side is about the BIMNet's training
#: crop side, or this many pixels when the weights do not say. At the training side (96 px)
#: its flow error stayed at 2.1-2.7 px from 128x160 to 352x640; at 128 px it grew to 8 and
#: 25 px (``benchmarks/pvdnet_flow_epe.py``).
PYRAMID_SIDE = 96
#: ``auto`` keeps BIMNet at full size while the shorter frame side is at most this many times
#: its training crop (112 px for the shipped 96 px BIMNet: midway between 96x96, where its
#: flow was the most accurate, and 128x160, where DIS was; ``benchmarks/pvdnet_flow_epe.py``);
#: larger frames use :data:`AUTO_LARGE`.
AUTO_NATIVE_FACTOR = 7 / 6
AUTO_LARGE = "dis"
#: Shutter fraction of the frame interval assumed by the do-no-harm check (:func:`reblur`): the
#: middle of the training data's range (0.75-1.0, :class:`~vidrestore.data.blur_synth.BlurSynthConfig`).
EXPOSURE = 0.875
#: Warn when the frames keep less than this fraction of the network's change on average.
KEEP_WARN = 0.5
#: Colour correction defaults of :func:`deblur_video_pvdnet` (see :func:`colour_correct`): a
#: per-channel gain in linear light over the whole frame. Chosen on the tune clips (bikes,
#: vtest; ``benchmarks/pvdnet_real_avg.py``): a Gaussian low-pass of 16 px undid part of the
#: deblurring (+0.03 dB mean gain against +0.19 dB), and a correction in gamma-encoded
#: values removed the slight darkening that sharpening linear-light blur really causes.
COLOUR_SIGMA: float | None = None
COLOUR_GAMMA = 2.2


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
    replaces the model's own. The stored default flow then becomes ``"bimnet"``: when
    ``weights`` is an official release file that is what runs (its BIMNet's training size is
    unknown, so ``auto`` keeps it); when ``weights`` is a weight folder (bundled or trained
    with vidrestore) it still resolves through ``"auto"`` (BIMNet up to 7/6 of the model's
    training crop side, 112 px for ``pvdnet-medium``, DIS above; :func:`pvdnet_flow_fn`).
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


def bimnet_train_size(net: PVDNetDeblur) -> int | None:
    """Crop side the model's BIMNet was trained on (``config.json`` ``"bimnet_size"``, else
    ``"size"``), or ``None`` when the weights do not say."""
    cfg = getattr(net, "pretrained_config", {}) or {}
    size = cfg.get("bimnet_size", cfg.get("size"))
    return int(size) if size else None


def auto_flow(h: int, w: int, train_size: int | None) -> str:
    """The flow source ``--flow auto`` picks for ``h x w`` frames: ``"bimnet"`` while the
    shorter side is at most :data:`AUTO_NATIVE_FACTOR` times ``train_size``, else
    :data:`AUTO_LARGE`.

    Args:
        h, w: frame size in pixels.
        train_size: crop side BIMNet was trained on (:func:`bimnet_train_size`); ``None``
            (unknown, e.g. weights trained at full resolution) keeps the network's own flow.
    """
    if train_size is None:
        return "bimnet"
    return "bimnet" if min(h, w) <= AUTO_NATIVE_FACTOR * train_size else AUTO_LARGE


def pvdnet_flow_fn(net: PVDNetDeblur, flow: str | None, size: tuple[int, int] | None = None) -> tuple[str, Callable | None, bool]:
    """``(name, flow_fn, zero_flow)`` for :func:`vidrestore.nets.pvdnet.deblur_frames`.

    ``flow=None`` takes the default stored in the weights' config; a config that names
    ``"bimnet"`` (the network's own flow) resolves to ``"auto"``. ``"auto"`` needs the frame
    ``size`` ``(H, W)`` and resolves by :func:`auto_flow`; the returned name is the resolved
    source.
    """
    name = flow or getattr(net, "pretrained_config", {}).get("flow", "bimnet")
    if flow is None and name == "bimnet":
        name = "auto"
    if name not in FLOWS:
        raise UserError(f"unknown flow {name!r} for pvdnet; choose one of {', '.join(FLOWS)}")
    if name == "auto":
        if size is None:
            raise ValueError("flow 'auto' needs the frame size")
        name = auto_flow(size[0], size[1], bimnet_train_size(net))
    if name == "dis":
        from ..flow import dis_flow

        return name, (lambda cur, prev: dis_flow(cur, prev).to(cur.device)), False
    if name == "bimnet-pyramid":
        from ..flow import pyramid_flow

        side = max(32, bimnet_train_size(net) or PYRAMID_SIDE)
        return name, (lambda cur, prev: pyramid_flow(net.flow, cur, prev, short_side=side)), False
    return name, None, name == "zero"


def colour_correct(out: torch.Tensor, ref: torch.Tensor, sigma: float | None = None, gamma: float = 1.0) -> torch.Tensor:
    """Move the low frequencies of ``out`` to those of ``ref``, per channel.

    Blur moves light around but conserves it: a motion or frame-averaging blur of length
    ``L`` leaves spatial frequencies far below ``1 / L`` of the *light* unchanged (camera
    blur integrates linear light, and synthetic sets such as Nah et al.'s GoPro, CVPR 2017,
    average frames in linear light). So the deblurred frame's low frequencies must equal
    the blurry input's; a difference there is a colour or brightness drift of the network,
    not detail. With ``gamma`` = g, both frames are taken to linear light (``x ** g``), the
    correction ``out + G_sigma * (ref - out)`` is applied there (``G_sigma``: a Gaussian
    low-pass with reflect padding, ``sigma`` in pixels; ``sigma=None``: the per-channel frame
    mean, a constant offset), and the result is encoded back (``** (1 / g)``). ``gamma=1``
    works on the values as they are.

    Args:
        out, ref: ``(B, C, H, W)``, same shape, pixel space ``[0, 1]`` (``gamma != 1`` needs
            non-negative values).
        sigma: Gaussian width in pixels, or ``None`` for the per-channel frame mean.
        gamma: decoding exponent to linear light (2.2 for sRGB-like video; 1: none).

    Returns:
        The corrected ``out``; with ``gamma != 1`` clamped at 0 before re-encoding, otherwise
        not clamped.
    """
    if gamma != 1.0:
        # Linear light: a gain (light is conserved multiplicatively; an offset would lift the
        # shadows), bounded to a factor of 2 either way.
        lo, lr = out.clamp(min=0) ** gamma, ref.clamp(min=0) ** gamma
        gain = (_lowpass(lr, sigma) + 1e-4) / (_lowpass(lo, sigma) + 1e-4)
        return (lo * gain.clamp(0.5, 2.0)) ** (1.0 / gamma)
    return out + _lowpass(ref - out, sigma)


def _lowpass(d: torch.Tensor, sigma: float | None) -> torch.Tensor:
    """Per-channel frame mean (``sigma=None``) or separable Gaussian blur (reflect padding)."""
    if sigma is None:
        return d.mean((-2, -1), keepdim=True)
    r = max(1, int(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=d.dtype, device=d.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    b, c, h, w = d.shape
    d = d.reshape(b * c, 1, h, w)
    ry, rx = min(r, h - 1), min(r, w - 1)
    d = F.conv2d(F.pad(d, (rx, rx, 0, 0), mode="reflect"), k[r - rx : r + rx + 1].view(1, 1, 1, -1))
    d = F.conv2d(F.pad(d, (0, 0, ry, ry), mode="reflect"), k[r - ry : r + ry + 1].view(1, 1, -1, 1))
    return d.reshape(b, c, h, w)


def flow_fails(cur: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor) -> bool:
    """Self-consistency check of a flow on the blurry frames themselves.

    ``True`` when warping ``prev`` by ``flow`` matches ``cur`` worse (mean absolute error over
    the frame, border padding) than leaving ``prev`` where it is: the motion estimate is then
    worse than no motion at all, and the pixel volume would hand the network the wrong
    pixels. Blur-invariant in the sense that both errors are measured between equally
    blurred frames.

    Args:
        cur, prev: ``(B, 3, H, W)`` blurry frames in ``[0, 1]``.
        flow: ``(B, 2, H, W)`` backward flow ``cur -> prev`` in pixels.
    """
    from ..flow import warp

    err_flow = float((warp(prev, flow, padding_mode="border") - cur).abs().mean())
    err_zero = float((prev - cur).abs().mean())
    return err_flow > err_zero


def reblur(x: torch.Tensor, flow: torch.Tensor, exposure: float = EXPOSURE, max_taps: int = 17) -> torch.Tensor:
    """Linear motion blur of ``x`` along ``flow``: the mean of ``x(p - s flow(p))`` over
    ``s`` in ``[-exposure/2, exposure/2]`` (about one tap per pixel of path, at most
    ``max_taps``; border padding).

    Args:
        x: ``(B, C, H, W)``.
        flow: ``(B, 2, H, W)`` motion per frame interval in pixels (either direction: the
            path is symmetric).
        exposure: fraction of the frame interval the shutter is open.
    """
    from ..flow import warp

    path = float(flow.square().sum(1).sqrt().amax()) * exposure
    n = int(min(max_taps, max(2, math.ceil(path) + 1)))
    acc = torch.zeros_like(x)
    for s in torch.linspace(-exposure / 2, exposure / 2, n).tolist():
        acc = acc + warp(x, -s * flow, padding_mode="border")
    return acc / n


def explained_fraction(out: torch.Tensor, inp: torch.Tensor, flow: torch.Tensor, gamma: float = COLOUR_GAMMA) -> float:
    """How much of the network's change ``out - inp`` the input's own blur supports.

    Self-consistency of a deblurred frame: blurring it again along the motion (:func:`reblur`,
    in linear light) must give back the blurry input. Among the frames
    ``inp + a (out - inp)``, the one whose re-blur is closest to ``inp`` (least squares) has

        ``a = <inp - R(inp), R(out) - R(inp)> / |R(out) - R(inp)|²``  (``R`` = :func:`reblur`),

    returned clamped to ``[0, 1]``. A correct deblur gives about 1; an over-sharpened one
    less; a change the blur cannot produce (detail invented where the motion is too small to
    have blurred anything) about 0.

    Args:
        out, inp: ``(B, 3, H, W)`` deblurred and blurry frames in ``[0, 1]``.
        flow: ``(B, 2, H, W)`` motion of the frame in pixels per frame interval.
        gamma: exponent to linear light.
    """
    lo, li = out.clamp(0, 1) ** gamma, inp.clamp(0, 1) ** gamma
    ro, ri = reblur(lo, flow), reblur(li, flow)
    r, d = li - ri, ro - ri
    dd = float(d.square().sum())
    if dd <= 1e-12:
        return 1.0
    return min(1.0, max(0.0, float((r * d).sum()) / dd))


def deblur_video_pvdnet(
    video: torch.Tensor,
    net: PVDNetDeblur,
    *,
    flow: str | None = None,
    colour: bool = True,
    colour_sigma: float | None = COLOUR_SIGMA,
    colour_gamma: float = COLOUR_GAMMA,
    guard: bool = True,
    quiet: bool = True,
    callback: Callable | None = None,
    stats: dict | None = None,
) -> torch.Tensor:
    """Deblur ``(B, 3, T, H, W)`` in ``[0, 1]`` recurrently (constant memory per frame).

    Per frame (Son et al. 2021): flow ``t -> t-1`` on the blurry frames (``flow``, see
    :func:`pvdnet_flow_fn`), pixel volume from the previous output, CNN residual. Two
    do-no-harm steps wrap the network:

    * ``colour``: :func:`colour_correct` gives each output frame the low frequencies (colour
      and brightness) of its input frame, so the network cannot shift them;
    * ``guard``: frames whose flow fails the self-consistency check :func:`flow_fails`
      (motion compensation worse than none) are returned unchanged and restart the
      recurrence from the blurry frame; every other frame keeps only the fraction of the
      network's change that re-blurring along the motion supports
      (:func:`explained_fraction`), so input without motion blur comes back nearly
      unchanged. One warning line per clip reports either.

    Frames are cropped to a multiple of 4 for the network; the uncropped border is copied
    from the input.

    Args:
        video: ``(B, 3, T, H, W)`` in ``[0, 1]``.
        net: the PVDNet model (:func:`load_pvdnet`).
        flow: flow source (:data:`FLOWS`; ``None``: the weights' default, see
            :func:`pvdnet_flow_fn`).
        colour, colour_sigma, colour_gamma: the colour correction and its low-pass width
            (pixels; ``None``: frame mean) and linear-light exponent.
        guard: the flow check and fallback.
        quiet, callback: progress bar off/on; called once per frame.
        stats: optional dict filled with ``flow`` (the resolved source), ``unchanged``
            (frames returned as they were) and ``kept`` (mean fraction of the change kept).

    Returns:
        The deblurred video on the CPU, same shape, in ``[0, 1]``.
    """
    _check_video_shape(tuple(video.shape))
    stats_ = _GuardStats()
    run = _Run(net, flow, tuple(video.shape[-2:]), colour=colour, colour_sigma=colour_sigma, colour_gamma=colour_gamma, guard=guard, stats=stats_)
    t_len = video.shape[2]
    outs = []
    with torch.no_grad(), progress(t_len, "pvdnet", quiet) as cb:
        for out in run.frames(video[:, :, t] for t in range(t_len)):
            outs.append(out)
            cb()
            if callback is not None:
                callback()
    stats_.report(run.name, t_len, stats)
    return torch.stack(outs, 2)


def _check_video_shape(shape: tuple) -> None:
    if len(shape) != 5 or shape[1] != 3:
        raise UserError(f"pvdnet needs an RGB video (B, 3, T, H, W), got {tuple(shape)}")
    if min(shape[-2:]) < 32:
        raise UserError(f"pvdnet needs frames of at least 32x32 pixels, got {shape[-2]}x{shape[-1]}")


class _GuardStats:
    """What the do-no-harm steps did over a clip (all tiles): checks, failures, kept fractions."""

    def __init__(self):
        self.unchanged, self.checked, self.kept = 0, 0, []

    def report(self, name: str, t_len: int, stats: dict | None) -> None:
        """One warning line per finding; fill ``stats`` (see :func:`deblur_video_pvdnet`)."""
        if self.unchanged:
            what = f"{self.unchanged} of {t_len} frames" if self.checked <= t_len else f"{self.unchanged} of {self.checked} frame tiles"
            warn(f"pvdnet: the {name} motion estimate failed its consistency check on {what}; those are returned unchanged")
        kept_mean = sum(self.kept) / len(self.kept) if self.kept else 1.0
        if self.kept and kept_mean < KEEP_WARN:
            warn(f"pvdnet: the blur in this video explains only {100 * kept_mean:.0f}% of the network's changes on average; the output keeps that part and is close to the input")
        if stats is not None:
            stats.update(flow=name, unchanged=self.unchanged, kept=kept_mean)


class _Run:
    """PVDNet's recurrence with the do-no-harm steps over a stream of frames (one clip, or one
    spatial tile of it); see :func:`deblur_video_pvdnet` for the steps."""

    def __init__(self, net, flow, size, *, colour=True, colour_sigma=COLOUR_SIGMA, colour_gamma=COLOUR_GAMMA, guard=True, stats=None):
        self.net = net
        self.name, flow_fn, self.zero = pvdnet_flow_fn(net, flow, size)
        self.flow_fn = net.flow if flow_fn is None and not self.zero else flow_fn
        self.colour, self.colour_sigma, self.colour_gamma, self.guard = colour, colour_sigma, colour_gamma, guard
        self.stats = stats if stats is not None else _GuardStats()
        self.dev = next(net.parameters()).device

    def frames(self, frames):
        """Deblurred ``(B, 3, H, W)`` CPU frames of an iterable of ``(B, 3, H, W)`` frames in
        ``[0, 1]``. Frame ``t`` is yielded once frame ``t+1`` has been read (the ends are
        clamped: the first frame is its own predecessor, the last its own successor)."""
        it = iter(frames)
        first = next(it, None)
        if first is None:
            return
        h, w = first.shape[-2:]
        h4, w4 = h // 4 * 4, w // 4 * 4
        net, flow_fn, zero, guard = self.net, self.flow_fn, self.zero, self.guard

        def crop(x):
            return x[..., :h4, :w4].to(self.dev)

        prev_full, cur_full, nxt_full = first, first, next(it, None)
        state, t = None, 0
        while cur_full is not None:
            inp = cur_full.float().cpu()
            prev, cur, nxt = crop(prev_full), crop(cur_full), crop(nxt_full if nxt_full is not None else cur_full)
            if state is None:
                state = cur
            f = torch.zeros_like(cur[:, :2]) if zero else flow_fn(cur, prev)
            if guard and not zero and t > 0:
                self.stats.checked += 1
            if guard and not zero and t > 0 and flow_fails(cur, prev, f):
                self.stats.unchanged += 1
                state = cur
                out = inp.clone()
            else:
                res = net.step(prev, cur, nxt, state, flow=f)
                state = res
                out = inp.clone()
                out[..., :h4, :w4] = res.float().cpu().clamp(0, 1)
                if guard:
                    # Keep only the part of the change that the input's blur explains; the
                    # first frame has no predecessor, so its motion is measured to the next.
                    motion = f if t > 0 else (flow_fn(cur, nxt) if flow_fn is not None and nxt_full is not None else f)
                    a = explained_fraction(res.clamp(0, 1), cur, motion)
                    self.stats.kept.append(a)
                    out = inp + a * (out - inp)
                    state = out[..., :h4, :w4].to(self.dev, res.dtype)
                if self.colour:
                    out = colour_correct(out, inp, self.colour_sigma, self.colour_gamma).clamp(0, 1)
                    state = out[..., :h4, :w4].to(self.dev, res.dtype)  # the recurrence carries the corrected frame
            yield out
            prev_full, cur_full = cur_full, nxt_full
            nxt_full = next(it, None) if nxt_full is not None else None
            t += 1


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
    guard: bool = True,
    stats: dict | None = None,
) -> None:
    """:func:`deblur_video_pvdnet` on a stream: ``chunks`` of ``(B, 3, n, H, W)`` frames in
    ``[0, 1]`` (``shape``: the whole clip's ``(B, 3, T, H, W)``, for checks and progress) go in,
    deblurred ``(B, 3, m, H, W)`` chunks of up to ``chunk`` frames go to ``sink`` in order.
    Memory holds a few frames, whatever the clip length; the frames equal
    :func:`deblur_video_pvdnet`'s.

    ``tile`` (:func:`vidrestore.tiling.resolve_tile`: ``"auto"``, ``"off"``, a side in pixels):
    every spatial tile runs its own recurrence (its own previous output, flow check, re-blur
    check and colour gain) and the tiles' frames are blended over ``tile_overlap`` pixels, the
    same result as :func:`vidrestore.tiling.tiled_map` around :func:`deblur_video_pvdnet`.
    ``guard=False`` turns the do-no-harm steps off (colour gain, flow and re-blur checks)."""
    _check_video_shape(tuple(shape))
    h, w = int(shape[-2]), int(shape[-1])
    side = resolve_tile(tile, h, w)
    if side is not None and tile_overlap >= min(side, h, w):
        raise UserError(f"--tile-overlap must be below the tile side {side}, got {tile_overlap}")
    # Tiles are multiples of 4 (the network's stride; it copies a smaller frame's remainder).
    boxes = tile_boxes(h, w, side, tile_overlap, multiple=4)
    guard_stats = _GuardStats()

    def frames():
        for c in chunks:
            for t in range(c.shape[2]):
                yield c[:, :, t]

    if boxes is None:
        run = _Run(net, flow, (h, w), colour=guard, guard=guard, stats=guard_stats)
        outputs, name = run.frames(frames()), run.name
    else:
        runs = [_Run(net, flow, (th, tw), colour=guard, guard=guard, stats=guard_stats) for _, _, th, tw, _ in boxes]
        outputs, name = _tiled_frames(runs, frames(), boxes), runs[0].name
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
    guard_stats.report(name, int(shape[2]), stats)


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


def _tiled_frames(runs, frames, boxes):
    """Deblurred frames of a stream, one :class:`_Run` per spatial tile, blended. Each tile's
    recurrence yields frame t once it has read frame t+1, so all tiles advance together."""
    feeds = [_Feed() for _ in boxes]
    gens = [run.frames(feed) for run, feed in zip(runs, feeds)]
    norm = None
    frame_hw = None

    def blend():
        nonlocal norm
        out = None
        for (y0, x0, th, tw, wt), gen in zip(boxes, gens):
            o = next(gen)
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
