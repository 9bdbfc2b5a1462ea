"""Degrade / restore / evaluate jobs on files.

The measurement written by :func:`degrade_file` is lossless by default (``.npz``, exact
float32) and has a sidecar JSON (``<output>.json``) with everything needed to rebuild the
exact operator: spec, seed, input shape, ``sigma_y``, noise seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import UserError, warn
from ..io import atomic_write_text, check_output, read_sidecar, read_video, sidecar_path, write_sidecar, write_video
from ..io.stream import AUDIO_CONTAINERS, VideoWriter, open_video
from ..metrics import format_table, video_metrics
from ..ops import Identity, measure, parse
from ..ops.mask import Inpaint
from ..ops.window import _flatten
from .methods import (  # noqa: F401 - the method table, re-exported where it used to live
    BLIND_METHODS,
    CLASSICAL_METHODS,
    DIFFIR2VR_BASE,
    DIFFUSION_INIT,
    METHOD_OPTIONS,
    METHODS,
    NOISY_DIFFUSION,
    PRECISIONS,
    Method,
    Options,
    get_method,
    make_options,
    option_flag,
    parse_warp_period,
    prior_dtype,
    resolve_device,
)
from .scale import make_spec, restore_video
from .worker import WindowWorker

LOSSY_SUFFIXES = {".mp4", ".mov", ".gif", ".webm", ".mpg", ".mpeg"}


def parse_size(text: str | None, flag: str) -> tuple[int, int] | None:
    """``"HxW"`` (or a single ``N`` for a square) -> ``(H, W)``; UserError naming the flag."""
    if text is None:
        return None
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        raise UserError(f"{flag} expects HxW (e.g. 256x256), got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise UserError(f"{flag} expects HxW with positive sizes, got {text!r}")
    return parts[0], parts[1]


# --------------------------------------------------------------------------- degrade


def degrade_file(
    src: str | Path,
    out: str | Path,
    *,
    op: str,
    sigma_y: float = 0.0,
    seed: int = 0,
    start: int = 0,
    frames: int | None = None,
    crop: tuple[int, int] | None = None,
    resize: tuple[int, int] | None = None,
    gt_out: str | Path | None = None,
    allow_truncated: bool = False,
    key: str | None = None,
) -> dict:
    """Read a clip (``key``: the array of a multi-array ``.npz``), apply ``op`` and noise, write the measurement and its sidecar.

    Returns the sidecar dictionary. ``gt_out`` optionally writes the (cropped/resized) clean
    clip losslessly, for evaluation. The outputs are checked before the clip is read
    (:func:`~vidrestore.io.check_output`: never the source or its sidecar, a writable format
    and folder); ``sigma_y`` must be finite and >= 0.
    """
    out = check_output(out, [src, gt_out], flag="output")
    if gt_out is not None:
        check_output(gt_out, [src, out], flag="--gt")
    if not (isinstance(sigma_y, (int, float)) and 0 <= sigma_y < float("inf")):
        raise UserError(f"--sigma-y must be a finite number >= 0, got {sigma_y}")
    x, fps = read_video(src, start=start, frames=frames, crop=crop, resize=resize, allow_truncated=allow_truncated, key=key)
    operator = parse(op, seed=seed, num_frames=x.shape[2])
    y_shape = operator.check_input(x)
    x64 = x.double()
    y = measure(operator, x64, sigma_y, torch.Generator().manual_seed(seed + 1)).float()
    assert tuple(y.shape) == tuple(y_shape)
    meta = {
        "vidrestore_version": __version__,
        "kind": "measurement",
        "op": operator.spec,
        "seed": seed,
        "noise_seed": seed + 1,
        "sigma_y": sigma_y,
        "x_shape": list(x.shape),
        "y_shape": list(y.shape),
        "source": str(src),
        "start": start,
        "frames": int(x.shape[2]),
        "crop": list(crop) if crop else None,
        "resize": list(resize) if resize else None,
        "fps": fps,
        "lossless": out.suffix.lower() not in LOSSY_SUFFIXES,
    }
    if gt_out is not None:
        write_video(gt_out, x, fps)
        meta["gt"] = str(gt_out)
    write_video(out, y, fps)
    write_sidecar(out, meta)
    return meta


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class Selection:
    """Which part of an input to restore: ``start``/``frames`` (frame range), ``resize`` then
    centre ``crop`` (``(H, W)``), ``key`` (array of a multi-array ``.npz``); as for
    :func:`~vidrestore.io.read_video`."""

    start: int = 0
    frames: int | None = None
    crop: tuple[int, int] | None = None
    resize: tuple[int, int] | None = None
    key: str | None = None

    @property
    def changes_clip(self) -> bool:
        return bool(self.start or self.frames is not None or self.crop or self.resize)

    def flags(self) -> str:
        names = [("--start", self.start), ("--frames", self.frames), ("--crop", self.crop), ("--resize", self.resize)]
        return "/".join(n for n, v in names if v)


def _selection(select: Selection | dict | None) -> Selection:
    if select is None:
        return Selection()
    if isinstance(select, Selection):
        return select
    return Selection(**select)


def open_measurement(
    src: str | Path,
    *,
    op: str | None = None,
    sigma_y: float | None = None,
    op_seed: int | None = None,
    allow_truncated: bool = False,
    select: Selection | dict | None = None,
):
    """Open a measurement file for streaming and rebuild its operator (from ``op`` or the sidecar).

    ``select`` (:class:`Selection`) restores part of the measurement: its frames, a resize and
    a crop. With the sidecar's operator, the operator is rebuilt for the selected frames; an
    inpainting mask of the sidecar would not line up with a selection, so that is refused.
    ``sigma_y="auto"`` estimates the noise level from the measurement
    (:func:`vidrestore.metrics.estimate_noise_sigma`, chunk by chunk) and says so on stderr. The
    operator seed (random masks) is the sidecar's unless ``op_seed`` is given; a warning says
    when it differs from the sidecar's, since the mask then differs from the one that made the
    measurement. Returns ``(source, operator, sigma_y, fps)`` with a
    :class:`~vidrestore.io.stream.VideoSource` (close it when done); UserError for a missing
    operator, a non-finite or negative noise level, or a shape that the operator cannot produce.
    """
    sel = _selection(select)
    meta = read_sidecar(src) or {}
    spec = op or meta.get("op")
    if not spec:
        raise UserError(f"no operator for {src}: pass --op SPEC (no sidecar {sidecar_path(src)} found)")
    try:
        side_seed = int(meta.get("seed", 0))
        auto = isinstance(sigma_y, str) and sigma_y == "auto"
        s_y = 0.0 if auto else float(sigma_y if sigma_y is not None else meta.get("sigma_y", 0.0))
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"sidecar {sidecar_path(src)} has an invalid seed or sigma_y") from None
    if not 0 <= s_y < float("inf"):
        raise UserError(f"sigma_y of {src} must be a finite number >= 0, got {s_y}")
    if op_seed is not None and "seed" in meta and op_seed != side_seed:
        warn(f"--op-seed {op_seed} differs from the seed {side_seed} in {sidecar_path(src)}: the operator (e.g. an inpainting mask) will not be the one that made {src}")
    op_seed = side_seed if op_seed is None else op_seed
    y = open_video(src, start=sel.start, frames=sel.frames, crop=sel.crop, resize=sel.resize, allow_truncated=allow_truncated, key=sel.key)
    try:
        num_frames = meta.get("x_shape", [None] * 5)[2] if op is None and not sel.changes_clip else None
        operator = parse(spec, seed=op_seed, num_frames=num_frames)
        if op is None and sel.changes_clip and any(isinstance(o, Inpaint) for o in _flatten(operator)):
            raise UserError(f"{sel.flags()} cannot be used on {src}: the inpainting mask of its operator {spec!r} covers the whole measurement; select the frames and region when degrading, or pass --op")
        x_shape = operator.input_shape(tuple(y.shape))
        if tuple(operator.output_shape(x_shape)) != tuple(y.shape):
            raise UserError(f"measurement {src} has shape {tuple(y.shape)}, which operator {spec!r} cannot produce")
        if auto:
            from ..metrics import estimate_noise_sigma

            s_y = round(estimate_noise_sigma(y.chunks(16)), 5)
            warn(f"estimated the noise level of {src}: sigma_y = {s_y:g} (Immerkaer); pass --sigma-y S to set it")
    except BaseException:
        y.close()
        raise
    return y, operator, s_y, y.fps


def load_measurement(src: str | Path, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None, allow_truncated: bool = False, select: Selection | dict | None = None):
    """Read a whole measurement file and rebuild its operator: :func:`open_measurement` with
    the frames loaded. Returns ``(y, operator, sigma_y, fps)``."""
    source, operator, s_y, fps = open_measurement(src, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated, select=select)
    with source:
        return source.load(), operator, s_y, fps


def restore_file(
    src: str | Path,
    out: str | Path,
    *,
    method: str = "cg",
    op: str | None = None,
    sigma_y: float | None = None,
    seed: int | None = None,
    op_seed: int | None = None,
    options: Options | dict | None = None,
    device: str | None = None,
    quiet: bool = False,
    backend: str = "local",
    ray: Any = None,
    threads: int | None = None,
    allow_truncated: bool = False,
    select: Selection | dict | None = None,
) -> dict:
    """Restore the measurement file ``src`` into ``out``, streaming.

    ``options``: the method's options object (e.g. :class:`~vidrestore.workflows.methods.SVIOptions`)
    or a dict of option names (``restore``'s flags, e.g. ``{"cg_steps": 10}``). ``select``:
    restore part of ``src`` (:class:`Selection`: ``start``, ``frames``, ``crop``, ``resize``,
    ``key``).

    The operator comes from ``op`` if given, else from ``src``'s sidecar (spec, seed,
    frame count, ``sigma_y``). ``seed`` is the sampling seed of the stochastic (diffusion)
    methods (``options["seed"]``, default 0); ``op_seed`` overrides the sidecar's operator
    seed (see :func:`open_measurement`). ``backend``/``ray``/``threads``: see
    :func:`~vidrestore.workflows.scale.restore_video`. ``out`` is checked before any work
    (:func:`~vidrestore.io.check_output`: never ``src`` or its sidecar). Returns a summary dict
    (method, op, seconds, output path). Nothing is written when the job fails.

    Memory: the input is read window by window as the windows are solved (local backend; Ray
    workers get the whole measurement) and the output is written as soon as frames are
    finished, so peak memory depends on the window, not on the clip length; ``pvdnet`` runs
    frame by frame. ``.mp4``/``.mov``/``.mkv``/``.avi`` outputs keep the audio of a video input
    (cut to the selected frames) unless the operator changes the frame count.

    Blind methods (:data:`~vidrestore.workflows.methods.BLIND_METHODS`, e.g. ``pvdnet``)
    read ``src`` as a plain video and take no operator, noise level or operator seed.
    """
    check_output(out, [src])
    check_blind_flags(method, op=op, sigma_y=sigma_y, op_seed=op_seed)
    options = make_options(method, options, **({} if seed is None else {"seed": int(seed)}))
    spec = make_spec(method, options, device=device, threads=threads, backend=backend)
    source, operator, s_y, fps = open_input(src, method, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated, select=select)
    with source:
        x_shape = tuple(operator.input_shape(tuple(source.shape)))
        audio = output_audio(source, operator, out)
        t0 = time.perf_counter()
        with VideoWriter(out, fps, num_frames=x_shape[2], audio=audio) as writer:
            if get_method(method).blind and backend == "local":
                deblur_source(source, spec, writer.write, quiet=quiet)
            else:
                restore_video(source, operator, method=method, sigma_y=s_y, options=spec.options, device=device, quiet=quiet, backend=backend, ray=ray, threads=threads, sink=writer.write)
        seconds = time.perf_counter() - t0
    info = {"method": method, "op": operator.spec, "sigma_y": s_y, "seconds": seconds, "output": str(out), "shape": list(x_shape), "backend": backend, "audio": audio is not None}
    if get_method(method).blind:
        info.update(_blind_summary(spec.options))
    return info


def output_audio(source, operator, out: str | Path):
    """The :class:`~vidrestore.io.stream.AudioCopy` that ``out`` should carry: the source's
    audio over the selected frames, when the source has audio, ``out`` can hold it and the
    operator keeps the frame count; ``None`` otherwise (with a warning when audio is dropped)."""
    if not source.has_audio:
        return None
    suffix = Path(out).suffix.lower()
    if suffix not in AUDIO_CONTAINERS:
        warn(f"{out} cannot hold audio: the audio track of {source.path} is not kept (write .mp4, .mov, .mkv or .avi to keep it)")
        return None
    x_frames = operator.input_shape(tuple(source.shape))[2]
    if x_frames != source.shape[2]:
        warn(f"operator {operator.spec!r} changes the frame count ({source.shape[2]} measured, {x_frames} restored): {out} is written without the audio of {source.path}")
        return None
    return source.audio()


def open_input(src: str | Path, method: str, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None, allow_truncated: bool = False, select: Selection | dict | None = None):
    """``(source, operator, sigma_y, fps)`` of the input file ``src`` of ``method``, opened for
    streaming (:class:`~vidrestore.io.stream.VideoSource`): a measurement with its operator
    (:func:`open_measurement`), or for a blind method the video itself with the identity
    operator (UserError, naming the flag, for ``op``/``sigma_y``/``op_seed``)."""
    if not get_method(method).blind:
        return open_measurement(src, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated, select=select)
    check_blind_flags(method, op=op, sigma_y=sigma_y, op_seed=op_seed)
    sel = _selection(select)
    y = open_video(src, start=sel.start, frames=sel.frames, crop=sel.crop, resize=sel.resize, allow_truncated=allow_truncated, key=sel.key)
    return y, Identity(), 0.0, y.fps


def load_input(src: str | Path, method: str, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None, allow_truncated: bool = False, select: Selection | dict | None = None):
    """:func:`open_input` with the frames loaded: ``(y, operator, sigma_y, fps)``."""
    source, operator, s_y, fps = open_input(src, method, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated, select=select)
    with source:
        return source.load(), operator, s_y, fps


def deblur_source(source, spec, sink, *, quiet: bool = True) -> None:
    """Blind deblurring (``pvdnet``) of a streamed source, frame by frame: frames are read in
    chunks and the deblurred frames passed to ``sink`` as they come (constant memory)."""
    from .deblur import deblur_stream

    worker = WindowWorker(spec)
    state = worker.state()
    with torch.no_grad():
        deblur_stream(source.chunks(8), source.shape, state["net"], sink, flow=spec.options.flow, quiet=quiet,
                      tile=spec.options.tile, tile_overlap=spec.options.tile_overlap, guard=spec.options.guard)


def check_blind_flags(method: str, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None) -> None:
    """UserError naming the flag when a blind method is given an operator, noise level or operator seed."""
    if not get_method(method).blind:
        return
    for flag, value in (("--op", op), ("--sigma-y", sigma_y), ("--op-seed", op_seed)):
        if value is not None:
            raise UserError(f"method {method} is blind: it takes no {flag}")


def _blind_summary(options) -> dict:
    """What a blind method ran with (pvdnet: weights and flow), for the summary line."""
    from ..checkpoint import load_config
    from .deblur import resolve_pvdnet_weights
    from .pvdnet_official import is_state_dict_file

    path = resolve_pvdnet_weights(options.weights)
    # Official release files (and a given --bimnet) keep their own BIMNet flow by default;
    # a bundled model's own BIMNet goes through the size rule (see .deblur.auto_flow).
    if options.flow:
        flow = options.flow
    elif is_state_dict_file(path) or getattr(options, "bimnet", None):
        flow = "bimnet"
    else:
        flow = load_config(path).get("flow", "bimnet")
        flow = "auto" if flow == "bimnet" else flow
    return {"op": f"blind (flow {flow})", "weights": str(path), "flow": flow}


# --------------------------------------------------------------------------- eval


def evaluate_files(
    out: str | Path,
    ref: str | Path,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    json_path: str | Path | None = None,
    warp: bool = True,
    lift: bool = False,
) -> tuple[dict, str]:
    """Metrics of ``out`` against ``ref`` (PSNR, SSIM, warping error, per frame).

    With ``lift``, ``out`` is a measurement (with its sidecar, as written by ``degrade``) and
    is first brought onto the reference's grid by its operator's ``lift`` (bicubic upsampling
    for SR, frame repetition for frame dropping), so the degraded input itself can be scored.
    Returns ``(metrics, table_text)`` and writes the JSON atomically if ``json_path``.
    """
    if lift:
        y, operator, _, _ = load_measurement(out)
        x = operator.lift(y)
    else:
        x, _ = read_video(out)
    r, _ = read_video(ref)
    if x.shape != r.shape:
        hint = "" if lift else "; to score a measurement against its ground truth pass --lift"
        raise UserError(f"shape mismatch: {out} is {tuple(x.shape)} but {ref} is {tuple(r.shape)}{hint}")
    m = video_metrics(x.clamp(0, 1), r.clamp(0, 1), crop_border=crop_border, y_channel=y_channel, warp=warp and x.shape[2] > 1)
    m["output"], m["reference"] = str(out), str(ref)
    table = format_table({Path(out).name: m})
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(_jsonable(m), indent=2))
    return m, table


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v
