"""Sweep of the per-frame DDS base on the noisy tasks of the DiffIR2VR table.

Picks the data weight ``gamma``, the CG iterations and the start time ``t_start`` of the base
restorer on a clip that is *not* the evaluation clip of ``diffir2vr_table.py`` (default:
``bigbuckbunny``, 4 frames at 64x128; the table uses ``bikes``), so the base is not tuned on the
test set. Rows: every combination of ``--gammas`` x ``--cg`` x ``--t-starts`` on every task, plus
the prior's one-step Tweedie denoiser at ``sigma_y`` on ``op.lift(y)`` (the reference the base
should reach on ``dn``).

    python benchmarks/diffir2vr_base_sweep.py --clip bigbuckbunny --frames 4 --size 64x128 \
        --tasks sr4n,dn --gammas 0.1,0.3,1,3,10 --cg 5,20 --t-starts 300,500 --threads 1

Writes ``diffir2vr_base_sweep.{md,csv}`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffir2vr_table import TASKS, load  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="bigbuckbunny")
    ap.add_argument("--start", type=int, default=0, help="First frame of the clip.")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", default="64x128")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tasks", default="sr4n,dn")
    ap.add_argument("--gammas", default="0.1,0.3,1,3,10")
    ap.add_argument("--cg", default="5,20")
    ap.add_argument("--t-starts", default="300,500")
    ap.add_argument("--schedules", default="const", help="Comma-separated gamma schedules (const, sigma).")
    ap.add_argument("--eta", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vidrestore.consistency import stage1_guide
    from vidrestore.metrics import psnr, ssim
    from vidrestore.ops import measure, parse
    from vidrestore.priors import load_prior
    from vidrestore.solvers import solve_dds

    h, w = (int(v) for v in args.size.lower().split("x"))
    x = load(args.clip, args.start + args.frames, h, w)[:, :, args.start :].contiguous()
    prior = load_prior("default")
    rows = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        spec, sigma = TASKS[task]
        op = parse(spec, num_frames=x.shape[2])
        y = measure(op, x, sigma, torch.Generator().manual_seed(args.seed + 1))
        lift = op.lift(y).clamp(0, 1)
        rows.append(dict(task=task, method="lift(y)", schedule="", gamma="", cg="", t_start="",
                         psnr=round(float(psnr(lift, x)), 3), ssim=round(float(ssim(lift, x)), 4), seconds=0.0))
        t0 = time.perf_counter()
        g = stage1_guide(prior, op, y, sigma)
        rows.append(dict(task=task, method="one-step Tweedie of lift(y)", schedule="", gamma="", cg="", t_start="",
                         psnr=round(float(psnr(g, x)), 3), ssim=round(float(ssim(g, x)), 4),
                         seconds=round(time.perf_counter() - t0, 1)))
        print(rows[-2], rows[-1], flush=True)
        for ts in (int(v) for v in args.t_starts.split(",")):
            for cg, sched, gamma in ((c, s, g) for c in (int(v) for v in args.cg.split(","))
                                     for s in args.schedules.split(",")
                                     for g in (float(v) for v in args.gammas.split(","))):
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        v = solve_dds(prior, op, y, steps=args.steps, eta=args.eta, cg_steps=cg, t_start=ts,
                                      sigma_y=sigma, gamma=gamma, gamma_schedule=sched, seed=args.seed)
                    rows.append(dict(task=task, method="dds", schedule=sched, gamma=gamma, cg=cg, t_start=ts,
                                     psnr=round(float(psnr(v, x)), 3), ssim=round(float(ssim(v, x)), 4),
                                     seconds=round(time.perf_counter() - t0, 1)))
                    print(rows[-1], flush=True)
                    _write(out, rows, args, x)


def _write(out, rows, args, x):
    with open(out / "diffir2vr_base_sweep.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    lines = [f"# Per-frame DDS base on the noisy tasks: sweep on `{args.clip}` (not the evaluation clip)", "",
             f"Frames {args.start}..{args.start + x.shape[2] - 1} at {x.shape[3]}x{x.shape[4]}, DDS {args.steps} steps, "
             f"eta {args.eta}, seed {args.seed}, {args.threads} torch thread(s), shared CPU (seconds are noisy).", "",
             "| task | method | gamma schedule | gamma | CG steps | t_start | PSNR | SSIM | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['schedule']} | {r['gamma']} | {r['cg']} | {r['t_start']} | {r['psnr']:.2f} | "
                     f"{r['ssim']:.4f} | {r['seconds']} |")
    lines += ["", "Command: `PYTHONPATH=src nice -n 5 python benchmarks/diffir2vr_base_sweep.py "
              f"--clip {args.clip} --start {args.start} --frames {args.frames} --size {args.size} --steps {args.steps} "
              f"--tasks {args.tasks} --schedules {args.schedules} --gammas {args.gammas} --cg {args.cg} --t-starts {args.t_starts} "
              f"--eta {args.eta} --threads {args.threads}`", ""]
    (out / "diffir2vr_base_sweep.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
