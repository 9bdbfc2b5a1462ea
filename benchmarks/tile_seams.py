"""Tiled vs whole-frame prior at 1280x720: one x0 estimate of the bundled prior at t = 100 on a
bigbuckbunny frame, whole and in 256-pixel tiles (overlap 32), with PSNR against the ground
truth and between the two, and the seam score of benchmarks/large_frames.py for both.

    DATA=... python benchmarks/tile_seams.py

A seam would show as a higher score at the blend rows/columns of the tiled estimate than of the
whole-frame estimate (the ground-truth normalisation leaves content effects in both alike).
"""

import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from large_frames import load_clip, seam_ratio
from vidrestore.priors import load_prior
torch.manual_seed(0)
gt = load_clip(os.path.expandvars("$DATA/clips/bigbuckbunny.mp4"), 1)[:, :, 0]  # (1,3,720,1280)
prior = load_prior("default")
t = torch.full((1,), 100)
abar = prior.alphas_cumprod[100]
x0m = gt * 2 - 1
xt = abar.sqrt() * x0m + (1 - abar).sqrt() * torch.randn(x0m.shape, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    t0 = time.time(); whole = (prior.x0(xt, t) + 1) / 2; tw = time.time() - t0
    tp = copy.copy(prior); tp.tile, tp.tile_overlap = 256, 32
    t0 = time.time(); tiled = (tp.x0(xt, t) + 1) / 2; tt = time.time() - t0
psnr = lambda a, b: (10 * torch.log10(1 / (a - b).square().mean())).item()
print("psnr whole vs gt", round(psnr(whole.clamp(0,1), gt), 2), "tiled vs gt", round(psnr(tiled.clamp(0,1), gt), 2), "tiled vs whole", round(psnr(tiled, whole), 2))
print("seams of tiled vs gt", {k: round(v, 3) for k, v in seam_ratio(tiled, gt).items()})
print("seams of whole vs gt", {k: round(v, 3) for k, v in seam_ratio(whole, gt).items()})
print("seconds whole", round(tw, 1), "tiled", round(tt, 1))
