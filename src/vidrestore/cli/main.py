"""``vidrestore`` command. Each subcommand parses its flags, builds objects and calls one
library function from :mod:`vidrestore.workflows`; no maths here.

User mistakes (:class:`vidrestore.errors.UserError`), usage errors, invalid option values and
write errors (disk full, read-only, ...) print one line ``vidrestore: error: ...`` and exit
with code 2; warnings about the data print one line ``vidrestore: warning: ...``; SIGTERM
removes the output being written and exits with 143.
"""

from __future__ import annotations

import json
import math
import sys
import warnings

import click

from .. import __version__
from ..errors import UserError, VidrestoreWarning, error_line

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our warnings as one line; others in Python's format."""
    if issubclass(category, VidrestoreWarning):
        click.echo(f"vidrestore: warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class Group(click.Group):
    """Turns UserError, usage errors and OS errors on user paths into one line + exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's main, with its usage errors printed as one line (``vidrestore: error: ...``)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else str(e), err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            hint = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) is not None else ""
            click.echo(f"vidrestore: error: {e.format_message()}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("vidrestore: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        from ..io import install_sigterm_cleanup

        install_sigterm_cleanup()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", VidrestoreWarning)
                # torch's notice about the pickle protocol of checkpoints says nothing to the user.
                warnings.filterwarnings("ignore", message=r"(?is).*pickle.*protocol", category=UserWarning)
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except (UserError, OSError) as e:  # OSError: missing input, permissions, disk full, read-only file system, ...
            click.echo(error_line(e), err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("vidrestore: interrupted", err=True)
            sys.exit(130)


class FiniteFloat(click.FloatRange):
    """A float option that must be finite (no nan/inf) and within ``[min, max]``."""

    name = "finite number"

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


class SigmaY(FiniteFloat):
    """``--sigma-y`` of restore/batch: a noise std in [0, 1], or ``auto`` (estimated from the
    measurement)."""

    name = "noise std or auto"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return super().convert(value, param, ctx)


class TStart(click.IntRange):
    """``--t-start``: a timestep in [1, 999], or ``auto`` (chosen from the measurement)."""

    name = "timestep or auto"

    def __init__(self):
        super().__init__(min=1, max=999)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return super().convert(value, param, ctx)


SEED = click.IntRange(0, 2**32 - 1)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="vidrestore")
def cli():
    """vidrestore: video restoration with diffusion models and classical solvers.

    Videos are (B, C, T, H, W) float32 in [0, 1]; measurements are written losslessly (.npz)
    with a sidecar JSON that rebuilds the exact operator. See 'vidrestore ops' for operators.
    """


def _apply(*options):
    """One decorator applying ``options`` as if stacked in the listed order (top to bottom)."""

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _size(text, flag):
    from ..workflows.jobs import parse_size

    return parse_size(text, flag)


@cli.command()
@click.argument("src")
@click.option("-o", "--output", "out", required=True, help="Measurement file (.npz lossless recommended; .mkv/.png-folder also lossless 8-bit).")
@click.option("--op", "op", required=True, help="Operator spec, e.g. 'tblur:uniform:7:circular,sr:4' (see 'vidrestore ops').")
@click.option("--sigma-y", type=FiniteFloat(0, 1), default=0.0, help="Gaussian noise std in [0,1] pixel units.")
@click.option("--seed", type=SEED, default=0, help="Seed of random operator parameters (masks) and noise.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Number of frames to use (default: all).")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First frame.")
@click.option("--crop", default=None, help="Centre crop HxW.")
@click.option("--resize", default=None, help="Resize frames to HxW (before cropping).")
@click.option("--gt", "gt_out", default=None, help="Also write the clean (cropped/resized) clip here, losslessly.")
@click.option("--allow-truncated", is_flag=True, help="Accept a video file shorter than its container declares (warning).")
@click.option("--key", default=None, help="Array to read from a multi-array .npz SRC (default: 'video' or the only array).")
def degrade(src, out, op, sigma_y, seed, frames, start, crop, resize, gt_out, allow_truncated, key):
    """Apply an operator and noise to a clip: writes the measurement and OUT.json (sidecar)."""
    from ..workflows import degrade_file

    meta = degrade_file(src, out, op=op, sigma_y=sigma_y, seed=seed, start=start, frames=frames, crop=_size(crop, "--crop"), resize=_size(resize, "--resize"), gt_out=gt_out, allow_truncated=allow_truncated, key=key)
    click.echo(f"wrote {out} {tuple(meta['y_shape'])} from {tuple(meta['x_shape'])} with {meta['op']} (sidecar {out}.json)")
    if not meta["lossless"]:
        click.echo("warning: the output format is lossy; restoration will see codec errors. Prefer .npz.", err=True)


def _backend_options(f):
    """--backend/--address/--workers/--threads/--retries (restore and batch)."""
    opts = [
        click.option("--backend", type=click.Choice(["local", "ray"]), default="local", help="Solve the temporal windows here or on Ray actors (pip install 'vidrestore[ray]')."),
        click.option("--address", default=None, help="ray: 'auto' or HOST:PORT of a running cluster (default: start a local instance)."),
        click.option("--workers", type=click.IntRange(min=1), default=None, help="ray: number of actors (default: one per GPU with --device cuda, else one per CPU)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads per window solve (ray default 1); equal values give bit-identical output on both backends."),
        click.option("--retries", type=click.IntRange(min=0), default=2, help="ray: retries of a window whose worker died or failed."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _backend(backend, address, workers, threads, retries):
    ray = None
    if backend == "ray":
        from ..workflows.distributed import RayConfig

        ray = RayConfig(address=address, workers=workers, max_retries=retries)
    elif address or workers:
        raise UserError("--address and --workers need --backend ray")
    return {"backend": backend, "ray": ray, "threads": threads}


def _select(start, frames, crop, resize, key):
    """The ``--start/--frames/--crop/--resize/--key`` selection of restore and batch."""
    from ..workflows.jobs import Selection

    return Selection(start=start, frames=frames, crop=_size(crop, "--crop"), resize=_size(resize, "--resize"), key=key)


#: Method options shared by ``restore`` and ``batch``: (flag decorator, options-dict key).
_METHOD_FLAGS = [
    (click.option("--iters", type=click.IntRange(min=1), default=None, help="Iterations (cg: 50, admm-tv: 40)."), "iters"),
    (click.option("--lam", type=FiniteFloat(min=0), default=None, help="Regulariser weight (cg: Tikhonov; admm-tv: TV)."), "lam"),
    (click.option("--prior", default=None, help="Diffusion methods: a bundled prior (v2, the default; default, the first bundled prior), a folder, or a checkpoint file."), "prior"),
    (click.option("--steps", type=click.IntRange(min=1), default=None, help="Diffusion steps (NFE); svi/dds 20, dps 200."), "steps"),
    (click.option("--eta", type=FiniteFloat(0, 1), default=None, help="svi/dds: DDS eta (noise share)."), "eta"),
    (click.option("--cg-steps", type=click.IntRange(min=0), default=None, help="svi/dds: CG iterations per step."), "cg_steps"),
    (click.option("--t-start", type=TStart(), default=None, help="svi/dds: start at this timestep from the lifted measurement (300; when --sigma-y > 0: 200 for svi, 100 for dds), or 'auto': the largest timestep whose one-step estimate still fits the measurement about as well as the start does (about 3 extra network calls)."), "t_start"),
    (click.option("--init", "init", type=click.Choice(["lift", "cg"]), default=None, help="svi/dds: estimate noised to --t-start: the lifted measurement (lift) or 20 CG iterations of least squares from it (cg)."), "init"),
    (click.option("--gamma", type=FiniteFloat(min=0, min_open=True), default=None, help="svi/dds/diffir2vr with --sigma-y > 0: data weight of the DDS step (0.3 with --gamma-schedule sigma)."), "gamma"),
    (click.option("--gamma-schedule", type=click.Choice(["const", "sigma"]), default=None, help="svi/dds/diffir2vr: data weight gamma at every step (const, DDS) or gamma*(sigma_t/sigma_y)^2 (sigma, DiffPIR; the default)."), "gamma_schedule"),
    (click.option("--noise-flow", is_flag=True, default=None, help="svi: carry the shared noise along the optical flow of the lifted measurement (motion-aware batch-consistent noise)."), "noise_flow"),
    (click.option("--sampler", type=click.Choice(["ddim", "dpm++2m"]), default=None, help="svi/dds: update between diffusion steps: ddim (DDS renoising, the paper's) or dpm++2m (second-order multistep DPM-Solver++, same number of network calls)."), "sampler"),
    (click.option("--data-step", type=click.Choice(["cg", "exact", "auto", "gd"]), default=None, help="svi/dds/diffir2vr with --sigma-y > 0: solver of the proximal data step: cg (--cg-steps iterations), exact (closed form in the operator's eigenbasis; error if the operator has none), auto (exact where available, else cg), gd (steepest descent)."), "data_step"),
    (click.option("--noise-share", type=click.FloatRange(0, 1), default=None, help="svi: noise correlation between frames, sqrt(r) shared + sqrt(1-r) per frame (1 = identical noise, the default)."), "noise_share"),
    (click.option("--window", type=click.IntRange(min=1), default=None, help="Frames per temporal window (svi/dds/dps: 16; diffir2vr: 30; cg/admm-tv/baselines: 16, widened when the operator's temporal support needs it)."), "window"),
    (click.option("--overlap", type=click.IntRange(min=0), default=None, help="Frames shared by consecutive windows (4)."), "overlap"),
    (click.option("--weights", default=None, help="pvdnet: weight folder, bundled model name (pvdnet-r4, pvdnet-medium, pvdnet-small; default: pvdnet-r4) or an official release file (PVDNet_DVD.pytorch, PVDNet_nah.pytorch, PVDNet_large_nah.pytorch)."), "weights"),
    (click.option("--bimnet", default=None, help="pvdnet: flow network replacing the model's BIMNet: the official BIMNet.pytorch or a BIMNet weight folder (the default flow is then bimnet with an official --weights file, auto by frame size with a weight folder)."), "bimnet"),
    (click.option("--flow", type=click.Choice(["auto", "bimnet", "bimnet-pyramid", "dis", "zero"]), default=None, help="pvdnet: flow for the pixel volume: auto (BIMNet near its training size, DIS on larger frames), bimnet, bimnet-pyramid (BIMNet on a downscaled copy), dis or zero (default: dis for pvdnet-r4 and pvdnet-small, auto for pvdnet-medium; bimnet for official files; else the weights' own, a stored bimnet meaning auto)."), "flow"),
    (click.option("--no-guard", "guard", is_flag=True, flag_value=False, default=None, help="pvdnet: return the network's output as it is, without the do-no-harm steps (colour gain, flow check, re-blur check)."), "guard"),
    (click.option("--base", type=click.Choice(["dds", "dps"]), default=None, help="diffir2vr: per-frame base restorer (dds)."), "base"),
    (click.option("--paper", is_flag=True, default=None, help="diffir2vr: the paper's released wrapper settings (batch 10, warp the first 10%% of the steps, nearest) instead of ours."), "paper"),
    (click.option("--batch-size", type=click.IntRange(min=1), default=None, help="diffir2vr: frames per batch, one keyframe each (5; paper 10)."), "batch_size"),
    (click.option("--keyframe", type=click.Choice(["middle", "random"]), default=None, help="diffir2vr: keyframe of each batch (middle)."), "keyframe"),
    (click.option("--merge-ratio", type=FiniteFloat(0, 1), default=None, help="diffir2vr: token-merge ratio r, annealed to 0 (0.9)."), "merge_ratio"),
    (click.option("--warp-period", default=None, help="diffir2vr: steps with latent warping, END or START:END as fractions (0.5:1; paper 0.1)."), "warp_period"),
    (click.option("--warp-mode", type=click.Choice(["nearest", "bilinear"]), default=None, help="diffir2vr: interpolation of the latent warp (bilinear; paper nearest)."), "warp_mode"),
    (click.option("--warp-strength", type=FiniteFloat(0, 1), default=None, help="diffir2vr: blend weight of the warped estimate per warped step (0.1; 1 = replace, as in the paper)."), "warp_strength"),
    (click.option("--tile", default=None, help="svi/dds/dps/pvdnet: spatial tile side in pixels for large frames, blended over --tile-overlap (auto: 256-pixel tiles above 512x512 pixels; off: whole frames)."), "tile"),
    (click.option("--tile-overlap", type=click.IntRange(min=0), default=None, help="Pixels shared by neighbouring tiles (32)."), "tile_overlap"),
    (click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None, help="Diffusion methods: dtype of the prior (auto: bf16 on CPUs with AVX512-BF16/AMX, where it is ~2.5x faster, else fp32; fp16 for CUDA)."), "precision"),
    (click.option("--engine", type=click.Choice(["auto", "eager", "openvino"]), default=None, help="Diffusion methods: who runs the prior's forward passes (auto: OpenVINO on the CPU when installed, pip install 'vidrestore[fast]'; eager: PyTorch)."), "engine"),
]


def _method_options(f):
    """The method flags of ``restore`` and ``batch`` (collected by :func:`_options`)."""
    for option, _ in reversed(_METHOD_FLAGS):
        f = option(f)
    return f


def _options(kw: dict) -> dict:
    """Pop the method flags out of a command's keyword arguments; the ones the user gave."""
    values = {key: kw.pop(key) for _, key in _METHOD_FLAGS}
    return {k: v for k, v in values.items() if v is not None}


def _restore_options(f):
    """Flags shared by ``restore`` and ``batch``: method, measurement, method options, device,
    output and backend."""
    for option in reversed([
        click.option("-m", "--method", default="cg", help="Restoration method: cg, admm-tv, svi, dds, dps, diffir2vr, pvdnet (blind video deblurring, no --op); baselines bicubic, lanczos (SR), bm3d, bm4d (denoising, --op id)."),
        click.option("--op", default=None, help="Operator spec (default: each measurement's sidecar)."),
        click.option("--sigma-y", type=SigmaY(0, 1), default=None, help="Noise std of the measurement (default: from its sidecar, else 0); 'auto' estimates it from the measurement (Immerkaer)."),
        click.option("--seed", type=SEED, default=None, help="Sampling seed of the diffusion methods (svi, dds, dps, diffir2vr; default 0)."),
        click.option("--op-seed", type=SEED, default=None, help="Operator seed (masks); default and normally: the one in each measurement's sidecar."),
        _method_options,
        click.option("--device", default="cpu", help="cpu or cuda."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bars."),
        click.option("--allow-truncated", is_flag=True, help="Accept a video file shorter than its container declares (warning)."),
        click.option("--start", type=click.IntRange(min=0), default=0, help="First frame of the input to restore."),
        click.option("--frames", type=click.IntRange(min=1), default=None, help="Number of input frames to restore (default: all from --start)."),
        click.option("--crop", default=None, help="Centre crop HxW of the input (after --resize)."),
        click.option("--resize", default=None, help="Resize the input frames to HxW (before cropping)."),
        click.option("--key", default=None, help="Array to read from a multi-array .npz input (default: 'video' or the only array)."),
        _backend_options,
    ]):
        f = option(f)
    return f


@cli.command()
@click.argument("src")
@click.option("-o", "--output", "out", required=True, help="Restored video (.mp4, .mkv, .npz, .gif or a PNG folder).")
@_restore_options
def restore(src, out, method, op, sigma_y, seed, op_seed, device, quiet, allow_truncated, start, frames, crop, resize, key, backend, address, workers, threads, retries, **kw):
    """Restore a measurement SRC into OUT, window by window (on this machine or on Ray actors):
    frames are read and written as the windows are solved, and a video output keeps the audio
    of a video SRC."""
    from ..workflows import restore_file

    select = _select(start, frames, crop, resize, key)
    info = restore_file(src, out, method=method, op=op, sigma_y=sigma_y, seed=seed, op_seed=op_seed, options=_options(kw), device=device, quiet=quiet, allow_truncated=allow_truncated, select=select, **_backend(backend, address, workers, threads, retries))
    click.echo(f"wrote {info['output']} ({info['method']}, {info['op']}, {info['seconds']:.1f} s, {backend})")


@cli.command()
@click.argument("in_dir")
@click.argument("out_dir")
@click.option("--ext", default=".mp4", help="Output format of every video (.mp4, .mkv, .npz, ...).")
@_restore_options
def batch(in_dir, out_dir, method, ext, op, sigma_y, seed, op_seed, device, quiet, allow_truncated, start, frames, crop, resize, key, backend, address, workers, threads, retries, **kw):
    """Restore every measurement in IN_DIR into OUT_DIR; OUT_DIR/manifest.json lets a re-run resume."""
    from ..workflows.batch import restore_batch

    select = _select(start, frames, crop, resize, key)
    r = restore_batch(in_dir, out_dir, method=method, options=_options(kw), op=op, sigma_y=sigma_y, seed=seed, op_seed=op_seed, ext=ext, device=device, quiet=quiet, allow_truncated=allow_truncated, select=select, **_backend(backend, address, workers, threads, retries))
    click.echo(f"{len(r['done'])} restored, {len(r['skipped'])} already done, {len(r['failed'])} failed ({r['seconds']:.1f} s); manifest {r['manifest']}")
    for name, msg in r["failed"].items():
        click.echo(f"failed: {name}: {msg}", err=True)
    if r["failed"]:
        sys.exit(1)


@cli.command()
@click.argument("protocol")
@click.option("-o", "--out", "out_dir", required=True, help="Output folder: runs.csv, tuned.json, summary.md, psnr_SIZE.png.")
@click.option("--quick", is_flag=True, help="Apply the protocol's quick block (smaller size, fewer tasks/seeds).")
@click.option("--resume", is_flag=True, help="Continue a run in OUT: finished runs in runs.csv are skipped.")
@click.option("--report", "report_only", is_flag=True, help="Only rewrite summary.md and the plots from OUT's runs.csv (e.g. of an unfinished run).")
@click.option("--device", default="cpu", help="cpu or cuda.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def bench(protocol, out_dir, quick, resume, report_only, device, quiet):
    """Benchmark methods on a declared tune/test protocol (YAML): tune on the tune clips only,
    report the test clips with intervals (see benchmarks/protocol.yaml)."""
    from ..workflows.bench import load_protocol, run_bench, write_report

    proto = load_protocol(protocol, quick=quick)
    if report_only:
        info = write_report(proto, out_dir)
        click.echo(f"wrote {info['summary']}")
        return
    info = run_bench(proto, out_dir, resume=resume, device=device, quiet=quiet)
    click.echo(f"wrote {info['summary']} ({info['runs']} runs, {info['seconds'] / 60:.1f} min)")


@cli.command(name="eval")
@click.argument("out")
@click.argument("ref")
@click.option("--crop-border", type=click.IntRange(min=0), default=None, help="Pixels cropped at each border before PSNR/SSIM (default 0; 16 with --align).")
@click.option("--y", "y_channel", is_flag=True, help="PSNR/SSIM on the BT.601 luma channel.")
@click.option("--json", "json_path", default=None, help="Write the metrics (with per-frame values) to this JSON file.")
@click.option("--no-warp", is_flag=True, help="Skip the warping error (optical flow).")
@click.option("--align", is_flag=True, help="Video-deblurring protocol (Koehler et al./PVDNet): gain fit, global DFT translation, luma PSNR/SSIM, first frame skipped.")
@click.option("--subpixel", type=click.IntRange(min=1), default=1, help="With --align: registration precision 1/N pixel (1 = whole pixels, the paper).")
@click.option("--lift", is_flag=True, help="OUT is a measurement (with its sidecar): score it after lifting it to REF's grid (e.g. bicubic for SR).")
def eval_cmd(out, ref, crop_border, y_channel, json_path, no_warp, align, subpixel, lift):
    """Compare OUT with the reference REF: PSNR, SSIM, warping error."""
    from ..workflows import evaluate_files

    if align:
        if lift:
            raise UserError("--lift and --align cannot be combined")
        from ..workflows.evaluate_aligned import evaluate_aligned_files

        _, table = evaluate_aligned_files(out, ref, border=16 if crop_border is None else crop_border, upsample=subpixel, json_path=json_path)
        click.echo(table)
        return
    _, table = evaluate_files(out, ref, crop_border=crop_border or 0, y_channel=y_channel, json_path=json_path, warp=not no_warp, lift=lift)
    click.echo(table)


@cli.command()
def ops():
    """List the operators and the spec grammar."""
    from ..ops import GRAMMAR

    click.echo(GRAMMAR, nl=False)


@cli.command()
@click.option("--out", "out_dir", default="demo_out", help="Output folder.")
@click.option("--clip", default="bikes", help="Bundled clip: bikes, carphone, bigbuckbunny, city.")
@click.option("--op", default=None, help="Operator spec (default: 7-frame averaging + x4 SR).")
@click.option("--frames", type=click.IntRange(min=1), default=16)
@click.option("--resize", default="136x320", show_default=True, help="Resize frames to HxW first ('none' keeps the clip's size).")
@click.option("--crop", default=None, help="Centre crop HxW after resizing (default: none).")
@click.option("--methods", default="cg,svi", show_default=True, help="Comma-separated restoration methods to compare.")
@click.option("--sigma-y", type=float, default=0.0)
@click.option("--seed", type=int, default=0)
@click.option("--device", default="cpu")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True, help="dtype of the prior (auto: bf16 on CPUs with AVX512-BF16/AMX, else fp32).")
@click.option("--engine", type=click.Choice(["auto", "eager", "openvino"]), default="auto", show_default=True, help="Forward passes of the prior (auto: OpenVINO on the CPU when installed).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir, clip, op, frames, resize, crop, methods, sigma_y, seed, device, precision, engine, quiet):
    """Degrade a bundled real clip, restore it and report PSNR/SSIM/warping error."""
    from ..workflows.demo import DEMO_OP, run_demo

    resize_hw = None if str(resize).lower() == "none" else _size(resize, "--resize")
    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    run_demo(out_dir, clip=clip, op=op or DEMO_OP, frames=frames, resize=resize_hw, crop=_size(crop, "--crop"), methods=names, sigma_y=sigma_y, seed=seed, device=device, precision=precision, engine=engine, quiet=quiet, log=click.echo)


@cli.command(name="sample-prior")
@click.option("--prior", default="v2", help="v2 or default (bundled), a vidrestore folder, a diffusers folder or an ADM .pt (with --preset).")
@click.option("--preset", default=None, help="ADM preset for a guided-diffusion .pt file.")
@click.option("-n", "num", type=click.IntRange(min=1), default=8, help="Number of samples.")
@click.option("-o", "--output", "out", required=True, help="Grid PNG.")
@click.option("--size", type=click.IntRange(min=8), default=64, help="Sample size (multiple of the prior's).")
@click.option("--steps", type=click.IntRange(min=1), default=50, help="DDIM steps.")
@click.option("--eta", type=click.FloatRange(0, 1), default=0.0)
@click.option("--seed", type=int, default=0)
@click.option("--device", default="cpu")
def sample_prior_cmd(prior, preset, num, out, size, steps, eta, seed, device):
    """Draw unconditional samples from an image prior (a sanity check) into a PNG grid."""
    from ..workflows.prior import sample_prior_to_png

    sample_prior_to_png(prior, out, n=num, size=size, steps=steps, eta=eta, seed=seed, device=device, preset=preset)
    click.echo(f"wrote {out}")


#: Sampling options of ``predict`` and ``interpolate`` (LGC-VD).
_LGCVD_SAMPLING = _apply(
    click.option("--weights", default=None, help="LGC-VD weight folder (default: the bundled moving-digits model)."),
    click.option("--steps", type=click.IntRange(min=1, max=1000), default=50, help="Sampler steps per clip."),
    click.option("--eta", type=click.FloatRange(0, 1), default=1.0, help="1: ancestral DDPM, 0: DDIM."),
    click.option("--seed", type=int, default=0),
    click.option("--allow-out-of-domain", is_flag=True, help="Run even when SRC is unlike the model's training data (colour or size); prints a warning."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bars."),
)


@cli.command()
@click.argument("src")
@click.option("-o", "--output", "out", required=True, help="Output video: the context frames followed by the prediction.")
@click.option("--context", type=click.IntRange(1, 2), default=2, help="Number of conditioning frames read from SRC.")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First context frame in SRC.")
@click.option("--frames", type=click.IntRange(min=1), default=14, help="Number of frames to predict.")
@_LGCVD_SAMPLING
def predict(src, out, context, start, frames, weights, steps, eta, seed, allow_out_of_domain, quiet):
    """LGC-VD: autoregressive video prediction from the first frames of SRC."""
    from ..workflows.lgcvd import predict_file

    info = predict_file(src, out, weights=weights, context=context, frames=frames, start=start, steps=steps, eta=eta, seed=seed, quiet=quiet,
                        allow_out_of_domain=allow_out_of_domain)
    if info["warning"]:
        click.echo(f"vidrestore: warning: {info['warning']}", err=True)
    click.echo(f"wrote {info['output']} {info['shape']}")


@cli.command()
@click.argument("src")
@click.option("-o", "--output", "out", required=True, help="Output video with factor-1 new frames in every gap.")
@click.option("--factor", type=click.IntRange(min=2), default=7, help="Temporal up-sampling factor (2..7 for 8-frame clips).")
@click.option("--max-frames", type=click.IntRange(min=2), default=None, help="Use at most this many input frames.")
@_LGCVD_SAMPLING
def interpolate(src, out, factor, max_frames, weights, steps, eta, seed, allow_out_of_domain, quiet):
    """LGC-VD: fill missing frames between the frames of SRC."""
    from ..workflows.lgcvd import interpolate_file

    info = interpolate_file(src, out, weights=weights, factor=factor, max_frames=max_frames, steps=steps, eta=eta, seed=seed, quiet=quiet,
                            allow_out_of_domain=allow_out_of_domain)
    if info["warning"]:
        click.echo(f"vidrestore: warning: {info['warning']}", err=True)
    click.echo(f"wrote {info['output']} {info['shape']}")


@cli.command()
@click.option("-o", "--output", "out", required=True, help="Output video.")
@click.option("--frames", type=click.IntRange(min=1), default=16, help="Number of frames.")
@click.option("--weights", default=None, help="LGC-VD weight folder (default: the bundled moving-digits model).")
@click.option("--steps", type=click.IntRange(min=1, max=1000), default=50, help="Sampler steps per clip.")
@click.option("--eta", type=click.FloatRange(0, 1), default=1.0, help="1: ancestral DDPM, 0: DDIM.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=8.0)
@click.option("--seed", type=int, default=0)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def generate(out, frames, weights, steps, eta, fps, seed, quiet):
    """LGC-VD: unconditional video generation."""
    from ..workflows.lgcvd import generate_file

    info = generate_file(out, weights=weights, frames=frames, seed=seed, steps=steps, eta=eta, fps=fps, quiet=quiet)
    click.echo(f"wrote {info['output']} {info['shape']}")


_TRAIN_DEVICE = click.option("--device", default="cpu", show_default=True, help="Torch device of the network (cpu, cuda, cuda:N); data are prepared on the CPU.")
_TRAIN_WORKERS = click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Processes rendering training batches ahead (same batches as 0).")
_TRAIN_MAX_MINUTES = click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop with a checkpoint after this much wall time; --resume continues.")


def _check_device(device: str) -> None:
    """A one-line error for an unknown or unavailable training device (no video I/O imported)."""
    from ..tensor import resolve_device

    resolve_device(device)


@cli.group()
def train():
    """Train the networks that vidrestore ships."""


#: Options of ``train bimnet`` and ``train pvdnet`` (synthetic blur from photo folders).
_BLUR_DATA = click.option("--data", multiple=True, required=True, help="Photo folder(s) for the synthetic blur generator (repeatable; held-out photos excluded).")
_BLUR_CROP = _apply(
    click.option("--batch", type=click.IntRange(min=1), default=8),
    click.option("--size", type=click.IntRange(min=32), default=64, help="Crop side (multiple of 32)."),
)
_BLUR_RUN = _apply(
    click.option("--seed", type=int, default=0),
    click.option("--ckpt-every", type=click.IntRange(min=1), default=100),
    click.option("--threads", type=int, default=None, help="torch CPU threads."),
    _TRAIN_DEVICE,
    _TRAIN_WORKERS,
    _TRAIN_MAX_MINUTES,
    click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint."),
)


_BLUR_FAMILIES = click.option(
    "--families", default="", show_default=False,
    help="Comma-separated blur families; each training clip is rendered with one of them: drift, rotation, zoom, "
         "stop-and-go, shake, short-exposure, noise ('train': all of these) or the evaluation ones srgb-average, "
         "compression (default: the standard recipe only).")


def _blur_config(families: str):
    """The :class:`~vidrestore.data.blur_synth.BlurSynthConfig` of ``--families`` (a UserError
    naming the known families for an unknown one)."""
    from ..data.blur_synth import TRAIN_FAMILIES, BlurSynthConfig

    names = tuple(n.strip() for n in families.split(",") if n.strip())
    return BlurSynthConfig(families=TRAIN_FAMILIES if names == ("train",) else names)


def _blur_out(folder: str):
    return click.option("--out", "out_dir", required=True, help=f"Run folder: checkpoint/, {folder}/ (exported weights), log.jsonl.")


def _blur_run_options(threads, device, workers, max_minutes, resume) -> dict:
    """The run-time keyword arguments of ``train_bimnet``/``train_pvdnet`` from the flags of :data:`_BLUR_RUN`."""
    _check_device(device)
    return dict(num_threads=threads, resume=resume, device=device, workers=workers,
                max_seconds=None if max_minutes is None else 60 * max_minutes)


@train.command(name="prior")
@click.option("--data", required=True, help="Folder of training images/videos (scripts/fetch_training_data.sh DEST fills one).")
@click.option("--out", "out_dir", required=True, help="Run folder: checkpoint/, prior/ (exported EMA weights), log.jsonl.")
@click.option("--steps", type=click.IntRange(min=1), default=20000, help="Total optimisation steps.")
@click.option("--batch", type=click.IntRange(min=1), default=16)
@click.option("--size", type=click.IntRange(min=8), default=64, help="Random crop size.")
@click.option("--lr", type=float, default=3e-4)
@click.option("--seed", type=int, default=0, help="Seed of initialisation and of the data order.")
@click.option("--ckpt-every", type=click.IntRange(min=1), default=250)
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--amp", type=click.Choice(["none", "bf16"]), default="none", help="bf16: bfloat16 autocast forward (about 1.6x faster on AVX512-BF16 CPUs).")
@click.option("--decay-steps", type=click.IntRange(min=0), default=0, help="Cosine learning-rate decay to lr/10 over the last N steps (0: constant).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint (same data order).")
@click.option("--extra-sizes", default="", help="Multi-scale training: more crop sides, e.g. 128 (steps alternate sizes; same pixels per step).")
@click.option("--rotate", is_flag=True, help="Random 90-degree rotations of the crops (with the flips: all 8 symmetries).")
@click.option("--holdout-file", default=None, help="File of further file names never trained on, one per line (e.g. src/vidrestore/data/prior_holdout_v2.txt).")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, help="Linear learning-rate warm-up over the first N steps (use with --init-from).")
@click.option("--init-from", default=None, help="Warm start a fresh run from a prior folder ('default' or 'v2': a bundled prior; or another run's prior/).")
def train_prior_cmd(data, out_dir, threads, resume, extra_sizes, holdout_file, **hyper):
    """Train the image diffusion prior (eps-prediction ADM UNet, linear schedule) with EMA."""
    from ..train.prior import PriorTrainConfig, train_prior

    try:
        sizes = tuple(int(v) for v in str(extra_sizes).replace(" ", "").split(",") if v)
    except ValueError:
        raise UserError(f"--extra-sizes expects comma-separated integers, got {extra_sizes!r}") from None
    holdout: tuple[str, ...] = ()
    if holdout_file:
        from pathlib import Path

        holdout = tuple(ln.strip() for ln in Path(holdout_file).read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    cfg = PriorTrainConfig(**hyper, extra_sizes=sizes, holdout=holdout)
    train_prior(data, out_dir, cfg, num_threads=threads, resume=resume)


@train.command(name="bimnet")
@_BLUR_DATA
@_blur_out("bimnet")
@click.option("--steps", type=click.IntRange(min=1), default=600, help="Total optimiser steps.")
@_BLUR_CROP
@click.option("--preset", type=click.Choice(["small", "medium", "full"]), default="small", help="LiteFlowNet widths.")
@click.option("--lr", type=float, default=3e-4, help="Adam learning rate (cosine to lr/100).")
@click.option("--flow-weight", type=float, default=0.0, help="Weight of the optional EPE term against the exact synthetic flow (not in the paper).")
@click.option("--pairings", "pairings_per_step", type=click.IntRange(1, 4), default=4, help="Blurry/sharp pairings per step (4 = the paper's loss; fewer cycle).")
@_BLUR_FAMILIES
@_BLUR_RUN
def train_bimnet_cmd(data, out_dir, threads, device, workers, max_minutes, resume, families, **hyper):
    """Phase 1 of PVDNet: train BIMNet (LiteFlowNet) with the blur-invariant loss on synthetic blur."""
    from ..train.pvdnet import BIMNetTrainConfig, train_bimnet

    run = _blur_run_options(threads, device, workers, max_minutes, resume)
    train_bimnet(list(data), out_dir, BIMNetTrainConfig(**hyper, blur=_blur_config(families)), **run)


@train.command(name="pvdnet")
@_BLUR_DATA
@click.option("--bimnet", default=None, help="Trained BIMNet weight folder (OUT/bimnet of 'train bimnet', or a PVDNet folder: its BIMNet); frozen. Required with --flow bimnet.")
@click.option("--flow", "flow_source", type=click.Choice(["bimnet", "dis", "gt", "zero"]), default="bimnet", help="Flow fed to the pixel volume in training (bimnet = the paper).")
@_blur_out("pvdnet")
@click.option("--steps", type=click.IntRange(min=1), default=2000, help="Total per-frame optimiser steps.")
@_BLUR_CROP
@click.option("--frames", type=click.IntRange(min=3), default=6, help="Frames per training clip (frames-2 recurrent steps).")
@click.option("--preset", type=click.Choice(["small", "medium", "medium-res4", "normal", "large"]), default="small",
              help="PVDNet widths (medium-res4: medium with 12 residual blocks at 1/4 resolution).")
@click.option("--lr", type=float, default=3e-4, help="RAdam learning rate (annealed to lr/1000 by --schedule).")
@click.option("--schedule", type=click.Choice(["restarts", "warmup-cosine"]), default="restarts",
              help="Learning-rate schedule: the paper's cosine restarts, or a linear warm-up then one cosine (both to lr/1000).")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, help="--schedule warmup-cosine: linear warm-up from 0 over N steps.")
@click.option("--weight-decay", type=float, default=0.01, help="Decoupled weight decay.")
@click.option("--zero-init", "zero_init_residual", is_flag=True, help="Start the last conv at zero (identity start) instead of Xavier.")
@click.option("--init", "init", default=None, help="Start the CNN from this PVDNet weight folder (fine-tuning; same --preset, or the same widths with fewer residual blocks, e.g. medium into medium-res4: the extra blocks start as identities).")
@click.option("--margin", type=click.IntRange(min=0), default=0,
              help="Render clips MARGIN pixels larger on every side and take the loss on the central --size square only (even).")
@click.option("--no-next-prob", type=click.FloatRange(0, 1), default=0.0,
              help="Probability that a clip's last step has no next frame (its own frame instead, as at the end of a video).")
@click.option("--curriculum-steps", type=click.IntRange(min=0), default=0,
              help="Blur curriculum: drift speed and exposure ramp from 30% to 100% over the first N steps (0: off).")
@_BLUR_FAMILIES
@_BLUR_RUN
def train_pvdnet_cmd(data, out_dir, threads, device, workers, max_minutes, resume, families, **hyper):
    """Phase 2 of PVDNet: train the deblurring CNN recurrently with BIMNet frozen (MSE)."""
    from ..train.pvdnet import PVDNetTrainConfig, train_pvdnet

    run = _blur_run_options(threads, device, workers, max_minutes, resume)
    train_pvdnet(list(data), out_dir, PVDNetTrainConfig(**hyper, blur=_blur_config(families)), **run)


@train.command(name="lgcvd")
@click.option("--out", "out_dir", required=True, help="Run folder: checkpoint/, model/ (exported EMA weights), log.jsonl.")
@click.option("--preset", default="digits-small", help="Network preset (digits-small, digits-tiny (16x16), bair64, cityscapes128).")
@click.option("--data", default="moving-digits", help="moving-digits (offline) or a folder: MCVD HDF5 shards (ROOT/train/shard_*.hdf5) or one sub-folder of frames per video.")
@click.option("--size", type=click.IntRange(min=8), default=32, help="Moving-digits frame size (other data: the stored size is used).")
@click.option("--steps", type=click.IntRange(min=1), default=4000, help="Iterations (two optimiser updates each).")
@click.option("--batch", type=click.IntRange(min=1), default=8)
@click.option("--lr", type=float, default=2e-4)
@click.option("--one-stage", is_flag=True, help="Ablation: no global context, stage 2 on ground-truth conditions (with --recipe context: that recipe's task mix and loss).")
@click.option("--ema-start", type=click.IntRange(min=0), default=1000, help="EMA copies the model before this iteration.")
@click.option("--ema-decay", type=click.FloatRange(0, 1, max_open=True), default=0.995, show_default=True, help="EMA decay per update.")
@click.option("--ema-every", type=click.IntRange(min=1), default=10, show_default=True, help="Iterations between EMA updates.")
@click.option("--seed", type=int, default=0)
@click.option("--ckpt-every", type=click.IntRange(min=1), default=250)
@click.option("--integer-motion", is_flag=True, help="Moving digits at whole-pixel positions and velocities (two frames determine the future).")
@click.option("--digits", "num_digits", type=click.IntRange(min=1), default=2, show_default=True, help="Moving digits per video.")
@click.option("--digit-size", type=click.IntRange(min=2), default=12, show_default=True, help="Moving-digit glyph size in pixels (smaller than --size).")
@click.option("--subpixel", is_flag=True, help="Moving digits drawn at real-valued positions (bilinear), so motion is smooth below a pixel.")
@click.option("--no-bounce", is_flag=True, help="Moving digits wrap around the frame edges at constant velocity instead of bouncing.")
@click.option("--recipe", type=click.Choice(["official", "context"]), default="official", show_default=True,
              help="official: the published two-stage recipe. context: stage-2 context from a low-noise estimate, built as the sampler builds it, a learnable cross-attention, 80%% prediction, no loss on given frames.")
@click.option("--context-t-max", type=click.IntRange(0, 999), default=250, show_default=True, help="--recipe context: highest timestep of the stage-2 context estimate.")
@click.option("--snapshot-every", type=click.IntRange(min=1), default=None, help="Also keep the EMA network every N iterations (OUT/snapshots/step_N, float16).")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@_TRAIN_DEVICE
@_TRAIN_MAX_MINUTES
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.")
def train_lgcvd_cmd(out_dir, preset, data, size, steps, batch, lr, one_stage, ema_start, ema_decay, ema_every, seed, ckpt_every, integer_motion, num_digits, digit_size, subpixel, no_bounce, recipe, context_t_max, snapshot_every, threads, device, max_minutes, resume):
    """Train LGC-VD (two-stage, v-prediction, cosine schedule) on the offline moving-digits data."""
    from ..train.lgcvd import RECIPES, TrainConfig, train_lgcvd

    _check_device(device)
    rec = dict(RECIPES[recipe])
    net_overrides = rec.pop("net_overrides")
    overrides = {"global_context": False} if one_stage else dict(net_overrides)
    if one_stage:
        # the one-stage ablation of a recipe keeps its task mix and loss; it has no context
        # to build, so the context source stays the official (unused) one
        rec["context_source"] = "one-step"
    cfg = TrainConfig(preset=preset, data=data, size=size, steps=steps, batch=batch, lr=lr, two_stage=not one_stage, ema_start=ema_start, ema_decay=ema_decay, ema_every=ema_every, seed=seed,
                      ckpt_every=ckpt_every, net_overrides=overrides, integer_motion=integer_motion,
                      subpixel=subpixel, bounce=not no_bounce, context_t_max=context_t_max, num_digits=num_digits, digit_size=digit_size, **rec)
    train_lgcvd(out_dir, cfg, resume=resume, num_threads=threads, log=click.echo, device=device,
                max_seconds=None if max_minutes is None else 60 * max_minutes, snapshot_every=snapshot_every)


@cli.command()
def info():
    """Versions, devices and bundled data."""
    import av
    import cv2
    import numpy
    import torch

    from ..data.samples import list_samples
    from ..priors.engine import cache_dir, cpu_has_bf16, resolve_engine, resolve_precision

    d = {
        "vidrestore": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads(),
        "cpu_bf16": cpu_has_bf16(), "prior_precision_auto": resolve_precision(None), "prior_engine_auto": resolve_engine(None),
        "cache": str(cache_dir()),
        "numpy": numpy.__version__, "av": av.__version__, "opencv": cv2.__version__,
        "samples": {k: (str(v) if v else None) for k, v in list_samples().items()},
    }
    click.echo(json.dumps(d, indent=2))


@cli.command()
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, help="Port of the app.")
def ui(host, port):
    """Web app: upload or pick a clip, restore it in the browser, compare and download (pip install 'vidrestore[ui]').

    Scripts call its 'restore' endpoint with gradio_client: (video file, operator spec, method) -> restored .mp4."""
    from ..ui.app import import_gradio

    import_gradio()
    from ..ui import serve

    serve(host=host, port=port)


def main(argv=None):
    """Console-script entry point."""
    cli.main(args=argv, prog_name="vidrestore", standalone_mode=True)


if __name__ == "__main__":
    main()
