"""The jobs behind ``vidrestore ui``: what the web app calls, with no web code.

The app (:mod:`vidrestore.ui`) only lays out widgets and calls three functions here:

* :func:`estimate_job`: the problem size and a time estimate, shown before a job runs;
* :func:`run_job`: one job in a job folder: optionally degrade a clean clip first (then it is
  the ground truth), restore (any ``restore`` method, ``pvdnet`` for blurry footage) or run
  LGC-VD prediction/interpolation, and write browser-playable videos, a side-by-side frame,
  and per-frame PSNR against a ground truth when one is given;
* :func:`restore_for_api`: the ``restore`` API endpoint, the same job as
  ``vidrestore restore IN -o OUT.mp4 -m METHOD --op SPEC``.

Progress: the jobs report their steps through :func:`~vidrestore.workflows.progress.progress`,
which the app follows with :func:`~vidrestore.workflows.progress.progress_listener`. Errors
are :class:`~vidrestore.errors.UserError` with the CLI's messages.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ..data.samples import list_samples, sample_path
from ..errors import UserError
from ..io import read_video, write_video
from ..metrics import video_metrics
from ..ops import parse
from .demo import write_comparison, write_psnr_plot
from .jobs import degrade_file, load_measurement, restore_file
from .methods import METHODS, get_method, make_options

__all__ = ["TASK_PRESETS", "LGCVD_METHODS", "UI_METHODS", "METHOD_NOTES", "bundled_clips", "resolve_clip", "machine_speed", "estimate_job", "run_job", "restore_for_api"]

#: Task presets of the app: label -> (operator spec, noise std in [0, 1] pixel units).
TASK_PRESETS: dict[str, tuple[str, float]] = {
    "7-frame average + x4 super-resolution": ("tblur:uniform:7:circular,sr:4", 0.0),
    "x4 super-resolution": ("sr:4", 0.0),
    "x2 super-resolution": ("sr:2", 0.0),
    "Gaussian blur (sigma 2 px)": ("blur:gauss:2", 0.0),
    "7-frame average + Gaussian blur, noisy": ("tblur:uniform:7:reflect,blur:gauss:2", 0.01),
    "motion blur (9 px, horizontal)": ("blur:motion:9:0", 0.0),
    "50 % missing pixels": ("inpaint:0.5:perframe", 0.0),
    "denoising (sigma 0.03)": ("id", 0.03),
}

#: LGC-VD tasks offered next to the ``restore`` methods: name -> what ``amount`` means.
LGCVD_METHODS: dict[str, str] = {"lgcvd-predict": "frames to predict", "lgcvd-interpolate": "interpolation factor"}
_LGCVD_DEFAULT_AMOUNT = {"lgcvd-predict": 14, "lgcvd-interpolate": 7}
_LGCVD_DEFAULT_STEPS = 50

#: Every method of the app: the ``restore`` methods, then LGC-VD.
UI_METHODS: tuple[str, ...] = tuple(METHODS) + tuple(LGCVD_METHODS)

#: One line per method for the app's method menu.
METHOD_NOTES: dict[str, str] = {
    "cg": "least squares by conjugate gradient (fast, classical)",
    "admm-tv": "3-D total variation by ADMM (classical)",
    "bicubic": "bicubic interpolation (undoes SR factors only)",
    "lanczos": "Lanczos interpolation (undoes SR factors only)",
    "bm3d": "per-frame BM3D denoising (operator 'id'; needs vidrestore[bench])",
    "bm4d": "spatio-temporal BM4D denoising (operator 'id'; needs vidrestore[bench])",
    "svi": "SVI: batch-consistent diffusion with the bundled image prior",
    "dds": "per-frame DDS with the bundled image prior",
    "dps": "DPS with the bundled image prior (slow: 200 steps)",
    "diffir2vr": "DiffIR2VR-Zero around per-frame DDS",
    "pvdnet": "PVDNet: blind deblurring of blurry footage (no operator)",
    "lgcvd-predict": "LGC-VD: predict the next frames from the first two",
    "lgcvd-interpolate": "LGC-VD: fill new frames between the frames",
}

# Seconds of one step of each method per frame and megapixel of the restored video on our 2-core
# CPU at rest, and a start-up in seconds. From the README's measurements: the demo (cg: 3.9 s for
# 50 iterations; svi: 115 s for 10 steps of 16 frames at 136x320), the classical table (admm-tv on
# bikes), the PVDNet table (about 1 s per 640x360 frame) and short runs of the others.
_COST: dict[str, tuple[float, float]] = {
    "cg": (0.15, 0.0), "admm-tv": (3.0, 0.0), "bicubic": (0.05, 0.0), "lanczos": (0.05, 0.0),
    "bm3d": (60.0, 0.0), "bm4d": (200.0, 0.0),
    "svi": (16.5, 2.0), "dds": (16.5, 2.0), "dps": (45.0, 2.0), "diffir2vr": (20.0, 2.0),
    "pvdnet": (4.0, 1.0), "lgcvd-predict": (10.0, 1.0), "lgcvd-interpolate": (10.0, 1.0),
}
#: :func:`machine_speed` on that CPU at rest (seconds); the costs scale with the ratio.
_REFERENCE_SPEED = 0.0008
_PROBE: dict[str, float] = {"seconds": 0.0, "at": -1e9}


def machine_speed(refresh: bool = False) -> float:
    """Seconds of a fixed reference workload (a 3x3 convolution, 32 channels, 64x64) on this
    machine now: the median of five runs (a busy machine counts as slower), remeasured after
    30 s or with ``refresh``."""
    now = time.monotonic()
    if refresh or now - _PROBE["at"] > 30.0:
        x, w = torch.ones(1, 32, 64, 64), torch.full((32, 32, 3, 3), 1 / 288)
        runs = []
        with torch.no_grad():
            for _ in range(5):
                t0 = time.perf_counter()
                torch.nn.functional.conv2d(x, w, padding=1)
                runs.append(time.perf_counter() - t0)
        _PROBE.update(seconds=sorted(runs)[2], at=now)
    return _PROBE["seconds"]


def bundled_clips() -> list[str]:
    """Names of the bundled sample clips that are installed (:mod:`vidrestore.data.samples`)."""
    return [name for name, path in list_samples().items() if path is not None]


def resolve_clip(upload: str | Path | None, sample: str | None) -> Path:
    """The clip of a job: the uploaded file if any, else the bundled clip ``sample``."""
    if upload:
        return Path(upload)
    if sample:
        return sample_path(sample)
    raise UserError("no input: upload a clip or pick a bundled one")


def _is_lgcvd(method: str) -> bool:
    return method in LGCVD_METHODS


def _check_method(method: str) -> str:
    if method not in UI_METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(UI_METHODS)}")
    return method


def _options(method: str, steps: int | None, seed: int | None) -> dict:
    """``restore`` options of ``method`` from the app's generic fields: ``steps`` is the
    iteration count of cg/admm-tv and the diffusion steps of svi/dds/dps/diffir2vr."""
    names = get_method(method).options.names()
    opts: dict[str, Any] = {}
    if steps is not None:
        key = "iters" if "iters" in names else "steps" if "steps" in names else None
        if key is None:
            raise UserError(f"method {method} takes no iteration count (leave it empty)")
        opts[key] = int(steps)
    if seed is not None:
        opts["seed"] = int(seed)
    return opts


def _clean_op(op: str | None) -> str | None:
    return op.strip() if isinstance(op, str) and op.strip() else None


def _frames_processed(frames: int, window: int | None, overlap: int) -> int:
    """Frames solved in total by overlapping temporal windows (each window solves ``window``)."""
    if not window or frames <= window:
        return frames
    stride = max(1, window - overlap)
    return math.ceil((frames - overlap) / stride) * window


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def estimate_job(
    clip: str | Path,
    *,
    method: str,
    op: str | None = None,
    sigma_y: float | None = None,
    simulate: bool = False,
    frames: int | None = None,
    resize: tuple[int, int] | None = None,
    steps: int | None = None,
    amount: int | None = None,
) -> dict:
    """Size and time estimate of a job (the arguments of :func:`run_job`), before it runs.

    The estimate is frames x megapixels x steps of the restored video times a per-method cost,
    scaled by the time of a reference workload on this machine now (:func:`machine_speed`),
    plus the method's start-up; temporal windows count every frame they solve. Returns ``{"seconds", "steps", "shape", "text"}`` (``shape``: the restored
    video's ``(T, H, W)``). UserError for an unreadable clip, a bad spec or a size that the
    operator cannot produce, as :func:`run_job` would report.
    """
    _check_method(method)
    op = _clean_op(op)
    x, _ = read_video(clip, max_frames=frames if simulate else None, resize=resize if simulate else None)
    t, h, w = x.shape[2:]
    if _is_lgcvd(method):
        n = int(amount or _LGCVD_DEFAULT_AMOUNT[method])
        out_t = t + n if method == "lgcvd-predict" else (t - 1) * n + 1
        shape = (out_t, h, w)
        steps_n = int(steps or _LGCVD_DEFAULT_STEPS)
        work = steps_n * max(1, out_t - t)
        per, setup = _COST[method]
        seconds = setup + per * machine_speed() / _REFERENCE_SPEED * work * 32 * 32 / 1e6  # the bundled model samples 32x32 clips
    else:
        if not get_method(method).blind and not simulate:
            if op is None:
                raise UserError("no operator: choose a task preset or type an operator spec")
            operator = parse(op, num_frames=None)
            t, h, w = operator.input_shape(tuple(x.shape))[2:]
        elif simulate and op is not None and not get_method(method).blind:
            parse(op, num_frames=t).check_input(x)
        shape = (int(t), int(h), int(w))
        o = make_options(method, _options(method, steps, None)).resolve(float(sigma_y or 0.0))
        steps_n = o.num_steps()
        solved = _frames_processed(int(t), getattr(o, "window", None), int(getattr(o, "overlap", 0)))
        per, setup = _COST[method]
        seconds = setup + per * machine_speed() / _REFERENCE_SPEED * steps_n * solved * h * w / 1e6
    text = f"{shape[0]} frames of {shape[1]}x{shape[2]}, {steps_n} step{'s' * (steps_n != 1)}: {_duration(seconds)} on this machine"
    return {"seconds": float(seconds), "steps": int(steps_n), "shape": shape, "text": text}


def _lifted_input(src: Path, method: str, op: str | None, sigma_y: float | None) -> torch.Tensor:
    """The input as a video on the output's grid: the measurement lifted by its operator
    (bicubic for SR, frame repetition for frame dropping), or the clip itself."""
    if _is_lgcvd(method) or get_method(method).blind:
        return read_video(src)[0]
    y, operator, _, _ = load_measurement(src, op=op, sigma_y=sigma_y)
    return operator.lift(y).clamp(0, 1)


def run_job(
    clip: str | Path,
    job_dir: str | Path,
    *,
    method: str = "cg",
    op: str | None = None,
    sigma_y: float | None = None,
    simulate: bool = False,
    frames: int | None = None,
    resize: tuple[int, int] | None = None,
    gt: str | Path | None = None,
    steps: int | None = None,
    amount: int | None = None,
    seed: int = 0,
    allow_out_of_domain: bool = False,
) -> dict:
    """Run one job of the app in ``job_dir`` (created) and return what to show.

    Args:
        clip: The input video (any format ``restore`` reads, with an optional sidecar).
        method: A ``restore`` method, ``lgcvd-predict`` or ``lgcvd-interpolate``.
        op: Operator spec (grammar: ``vidrestore ops``). ``restore`` methods need it unless the
            clip is a measurement with a sidecar; blind ``pvdnet`` and LGC-VD take none when
            restoring (with ``simulate``, ``pvdnet`` footage is blurred with it first).
        sigma_y: Noise std in ``[0, 1]`` pixel units (added when simulating; the measurement's
            noise level when restoring; ``None``: the sidecar's, else 0).
        simulate: ``clip`` is clean: take ``frames`` frames (resized to ``resize``), degrade
            them with ``op`` and ``sigma_y`` (seed ``seed``), restore the measurement and score
            against the clean frames. Otherwise ``clip`` is restored as it is.
        gt: Ground truth for the per-frame PSNR when not simulating (same shape as the output).
        steps: Iterations (cg, admm-tv) or diffusion/sampler steps; ``None``: the defaults.
        amount: LGC-VD: frames to predict (14) or interpolation factor (7).
        seed: Operator/noise seed when simulating, sampling seed of the stochastic methods.

    Returns:
        A dict with ``input_video`` and ``output_video`` (H.264 ``.mp4`` that browsers play;
        the input lifted onto the output's grid), ``output`` (the restored ``.mp4``),
        ``comparison`` (PNG of the middle frame: input | restored | ground truth),
        ``psnr_plot`` (PNG, or ``None`` without a ground truth of the output's shape),
        ``metrics`` (``{"input": ..., "restored": ...}`` PSNR/SSIM, or ``{}``), ``frames``,
        ``seconds`` and a one-line ``summary``.
    """
    _check_method(method)
    op = _clean_op(op)
    job = Path(job_dir)
    job.mkdir(parents=True, exist_ok=True)
    clip = Path(clip)
    blind = not _is_lgcvd(method) and get_method(method).blind
    options = {} if _is_lgcvd(method) else _options(method, steps, seed)
    src, restore_op, restore_sigma = clip, op, sigma_y
    if simulate:
        x, fps = read_video(clip, max_frames=frames, resize=resize)
        clean = job / "clean.npz"
        write_video(clean, x, fps)
        gt, src = clean, clean
        if not _is_lgcvd(method) and (op is not None or not blind):
            if op is None:
                raise UserError("no operator: choose a task preset or type an operator spec")
            src = job / "measurement.npz"
            degrade_file(clean, src, op=op, sigma_y=float(sigma_y or 0.0), seed=int(seed))
        restore_op, restore_sigma = None, None  # from the measurement's sidecar
    if blind:
        restore_op, restore_sigma = None, None

    restored = job / "restored.npz"
    t0 = time.perf_counter()
    if _is_lgcvd(method):
        from .lgcvd import interpolate_file, predict_file

        n = int(amount or _LGCVD_DEFAULT_AMOUNT[method])
        kw = {"steps": int(steps or _LGCVD_DEFAULT_STEPS), "seed": int(seed), "quiet": True, "allow_out_of_domain": allow_out_of_domain}
        info = predict_file(src, restored, frames=n, **kw) if method == "lgcvd-predict" else interpolate_file(src, restored, factor=n, **kw)
        what = method
    else:
        info = restore_file(src, restored, method=method, op=restore_op, sigma_y=restore_sigma, options=options, quiet=True)
        what = f"{method}, {info['op']}"
    seconds = time.perf_counter() - t0

    x_hat, fps = read_video(restored)
    x_hat = x_hat.clamp(0, 1)
    x_in = _lifted_input(src, method, restore_op, restore_sigma)
    output = write_video(job / "restored.mp4", x_hat, fps)
    input_video = write_video(job / "input.mp4", x_in, fps)

    ref, note = None, ""
    if gt is not None:
        ref, _ = read_video(gt)
        if tuple(ref.shape) != tuple(x_hat.shape):  # e.g. LGC-VD makes new frames: nothing to score
            note = f"; no PSNR: the ground truth is {tuple(ref.shape)[2:]} (T, H, W), the output {tuple(x_hat.shape)[2:]}"
            ref = None
        else:
            ref = ref.clamp(0, 1)
    metrics: dict[str, dict] = {}
    psnr_plot = None
    if ref is not None:
        warp = x_hat.shape[2] > 1
        if tuple(x_in.shape) == tuple(ref.shape):
            metrics["input"] = video_metrics(x_in, ref, warp=warp)
        metrics["restored"] = video_metrics(x_hat, ref, warp=warp)
        psnr_plot = job / "psnr_per_frame.png"
        write_psnr_plot(psnr_plot, metrics, f"{clip.name}: {what}")
    panels = [("input", x_in), ("restored", x_hat)] + ([("ground truth", ref)] if ref is not None else [])
    comparison = None
    if all(tuple(v.shape[3:]) == tuple(x_hat.shape[3:]) for _, v in panels):
        comparison = job / "comparison.png"
        write_comparison(comparison, [(name, v[:, :, : x_hat.shape[2]]) for name, v in panels], min(x_hat.shape[2], x_in.shape[2]) // 2)
    summary = f"{what}: {x_hat.shape[2]} frames of {x_hat.shape[3]}x{x_hat.shape[4]} in {seconds:.1f} s"
    if "restored" in metrics:
        gain = "" if "input" not in metrics else f" (input {metrics['input']['psnr']:.2f} dB)"
        summary += f"; PSNR {metrics['restored']['psnr']:.2f} dB{gain}, SSIM {metrics['restored']['ssim']:.4f}"
    summary += note
    return {
        "input_video": str(input_video), "output_video": str(output), "output": str(output),
        "comparison": str(comparison) if comparison else None, "psnr_plot": str(psnr_plot) if psnr_plot else None,
        "metrics": metrics, "frames": int(x_hat.shape[2]), "seconds": seconds, "summary": summary,
    }


def restore_for_api(video: str | Path, op: str | None, method: str, job_dir: str | Path) -> Path:
    """The ``restore`` API endpoint: restore the measurement ``video`` with ``method`` and the
    operator ``op`` (empty: from its sidecar; blind methods take none) into
    ``job_dir/restored.mp4``, as ``vidrestore restore VIDEO -o restored.mp4 -m METHOD --op OP``.
    Returns the path of the H.264 video (the restored frames, as many as the input has for
    every operator except ``fdrop``)."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    job = Path(job_dir)
    job.mkdir(parents=True, exist_ok=True)
    op = None if get_method(method).blind else _clean_op(op)
    info = restore_file(video, job / "restored.mp4", method=method, op=op, quiet=True)
    return Path(info["output"])
