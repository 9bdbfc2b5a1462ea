"""Flow accuracy of PVDNet's flow sources across frame sizes (end-point error, pixels).

Usage::

    PYTHONPATH=src python benchmarks/pvdnet_flow_epe.py --photos $DATA/photos_v2 \\
        [--weights pvdnet-r4] [--clips 8] [--frames 4] [--out benchmarks/results]

Data: synthetic blurry clips (:class:`vidrestore.data.blur_synth.SyntheticBlurClips`, the
training generator's default motion, seed ``--seed``) rendered from photos that the shipped
PVDNet models never saw: the ``photos_v2`` collection minus its Lomiri and scikit-image
sources (the PVDNet training photos come from those two packages) and minus the files
reserved for evaluating the image prior (``vidrestore/data/prior_holdout_v2.txt``), keeping
photos of at least 1000x680 pixels, every ``--every``-th in path order. The ground truth is
the exact backward flow between consecutive *sharp* frames; the estimators see the *blurry*
frames (``t -> t-1``, as PVDNet uses them).

Flow sources (rows): zero flow; BIMNet at full size (``--flow bimnet``); BIMNet on a copy
downscaled to a shorter side of about 96 and 128 pixels, flow upsampled and rescaled
(``--flow bimnet-pyramid``, :func:`vidrestore.flow.pyramid_flow`); OpenCV DIS (``--flow dis``).
Columns: the frame sizes ``--sizes``. Each cell is the mean EPE over all pixels of all
``clips x (frames - 1)`` pairs; a second table gives the worst clip (mean EPE of its pairs).

Writes ``pvdnet_flow_epe.md`` (and ``.json``) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vidrestore.data.blur_synth import SyntheticBlurClips
from vidrestore.flow import dis_flow, pyramid_flow
from vidrestore.workflows.deblur import DEFAULT_PVDNET, load_pvdnet

PRIOR_HOLDOUT = Path(__file__).resolve().parents[1] / "src/vidrestore/data/prior_holdout_v2.txt"
PVDNET_TRAIN_SOURCES = ("lomiri", "skimage")


def unseen_photos(root: Path, every: int, min_w: int = 1000, min_h: int = 680) -> list[Path]:
    """Photos of ``root/MANIFEST.tsv`` never used to train PVDNet nor reserved for the prior."""
    reserved = {ln.strip() for ln in PRIOR_HOLDOUT.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    rows = [ln.split("\t") for ln in (root / "MANIFEST.tsv").read_text().splitlines()[1:] if ln.strip()]
    keep = sorted(
        r[0] for r in rows
        if not r[1].startswith(PVDNET_TRAIN_SOURCES) and Path(r[0]).name not in reserved and int(r[4]) >= min_w and int(r[5]) >= min_h
    )
    return [root / k for k in keep[::every]]


def epe(f: torch.Tensor, g: torch.Tensor) -> float:
    return float((f - g).square().sum(1).sqrt().mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", required=True, help="The photos_v2 folder (with MANIFEST.tsv).")
    ap.add_argument("--weights", default=None, help="PVDNet weights (default: the shipped default).")
    ap.add_argument("--sizes", nargs="+", default=["96x96", "128x160", "256x320", "352x640"])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--every", type=int, default=9, help="Keep every n-th eligible photo.")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = load_pvdnet(args.weights).eval()
    files = unseen_photos(Path(args.photos), args.every)
    print(f"{len(files)} photos:", ", ".join(f.name for f in files), flush=True)
    sources = {
        "zero flow": lambda c, p: torch.zeros_like(c[:, :2]),
        "BIMNet, full size (bimnet)": net.flow,
        "BIMNet-pyramid, short side 96 (bimnet-pyramid)": lambda c, p: pyramid_flow(net.flow, c, p, short_side=96),
        "BIMNet-pyramid, short side 128": lambda c, p: pyramid_flow(net.flow, c, p, short_side=128),
        "DIS (dis)": dis_flow,
    }
    mean = {k: {} for k in sources}
    worst = {k: {} for k in sources}
    secs = {k: {} for k in sources}
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        ds = SyntheticBlurClips(files, size=(h, w), num_frames=args.frames, seed=args.seed, max_side=1280)
        per_clip = {k: [] for k in sources}
        times = {k: 0.0 for k in sources}
        pairs = 0
        for i in range(args.clips):
            c = ds.clip(i)
            blurry, gt = c["blurry"][None], c["flow"][None]
            errs = {k: [] for k in sources}
            with torch.no_grad():
                for t in range(1, args.frames):
                    cur, prev, g = blurry[:, :, t], blurry[:, :, t - 1], gt[:, :, t]
                    for k, fn in sources.items():
                        t0 = time.perf_counter()
                        f = fn(cur, prev)
                        times[k] += time.perf_counter() - t0
                        errs[k].append(epe(f, g))
                    pairs += 1
            for k in sources:
                per_clip[k].append(float(np.mean(errs[k])))
        for k in sources:
            mean[k][size] = float(np.mean(per_clip[k]))
            worst[k][size] = float(np.max(per_clip[k]))
            secs[k][size] = times[k] / pairs
        print(size, {k: round(v[size], 2) for k, v in mean.items()}, flush=True)

    hdr = "| flow source | " + " | ".join(args.sizes) + " |"
    sep = "|---|" + "---:|" * len(args.sizes)
    lines = [
        "# PVDNet flow sources: end-point error by frame size",
        "",
        f"Weights: `{args.weights or DEFAULT_PVDNET.name}` (its BIMNet was trained on 96x96 crops). Synthetic blurry clips "
        f"(generator defaults, seed {args.seed}): {args.clips} clips x {args.frames} frames per size, "
        f"{args.clips * (args.frames - 1)} frame pairs, from {len(files)} photos no shipped PVDNet model was trained on: "
        + ", ".join(f.name for f in files) + ".",
        "",
        "Mean end-point error (pixels; lower is better):",
        "",
        hdr,
        sep,
    ]
    for k in sources:
        lines.append(f"| {k} | " + " | ".join(f"{mean[k][s]:.2f}" for s in args.sizes) + " |")
    lines += ["", "Worst clip (mean EPE of its pairs, pixels):", "", hdr, sep]
    for k in sources:
        lines.append(f"| {k} | " + " | ".join(f"{worst[k][s]:.2f}" for s in args.sizes) + " |")
    lines += ["", f"Seconds per frame pair (CPU, {args.threads} thread, shared machine, indicative):", "", hdr, sep]
    for k in sources:
        lines.append(f"| {k} | " + " | ".join(f"{secs[k][s]:.3f}" for s in args.sizes) + " |")
    cmd = f"PYTHONPATH=src python benchmarks/pvdnet_flow_epe.py --photos $DATA/photos_v2 --clips {args.clips} --frames {args.frames} --sizes {' '.join(args.sizes)}"
    lines += ["", f"Command: `{cmd}`", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pvdnet_flow_epe.md").write_text("\n".join(lines))
    (out / "pvdnet_flow_epe.json").write_text(json.dumps({"mean": mean, "worst": worst, "sec_per_pair": secs, "photos": [f.name for f in files], "args": vars(args)}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
