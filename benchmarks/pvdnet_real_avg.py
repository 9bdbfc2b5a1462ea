"""PVDNet on real frame-averaged clips: PSNR gain over the blurry input, per clip.

Usage::

    PYTHONPATH=src python benchmarks/pvdnet_real_avg.py --split tune|test \\
        [--configs NAME ...] [--windows 10] [--avg 5] [--size 256 320] [--out benchmarks/results]

Data: the real clips of ``benchmarks/protocol.yaml`` (tune split: bikes, vtest; test split:
city, box, cup, tree), read from their protocol start frame, resized so that the shorter side
is ``--size[0]`` (aspect kept) and centre-cropped to ``--size``. Each blurry frame is the
linear-light (gamma 2.2) average of ``--avg`` consecutive frames (disjoint windows, as Nah
et al. build GoPro); its ground truth is the middle frame (for an even ``--avg``, the later
of the two middle frames). ``--windows`` blurry frames per clip.

Configurations (``--configs``; ``flow/colour/guard``):

* ``default``: what ``vidrestore restore -m pvdnet`` runs (``auto+colourlin+guard``);
* ``old``: the previous default: BIMNet at full size, no colour correction, no guard;
* ``FLOW`` (``auto``, ``bimnet``, ``bimnet-pyramid``, ``dis``): that flow without the
  corrections; ``FLOW+colour``: with the low-frequency colour correction;
  ``FLOW+colour16`` with a Gaussian low-pass of sigma 16 px, ``FLOW+colourlin`` /
  ``FLOW+colour16lin`` the same in linear light (gamma 2.2);
  ``FLOW+colour+guard``: with the correction and the do-no-harm guard.

Metric: RGB PSNR over whole frames against the sharp middle frames (no alignment: what a
viewer sees), per clip from the mean squared error over its frames. The table gives each
configuration's gain over the blurry input per clip, the mean with a 95 % Student-t interval
over clips, and the minimum; and the mean colour shift of the output against the input
(``mean(out) - mean(in)`` per channel, in 8-bit levels, averaged over clips).

Writes ``pvdnet_real_avg_<split>_avg<N>.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from vidrestore.data.blur_synth import GAMMA
from vidrestore.data.samples import sample_path
from vidrestore.io import read_video
from vidrestore.workflows.bench import mean_ci
from vidrestore.workflows.deblur import DEFAULT_PVDNET, deblur_video_pvdnet, load_pvdnet

PROTOCOL = Path(__file__).resolve().parent / "protocol.yaml"


def clip_path(spec: str) -> Path:
    if spec.startswith("sample:"):
        return sample_path(spec.split(":", 1)[1])
    return Path(os.path.expandvars(spec))


def averaged_clip(path: Path, start: int, windows: int, avg: int, size: tuple[int, int]):
    """``(blurry, sharp)``, each ``(1, 3, windows, H, W)``: linear-light averages of ``avg``
    consecutive frames and their middle frames, at ``size`` (shorter side resized, centre crop)."""
    need = windows * avg
    # Some clips hold fewer frames than their container declares (tree.avi): read what is there
    # and move the window back so that it ends at the last decodable frame.
    v, _ = read_video(path, max_frames=start + need, allow_truncated=True)
    if v.shape[2] < need:
        raise SystemExit(f"{path} has only {v.shape[2]} frames; {need} needed")
    s0 = min(start, v.shape[2] - need)
    if s0 != start:
        print(f"{path.name}: {v.shape[2]} decodable frames, window starts at {s0} instead of {start}", flush=True)
    return average_windows(v[:, :, s0 : s0 + need], windows, avg, size)


def average_windows(v: torch.Tensor, windows: int, avg: int, size: tuple[int, int]):
    """``(blurry, sharp)`` from the first ``windows * avg`` frames of ``v`` ``(1, 3, T, h, w)``:
    resized so that the frames cover ``size`` (aspect kept; area filter when shrinking,
    bicubic when enlarging) and centre-cropped, then linear-light (gamma 2.2) averages of
    ``avg`` consecutive frames and their middle frames."""
    v = v[:, :, : windows * avg]
    _, _, t, h, w = v.shape
    s = size[0] / min(h, w) if size[0] / h * w >= size[1] else size[1] / w
    rh, rw = max(size[0], round(h * s)), max(size[1], round(w * s))
    frames = v[0].transpose(0, 1)  # (T, 3, h, w)
    mode = dict(mode="area") if s < 1 else dict(mode="bicubic", align_corners=False)
    frames = F.interpolate(frames, size=(rh, rw), **mode).clamp(0, 1)
    top, left = (rh - size[0]) // 2, (rw - size[1]) // 2
    frames = frames[..., top : top + size[0], left : left + size[1]].transpose(0, 1)[None]
    lin = frames.pow(GAMMA).reshape(1, 3, windows, avg, *size).mean(3)
    return lin.pow(1 / GAMMA), frames[:, :, avg // 2 :: avg][:, :, :windows]


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / (x - y).square().mean()))


def run_config(net, blurry, name: str):
    if name == "default":
        return deblur_video_pvdnet(blurry, net, quiet=True)
    if name == "old":
        return deblur_video_pvdnet(blurry, net, flow="bimnet", colour=False, guard=False, quiet=True)
    parts = name.split("+")
    col = [p for p in parts if p.startswith("colour")]
    kw = {}
    if col:  # "colour[S][lin]": Gaussian sigma S px (default: frame mean), "lin": in linear light
        spec = col[0][6:]
        if spec.endswith("lin"):
            kw["colour_gamma"], spec = GAMMA, spec[:-3]
        if spec:
            kw["colour_sigma"] = float(spec)
    return deblur_video_pvdnet(blurry, net, flow=parts[0], colour=bool(col), guard="guard" in parts, quiet=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["tune", "test"], default="tune")
    ap.add_argument("--configs", nargs="+", default=["old", "auto", "default"])
    ap.add_argument("--clips", nargs="+", default=None, help="Only these clips of the split.")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--avg", type=int, default=5)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 320))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    proto = yaml.safe_load(PROTOCOL.read_text())
    net = load_pvdnet(args.weights).eval()
    res: dict = {"clips": {}, "args": vars(args)}
    t0 = time.perf_counter()
    for clip in args.clips or proto["split"][args.split]:
        spec = proto["clips"][clip]
        blurry, sharp = averaged_clip(clip_path(spec["path"]), int(spec.get("start", 0)), args.windows, args.avg, tuple(args.size))
        base = psnr(blurry, sharp)
        row = {"blurry_psnr": base, "gain": {}, "shift": {}, "sharp_shift": [255 * float(v) for v in (sharp.mean((0, 2, 3, 4)) - blurry.mean((0, 2, 3, 4)))]}
        for cfg in args.configs:
            out = run_config(net, blurry, cfg)
            row["gain"][cfg] = psnr(out, sharp) - base
            row["shift"][cfg] = [255 * float(v) for v in (out.mean((0, 2, 3, 4)) - blurry.mean((0, 2, 3, 4)))]
        res["clips"][clip] = row
        print(clip, f"blurry {base:.2f} dB", {k: round(v, 2) for k, v in row["gain"].items()}, f"{time.perf_counter() - t0:.0f}s", flush=True)

    clips = list(res["clips"])
    lines = [
        f"# PVDNet on real {args.avg}-frame averages ({args.split} split)",
        "",
        f"Clips: {', '.join(clips)} ({args.split} split of `benchmarks/protocol.yaml`), {args.windows} blurry frames each, "
        f"{args.size[0]}x{args.size[1]}; each blurry frame is the linear-light average of {args.avg} consecutive frames, "
        "the ground truth its middle frame. Metric: RGB PSNR over whole frames, no alignment. "
        f"Weights: `{args.weights or DEFAULT_PVDNET.name}`.",
        "",
        "Gain over the blurry input (dB); mean ± 95 % interval over clips (Student t), minimum over clips:",
        "",
        "| configuration | " + " | ".join(clips) + " | mean | min |",
        "|---|" + "---:|" * (len(clips) + 2),
        "| blurry input PSNR (dB) | " + " | ".join(f"{res['clips'][c]['blurry_psnr']:.2f}" for c in clips) + " | | |",
    ]
    summary = {}
    for cfg in args.configs:
        g = [res["clips"][c]["gain"][cfg] for c in clips]
        m, h = mean_ci(g)
        summary[cfg] = {"mean": m, "ci95": h, "min": min(g)}
        hw = f" ± {h:.2f}" if h == h else ""
        lines.append(f"| {cfg} | " + " | ".join(f"{v:+.2f}" for v in g) + f" | {m:+.2f}{hw} | {min(g):+.2f} |")
    lines += ["", "Mean colour shift against the blurry input, R/G/B in 8-bit levels (mean over clips):", "", "| | R | G | B |", "|---|---:|---:|---:|"]
    sh = [sum(res["clips"][c]["sharp_shift"][k] for c in clips) / len(clips) for k in range(3)]
    lines.append("| ground truth (sharp) | " + " | ".join(f"{v:+.2f}" for v in sh) + " |")
    for cfg in args.configs:
        s = [sum(res["clips"][c]["shift"][cfg][k] for c in clips) / len(clips) for k in range(3)]
        lines.append(f"| {cfg} | " + " | ".join(f"{v:+.2f}" for v in s) + " |")
    lines += ["", f"Command: `PYTHONPATH=src python benchmarks/pvdnet_real_avg.py --split {args.split} --configs {' '.join(args.configs)} "
              f"--windows {args.windows} --avg {args.avg} --size {args.size[0]} {args.size[1]}`", ""]
    res["summary"] = summary
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pvdnet_real_avg_{args.split}_avg{args.avg}.md").write_text("\n".join(lines))
    (out / f"pvdnet_real_avg_{args.split}_avg{args.avg}.json").write_text(json.dumps(res, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
