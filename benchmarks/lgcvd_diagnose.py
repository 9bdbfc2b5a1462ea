"""Diagnostics behind the LGC-VD moving-digits results (see benchmarks/results/lgcvd_diagnosis.md).

Measures, for one or more weight folders, on held-out moving digits (test split, seed 0, 32x32):

1. **One-step estimates**: PSNR per clip position of ``x0_hat`` from a single network call on
   ground-truth clips noised to timestep ``t`` (prediction task: positions 0, 1 given). At
   ``t = 999`` the input is pure noise, so positions 0 and 1 measure how well the network copies
   its local condition and positions 2..7 are its posterior mean of the future.
2. **Background haze of samples**: the median of every sampled frame per clip position (0 for a
   clean black background; 84% of ground-truth pixels are black).
3. **Data**: how far constant-velocity extrapolation from two frames lands from the true
   (rounded) position k frames ahead, for the dataset's speed range (no bounces), and the scores
   of the true future shifted sideways by 1..3 px.

Run:  PYTHONPATH=src python benchmarks/lgcvd_diagnose.py src/vidrestore/weights/lgcvd-digits [more folders]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vidrestore.checkpoint import from_pretrained
from vidrestore.data.moving_digits import moving_digits
from vidrestore.diffusion.denoisers import x0_from_v
from vidrestore.metrics import psnr, ssim
from vidrestore.nets.lgcvd import local_condition
from vidrestore.tensor import to_model, to_pixel
from vidrestore.train.lgcvd import lgcvd_alphas_cumprod
from vidrestore.workflows.lgcvd import sample_clip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    V = args.videos
    gt = moving_digits(V, frames=8, size=32, split="test", seed=args.seed, channels=1)
    pos = torch.tensor([[0, 1]] * V)
    cond = local_condition(gt, pos, 8)
    acp = lgcvd_alphas_cumprod().float()
    noise = torch.randn(gt.shape, generator=torch.Generator().manual_seed(args.seed))
    for path in args.models:
        net = from_pretrained(path).eval()
        ctx = net.encode_context(None, like=gt) if net.global_context else None
        print(f"## {path}")
        for t in (100, 300, 600, 900, 999):
            a = acp[t]
            xt = a.sqrt() * to_model(gt) + (1 - a).sqrt() * noise
            with torch.no_grad():
                x0 = to_pixel(x0_from_v(xt, net(xt, torch.full((V,), t), cond, ctx), a).clamp(-1, 1))
            per_pos = psnr(x0, gt, reduction="none").float().mean(0).tolist()
            print(f"one-step x0 PSNR at t={t:3d} per position: " + " ".join(f"{v:.1f}" for v in per_pos))
        for eta in (1.0, 0.0):
            y = sample_clip(net, gt, pos, None, steps=args.steps, eta=eta,
                            generator=torch.Generator().manual_seed(args.seed + 1))
            med = y[:, 0].flatten(2).median(-1).values.mean(0).tolist()
            print(f"sampled clip ({args.steps} steps, eta {eta}): frame median per position "
                  + " ".join(f"{v:.3f}" for v in med)
                  + f"; PSNR/SSIM positions 2..7 {psnr(y[:, :, 2:], gt[:, :, 2:]):.2f} / {ssim(y[:, :, 2:], gt[:, :, 2:]):.3f}")
    print("## data")
    rng = np.random.default_rng(args.seed)
    n = 200_000
    p = rng.uniform(0, 20, n)  # span of a 12 px digit in a 32 px frame
    v = rng.uniform(1.0, 2.5, n) * np.cos(rng.uniform(0, 2 * np.pi, n))
    r0, r1 = np.round(p), np.round(p + v)
    for k in (1, 2, 4, 8):
        err = np.abs(r1 + k * (r1 - r0) - np.round(p + (k + 1) * v))
        print(f"constant-velocity extrapolation {k} frame(s) ahead: mean |error| {err.mean():.2f} px per axis, exact {np.mean(err == 0):.0%}")
    g14 = moving_digits(32, frames=14, size=32, split="test", seed=args.seed, channels=1)[:, :, 2:10]
    for k in (1, 2, 3):
        sh = torch.roll(g14, shifts=k, dims=-1)
        print(f"true future shifted by {k} px (first 8 predicted frames): PSNR {psnr(sh, g14):.2f}, SSIM {ssim(sh, g14):.3f}")
    for off in (0.01, 0.02, 0.05):
        print(f"true future + {off} (haze): PSNR {psnr((g14 + off).clamp(0, 1), g14):.2f}, SSIM {ssim((g14 + off).clamp(0, 1), g14):.3f}")
    z = torch.zeros_like(g14)
    print(f"black frames: PSNR {psnr(z, g14):.2f}, SSIM {ssim(z, g14):.3f}")


if __name__ == "__main__":
    main()
