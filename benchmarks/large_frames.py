"""Large frames: restore a 1280x720 clip with svi and pvdnet through the CLI, tiled, and report
peak memory, time, PSNR against the ground truth and a seam score.

    python benchmarks/large_frames.py [--clip PATH] [--frames 3] [--steps 4] [--methods svi,pvdnet]

The clip (default: the bundled-sample-independent ``$DATA/clips/bigbuckbunny.mp4``, else a
synthetic smooth clip) is resized to 1280x720. ``svi`` restores ``blur:gauss:1.5`` with noise
0.01; ``pvdnet`` restores a 5-frame temporal average. Every run is a ``vidrestore restore``
subprocess, so its peak resident memory (``ru_maxrss`` of the child) is measured alone.

Seam score: the mean absolute horizontal (vertical) difference of the output across the columns
(rows) where neighbouring tiles blend, divided by the same quantity of the ground truth; the
ratio elsewhere in the frame is printed beside it. Seams would show as a ratio at the blend
columns clearly above the ratio elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vidrestore.io import read_video, write_video
from vidrestore.ops import parse
from vidrestore.tiling import DEFAULT_TILE, DEFAULT_TILE_OVERLAP, tile_starts

H, W = 720, 1280


def load_clip(path: str | None, frames: int) -> torch.Tensor:
    if path and Path(path).exists():
        x = read_video(path)[0][:, :, :frames]
        b, c, t, h, w = x.shape
        x = F.interpolate(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), size=(H, W), mode="area" if h > H else "bicubic", antialias=h <= H)
        return x.reshape(b, t, c, H, W).permute(0, 2, 1, 3, 4).clamp(0, 1).contiguous()
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand(1, 3, 18, 32, generator=g), size=(H, W), mode="bicubic").clamp(0, 1)
    return torch.stack([torch.roll(base, 3 * i, dims=3) for i in range(frames)], 2)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(1 / (a - b).square().mean())).item()


def seam_ratio(out: torch.Tensor, gt: torch.Tensor) -> dict:
    """Ratio of the output's and the ground truth's mean absolute neighbour difference, at the
    blend zones of the tiles that ``--tile auto`` uses and away from them."""
    tile, ov = DEFAULT_TILE, DEFAULT_TILE_OVERLAP
    cols = set()
    for s in tile_starts(W, tile, ov)[1:]:
        cols.update(range(s, s + ov))
    rows = set()
    for s in tile_starts(H, tile, ov)[1:]:
        rows.update(range(s, s + ov))
    dx_o, dx_g = (out[..., 1:] - out[..., :-1]).abs(), (gt[..., 1:] - gt[..., :-1]).abs()
    dy_o, dy_g = (out[..., 1:, :] - out[..., :-1, :]).abs(), (gt[..., 1:, :] - gt[..., :-1, :]).abs()
    cm = torch.zeros(W - 1, dtype=torch.bool)
    cm[[c - 1 for c in sorted(cols) if 0 < c < W]] = True
    rm = torch.zeros(H - 1, dtype=torch.bool)
    rm[[r - 1 for r in sorted(rows) if 0 < r < H]] = True
    return {
        "x_blend": (dx_o[..., cm].mean() / dx_g[..., cm].mean()).item(),
        "x_else": (dx_o[..., ~cm].mean() / dx_g[..., ~cm].mean()).item(),
        "y_blend": (dy_o[..., rm, :].mean() / dy_g[..., rm, :].mean()).item(),
        "y_else": (dy_o[..., ~rm, :].mean() / dy_g[..., ~rm, :].mean()).item(),
    }


def run_cli(args: list[str]) -> tuple[float, float]:
    """Run ``vidrestore`` in a child process; (seconds, peak RSS of the child in MB)."""
    t0 = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code = "import sys; from vidrestore.cli.main import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"vidrestore {' '.join(args)} failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux): run the larger job last or alone.
    return time.time() - t0, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=os.path.expandvars("$DATA/clips/bigbuckbunny.mp4"))
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--methods", default="pvdnet,svi")
    ap.add_argument("--tile", default="auto", help="--tile of restore (auto; off: whole frames, for comparison).")
    ap.add_argument("--out", default=None, help="Write the results as JSON here.")
    a = ap.parse_args()
    gt = load_clip(a.clip, a.frames)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_video(tmp / "gt.npz", gt, 24.0)
        for method in a.methods.split(","):
            if method == "pvdnet":
                op = parse("tblur:uniform:5:reflect")
                y = op.A(gt)
                extra = []
            else:
                op = parse("blur:gauss:1.5")
                y = (op.A(gt) + 0.01 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
                extra = ["--op", "blur:gauss:1.5", "--sigma-y", "0.01", "--steps", str(a.steps)]
            write_video(tmp / "y.npz", y, 24.0)
            seconds, peak_mb = run_cli(["restore", str(tmp / "y.npz"), "-o", str(tmp / f"{method}.npz"), "-m", method, "--tile", a.tile, "-q", *extra])
            out = read_video(tmp / f"{method}.npz")[0]
            row = {"method": method, "tile": a.tile, "size": f"{H}x{W}", "frames": a.frames, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb),
                   "psnr_input": round(psnr(y, gt), 2), "psnr_output": round(psnr(out, gt), 2),
                   "seams": {k: round(v, 3) for k, v in seam_ratio(out, gt).items()}}
            print(json.dumps(row), flush=True)
            results.append(row)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
