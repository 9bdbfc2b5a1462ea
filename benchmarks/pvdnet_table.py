"""PVDNet benchmark: held-out synthetic blur and frame-averaged real video.

Usage::

    PYTHONPATH=src python benchmarks/pvdnet_table.py --photos $DATA/photos \\
        --photos $DATA/skimage [--weights FOLDER] [--out benchmarks/results]

Sets:

* ``synthetic``: clips rendered by :class:`vidrestore.data.blur_synth.SyntheticBlurClips`
  from the *held-out* photos only (``DEFAULT_HOLDOUT``: never trained on), seed 1234,
  ``--clips`` clips of ``--frames`` frames at ``--size``.
* ``bikes-avg3``: real video (bikes.mp4, held out from training): each blurry frame is the
  linear-light (gamma 2.2) average of 3 consecutive frames, the ground truth is the middle
  one (disjoint windows, as Nah et al. build GoPro); centre crop ``--real-crop``.

Methods (the network alone: ``restore``'s colour correction and guard are off here, see
``benchmarks/pvdnet_real_avg.py``): the blurry input; per-frame Wiener deconvolution with a linear motion kernel
estimated from DIS flow (classical baseline); PVDNet with zero flow (no motion
compensation, the ablation: same weights); PVDNet with its BIMNet flow; PVDNet with DIS
flow. Metrics: the paper's aligned protocol (16-px border, gain fit, integer DFT
translation, luma PSNR/SSIM, first frame skipped; :mod:`vidrestore.metrics.aligned`).
Timing: seconds per frame at 640x360 on the CPU (``--timing-frames`` frames, torch threads
as given by ``--threads``).

Writes ``pvdnet_table.md`` and ``pvdnet_table.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidrestore.data.blur_synth import GAMMA, SyntheticBlurClips
from vidrestore.data.samples import sample_path
from vidrestore.flow import dis_flow
from vidrestore.io import read_video
from vidrestore.metrics import aligned_video_metrics
from vidrestore.ops.blur import motion_kernel
from vidrestore.workflows.deblur import DEFAULT_PVDNET, deblur_video_pvdnet, load_pvdnet

EXPOSURE_GUESS = 0.75  # Wiener: blur length = exposure * |median flow| (frames)
WIENER_NSR = 1e-2


def wiener_frame(y: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Wiener deconvolution of one ``(3, H, W)`` frame with a linear motion kernel whose
    direction and length come from the median of a flow field ``(2, H, W)``."""
    u, v = float(flow[0].median()), float(flow[1].median())
    length = EXPOSURE_GUESS * math.hypot(u, v)
    if length < 1.0:
        return y.clone()
    k = motion_kernel(length, math.degrees(math.atan2(-v, u))).float()
    kh, kw = k.shape
    pad = max(kh, kw)
    yp = F.pad(y[None], (pad, pad, pad, pad), mode="reflect")[0]
    h, w = yp.shape[-2:]
    kk = torch.zeros(h, w)
    kk[:kh, :kw] = k
    kk = torch.roll(kk, (-(kh // 2), -(kw // 2)), (0, 1))
    K = torch.fft.rfft2(kk)
    X = torch.fft.rfft2(yp) * K.conj() / (K.abs() ** 2 + WIENER_NSR)
    x = torch.fft.irfft2(X, s=(h, w))
    return x[:, pad:-pad, pad:-pad].clamp(0, 1)


def wiener_video(video: torch.Tensor) -> torch.Tensor:
    """Per-frame Wiener on ``(1, 3, T, H, W)``; the flow of frame t is DIS between t and t-1
    (t+1 and t for the first frame)."""
    t_len = video.shape[2]
    out = []
    for t in range(t_len):
        a, b = (t, t - 1) if t > 0 else (min(1, t_len - 1), 0)
        flow = dis_flow(video[:, :, a], video[:, :, b])[0]
        out.append(wiener_frame(video[0, :, t], flow))
    return torch.stack(out, 1)[None]


def synthetic_set(photos, clips, frames, size, seed):
    """Held-out clips with the default :class:`BlurSynthConfig` (the motion and exposure ranges
    the training data use)."""
    ds = SyntheticBlurClips.from_folders(photos, split="holdout", size=size, num_frames=frames, seed=seed)
    items, flows = [], []
    for k in range(clips):
        c = ds.clip(k)
        items.append((f"syn{k:02d}", c["blurry"][None], c["sharp"][None]))
        flows.append(c["flow"][None])
    return items, [p.name for p in ds.files], flows, ds.config


def flow_epe(net, items, flows):
    """Mean end-point error (pixels) of the flows t -> t-1 estimated on the blurry frames."""
    err = {"zero flow": [], "BIMNet (in the weights)": [], "DIS (OpenCV)": []}
    with torch.no_grad():
        for (_, blurry, _), gt in zip(items, flows):
            for t in range(1, blurry.shape[2]):
                cur, prev, g = blurry[:, :, t], blurry[:, :, t - 1], gt[:, :, t]
                for name, f in (("zero flow", torch.zeros_like(g)), ("BIMNet (in the weights)", net.flow(cur, prev)), ("DIS (OpenCV)", dis_flow(cur, prev))):
                    err[name].append(float((f - g).square().sum(1).sqrt().mean()))
    return {k: float(np.mean(v)) for k, v in err.items()}


def averaged_real(name: str, path: Path, windows: int, crop: tuple[int, int], avg: int = 3):
    video, _ = read_video(path, frames=windows * avg)
    _, _, t, h, w = video.shape
    ch, cw = min(crop[0], h) // 32 * 32, min(crop[1], w) // 32 * 32
    top, left = (h - ch) // 2, (w - cw) // 2
    v = video[..., top : top + ch, left : left + cw]
    n = t // avg
    lin = v[:, :, : n * avg].clamp(0, 1).pow(GAMMA).reshape(1, 3, n, avg, ch, cw).mean(3)
    blurry = lin.pow(1 / GAMMA)
    sharp = v[:, :, avg // 2 : n * avg : avg]
    return [(f"{name}-avg{avg}", blurry, sharp)]


def run_methods(net, blurry):
    outs = {"blurry input": blurry, "Wiener (DIS kernel)": wiener_video(blurry)}
    for label, flow in (("PVDNet, zero flow (ablation)", "zero"), ("PVDNet, BIMNet flow", "bimnet"), ("PVDNet, DIS flow", "dis")):
        outs[label] = deblur_video_pvdnet(blurry, net, flow=flow, colour=False, guard=False)
    return outs


def timing(net, frames: int):
    video, _ = read_video(sample_path("bigbuckbunny"), frames=frames, resize=(360, 640))
    res = {}
    t0 = time.perf_counter()
    wiener_video(video)
    res["Wiener (DIS kernel)"] = (time.perf_counter() - t0) / frames
    for label, flow in (("PVDNet, zero flow (ablation)", "zero"), ("PVDNet, BIMNet flow", "bimnet"), ("PVDNet, DIS flow", "dis")):
        t0 = time.perf_counter()
        deblur_video_pvdnet(video, net, flow=flow, colour=False, guard=False)
        res[label] = (time.perf_counter() - t0) / frames
    res["blurry input"] = 0.0
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", action="append", required=True, help="Photo folder(s); only the held-out photos are used.")
    ap.add_argument("--weights", default=None, help="PVDNet weight folder or bundled name (default: the default bundled model).")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, nargs=2, default=(128, 160))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--real", action="append", default=None, help="Real clip(s): sample name or path (default: bikes).")
    ap.add_argument("--real-windows", type=int, default=10, help="Blurry frames per real clip.")
    ap.add_argument("--real-crop", type=int, nargs=2, default=(256, 384))
    ap.add_argument("--timing-frames", type=int, default=3, help="Frames timed at 640x360 (0: skip timing).")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = load_pvdnet(args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sets = {}
    syn, files, syn_flows, blur_cfg = synthetic_set(args.photos, args.clips, args.frames, tuple(args.size), args.seed)
    epe = flow_epe(net, syn, syn_flows)
    print("flow EPE", epe, flush=True)
    sets["synthetic (held-out photos)"] = syn
    real_items = []
    for r in args.real or ["bikes"]:
        path = Path(r) if Path(r).exists() else sample_path(r)
        real_items += averaged_real(Path(r).stem, path, args.real_windows, tuple(args.real_crop))
    sets["real: " + ", ".join(i[0] for i in real_items)] = real_items

    rows = []
    for set_name, items in sets.items():
        scores: dict[str, list] = {}
        for name, blurry, sharp in items:
            for method, x in run_methods(net, blurry).items():
                m = aligned_video_metrics(x, sharp)
                scores.setdefault(method, []).append((m["psnr"], m["ssim"], m["frames_scored"]))
            print(set_name, name, {k: round(v[-1][0], 2) for k, v in scores.items()}, flush=True)
        for method, vals in scores.items():
            n = sum(v[2] for v in vals)
            # frame-weighted mean over all scored frames of all clips (the paper's averaging)
            p = sum(v[0] * v[2] for v in vals) / n
            s = sum(v[1] * v[2] for v in vals) / n
            rows.append({"set": set_name, "method": method, "psnr": round(p, 2), "ssim": round(s, 4), "frames": n})
    print("timing ...", flush=True)
    t = timing(net, args.timing_frames) if args.timing_frames > 0 else {}
    for r in rows:
        r["sec_per_frame_640x360"] = round(t[r["method"]], 3) if t else float("nan")

    with open(out / "pvdnet_table.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    cfg = getattr(net, "pretrained_config", {})
    lines = [
        "# PVDNet benchmark",
        "",
        f"Weights: `{args.weights or 'src/vidrestore/weights/' + DEFAULT_PVDNET.name}` (trained steps {cfg.get('trained_steps')}, "
        f"training flow `{cfg.get('flow_source', cfg.get('flow'))}`).",
        f"Synthetic set: {args.clips} clips x {args.frames} frames at {args.size[0]}x{args.size[1]} from the held-out photos "
        f"{', '.join(files)} (seed {args.seed}); blur: drift up to {blur_cfg.max_speed:g} px/frame, acceleration "
        f"{blur_cfg.max_accel:g} px/frame², shake {blur_cfg.max_shake:g} px, rotation {blur_cfg.max_rot:g} deg/frame, zoom "
        f"{blur_cfg.max_zoom:g}/frame, exposure {blur_cfg.exposure[0]:g}-{blur_cfg.exposure[1]:g} of the frame interval "
        f"(up to {blur_cfg.max_sub} sub-frames averaged in linear light); stop-and-go drift (speed x (1 - rho cos(2 pi f t + phi))) "
        f"in a fraction {blur_cfg.stop_go_prob:g} of the clips, rho {blur_cfg.stop_go_depth[0]:g}-{blur_cfg.stop_go_depth[1]:g}, "
        f"f {blur_cfg.stop_go_freq[0]:g}-{blur_cfg.stop_go_freq[1]:g} cycles/frame (the training generator's defaults).",
        f"Real set: {', '.join(i[0] for i in real_items)}: 3-frame linear-light averages of held-out real video, "
        f"centre crop {args.real_crop[0]}x{args.real_crop[1]} (rounded to multiples of 32), {args.real_windows} blurry frames.",
        "Metrics: aligned protocol of Koehler et al./PVDNet (16-px border, LSQ gain, integer DFT shift, luma PSNR/SSIM, "
        "first frame of each clip skipped, mean over all scored frames).",
        f"Timing: seconds per frame at 640x360 (bigbuckbunny, {args.timing_frames} frames), CPU, torch threads {args.threads}, "
        f"{platform.processor() or platform.machine()}; the machine was shared with other jobs, so timings are indicative.",
        "",
        "| set | method | PSNR (dB) | SSIM | frames | s/frame 640x360 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['set']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['frames']} | {r['sec_per_frame_640x360']:.3f} |")
    lines += ["", "Flow accuracy on the blurry synthetic held-out frames (end-point error vs the exact flow, pixels):", "",
              "| flow | EPE (px) |", "|---|---:|"] + [f"| {k} | {v:.2f} |" for k, v in epe.items()]
    lines += ["", f"Command: `PYTHONPATH=src python benchmarks/pvdnet_table.py {' '.join('--photos ' + p for p in args.photos)}"
              f"{' --weights ' + args.weights if args.weights else ''} --clips {args.clips} --frames {args.frames} --size {args.size[0]} {args.size[1]}"
              f"{' --timing-frames ' + str(args.timing_frames) if args.timing_frames != 3 else ''}{' --out ' + args.out if args.out != 'benchmarks/results' else ''}`", ""]
    (out / "pvdnet_table.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
