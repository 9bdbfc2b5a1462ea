"""Cost and accuracy of one SVI data step: CG (as ``-m svi`` runs it) vs the exact solve.

For each operator, on a 1x3x8x128x128 float32 video: the time of building the exact solver
(one-off), of one exact solve, and of CG with the restore defaults (20 iterations, relative
tolerance 1e-6) warm-started at a smooth "Tweedie" video; and the relative distance of the CG
result to the exact solution at the smallest and largest data weight g_t of the default noisy
schedule (t_start 100, 20 steps, gamma 0.3 * (sigma_t / sigma_y)^2, sigma_y = 0.01).

    python benchmarks/data_step_cost.py [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from vidrestore.diffusion import alphas_cumprod, linear_betas
from vidrestore.linalg import conjugate_gradient
from vidrestore.ops import count_applications, measure, parse, prox_solver
from vidrestore.solvers.svi import data_weight, sampling_timesteps

SPECS = ["tblur:uniform:7:reflect,blur:gauss:2", "tblur:uniform:7:reflect,sr:4", "tblur:uniform:7:circular,sr:4"]


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    acp = alphas_cumprod(linear_betas())
    ts = sampling_timesteps(20, 1000, 100)
    gs = [data_weight(0.3, "sigma", float(acp[t]), 0.01) for t in ts]
    shape = (1, 3, 8, 128, 128)
    g = torch.Generator().manual_seed(0)
    # A smooth random video (bilinear upsampling of 16x16 noise) as ground truth and warm start.
    base = torch.rand(1, 3 * 8, 16, 16, generator=g)
    x = torch.nn.functional.interpolate(base, size=(128, 128), mode="bilinear", align_corners=False).reshape(shape)
    x0 = x + 0.05 * torch.randn(shape, generator=g)
    print(f"g_t over the 20 steps: {min(gs):.3g} .. {max(gs):.3g}")
    print("| operator | build (s) | exact solve (s) | CG, 20 it. tol 1e-6 (s) | CG iterations at g_max / g_min | rel. error of CG at g_max / g_min |")
    print("|---|---|---|---|---|---|")
    for spec in SPECS:
        op = parse(spec)
        y = measure(op, x.double(), 0.01, torch.Generator().manual_seed(1)).float()
        aty = op.A_adjoint(y)
        build, prox = _best(lambda: prox_solver(op, shape), a.repeat)
        cols = []
        for gt in (max(gs), min(gs)):
            rhs = x0 + gt * aty
            t_exact, v = _best(lambda: prox(rhs, gt), a.repeat)
            mv = lambda u: u + gt * op.A_adjoint_A(u)  # noqa: E731
            with count_applications() as n:
                vc = conjugate_gradient(mv, rhs, x0, max_iter=20, tol=1e-6)
            t_cg, _ = _best(lambda: conjugate_gradient(mv, rhs, x0, max_iter=20, tol=1e-6), a.repeat)
            err = float((vc - v).norm() / v.norm())
            cols.append((t_exact, t_cg, (n.calls - 2) // 2, err))  # 2 calls: the initial residual
        (e1, c1, i1, r1), (e2, c2, i2, r2) = cols
        print(f"| `{spec}` | {build:.3f} | {e1:.4f} | {c1:.3f} / {c2:.3f} | {i1} / {i2} | {r1:.1e} / {r2:.1e} |")


if __name__ == "__main__":
    main()
