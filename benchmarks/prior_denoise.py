"""Benchmark: a diffusion prior as a one-step Gaussian denoiser, next to BM3D.

For every held-out photo and noise level ``sigma`` (0-255 units) the clean image ``x`` gets
seeded additive white Gaussian noise, ``y = x + sigma/255 * n`` (not clipped), and is denoised by

* the prior, used as a one-step Tweedie denoiser (Efron 2011; the posterior mean
  ``E[x | y]`` predicted at the training timestep whose noise level matches ``sigma``,
  :func:`vidrestore.priors.denoise_image`), and
* BM3D (Dabov et al. 2007, "Image Denoising by Sparse 3-D Transform-Domain Collaborative
  Filtering"; colour version CBM3D) from PyPI ``bm3d`` (``bm3d.bm3d_rgb`` with the true noise
  std in the image's ``[0, 1]`` units, default profile).

Reported: PSNR (dB, RGB, ``vidrestore.metrics.psnr``, every image clipped to ``[0, 1]`` first,
the noisy input included) and wall-clock seconds per image for both methods (after one warm-up
call; torch with ``--threads`` threads).

Images (none of them is trained on; see ``vidrestore.data.images.DEFAULT_HOLDOUT``): the four
held-out Debian/Lomiri wallpapers ``Fossa_by_Jasper_Roks.jpg``, ``Wine_by_Jakkub_Mede.jpg``,
``friends_by_Aitzol_Berasategi.jpg``, ``greentock_by_Peter_Nerlich.jpg`` (found by name under
``--data``, the folder made by ``scripts/fetch_training_data.sh``) and scikit-image's
``astronaut`` and ``chelsea``. Each is resized (Lanczos) so that its short side is ``--size``
(256) and centre-cropped to ``size x size``.

``--set v2`` uses the 24 held-out photos of the prior-v2 collection instead
(``src/vidrestore/data/prior_holdout_v2.txt``, found by name under ``--data``, the folder made by
``scripts/fetch_prior_photos.sh``); ``--exclude`` drops images by name fragment (e.g. a photo a
warm-start source was trained on). ``--no-crop`` keeps the whole photo (resized so its short side
is ``--size``, cut to multiples of 8) for full-size denoising. The summary gives the mean
difference prior − BM3D over images with a 95 % t-interval.

Usage::

    python benchmarks/prior_denoise.py --data /path/to/prior_data [--prior default]
        [--sigmas 15,25,50] [--images astronaut,chelsea] [--out benchmarks/results/prior_denoise]

Writes ``OUT.md`` and ``OUT.csv`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HELDOUT_PHOTOS = (
    "Fossa_by_Jasper_Roks.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "greentock_by_Peter_Nerlich.jpg",
)
SKIMAGE_IMAGES = ("astronaut", "chelsea")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "prior_denoise"


def centre_square(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image so its short side is ``size``, then centre-crop."""
    from PIL import Image

    h, w = arr.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = Image.fromarray(arr).resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def v2_holdout() -> list[str]:
    """File names of the prior-v2 held-out photos (``vidrestore/data/prior_holdout_v2.txt``)."""
    import vidrestore

    text = (Path(vidrestore.__file__).parent / "data" / "prior_holdout_v2.txt").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def short_side(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image so its short side is ``size`` (no crop), then cut
    both sides down to multiples of 8 (centred)."""
    from PIL import Image

    h, w = arr.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.Resampling.LANCZOS), dtype=np.uint8)
    ch, cw = nh - nh % 8, nw - nw % 8
    top, left = (nh - ch) // 2, (nw - cw) // 2
    return im[top:top + ch, left:left + cw]


def load_v2(data: Path | None, size: int, only, exclude, crop: bool) -> list[tuple[str, np.ndarray]]:
    """The prior-v2 held-out photos found under ``data``, in list order."""
    from PIL import Image

    if data is None:
        raise SystemExit("error: --set v2 needs --data (the folder made by scripts/fetch_prior_photos.sh)")
    names = [n for n in v2_holdout() if (only is None or any(o in n for o in only)) and not any(e in n for e in exclude)]
    found = {p.name: p for p in data.rglob("*") if p.name in names}
    out = []
    for name in names:
        if name not in found:
            raise SystemExit(f"error: {name} not found under {data}")
        with Image.open(found[name]) as im:
            arr = np.asarray(im.convert("RGB"))
        out.append((name, centre_square(arr, size) if crop else short_side(arr, size)))
    if not out:
        raise SystemExit("error: no images selected")
    return out


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def load_images(data: Path | None, size: int, only: list[str] | None) -> list[tuple[str, np.ndarray]]:
    """The benchmark images as ``(name, uint8 (size, size, 3))`` pairs, in a fixed order."""
    from PIL import Image

    wanted = lambda name: only is None or any(o in name for o in only)  # noqa: E731
    out: list[tuple[str, np.ndarray]] = []
    photos = [p for p in HELDOUT_PHOTOS if wanted(p)]
    if photos:
        if data is None:
            print(f"[bench] no --data folder: skipping {', '.join(photos)} "
                  f"(make it with scripts/fetch_training_data.sh DEST)", file=sys.stderr)
        else:
            found = {p.name: p for p in data.rglob("*") if p.name in photos}
            for name in photos:
                if name not in found:
                    raise SystemExit(f"error: {name} not found under {data}")
                with Image.open(found[name]) as im:
                    out.append((name, centre_square(np.asarray(im.convert("RGB")), size)))
    names = [n for n in SKIMAGE_IMAGES if wanted(n)]
    if names:
        import skimage.data

        for name in names:
            out.append((f"{name}.png (scikit-image)", centre_square(getattr(skimage.data, name)(), size)))
    if not out:
        raise SystemExit("error: no images selected")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--prior", default="default", help="prior for vidrestore.load_prior")
    ap.add_argument("--data", type=Path, default=os.environ.get("VIDRESTORE_PRIOR_DATA"),
                    help="folder holding the held-out photos (default: $VIDRESTORE_PRIOR_DATA)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path without extension")
    ap.add_argument("--sigmas", default="15,25,50", help="noise levels in 0-255 units")
    ap.add_argument("--size", type=int, default=256, help="side of the centre crop")
    ap.add_argument("--images", default=None, help="comma-separated name fragments to select a subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-bm3d", action="store_true", help="skip BM3D")
    ap.add_argument("--set", default="v1", choices=["v1", "v2"], help="v1: the six held-out images; v2: the prior-v2 held-out photos")
    ap.add_argument("--exclude", default="", help="comma-separated name fragments to leave out")
    ap.add_argument("--no-crop", action="store_true", help="whole photos (short side --size) instead of square crops")
    ap.add_argument("--precision", default="fp32", help="prior precision (fp32, bf16, auto)")
    ap.add_argument("--engine", default="eager", help="prior engine (eager, openvino, auto)")
    ap.add_argument("--figure", type=Path, default=None,
                    help="PNG: clean | noisy | prior | BM3D for the first --figure-images images at the --figure-sigma")
    ap.add_argument("--figure-sigma", type=float, default=25.0)
    ap.add_argument("--figure-images", type=int, default=3)
    ap.add_argument("--figure-crop", type=int, default=128, help="side of the centre crop of each panel (0: whole)")
    args = ap.parse_args(argv)

    from vidrestore.metrics.psnr import psnr
    from vidrestore.priors import denoise_image, load_prior

    torch.set_num_threads(args.threads)
    sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
    only = [s.strip() for s in args.images.split(",")] if args.images else None
    exclude = [e.strip() for e in args.exclude.split(",") if e.strip()]
    if args.set == "v2":
        images = load_v2(args.data, args.size, only, exclude, not args.no_crop)
    else:
        images = [im for im in load_images(args.data, args.size, only) if not any(e in im[0] for e in exclude)]
    from vidrestore.priors.engine import resolve_precision
    from vidrestore.workflows.methods import PRECISIONS

    prior = load_prior(args.prior, device=args.device)
    precision = resolve_precision(args.precision, args.device)
    prior.set_engine(args.engine, precision)
    prior.to(dtype=PRECISIONS[precision])
    steps = prior.config.get("trained_steps", "n/a")
    bm3d = None
    if not args.no_bm3d:
        try:
            import bm3d
        except ImportError:
            raise SystemExit("error: BM3D needs `pip install bm3d` (or pass --no-bm3d)") from None

    print(f"[bench] prior {prior.name!r} ({prior.num_parameters / 1e6:.2f} M parameters, trained steps {steps})")
    print(f"[bench] images ({args.size}x{args.size} centre crops): " + ", ".join(n for n, _ in images))
    print(f"[bench] sigmas {sigmas}, seed {args.seed}, torch threads {args.threads}, device {args.device}")

    def warm_up(arr: np.ndarray) -> None:
        y = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)
        denoise_image(prior, y, 25 / 255)
        if bm3d is not None:
            bm3d.bm3d_rgb(arr[:64, :64].astype(np.float64) / 255, 25 / 255)

    warm_up(images[0][1])
    rows = []
    panels = []
    for i, (name, arr) in enumerate(images):
        x = arr.astype(np.float64) / 255.0
        xt = torch.from_numpy(x).permute(2, 0, 1)[None]
        for sigma in sigmas:
            rng = np.random.default_rng([args.seed, i, int(round(sigma * 100))])
            y = x + (sigma / 255.0) * rng.standard_normal(x.shape)
            yt = torch.from_numpy(y).permute(2, 0, 1)[None]
            row = {"image": name, "sigma": sigma, "psnr_noisy": psnr(yt.clamp(0, 1), xt)}
            t0 = time.perf_counter()
            d = denoise_image(prior, yt.float().to(args.device), sigma / 255.0)
            row["sec_prior"] = time.perf_counter() - t0
            row["psnr_prior"] = psnr(d.double().cpu().clamp(0, 1), xt)
            if bm3d is not None:
                t0 = time.perf_counter()
                b = bm3d.bm3d_rgb(y, sigma / 255.0)
                row["sec_bm3d"] = time.perf_counter() - t0
                row["psnr_bm3d"] = psnr(torch.from_numpy(np.clip(b, 0, 1)).permute(2, 0, 1)[None], xt)
            rows.append(row)
            if args.figure is not None and i < args.figure_images and sigma == args.figure_sigma:
                to8 = lambda t: (t[0].permute(1, 2, 0).double().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)  # noqa: E731
                strip = [arr, to8(yt), to8(d)] + ([np.clip(b * 255, 0, 255).round().astype(np.uint8)] if bm3d is not None else [])
                if args.figure_crop:
                    fh, fw = arr.shape[:2]
                    c = min(args.figure_crop, fh, fw)
                    top, left = (fh - c) // 2, (fw - c) // 2
                    strip = [im[top:top + c, left:left + c] for im in strip]
                panels.append(np.concatenate(strip, axis=1))
            print(f"[bench] {name:40s} sigma {sigma:4.0f}: noisy {row['psnr_noisy']:6.2f}  "
                  f"prior {row['psnr_prior']:6.2f} ({row['sec_prior']:.2f}s)"
                  + (f"  bm3d {row['psnr_bm3d']:6.2f} ({row['sec_bm3d']:.2f}s)" if bm3d is not None else ""),
                  flush=True)

    if panels:
        from PIL import Image

        width = max(p.shape[1] for p in panels)
        grid = np.concatenate([np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels], axis=0)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(args.figure)
        print(f"[bench] wrote {args.figure} (clean | noisy | prior" + (" | BM3D)" if bm3d is not None else ")"))
    md = render_markdown(rows, prior, steps, args, images, bm3d is not None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = args.out.with_suffix(".md"), args.out.with_suffix(".csv")
    md_path.write_text(md)
    fields = ["image", "sigma", "psnr_noisy", "psnr_prior", "psnr_bm3d", "sec_prior", "sec_bm3d"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "")) for k in fields})
    print()
    print(md)
    print(f"[bench] wrote {md_path} and {csv_path}")
    return 0


def render_markdown(rows, prior, steps, args, images, with_bm3d: bool) -> str:
    """Summary (mean over images per sigma) and per-image tables as Markdown."""
    sigmas = sorted({r["sigma"] for r in rows})
    mean = lambda key, s: float(np.mean([r[key] for r in rows if r["sigma"] == s]))  # noqa: E731
    lines = [
        "# One-step denoising: diffusion prior vs BM3D",
        "",
        f"Prior `{args.prior}` ({prior.num_parameters / 1e6:.2f} M parameters, trained steps {steps}); "
        f"{len(images)} images ({args.set} set), " + (f"whole photos, short side {args.size}" if args.no_crop else f"{args.size}x{args.size}")
        + f"; AWGN seed {args.seed}; PSNR in dB on clipped RGB; engine {prior.engine_name}, weights {str(prior.dtype).replace('torch.', '')}; "
        f"seconds per image; torch threads {args.threads} on {args.device}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{_dt.date.today().isoformat()}.",
        "",
        "Images: " + ", ".join(n for n, _ in images) + ".",
        "",
        "## Mean over images",
        "",
    ]
    if with_bm3d:
        lines += ["| σ (0–255) | noisy | prior (1 step) | BM3D | prior − BM3D (95% CI) | images prior > BM3D | s/img prior | s/img BM3D | speed-up |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in sigmas:
            p, b = mean("psnr_prior", s), mean("psnr_bm3d", s)
            sp, sb = mean("sec_prior", s), mean("sec_bm3d", s)
            diffs = [r["psnr_prior"] - r["psnr_bm3d"] for r in rows if r["sigma"] == s]
            d, h = mean_ci(diffs)
            wins = sum(x > 0 for x in diffs)
            lines.append(f"| {s:g} | {mean('psnr_noisy', s):.2f} | {p:.2f} | {b:.2f} | {d:+.2f} ± {h:.2f} | {wins}/{len(diffs)} | "
                         f"{sp:.2f} | {sb:.2f} | {sb / sp:.1f}x |")
    else:
        lines += ["| σ (0–255) | noisy | prior (1 step) | s/img prior |", "|---:|---:|---:|---:|"]
        for s in sigmas:
            lines.append(f"| {s:g} | {mean('psnr_noisy', s):.2f} | {mean('psnr_prior', s):.2f} | "
                         f"{mean('sec_prior', s):.2f} |")
    lines += ["", "## Per image", ""]
    if with_bm3d:
        lines += ["| image | σ | noisy | prior | BM3D |", "|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['image']} | {r['sigma']:g} | {r['psnr_noisy']:.2f} | {r['psnr_prior']:.2f} | "
                         f"{r['psnr_bm3d']:.2f} |")
    else:
        lines += ["| image | σ | noisy | prior |", "|---|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['image']} | {r['sigma']:g} | {r['psnr_noisy']:.2f} | {r['psnr_prior']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
