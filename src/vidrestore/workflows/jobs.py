"""Degrade / restore / evaluate jobs on files.

The measurement written by :func:`degrade_file` is lossless by default (``.npz``, exact
float32) and has a sidecar JSON (``<output>.json``) with everything needed to rebuild the
exact operator: spec, seed, input shape, ``sigma_y``, noise seed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import UserError, warn
from ..io import atomic_write_text, check_output, read_sidecar, read_video, sidecar_path, write_sidecar, write_video
from ..metrics import format_table, video_metrics
from ..ops import Identity, measure, parse
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
from .scale import restore_video

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


def load_measurement(src: str | Path, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None, allow_truncated: bool = False):
    """Read a measurement file and rebuild its operator (from ``op`` or the sidecar).

    ``sigma_y="auto"`` estimates the noise level from the measurement
    (:func:`vidrestore.metrics.estimate_noise_sigma`) and says so on stderr. The operator seed
    (random masks) is the sidecar's unless ``op_seed`` is given; a warning
    says when it differs from the sidecar's, since the mask then differs from the one that
    made the measurement. Returns ``(y, operator, sigma_y, fps)``; UserError for a missing
    operator, a non-finite or negative noise level, or a shape that the operator cannot produce.
    """
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
    y, fps = read_video(src, allow_truncated=allow_truncated)
    if auto:
        from ..metrics import estimate_noise_sigma

        s_y = round(estimate_noise_sigma(y), 5)
        warn(f"estimated the noise level of {src}: sigma_y = {s_y:g} (Immerkaer); pass --sigma-y S to set it")
    num_frames = meta.get("x_shape", [None] * 5)[2] if op is None else None
    operator = parse(spec, seed=op_seed, num_frames=num_frames)
    x_shape = operator.input_shape(tuple(y.shape))
    if tuple(operator.output_shape(x_shape)) != tuple(y.shape):
        raise UserError(f"measurement {src} has shape {tuple(y.shape)}, which operator {spec!r} cannot produce")
    return y, operator, s_y, fps


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
) -> dict:
    """Restore the measurement file ``src`` into ``out``.

    ``options``: the method's options object (e.g. :class:`~vidrestore.workflows.methods.SVIOptions`)
    or a dict of option names (``restore``'s flags, e.g. ``{"cg_steps": 10}``).

    The operator comes from ``op`` if given, else from ``src``'s sidecar (spec, seed,
    frame count, ``sigma_y``). ``seed`` is the sampling seed of the stochastic (diffusion)
    methods (``options["seed"]``, default 0); ``op_seed`` overrides the sidecar's operator
    seed (see :func:`load_measurement`). ``backend``/``ray``/``threads``: see
    :func:`~vidrestore.workflows.scale.restore_video`. ``out`` is checked before any work
    (:func:`~vidrestore.io.check_output`: never ``src`` or its sidecar). Returns a summary dict
    (method, op, seconds, output path). Nothing is written when the job fails.

    Blind methods (:data:`~vidrestore.workflows.methods.BLIND_METHODS`, e.g. ``pvdnet``)
    read ``src`` as a plain video and take no operator, noise level or operator seed.
    """
    check_output(out, [src])
    check_blind_flags(method, op=op, sigma_y=sigma_y, op_seed=op_seed)
    options = make_options(method, options, **({} if seed is None else {"seed": int(seed)}))
    y, operator, s_y, fps = load_input(src, method, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated)
    t0 = time.perf_counter()
    x = restore_video(y, operator, method=method, sigma_y=s_y, options=options, device=device, quiet=quiet, backend=backend, ray=ray, threads=threads)
    seconds = time.perf_counter() - t0
    write_video(out, x, fps)
    info = {"method": method, "op": operator.spec, "sigma_y": s_y, "seconds": seconds, "output": str(out), "shape": list(x.shape), "backend": backend}
    if get_method(method).blind:
        info.update(_blind_summary(options))
    return info


def load_input(src: str | Path, method: str, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None, allow_truncated: bool = False):
    """``(y, operator, sigma_y, fps)`` of the input file ``src`` of ``method``: a measurement
    with its operator (:func:`load_measurement`), or for a blind method the video itself with
    the identity operator (UserError, naming the flag, for ``op``/``sigma_y``/``op_seed``)."""
    if not get_method(method).blind:
        return load_measurement(src, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated)
    check_blind_flags(method, op=op, sigma_y=sigma_y, op_seed=op_seed)
    y, fps = read_video(src, allow_truncated=allow_truncated)
    return y, Identity(), 0.0, fps


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

    path = resolve_pvdnet_weights(options.weights)
    flow = options.flow or load_config(path).get("flow", "bimnet")
    if not options.flow and flow == "bimnet":
        flow = "auto"  # a model's own BIMNet is used through the size rule (see .deblur.auto_flow)
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
