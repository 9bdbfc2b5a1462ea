"""Degrade / restore / evaluate jobs on files.

The measurement written by :func:`degrade_file` is lossless by default (``.npz``, exact
float32) and has a sidecar JSON (``<output>.json``) with everything needed to rebuild the
exact operator: spec, seed, input shape, ``sigma_y``, noise seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..errors import UserError, warn
from ..io import atomic_write_text, check_output, read_sidecar, read_video, sidecar_path, write_sidecar, write_video
from ..metrics import format_table, video_metrics
from ..ops import measure, parse
from ..ops.base import LinearOperator
from ..solvers import admm_tv_defaults, solve_admm_tv, solve_cg

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


def resolve_device(device: str | None) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:N``; a clear error when CUDA is not available."""
    name = device or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available on this machine")
    return dev


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
) -> dict:
    """Read a clip, apply ``op`` and noise, write the measurement and its sidecar.

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
    x, fps = read_video(src, start=start, frames=frames, crop=crop, resize=resize, allow_truncated=allow_truncated)
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


@dataclass
class Method:
    """A restoration method.

    ``run(op, y, sigma_y, options, callback) -> x`` solves one problem (the whole clip or one
    temporal window); it may also accept the keywords ``frame_ids`` (absolute frame indices of
    the window, for per-frame noise seeds) and ``state`` (what ``setup`` returned). ``setup(options,
    device) -> state`` loads heavy objects (the diffusion prior) once per worker, so a worker
    that solves many windows loads them once. ``window`` is the default number of frames per
    temporal window (``None``: the whole clip, unless ``options["window"]`` is set).
    """

    run: Callable[..., torch.Tensor]
    steps: Callable[[dict], int]
    defaults: dict = field(default_factory=dict)
    setup: Callable[[dict, torch.device], Any] | None = None
    window: int | None = None


def _run_cg(op, y, sigma_y, o, callback):
    lam = o.get("lam", 0.0 if sigma_y == 0 else float(sigma_y))
    return solve_cg(op, y, lam=lam, max_iter=o["iters"], callback=callback)


def _run_admm(op, y, sigma_y, o, callback):
    kw = admm_tv_defaults(sigma_y)
    if "lam" in o:
        kw["lam"] = o["lam"]
    return solve_admm_tv(op, y, **kw, max_iter=o["iters"], cg_iter=o.get("cg_iter", 5), callback=callback)


def _run_baseline(name: str):
    """Interpolation (``bicubic``, ``lanczos``) and block-matching denoisers (``bm3d`` per
    frame, ``bm4d`` per clip) from :mod:`vidrestore.solvers.baselines`."""

    def run(op, y, sigma_y, o, callback):
        from ..solvers import baselines

        if name in ("bicubic", "lanczos"):
            return baselines.solve_lift(op, y, kernel=name, callback=callback)
        solve = baselines.solve_bm3d if name == "bm3d" else baselines.solve_bm4d
        x = solve(op, y, sigma_y=float(o.get("sigma", sigma_y)))
        callback({"i": 0})
        return x

    return run


#: ``--precision`` names and the prior's parameter dtype. bf16 runs the bundled prior about 2x
#: faster on CPUs with AVX512-BF16 (the ε error is ~0.004 RMS; see the README's precision note);
#: fp16 is meant for CUDA.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def prior_dtype(precision: str | None) -> torch.dtype:
    """dtype for a ``--precision`` name (``None``: float32); UserError for unknown names."""
    name = precision or "fp32"
    if name not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    return PRECISIONS[name]


def _setup_prior(o, device):
    from ..priors import load_prior

    return {"prior": load_prior(o.get("prior", "default"), device=device, dtype=prior_dtype(o.get("precision")))}


def _diffusion(kind: str):
    """SVI (batch-consistent DDS), per-frame DDS and DPS with an image prior on one clip or one
    temporal window; clips longer than ``window`` frames are split into exact temporal windows
    by the caller (solvers/windows.py, workflows/scale.py)."""

    def run(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
        import functools

        from ..solvers import solve_dds, solve_dps, solve_svi

        prior = (state or _setup_prior(o, y.device))["prior"]
        kw = {"steps": o["steps"], "sigma_y": sigma_y, "seed": o.get("seed", 0), "frame_ids": frame_ids}
        if kind == "dps":
            fn = functools.partial(solve_dps, prior)
            kw["zeta"] = o.get("zeta", 1.0)
        else:
            fn = functools.partial(solve_svi if kind == "svi" else solve_dds, prior)
            noisy = float(sigma_y) > 0
            kw.update(eta=o["eta"], cg_steps=o["cg_steps"],
                      t_start=o.get("t_start", NOISY_DIFFUSION["t_start"] if noisy else 500),
                      init=o.get("init", DIFFUSION_INIT),
                      gamma=o.get("gamma", NOISY_DIFFUSION["gamma"]),
                      gamma_schedule=o.get("gamma_schedule", NOISY_DIFFUSION["gamma_schedule"]))

        def step_cb(info):
            if "i" in info:
                callback(info)

        return fn(op, y, callback=step_cb, **kw)

    return run


#: Noisy-measurement defaults of ``-m svi`` / ``-m dds`` (used when sigma_y > 0 and the option is
#: not given): start at t = 100 from the lifted measurement and weight the DDS data step
#: (I + g A^T A) v = x0 + g A^T y by g = gamma (sigma_t / sigma_y)^2 (DiffPIR's rho_t, Zhu et al.
#: 2023). Picked on ``bigbuckbunny`` for the DiffIR2VR base (not on the SVI table's clip); on
#: bikes 64x64, sigma_y 0.01, SVI gives avg7 36.44 dB (constant gamma 10 from t = 500: 32.63),
#: avg13 34.34 (30.91), avg7+sr4 26.25 (24.98), avg7+inpaint 32.31 (29.56) -- README, noisy table.
#: Starting at t = 500 with the same weighting loses 2-4 dB (avg7 32.54, avg13 31.19).
NOISY_DIFFUSION = {"t_start": 100, "gamma": 0.3, "gamma_schedule": "sigma"}

#: Initial estimate of ``-m svi`` / ``-m dds`` noised to ``t_start`` (``solve_svi``'s ``init``).
DIFFUSION_INIT = "lift"

#: Base per-frame DDS of ``-m diffir2vr`` (the table's frame-by-frame rows use the same). Picked
#: on ``bigbuckbunny`` (not the evaluation clip) by ``benchmarks/diffir2vr_base_sweep.py``; see the
#: README's DiffIR2VR section. ``gamma_schedule="sigma"``: data weight ``gamma (sigma_t / sigma_y)^2``
#: (DiffPIR), so one ``gamma`` fits every noise level; unused when ``sigma_y == 0``.
DIFFIR2VR_BASE = {"eta": 0.8, "cg_steps": 20, "t_start": 100, "gamma": 0.3, "gamma_schedule": "sigma"}


def parse_warp_period(value) -> tuple[float, float]:
    """``"END"`` -> ``(0, END)``; ``"START:END"`` -> ``(START, END)``; fractions of the steps."""
    if isinstance(value, (tuple, list)):
        parts = [str(v) for v in value]
    else:
        parts = str(value).split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"--warp-period must be END or START:END (fractions of the steps), got {value!r}") from None
    if len(nums) == 1:
        nums = [0.0] + nums
    if len(nums) != 2 or not 0.0 <= nums[0] <= nums[1] <= 1.0:
        raise UserError(f"--warp-period must be END or START:END with 0 <= START <= END <= 1, got {value!r}")
    return nums[0], nums[1]


def _run_diffir2vr(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
    """DiffIR2VR-Zero (Yeh et al., arXiv 2407.01519) around a per-frame base solver (dds or dps)
    with the bundled prior, on one clip or one temporal window (windows: 30 frames by default).
    Wrapper defaults: :class:`~vidrestore.consistency.DiffIR2VRConfig` (``--paper`` settings:
    batch 10, warping in the first 10 % of the steps, nearest)."""
    from ..consistency import DiffIR2VRConfig, solve_diffir2vr

    base = o.get("base", "dds")
    if base not in ("dds", "dps"):
        raise UserError(f"--base must be dds or dps, got {base!r}")
    prior = (state or _setup_prior(o, y.device))["prior"]
    cfg = DiffIR2VRConfig.paper() if o.get("paper") else DiffIR2VRConfig()
    changes = {k: o[k] for k in ("batch_size", "keyframe", "warp_mode", "warp_strength") if o.get(k) is not None}
    if o.get("warp_period") is not None:
        changes["warp_period"] = parse_warp_period(o["warp_period"])
    if o.get("merge_ratio") is not None:
        changes["merge_ratio"] = (float(o["merge_ratio"]), 0.0)
    cfg = cfg.with_options(seed=int(o.get("seed", 0)), **changes)
    kw = {"steps": _diffir2vr_steps(o), "sigma_y": sigma_y, "seed": o.get("seed", 0), "frame_ids": frame_ids}
    if base == "dps":
        kw["zeta"] = o.get("zeta", 1.0)
    else:
        kw.update({k: o.get(k, v) for k, v in DIFFIR2VR_BASE.items()})

    def step_cb(info):
        if "i" in info:
            callback(info)

    return solve_diffir2vr(prior, op, y, base=base, config=cfg, callback=step_cb, **kw)


def _diffir2vr_steps(o: dict) -> int:
    return int(o.get("steps") or (200 if o.get("base") == "dps" else 20))


METHODS: dict[str, Method] = {
    "cg": Method(_run_cg, lambda o: o["iters"], {"iters": 50}),
    "admm-tv": Method(_run_admm, lambda o: o["iters"], {"iters": 40}),
    # Baselines users reach for: interpolation (any operator; only SR factors are undone) and
    # block-matching denoisers (operator 'id', known sigma_y; optional 'sigma' overrides it).
    "bicubic": Method(_run_baseline("bicubic"), lambda o: 1),
    "lanczos": Method(_run_baseline("lanczos"), lambda o: 1),
    "bm3d": Method(_run_baseline("bm3d"), lambda o: 1),
    "bm4d": Method(_run_baseline("bm4d"), lambda o: 1),
    # Defaults for the bundled (small, early) prior: eta 0.8 and 20 CG steps per diffusion step.
    # Noiseless measurements start at t = 500 from the lifted measurement (measured best on bikes,
    # see issue 4 notes); noisy ones (sigma_y > 0) use NOISY_DIFFUSION (t = 100, sigma-weighted
    # data step), unless t_start / gamma / gamma_schedule are given.
    "svi": Method(_diffusion("svi"), lambda o: o["steps"], {"steps": 20, "eta": 0.8, "cg_steps": 20}, _setup_prior, 16),
    "dds": Method(_diffusion("dds"), lambda o: o["steps"], {"steps": 20, "eta": 0.8, "cg_steps": 20}, _setup_prior, 16),
    "dps": Method(_diffusion("dps"), lambda o: o["steps"], {"steps": 200}, _setup_prior, 16),
    # DiffIR2VR-Zero wrapper around per-frame dds (default; base settings DIFFIR2VR_BASE) or dps.
    "diffir2vr": Method(_run_diffir2vr, _diffir2vr_steps, {"base": "dds"}, _setup_prior, 30),
}


_DIFFUSION_COMMON = ("prior", "precision", "window", "overlap", "seed")
_DDS_OPTIONS = ("steps", "eta", "cg_steps", "t_start", "init", "gamma", "gamma_schedule")

#: Options each method reads from its ``options`` dict (``restore``'s flags, by key).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "cg": ("iters", "lam", "window", "overlap"),
    "admm-tv": ("iters", "lam", "cg_iter", "window", "overlap"),
    "bicubic": ("window", "overlap"),
    "lanczos": ("window", "overlap"),
    "bm3d": ("sigma", "window", "overlap"),
    "bm4d": ("sigma", "window", "overlap"),
    "svi": _DDS_OPTIONS + _DIFFUSION_COMMON,
    "dds": _DDS_OPTIONS + _DIFFUSION_COMMON,
    "dps": ("steps", "zeta") + _DIFFUSION_COMMON,
    "diffir2vr": ("base", "steps", "eta", "cg_steps", "t_start", "gamma", "gamma_schedule", "zeta", "paper", "batch_size",
                  "keyframe", "merge_ratio", "warp_period", "warp_mode", "warp_strength") + _DIFFUSION_COMMON,
}

#: Methods without a learned prior (the baselines of the benchmark's comparisons).
CLASSICAL_METHODS = ("cg", "admm-tv", "bicubic", "lanczos", "bm3d", "bm4d")


#: Methods that restore without an operator (blind deblurring networks).
BLIND_METHODS = ("pvdnet",)


def restore_video(
    y: torch.Tensor,
    op: LinearOperator,
    *,
    method: str = "cg",
    sigma_y: float = 0.0,
    options: dict | None = None,
    device: str | None = None,
    quiet: bool = False,
    backend: str = "local",
    ray: Any = None,
    threads: int | None = None,
) -> torch.Tensor:
    """Restore a measurement ``y`` (pixel units) with a named method; returns ``(B,C,T,H,W)``
    in ``[0, 1]`` on the CPU.

    The clip is planned into temporal windows (``options["window"]``, default per method:
    16 frames for the diffusion methods, the whole clip for cg/admm-tv), every window is solved
    independently, and the cores are blended in window order (:mod:`.scale`). ``backend``
    ``"local"`` solves the windows in this process; ``"ray"`` sends them to Ray actors
    (``ray``: a :class:`~vidrestore.workflows.distributed.RayConfig`). With the same ``threads``
    (torch CPU threads per window solve) both backends give bit-identical output.
    """
    from .scale import restore_windows

    return restore_windows(y, op, method=method, sigma_y=sigma_y, options=options, device=device, quiet=quiet, backend=backend, ray=ray, threads=threads)


def load_measurement(src: str | Path, *, op: str | None = None, sigma_y: float | None = None, op_seed: int | None = None, allow_truncated: bool = False):
    """Read a measurement file and rebuild its operator (from ``op`` or the sidecar).

    The operator seed (random masks) is the sidecar's unless ``op_seed`` is given; a warning
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
        s_y = float(sigma_y if sigma_y is not None else meta.get("sigma_y", 0.0))
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"sidecar {sidecar_path(src)} has an invalid seed or sigma_y") from None
    if not 0 <= s_y < float("inf"):
        raise UserError(f"sigma_y of {src} must be a finite number >= 0, got {s_y}")
    if op_seed is not None and "seed" in meta and op_seed != side_seed:
        warn(f"--op-seed {op_seed} differs from the seed {side_seed} in {sidecar_path(src)}: the operator (e.g. an inpainting mask) will not be the one that made {src}")
    op_seed = side_seed if op_seed is None else op_seed
    y, fps = read_video(src, allow_truncated=allow_truncated)
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
    options: dict | None = None,
    device: str | None = None,
    quiet: bool = False,
    backend: str = "local",
    ray: Any = None,
    threads: int | None = None,
    allow_truncated: bool = False,
) -> dict:
    """Restore the measurement file ``src`` into ``out``.

    The operator comes from ``op`` if given, else from ``src``'s sidecar (spec, seed,
    frame count, ``sigma_y``). ``seed`` is the sampling seed of the stochastic (diffusion)
    methods (``options["seed"]``, default 0); ``op_seed`` overrides the sidecar's operator
    seed (see :func:`load_measurement`). ``backend``/``ray``/``threads``: see
    :func:`restore_video`. ``out`` is checked before any work (:func:`~vidrestore.io.check_output`:
    never ``src`` or its sidecar). Returns a summary dict (method, op, seconds, output path).
    Nothing is written when the job fails.

    Blind methods (:data:`BLIND_METHODS`, e.g. ``pvdnet``) need no operator; their options
    are ``weights`` and ``flow`` (see :mod:`vidrestore.workflows.deblur`); they run locally.
    """
    check_output(out, [src])
    if seed is not None:
        options = {**(options or {}), "seed": int(seed)}
    if method in BLIND_METHODS:
        from .deblur import deblur_file

        o = options or {}
        return deblur_file(src, out, weights=o.get("weights"), flow=o.get("flow"), device=device, quiet=quiet)
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(list(METHODS) + list(BLIND_METHODS))}")
    y, operator, s_y, fps = load_measurement(src, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated)
    t0 = time.perf_counter()
    x = restore_video(y, operator, method=method, sigma_y=s_y, options=options, device=device, quiet=quiet, backend=backend, ray=ray, threads=threads)
    seconds = time.perf_counter() - t0
    write_video(out, x, fps)
    return {"method": method, "op": operator.spec, "sigma_y": s_y, "seconds": seconds, "output": str(out), "shape": list(x.shape), "backend": backend}


# --------------------------------------------------------------------------- eval


def evaluate_files(
    out: str | Path,
    ref: str | Path,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    json_path: str | Path | None = None,
    warp: bool = True,
) -> tuple[dict, str]:
    """Metrics of ``out`` against ``ref`` (PSNR, SSIM, warping error, per frame).

    Returns ``(metrics, table_text)`` and writes the JSON atomically if ``json_path``.
    """
    x, _ = read_video(out)
    r, _ = read_video(ref)
    if x.shape != r.shape:
        raise UserError(f"shape mismatch: {out} is {tuple(x.shape)} but {ref} is {tuple(r.shape)}")
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
