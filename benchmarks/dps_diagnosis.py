"""Why DPS is weak in the SVI benchmark: bug, prior, or algorithm?

Usage:

    python benchmarks/dps_diagnosis.py [--parts gauss,temporal,jacobian,frame] [--frame-steps 50,200]
        [--frame-tasks sr:4,inpaint:0.5] [--frame-clip-steps 50,200] [--prior default] [--threads 1]
        [--tag SUFFIX] [--out benchmarks/results]

Parts (all seeded; everything but ``frame`` takes seconds on one CPU thread):

* ``gauss`` — exact Gaussian prior (pixel data ``N(mu, 0.15^2)`` per pixel, ``mu`` a fixed
  random pattern), noiseless 50 % inpainting on a ``(1, 3, 4, 16, 16)`` clip. The posterior is
  known: observed pixels equal ``y``, missing pixels are ``N(mu, 0.15^2)``. Reports the rms error
  on observed pixels, the std of missing pixels around ``mu`` (should be 0.15) and the rms error
  of the mean of 4 samples on missing pixels (should be ``0.15 / 2``) for 50/200/1000 steps and
  ``zeta`` 0.3/1/3 — Algorithm 1 of Chung et al. (ICLR 2023) implemented correctly samples this
  posterior.
* ``temporal`` — the same exact prior on ``(1, 3, 16, 8, 8)`` clips with the benchmark's
  temporal averages (``tblur:uniform:7|13:circular``: invertible, so the posterior is the
  truth), for an i.i.d. clip and a static clip (one frame repeated): DPS at 200/1000 steps with
  per-frame and shared noise, against 20-step SVI and DDS; also ``eig(A^T A)``.
* ``jacobian`` — the bundled prior on one 64x64 frame of ``bikes``, noised to ``t``: Tweedie
  error ``||x0 - x||`` (model space), the norm of the DPS gradient ``grad_{x_t} ||y - A(x0)||``
  and ``||J^T v||`` for a random unit ``v`` (``J = d x0 / d x_t``), against the exact-denoiser
  factor ``sqrt(abar) / (1 - abar)`` of ``J = Cov[x0 | x_t] sqrt(abar) / (1 - abar)``.
* ``frame`` — the bundled prior on one 64x64 frame (spatial tasks ``sr:4`` and
  ``inpaint:0.5``): DPS at ``--frame-steps`` steps (``zeta`` 1; again with clipped ``x0`` at
  ``--frame-clip-steps``) against 20-step SVI (eta 0.8, 5 CG steps). 0.5 s per DPS step on one idle thread.

Writes ``dps_diagnosis{--tag}.md`` under ``--out`` (sections of the parts run).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from vidrestore.solvers.svi import SVI_PAPER

sys.path.insert(0, str(Path(__file__).resolve().parent))

S_PIX = 0.15


def _mean_pattern(h, w):
    g = torch.Generator().manual_seed(0)
    return 0.35 + 0.3 * torch.rand(1, 1, 1, h, w, generator=g, dtype=torch.float64)


def _sample(mu, shape):
    g = torch.Generator().manual_seed(1)
    return mu + S_PIX * torch.randn(shape, generator=g, dtype=torch.float64)


def _prior(mu):
    from vidrestore.diffusion import GaussianPrior, alphas_cumprod, linear_betas
    from vidrestore.tensor import to_model

    return GaussianPrior(to_model(mu)[0], 2 * S_PIX, alphas_cumprod(linear_betas()))


def _table(rows, cols):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return out


def part_gauss():
    from vidrestore.ops import parse
    from vidrestore.solvers import solve_dps

    mu = _mean_pattern(16, 16)
    op = parse("inpaint:0.5", seed=0)
    x = _sample(mu, (1, 3, 4, 16, 16))
    y = op.A(x)
    m = op.A_adjoint(op.A(torch.ones_like(x)))  # 1 on observed pixels, 0 on missing ones
    rows = []
    for steps in (50, 200, 1000):
        for zeta in (0.3, 1.0, 3.0):
            outs = [solve_dps(_prior(mu), op, y, steps=steps, zeta=zeta, seed=k) for k in range(4)]
            avg = torch.stack(outs).mean(0)
            obs = float(((outs[0] - x) * m).pow(2).sum() / m.sum()) ** 0.5
            miss_std = float(((outs[0] - mu) * (1 - m)).pow(2).sum() / (1 - m).sum()) ** 0.5
            miss_avg = float(((avg - mu) * (1 - m)).pow(2).sum() / (1 - m).sum()) ** 0.5
            rows.append({"steps": steps, "zeta": zeta, "rms err observed": f"{obs:.4f}",
                         "std missing (target 0.15)": f"{miss_std:.4f}", "rms err of 4-sample mean, missing (target 0.075)": f"{miss_avg:.4f}"})
            print(rows[-1], flush=True)
    head = ["## Exact Gaussian prior, 50 % inpainting (closed-form posterior)", "",
            "Pixel prior N(mu, 0.15^2), clip (1, 3, 4, 16, 16), noiseless `inpaint:0.5`; sample 0 for the first two columns, "
            "seeds 0-3 for the mean.", ""]
    return head + _table(rows, list(rows[0]))


def part_temporal():
    from vidrestore.metrics import psnr
    from vidrestore.ops import parse
    from vidrestore.solvers import solve_dds, solve_dps, solve_svi

    mu = _mean_pattern(8, 8)
    clips = {"iid": _sample(mu, (1, 3, 16, 8, 8)).clamp(0, 1),
             "static": _sample(mu, (1, 3, 1, 8, 8)).clamp(0, 1).expand(1, 3, 16, 8, 8).contiguous()}
    rows, eig = [], []
    for k in (7, 13):
        spec = f"tblur:uniform:{k}:circular"
        op = parse(spec, num_frames=16)
        ker = torch.zeros(16, dtype=torch.float64)
        ker[torch.arange(-(k // 2), k // 2 + 1) % 16] = 1.0 / k
        lam = torch.fft.fft(ker).abs() ** 2  # eigenvalues of A^T A for a circular temporal filter
        eig.append(f"* `{spec}` on 16 frames: eig(AᵀA) in [{float(lam.min()):.2e}, {float(lam.max()):.3f}]")
        for name, x in clips.items():
            y = op.A(x)
            r = {"task": spec, "clip": name}
            for steps in (200, 1000):
                for shared in (False, True):
                    out = solve_dps(_prior(mu), op, y, steps=steps, zeta=1.0, seed=0, shared_noise=shared)
                    r[f"dps {steps}{' shared' if shared else ''}"] = f"{psnr(out, x):.2f}"
            r["svi 20"] = f"{psnr(solve_svi(_prior(mu), op, y, steps=20, **SVI_PAPER), x):.2f}"
            r["dds 20"] = f"{psnr(solve_dds(_prior(mu), op, y, steps=20, **SVI_PAPER), x):.2f}"
            rows.append(r)
            print(r, flush=True)
    head = ["## Exact Gaussian prior, temporal averages (posterior = truth)", "",
            "Clip (1, 3, 16, 8, 8): `iid` frames from the prior, or `static` (one prior frame repeated); noiseless; "
            "PSNR in dB; DPS zeta 1, seed 0; `shared` = the same noise for every frame (diagnostic).", ""]
    return head + eig + [""] + _table(rows, list(rows[0]))


def part_jacobian(prior_name):
    from svi_table import load_clip

    from vidrestore.ops import parse
    from vidrestore.priors import load_prior
    from vidrestore.solvers.svi import measurement_to_model
    from vidrestore.tensor import to_model

    p = load_prior(prior_name)
    x = load_clip("bikes", 1, 64)
    xm = to_model(x)
    g = torch.Generator().manual_seed(0)
    rows = []
    for spec in ("inpaint:0.5", "sr:4"):
        op = parse(spec, seed=0, num_frames=1)
        y = op.A(x)
        ym = measurement_to_model(op, y, x.shape)
        for t in (999, 950, 900, 800, 600, 400, 200, 100, 20, 0):
            ab = p.alphas_cumprod[t].float()
            xt = (ab.sqrt() * xm + (1 - ab).sqrt() * torch.randn(x.shape, generator=g)).requires_grad_(True)
            _, x0 = p.eps_and_x0(xt, t)
            n = (ym - op.A(x0)).norm()
            (gr,) = torch.autograd.grad(n, xt, retain_graph=True)
            v = torch.randn(x.shape, generator=g)
            (jv,) = torch.autograd.grad((x0 * v / v.norm()).sum(), xt)
            x0 = x0.detach()
            rows.append({"task": spec, "t": t, "1/sqrt(abar)": f"{float(1 / ab.sqrt()):.1f}",
                         "exact factor sqrt(abar)/(1-abar)": f"{float(ab.sqrt() / (1 - ab)):.4f}",
                         "‖x0 - x‖": f"{float((x0 - xm).norm()):.2f}", "x0 range": f"[{float(x0.min()):.2f}, {float(x0.max()):.2f}]",
                         "‖y - A x0‖": f"{float(n):.2f}", "‖grad ‖y - A x0‖‖": f"{float(gr.norm()):.3f}",
                         "‖J^T v‖": f"{float(jv.norm()):.3f}"})
            print(rows[-1], flush=True)
    head = ["## Bundled prior: Tweedie error and Jacobian vs t (one 64x64 frame of bikes)", "",
            f"Prior {prior_name!r}; model space [-1, 1] (‖x‖ of the frame: {float(xm.norm()):.1f}; "
            f"{xm.numel()} values); x_t = sqrt(abar) x + sqrt(1 - abar) z, seed 0.", ""]
    return head + _table(rows, list(rows[0]))


def part_frame(prior_name, tasks, steps_list, clip_steps):
    from svi_table import load_clip

    from vidrestore.metrics import psnr
    from vidrestore.ops import measure, parse
    from vidrestore.priors import load_prior
    from vidrestore.solvers import solve_dps, solve_svi

    p = load_prior(prior_name)
    x = load_clip("bikes", 1, 64)
    rows = []
    for spec in tasks:
        op = parse(spec, seed=0, num_frames=1)
        y = measure(op, x, 0.0, torch.Generator().manual_seed(1))
        configs = [("svi", 20, False)] + [("dps", s, False) for s in steps_list] + [("dps", s, True) for s in clip_steps]
        for method, steps, clip in configs:
            t0 = time.perf_counter()
            if method == "svi":
                out = solve_svi(p, op, y, steps=20, **{**SVI_PAPER, "eta": 0.8}, seed=0)
            else:
                out = solve_dps(p, op, y, steps=steps, zeta=1.0, clip_x0=clip, seed=0)
            rows.append({"task": spec, "method": method, "steps": steps, "clip x0": clip, "psnr": f"{psnr(out, x):.2f}",
                         "rel. residual": f"{float((op.A(out) - y).norm() / y.norm()):.4f}",
                         "seconds (shared machine)": f"{time.perf_counter() - t0:.0f}"})
            print(rows[-1], flush=True)
    head = ["## Bundled prior, one 64x64 frame of bikes, spatial tasks", "",
            f"Prior {prior_name!r}; noiseless; DPS zeta 1, seed 0; SVI 20 steps, eta 0.8, 5 CG steps.", ""]
    return head + _table(rows, list(rows[0]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="gauss,temporal,jacobian,frame")
    ap.add_argument("--frame-tasks", default="sr:4,inpaint:0.5", help="spatial operators for the frame part")
    ap.add_argument("--frame-steps", default="50,200", help="DPS step counts for the frame part")
    ap.add_argument("--frame-clip-steps", default="50,200", help="DPS step counts run again with clipped x0")
    ap.add_argument("--tag", default="", help="suffix of the output file name")
    ap.add_argument("--prior", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = [s for s in args.parts.split(",") if s]
    known = ("gauss", "temporal", "jacobian", "frame")
    for s in parts:
        if s not in known:
            raise SystemExit(f"unknown part {s!r}; choose from {', '.join(known)}")
    cmd = " ".join(["python benchmarks/dps_diagnosis.py"] + (argv if argv is not None else sys.argv[1:]))
    lines = [f"DPS diagnosis (`{cmd}`); "
             f"{args.threads} CPU thread(s) ({platform.machine()}); {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    for s in parts:
        if s == "gauss":
            lines += part_gauss()
        elif s == "temporal":
            lines += part_temporal()
        elif s == "jacobian":
            lines += part_jacobian(args.prior)
        else:
            ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
            lines += part_frame(args.prior, [t for t in args.frame_tasks.split(",") if t], ints(args.frame_steps), ints(args.frame_clip_steps))
        lines.append("")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"dps_diagnosis{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
