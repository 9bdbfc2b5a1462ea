"""PVDNet on the held-out real clips: gain over the blurry input per segment, with intervals.

Usage::

    PYTHONPATH=src python benchmarks/pvdnet_heldout.py [--configs default old] [--windows 6] \\
        [--avg 5] [--size 256 320] [--weights pvdnet-r4] [--out benchmarks/results]

Data: the ten videos of ``benchmarks/heldout.yaml`` (``scripts/fetch_eval_clips.sh $DATA``), none
of them trained on or used to choose a default. Each video is cut into non-overlapping segments
of ``windows * avg`` frames between its ``start`` and ``end``; every segment is one test clip.
Blur is real frame averaging, as in ``benchmarks/pvdnet_real_avg.py``: each blurry frame is the
linear-light (gamma 2.2) average of ``avg`` consecutive frames (how GoPro-style data sets are
built), its ground truth the middle frame; frames are resized to cover ``--size`` and
centre-cropped.

Configurations (``--configs``): ``default`` (what ``vidrestore restore -m pvdnet`` runs: auto
flow, linear-light colour correction and the do-no-harm guard), ``old`` (BIMNet flow at full size,
no correction, no guard: the network alone), ``auto`` (auto flow, no correction, no guard), and
the ``FLOW+...`` names of ``pvdnet_real_avg.py``.

Metric: RGB PSNR over whole frames against the sharp middle frames (no alignment), per segment
from the mean squared error over its frames; the gain is output minus blurry input. Intervals:
95 % Student t over segments, and, because segments of one video are not independent, also over
the per-video means (the honest interval for claims). Also the minimum and the share of segments
made worse by more than 0.1 dB (do no harm).

Writes ``pvdnet_heldout_avg<N>.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pvdnet_real_avg import average_windows, psnr, run_config  # noqa: E402

from vidrestore.io import read_video  # noqa: E402
from vidrestore.workflows.bench import mean_ci  # noqa: E402
from vidrestore.workflows.deblur import DEFAULT_PVDNET, load_pvdnet  # noqa: E402

HELDOUT = Path(__file__).resolve().parent / "heldout.yaml"


def segments(spec: dict, need: int):
    """Yield ``(first_frame, (1, 3, need, h, w) video)`` for each non-overlapping segment."""
    path = Path(os.path.expandvars(spec["path"]))
    if not path.exists():
        raise SystemExit(f"{path} is missing: run scripts/fetch_eval_clips.sh $DATA and export DATA")
    start = int(spec.get("start", 0))
    end = spec.get("end")
    v, _ = read_video(path, max_frames=None if end is None else int(end), allow_truncated=True)
    v = v[:, :, start:]
    for k in range(v.shape[2] // need):
        yield start + k * need, v[:, :, k * need : (k + 1) * need]


def _fmt_ci(m: float, h: float) -> str:
    return f"{m:+.2f} ± {h:.2f}" if h == h else f"{m:+.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["default", "old"])
    ap.add_argument("--videos", nargs="+", default=None, help="Only these videos of heldout.yaml.")
    ap.add_argument("--weights", default=None, help="PVDNet weights (default: the bundled default model).")
    ap.add_argument("--windows", type=int, default=6, help="Blurry frames per segment.")
    ap.add_argument("--avg", type=int, default=5, help="Sharp frames averaged into one blurry frame.")
    ap.add_argument("--size", type=int, nargs=2, default=(256, 320))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    videos = yaml.safe_load(HELDOUT.read_text())["videos"]
    net = load_pvdnet(args.weights).eval()
    need = args.windows * args.avg
    rows, t0, net_seconds, frames_done = [], time.perf_counter(), 0.0, 0
    for name in args.videos or list(videos):
        for first, v in segments(videos[name], need):
            blurry, sharp = average_windows(v, args.windows, args.avg, tuple(args.size))
            base = psnr(blurry, sharp)
            row = {"video": name, "first_frame": first, "blurry_psnr": base, "gain": {}}
            for cfg in args.configs:
                ts = time.perf_counter()
                out = run_config(net, blurry, cfg)
                if cfg == args.configs[0]:
                    net_seconds += time.perf_counter() - ts
                    frames_done += args.windows
                row["gain"][cfg] = psnr(out, sharp) - base
            rows.append(row)
            print(f"{name}@{first}: blurry {base:.2f} dB", {k: round(g, 2) for k, g in row["gain"].items()},
                  f"{time.perf_counter() - t0:.0f}s", flush=True)

    names = list(dict.fromkeys(r["video"] for r in rows))
    per_video = {n: [r for r in rows if r["video"] == n] for n in names}
    summary = {}
    for cfg in args.configs:
        g = [r["gain"][cfg] for r in rows]
        vm = [sum(r["gain"][cfg] for r in per_video[n]) / len(per_video[n]) for n in names]
        summary[cfg] = {"segments": mean_ci(g), "videos": mean_ci(vm), "min": min(g),
                        "worse_0.1dB": sum(x < -0.1 for x in g), "per_video": dict(zip(names, vm))}
    lines = [
        f"# PVDNet on held-out real {args.avg}-frame averages",
        "",
        f"{len(rows)} segments of {need} frames from {len(names)} held-out videos (`benchmarks/heldout.yaml`; none "
        "trained on or used to choose a default); each segment gives "
        f"{args.windows} blurry frames at {args.size[0]}x{args.size[1]}, each the linear-light average of {args.avg} "
        "consecutive frames, ground truth its middle frame. Metric: RGB PSNR over whole frames, no alignment. "
        f"Weights: `{args.weights or DEFAULT_PVDNET.name}`. `{args.configs[0]}` took {net_seconds / max(frames_done, 1):.2f} s "
        "per frame on this machine (2 CPU cores, shared with other work).",
        "",
        "Gain over the blurry input (dB), mean over each video's segments:",
        "",
        "| video | segments | blurry PSNR (dB) | " + " | ".join(args.configs) + " |",
        "|---|---:|---:|" + "---:|" * len(args.configs),
    ]
    for n in names:
        rs = per_video[n]
        lines.append(f"| {n} | {len(rs)} | {sum(r['blurry_psnr'] for r in rs) / len(rs):.2f} | "
                     + " | ".join(f"{summary[c]['per_video'][n]:+.2f}" for c in args.configs) + " |")
    lines += [
        "",
        "Summary (95 % Student t intervals; the interval over videos is the one to trust, since segments of one "
        "video are correlated):",
        "",
        "| configuration | mean over segments | mean over videos | min segment | segments worse by > 0.1 dB |",
        "|---|---:|---:|---:|---:|",
    ]
    for cfg in args.configs:
        s = summary[cfg]
        lines.append(f"| {cfg} | {_fmt_ci(*s['segments'])} | {_fmt_ci(*s['videos'])} | {s['min']:+.2f} | "
                     f"{s['worse_0.1dB']} of {len(rows)} |")
    lines += ["", "Command: `PYTHONPATH=src python benchmarks/pvdnet_heldout.py --configs " + " ".join(args.configs)
              + f" --windows {args.windows} --avg {args.avg} --size {args.size[0]} {args.size[1]}`", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pvdnet_heldout_avg{args.avg}.md").write_text("\n".join(lines))
    (out / f"pvdnet_heldout_avg{args.avg}.json").write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
