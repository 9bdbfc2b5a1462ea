"""LGC-VD on held-out moving digits: prediction, interpolation and unconditional samples.

Protocol (modelled on the evaluation of Yang et al., IJCAI 2023, and of their released code
``exisas/LGC-VD``, scaled to a CPU):

* Test set: ``--videos`` moving-digit videos of the *test* split (unseen glyphs), seed 0, 32x32.
* Prediction: 2 context frames -> 12 predicted frames (two autoregressive clips of 6), ``--samples``
  samples per video. PSNR / SSIM per frame (vidrestore.metrics, data range 1), averaged over the
  first 8 predicted frames and over all 12. **best-of-N**: per video the best sample (max PSNR,
  max SSIM separately, as in the official ``eva.py`` with its grouping bug fixed), then the mean
  over videos; the plain mean over all samples is reported too.
* Baselines: copy-last-frame (deterministic) and the one-stage ablation (no global context,
  stage 2 on ground-truth conditions, same number of optimiser updates).
* Interpolation (factor 7): frames 0 and 7 given, frames 1..6 filled; vs linear blending.
* Unconditional: ``--gif-samples`` 16-frame videos as a GIF grid.
* LPIPS only with ``--lpips`` (needs the ``lpips`` package and its weights on disk); FVD only with
  ``--i3d PATH`` (a user-provided TorchScript I3D). Neither is computed by default.

Writes ``benchmarks/results/lgcvd_table.{md,csv}``, ``lgcvd_generate.gif`` and
``lgcvd_predict.gif`` (rows: ground truth | copy-last | two-stage | one-stage).

Run:  PYTHONPATH=src python benchmarks/lgcvd_table.py --model runs/two_stage/model --ablation runs/one_stage/model
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from vidrestore.checkpoint import from_pretrained
from vidrestore.data.moving_digits import moving_digits
from vidrestore.io import write_video
from vidrestore.metrics import psnr, ssim
from vidrestore.workflows.lgcvd import generate_video, interpolate_video, predict_video
from vidrestore.workflows.bench import mean_ci

RESULTS = Path(__file__).resolve().parent / "results"


def per_sample(pred: torch.Tensor, gt: torch.Tensor, first: int, last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean PSNR and SSIM over frames ``first..last-1`` per sample ``[N]``."""
    p = psnr(pred[:, :, first:last], gt[:, :, first:last], reduction="none").mean(1)
    s = ssim(pred[:, :, first:last], gt[:, :, first:last], reduction="none").mean(1)
    return p.float(), s.float()


def background_level(pred: torch.Tensor, first: int, last: int) -> float:
    """Haze of the background: the median of each predicted frame (84% of ground-truth pixels are
    black, so the median is 0 for clean frames), averaged over frames ``first..last-1`` and samples.

    On this mostly black data SSIM is very sensitive to it: ground truth plus a constant 0.02 has
    SSIM 0.61 against itself.
    """
    p = pred[:, :, first:last].mean(1)  # (N, T, H, W)
    return float(p.flatten(2).median(-1).values.mean())


def per_frame_best_psnr(pred: torch.Tensor, gt: torch.Tensor, first: int, last: int, videos: int, samples: int) -> list[float]:
    """Per-frame PSNR, best sample per video and frame, mean over videos."""
    p = psnr(pred[:, :, first:last], gt[:, :, first:last], reduction="none").float()  # (N, T)
    return p.reshape(videos, samples, -1).max(1).values.mean(0).tolist()


def summarise(p: torch.Tensor, s: torch.Tensor, videos: int, samples: int) -> dict:
    """Best-of-N and mean-over-samples PSNR/SSIM (mean over videos), the 95 % Student t
    half-width of the per-video best PSNR, and the per-video values (keys starting with ``_``,
    for the paired differences; not written to the CSV)."""
    p, s = p.reshape(videos, samples), s.reshape(videos, samples)
    best = p.max(1).values
    return {
        "psnr_best": float(best.mean()), "ssim_best": float(s.max(1).values.mean()),
        "psnr_mean": float(p.mean()), "ssim_mean": float(s.mean()),
        "psnr_best_ci95": mean_ci(best.tolist())[1],
        "_best_pv": best.tolist(), "_mean_pv": p.mean(1).tolist(),
    }


def lpips_fn(enabled: bool):
    if not enabled:
        return None
    try:
        import lpips  # noqa: F401
    except ImportError:
        raise SystemExit("--lpips needs the 'lpips' package (and its AlexNet weights on disk)")
    model = lpips.LPIPS(net="alex", verbose=False)

    def f(pred, gt):  # (N, C, T, H, W) -> [N] mean over frames
        n, c, t, h, w = pred.shape
        a = pred.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w).expand(-1, 3, -1, -1) * 2 - 1
        b = gt.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w).expand(-1, 3, -1, -1) * 2 - 1
        with torch.no_grad():
            return model(a, b).reshape(n, t).mean(1)

    return f


def tile(rows: list[torch.Tensor], scale: int = 2) -> torch.Tensor:
    """Grid video (3, T, H*R, W*K) from rows of (K, C, T, H, W) clips, upscaled by ``scale``."""
    row_imgs = [torch.cat(list(r.expand(-1, 3, -1, -1, -1)), dim=-1) for r in rows]
    grid = torch.cat(row_imgs, dim=-2)
    grid = torch.nn.functional.interpolate(grid.permute(1, 0, 2, 3), scale_factor=scale, mode="nearest").permute(1, 0, 2, 3)
    return grid.clamp(0, 1)


def training_cost(model_dir: Path) -> str:
    run = model_dir.parent
    log = run / "log.jsonl"
    cfg = json.loads((model_dir / "config.json").read_text())
    where = "GPU-min (one H100)" if cfg.get("device") == "cuda" else "CPU-min (1 thread, shared 2-core machine)"
    if "train_seconds" in cfg:  # recorded in newer weight folders; older ones: from log.jsonl below
        steps = cfg.get("steps", "?")
        updates = f" ({2 * steps} optimiser updates)" if isinstance(steps, int) else ""  # two per iteration, both models
        return f"{steps} iterations{updates}, {cfg['train_seconds'] / 60:.1f} {where}"
    if log.is_file():
        recs = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
        at = [r for r in recs if r["step"] == cfg.get("steps")]
        last = at[-1] if at else recs[-1]
        return f"{last['step']} iterations ({2 * last['step']} optimiser updates), {last['seconds'] / 60:.0f} {where}"
    return f"{cfg.get('steps', '?')} iterations"


def _groups(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        if "_mean_pv" in r:
            out.setdefault((r["task"], r["frames"]), []).append(r)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="two-stage LGC-VD weight folder")
    ap.add_argument("--ablation", default=None, help="one-stage (no global context) weight folder")
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gif-samples", type=int, default=8, help="unconditional samples in lgcvd_generate.gif (0: write no GIFs)")
    ap.add_argument("--skip-no-carry", action="store_true", help="skip the two-stage row without the carried global context")
    ap.add_argument("--lpips", action="store_true")
    ap.add_argument("--i3d", default=None, help="TorchScript I3D file for FVD (not shipped)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--integer-motion", choices=["auto", "yes", "no"], default="auto",
                    help="test videos with whole-pixel motion (auto: as the model was trained)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--name", default="lgcvd_table")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    models = {"LGC-VD two-stage": from_pretrained(args.model)}
    if args.ablation:
        models["one-stage ablation"] = from_pretrained(args.ablation)
    lp = lpips_fn(args.lpips)
    V, N = args.videos, args.samples
    trained_int = bool(getattr(models["LGC-VD two-stage"], "pretrained_config", {}).get("integer_motion", False))
    integer_motion = trained_int if args.integer_motion == "auto" else args.integer_motion == "yes"
    gt = moving_digits(V, frames=14, size=32, split="test", seed=args.seed, channels=3, integer_motion=integer_motion)
    rows: list[dict] = []
    preds = {}

    # ---- prediction: 2 -> 12 -------------------------------------------------------------
    copy = gt[:, :, 1:2].expand(-1, -1, 14, -1, -1).clone()
    copy[:, :, :2] = gt[:, :, :2]
    per_frame = {"copy last frame": per_frame_best_psnr(copy, gt, 2, 14, V, 1)}
    for first, last, label in ((2, 10, "first 8"), (2, 14, "all 12")):
        p, s = per_sample(copy, gt, first, last)
        r = {"task": "prediction 2->12", "frames": label, "method": "copy last frame", "samples": 1,
             **summarise(p, s, V, 1), "bg_level": background_level(copy, first, last)}
        rows.append(r)
    # How unforgiving pixel metrics are here: the true future, shifted sideways by k px.
    shifted = {}
    for k in (1, 2, 3):
        sh = torch.roll(gt, shifts=k, dims=-1)
        p, s = per_sample(sh, gt, 2, 10)
        shifted[k] = (float(p.mean()), float(s.mean()))
    blank = gt.clone()
    blank[:, :, 2:] = 0.0
    for first, last, label in ((2, 10, "first 8"), (2, 14, "all 12")):
        p, s = per_sample(blank, gt, first, last)
        rows.append({"task": "prediction 2->12", "frames": label, "method": "black frames", "samples": 1, **summarise(p, s, V, 1),
                     "bg_level": 0.0})
    variants = [(name, net, True) for name, net in models.items()]
    if not args.skip_no_carry:
        variants.append(("LGC-VD two-stage, no context carry", models["LGC-VD two-stage"], False))
    for name, net, carry in variants:
        t0 = time.time()
        g = torch.Generator().manual_seed(args.seed + 1)
        past = gt[:, :, :2].repeat_interleave(N, 0)
        y = predict_video(net, past, 12, steps=args.steps, eta=args.eta, generator=g, carry_context=carry)
        secs = time.time() - t0
        preds[name] = y
        ref = gt.repeat_interleave(N, 0)
        per_frame[name] = per_frame_best_psnr(y, ref, 2, 14, V, N)
        for first, last, label in ((2, 10, "first 8"), (2, 14, "all 12")):
            p, s = per_sample(y, ref, first, last)
            r = {"task": "prediction 2->12", "frames": label, "method": name, "samples": N, **summarise(p, s, V, N),
                 "sec_per_video_sample": secs / (V * N), "bg_level": background_level(y, first, last)}
            if lp is not None:
                lv = lp(y[:, :, first:last], ref[:, :, first:last]).reshape(V, N)
                r["lpips_best"], r["lpips_mean"] = float(lv.min(1).values.mean()), float(lv.mean())
            rows.append(r)
        print(f"{name}: {secs:.0f} s", flush=True)

    # ---- interpolation: factor 7 on frames 0..7 -------------------------------------------
    seg = gt[:, :, :8]
    w = torch.linspace(0, 1, 8).view(1, 1, 8, 1, 1)
    blend = (1 - w) * seg[:, :, :1] + w * seg[:, :, 7:8]
    p, s = per_sample(blend, seg, 1, 7)
    rows.append({"task": "interpolation x7", "frames": "1..6", "method": "linear blending", "samples": 1, **summarise(p, s, V, 1)})
    for name, net in models.items():
        g = torch.Generator().manual_seed(args.seed + 2)
        given = seg[:, :, [0, 7]].repeat_interleave(N, 0)
        y = interpolate_video(net, given, 7, steps=args.steps, eta=args.eta, generator=g)
        p, s = per_sample(y, seg.repeat_interleave(N, 0), 1, 7)
        rows.append({"task": "interpolation x7", "frames": "1..6", "method": name, "samples": N, **summarise(p, s, V, N)})

    # ---- unconditional samples -------------------------------------------------------------
    if args.gif_samples > 0:  # 0: no GIFs (e.g. sampler sweeps)
        g = torch.Generator().manual_seed(args.seed + 3)
        gen = generate_video(models["LGC-VD two-stage"], 16, batch=args.gif_samples, steps=args.steps, eta=args.eta, generator=g)
        half = (args.gif_samples + 1) // 2
        write_video(out / "lgcvd_generate.gif", tile([gen[:half], gen[half:]] if args.gif_samples > 1 else [gen]), fps=6)
        k = min(6, V)
        grid_rows = [gt[:k], copy[:k]] + [preds[n][::N][:k] for n in models]
        write_video(out / "lgcvd_predict.gif", tile(grid_rows), fps=6)

    if args.i3d:
        from vidrestore.metrics.fvd import fvd, load_i3d

        det = load_i3d(args.i3d)
        for name in models:
            rows.append({"task": "prediction 2->12", "frames": "all 14 (FVD)", "method": name, "samples": N,
                         "fvd": fvd(det, gt.repeat_interleave(N, 0), preds[name])})

    # ---- write -----------------------------------------------------------------------------
    keys = ["task", "frames", "method", "samples", "psnr_best", "ssim_best", "psnr_mean", "ssim_mean", "psnr_best_ci95",
            "bg_level", "lpips_best", "lpips_mean", "fvd", "sec_per_video_sample"]
    with open(out / f"{args.name}.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=keys)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items() if not k.startswith("_")})
    fmt = lambda v, f=".2f": "" if v is None else format(v, f)  # noqa: E731
    lines = [
        "# LGC-VD on held-out moving digits (32x32, unseen glyphs)",
        "",
        f"{V} test videos, {N} samples each (best-of-{N} = per-video best, then mean over videos); "
        f"{args.steps}-step ancestral sampler (eta={args.eta}); seed {args.seed}; "
        + ("whole-pixel (integer) motion." if integer_motion else "real-valued velocities, drawn at rounded positions."),
        "",
        f"Models: `{args.model}` ({training_cost(Path(args.model))})"
        + (f"; ablation `{args.ablation}` ({training_cost(Path(args.ablation))})" if args.ablation else "") + ".",
        "",
        "| task | frames | method | N | PSNR best | SSIM best | PSNR mean | SSIM mean | background level | s / sample |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "psnr_best" not in r:
            continue
        lines.append(f"| {r['task']} | {r['frames']} | {r['method']} | {r['samples']} | {fmt(r['psnr_best'])} ± {fmt(r['psnr_best_ci95'])} | "
                     f"{fmt(r['ssim_best'], '.3f')} | {fmt(r['psnr_mean'])} | {fmt(r['ssim_mean'], '.3f')} | {fmt(r.get('bg_level'), '.3f')} | "
                     f"{fmt(r.get('sec_per_video_sample'), '.1f')} |")
    if any("lpips_best" in r for r in rows):
        lines += ["", "LPIPS (AlexNet): " + "; ".join(f"{r['method']} {r['frames']}: best {r['lpips_best']:.3f}" for r in rows if "lpips_best" in r)]
    if any("fvd" in r for r in rows):
        lines += ["", "FVD: " + "; ".join(f"{r['method']}: {r['fvd']:.1f}" for r in rows if "fvd" in r)]
    lines += ["", "Paired differences to the best baseline of the same task and frames (the baseline with the highest "
              "mean PSNR; per video: the model's mean PSNR over its samples minus the baseline's, so no best-of-N "
              "advantage), mean ± 95 % Student t interval over the videos:", "",
              "| task | frames | method | baseline | PSNR difference (dB) | videos better |", "|---|---|---|---|---|---|"]
    for (task, frames), group in _groups(rows).items():
        base = [r for r in group if r["samples"] == 1]
        if not base:
            continue
        b = max(base, key=lambda r: r["psnr_mean"])
        for r in group:
            if r["samples"] == 1:
                continue
            d = [m - bm for m, bm in zip(r["_mean_pv"], b["_mean_pv"])]
            m, h = mean_ci(d)
            lines.append(f"| {task} | {frames} | {r['method']} | {b['method']} | {m:+.2f} ± {h:.2f} | {sum(x > 0 for x in d)} of {len(d)} |")
    lines += ["", "Per-frame PSNR (predicted frames 1..12; best sample per video and frame, mean over videos):", "",
              "| method | " + " | ".join(str(i + 1) for i in range(12)) + " |", "|---|" + "---|" * 12]
    lines += [f"| {m} | " + " | ".join(f"{v:.1f}" for v in vals) + " |" for m, vals in per_frame.items()]
    lines += ["", "Reference, first 8 predicted frames: the true future shifted sideways by 1 / 2 / 3 px scores "
              + " / ".join(f"{p:.2f} dB, SSIM {s_:.3f}" for p, s_ in shifted.values())
              + ". Background level = median of a predicted frame (0 for a clean black background), mean over frames and samples."]
    lines += ["", "± is the 95 % Student t interval over videos of the per-video best. GIFs: `lgcvd_predict.gif` (rows: ground truth, copy-last, "
              + ", ".join(models) + "; first sample), `lgcvd_generate.gif` (unconditional, 16 frames).",
              "", f"Command: `PYTHONPATH=src python benchmarks/lgcvd_table.py --model {args.model}"
              + (f" --ablation {args.ablation}" if args.ablation else "") + f" --videos {V} --samples {N} --steps {args.steps}`"
              + f"; total {(time.time() - t_start) / 60:.1f} min.", ""]
    (out / f"{args.name}.md").write_text("\n".join(lines))
    # the README's copy: the main table and the paired differences
    cut = next(i for i, ln in enumerate(lines) if ln.startswith("Per-frame PSNR"))
    (out / f"{args.name}_summary.md").write_text("\n".join(lines[:cut] + [
        f"Full table with per-frame PSNR and GIFs: `benchmarks/results/{args.name}.md`. ± is the 95 % Student t interval "
        "over videos of the per-video best.", ""]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
