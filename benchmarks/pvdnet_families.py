"""PVDNet by blur family: gain over the blurry input on held-out photos, per family, with intervals.

Usage::

    PYTHONPATH=src python benchmarks/pvdnet_families.py --photos $DATA/photos --photos $DATA/skimage \\
        [--weights pvdnet-medium --weights runs/x/pvdnet ...] [--clips 12] [--heldout-clips 24] \\
        [--frames 6] [--size 256 320] [--out benchmarks/results/pvdnet_families]

Data: clips rendered by :class:`vidrestore.data.blur_synth.SyntheticBlurClips` from the
*held-out* photos only (``DEFAULT_HOLDOUT``, never trained on), one set per blur family of
:data:`~vidrestore.data.blur_synth.BLUR_FAMILIES` plus ``standard`` (the generator's default
recipe, what the first bundled models were trained on). The families of
:data:`~vidrestore.data.blur_synth.HELDOUT_FAMILIES` (sRGB averaging, JPEG compression) are
never used in training and get ``--heldout-clips`` clips each; the others ``--clips``. Every
family uses the same seed, so clip ``k`` of every family starts from the same photo crop and
motion draw where the family does not change it.

Methods: the blurry input, and for each ``--weights`` what ``vidrestore restore -m pvdnet``
runs (auto flow, colour correction, do-no-harm guard); ``--raw`` adds the network alone (auto
flow, no correction, no guard).

Metrics, both reported: *unaligned* RGB PSNR over the whole frame, and the *aligned* protocol of
the PVDNet paper (16-px border, gain fit, integer DFT shift, luma;
:func:`vidrestore.metrics.aligned_video_metrics`). The first frame of each clip is skipped in
both (it has no previous frame). Per clip the gain is the method's PSNR minus the blurry
input's; intervals are 95 % Student t over clips. Also the worst clip and how many clips got
worse by more than 0.1 dB (do no harm).

``--split train`` renders new draws from the *training* photos instead (a different seed from
training's): the set for choosing between models or options, so that the held-out families and
photos stay a report only.

Writes ``families_<split>.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pvdnet_real_avg import psnr  # noqa: E402

from vidrestore.data.blur_synth import BLUR_FAMILIES, HELDOUT_FAMILIES, BlurSynthConfig, SyntheticBlurClips, family_config  # noqa: E402
from vidrestore.metrics import aligned_video_metrics  # noqa: E402
from vidrestore.workflows.bench import mean_ci  # noqa: E402
from vidrestore.workflows.deblur import deblur_video_pvdnet, load_pvdnet  # noqa: E402


def rgb_psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR (dB) of ``(1, 3, T, H, W)`` over frames 1.. (the first has no previous frame), from the
    mean squared error over those frames, as in the real-clip benchmarks."""
    return psnr(x[:, :, 1:].clamp(0, 1), ref[:, :, 1:])


def family_set(photos, family: str, clips: int, frames: int, size, seed: int, split: str = "holdout"):
    cfg = BlurSynthConfig() if family == "standard" else family_config(family)
    ds = SyntheticBlurClips.from_folders(photos, split=split, size=tuple(size), num_frames=frames, seed=seed, config=cfg)
    for k in range(clips):
        c = ds.clip(k)
        yield k, c["blurry"][None], c["sharp"][None]


def summarise(gains: list[float]) -> dict:
    m, h = mean_ci(gains)
    return {"mean": m, "ci95": h, "min": min(gains), "worse": sum(g < -0.1 for g in gains), "n": len(gains)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", action="append", required=True, help="Photo folder(s); only the held-out photos are used (see --split).")
    ap.add_argument("--split", choices=["holdout", "train"], default="holdout",
                    help="holdout: the held-out photos (report); train: new draws from the training photos (for choices).")
    ap.add_argument("--weights", action="append", default=None,
                    help="PVDNet weight folder or bundled name, optionally LABEL=FOLDER (repeatable; default: the default model).")
    ap.add_argument("--families", default="standard," + ",".join(BLUR_FAMILIES), help="Comma-separated families (standard = generator defaults).")
    ap.add_argument("--clips", type=int, default=12, help="Clips per training family.")
    ap.add_argument("--heldout-clips", type=int, default=24, help="Clips per held-out family.")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 320))
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--raw", action="store_true", help="Also run the network alone (no colour correction, no guard).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/pvdnet_families")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights = args.weights or ["default"]
    nets = {}
    for w in weights:
        label, _, path = w.rpartition("=")
        nets[label or path] = load_pvdnet(None if path == "default" else path)
    weights = list(nets)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        if f != "standard" and f not in BLUR_FAMILIES:
            raise SystemExit(f"unknown family {f!r}; choose standard or {', '.join(BLUR_FAMILIES)}")

    methods = []
    for w in weights:
        methods.append((w, w, dict()))
        if args.raw:
            methods.append((f"{w} (network alone)", w, dict(colour=False, guard=False)))
    per_clip: list[dict] = []
    seconds = {m[0]: 0.0 for m in methods}
    frames_run = 0
    t_start = time.time()
    for fam in families:
        n = args.heldout_clips if fam in HELDOUT_FAMILIES else args.clips
        for k, blurry, sharp in family_set(args.photos, fam, n, args.frames, args.size, args.seed, args.split):
            row = {"family": fam, "clip": k, "blurry": {"rgb": rgb_psnr(blurry, sharp), "aligned": aligned_video_metrics(blurry, sharp)["psnr"]}}
            for label, w, kw in methods:
                t0 = time.perf_counter()
                with torch.no_grad():
                    x = deblur_video_pvdnet(blurry, nets[w], **kw)
                seconds[label] += time.perf_counter() - t0
                row[label] = {"rgb": rgb_psnr(x, sharp), "aligned": aligned_video_metrics(x, sharp)["psnr"]}
            frames_run += blurry.shape[2]
            per_clip.append(row)
            print(fam, k, {m: round(row[m]["rgb"] - row["blurry"]["rgb"], 2) for m, _, _ in methods}, flush=True)

    groups = {f: [r for r in per_clip if r["family"] == f] for f in families}
    groups["all training families"] = [r for r in per_clip if r["family"] not in HELDOUT_FAMILIES]
    groups["all held-out families"] = [r for r in per_clip if r["family"] in HELDOUT_FAMILIES]
    summary = {}
    for g, rows in groups.items():
        if not rows:
            continue
        summary[g] = {"blurry_rgb": sum(r["blurry"]["rgb"] for r in rows) / len(rows)}
        for label, _, _ in methods:
            summary[g][label] = {metric: summarise([r[label][metric] - r["blurry"][metric] for r in rows]) for metric in ("rgb", "aligned")}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = os.environ.get("DATA")
    photos = [p.replace(data.rstrip("/"), "$DATA", 1) if data and p.startswith(data.rstrip("/")) else p for p in args.photos]
    cmd = ("PYTHONPATH=src python benchmarks/pvdnet_families.py " + " ".join(f"--photos {p}" for p in photos)
           + "".join(f" --weights {w}" for w in (args.weights or []))
           + (f" --families {args.families}" if args.families != ap.get_default("families") else "")
           + f" --clips {args.clips} --heldout-clips {args.heldout_clips} --frames {args.frames} --size {args.size[0]} {args.size[1]}"
           + (" --raw" if args.raw else "") + (" --split train" if args.split == "train" else "") + f" --out {args.out}")
    (out / f"families_{args.split}.json").write_text(json.dumps({"command": cmd, "summary": summary, "clips": per_clip,
                                                   "seconds_per_frame": {k: v / max(frames_run, 1) for k, v in seconds.items()}}, indent=1))
    fmt = lambda s: f"{s['mean']:+.2f} ± {s['ci95']:.2f}"  # noqa: E731
    where = "the held-out photos" if args.split == "holdout" else "the training photos (new draws; for choices, not a result)"
    lines = [f"# PVDNet by blur family ({'held-out' if args.split == 'holdout' else 'training'} photos)", "",
             f"{len(per_clip)} clips of {args.frames} frames at {args.size[0]}x{args.size[1]} rendered from {where} "
             f"(seed {args.seed}); families {', '.join(HELDOUT_FAMILIES)} are never trained on. Gain over the blurry input in dB, "
             "95 % Student t intervals over clips; unaligned = RGB PSNR over whole frames, aligned = the PVDNet paper's protocol "
             "(16-px border, gain fit, integer shift, luma). First frame of each clip skipped. Methods run as "
             "`vidrestore restore -m pvdnet` does (auto flow, colour correction, guard) unless marked.", ""]
    head = "| family | clips | blurry PSNR | " + " | ".join(f"{m} unaligned | {m} aligned | worst / worse" for m, _, _ in methods) + " |"
    lines += [head, "|---|---:|---:|" + "---:|---:|---:|" * len(methods)]
    for g, s in summary.items():
        n = len(groups[g])
        cells = [f"{fmt(s[m]['rgb'])} | {fmt(s[m]['aligned'])} | {s[m]['rgb']['min']:+.2f} / {s[m]['rgb']['worse']}" for m, _, _ in methods]
        name = f"**{g}**" if g.startswith("all") else (f"{g} (held out)" if g in HELDOUT_FAMILIES else g)
        lines.append(f"| {name} | {n} | {s['blurry_rgb']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Seconds per frame (this machine, " + (platform.processor() or platform.machine()) + f", {args.threads} threads): "
              + ", ".join(f"{k} {v / max(frames_run, 1):.2f}" for k, v in seconds.items())
              + f"; total {time.time() - t_start:.0f} s.", "", f"Command: `{cmd}`", ""]
    (out / f"families_{args.split}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
