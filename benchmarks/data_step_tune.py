"""SVI with the CG vs the exact proximal data step on the TUNE split of benchmarks/protocol.yaml.

Same problems as ``vidrestore bench`` (clips, resizing, operator seed = seed, noise seed =
seed + 1) and ``-m svi`` at its ``restore`` defaults except ``data_step``. Writes one CSV row
per run (appended, so an interrupted run can be resumed by re-running) and prints a summary.

    DATA=/path/to/clips python benchmarks/data_step_tune.py --out runs/data_step.csv
    python benchmarks/data_step_tune.py --out runs/data_step.csv --summary   # table only

Only tune clips (bikes, vtest) are used: the choice of the default is made there.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch

from vidrestore.metrics import psnr
from vidrestore.ops import count_applications, measure, parse
from vidrestore.workflows.bench import load_clip, load_protocol
from vidrestore.workflows.scale import restore_video

TASKS = {
    "avg7-deblur-n01": ("tblur:uniform:7:reflect,blur:gauss:2", 0.01),
    "avg7-sr4-n01": ("tblur:uniform:7:reflect,sr:4", 0.01),
    # sanity task: the circular average of the SVI paper (invertible) with the same noise
    "circ7-sr4-n01": ("tblur:uniform:7:circular,sr:4", 0.01),
}
COLUMNS = ("task", "clip", "seed", "data_step", "psnr", "seconds", "cpu_seconds", "a_calls", "exact_solves")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--protocol", default=str(Path(__file__).with_name("protocol.yaml")))
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--steps", default="cg,exact")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    rows = list(csv.DictReader(out.open())) if out.exists() else []
    done = {(r["task"], r["clip"], r["seed"], r["data_step"]) for r in rows}
    if not a.summary:
        proto = load_protocol(a.protocol)
        clips = proto.tune
        h, w = (int(v) for v in a.size.split("x"))
        for task in a.tasks.split(","):
            spec, sigma = TASKS[task]
            for clip in clips:
                x = load_clip(proto.clips[clip], (h, w), proto.frames)
                for seed in (int(s) for s in a.seeds.split(",")):
                    op = parse(spec, seed=seed, num_frames=x.shape[2])
                    y = measure(op, x.double(), sigma, torch.Generator().manual_seed(seed + 1)).float()
                    for step in a.steps.split(","):
                        if (task, clip, str(seed), step) in done:
                            continue
                        t0, c0 = time.perf_counter(), time.process_time()
                        with count_applications() as n:
                            x_hat = restore_video(y, op, method="svi", sigma_y=sigma, options={"seed": seed, "data_step": step}, quiet=True)
                        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
                        row = {"task": task, "clip": clip, "seed": seed, "data_step": step, "psnr": f"{float(psnr(x_hat.clamp(0, 1), x)):.4f}",
                               "seconds": f"{sec:.2f}", "cpu_seconds": f"{cpu:.2f}", "a_calls": n.calls, "exact_solves": n.exact_solves}
                        new = not out.exists()
                        with out.open("a", newline="") as f:
                            wr = csv.DictWriter(f, fieldnames=COLUMNS)
                            if new:
                                wr.writeheader()
                            wr.writerow(row)
                        print(row, flush=True)
                        rows.append({k: str(v) for k, v in row.items()})
    # Summary: mean over clips and seeds, and the paired difference exact - cg.
    print("| task | data step | PSNR (mean) | wall s/run | CPU s/run | a_calls | Δ PSNR exact − cg: mean (min, max) |")
    print("|---|---|---|---|---|---|---|")
    for task in TASKS:
        by = {}
        for r in rows:
            if r["task"] == task:
                by.setdefault(r["data_step"], {})[(r["clip"], r["seed"])] = r
        if "cg" not in by:
            continue
        for step in ("cg", "exact"):
            if step not in by:
                continue
            rs = list(by[step].values())
            mean = sum(float(r["psnr"]) for r in rs) / len(rs)
            sec = sum(float(r["seconds"]) for r in rs) / len(rs)
            cpu = sum(float(r["cpu_seconds"]) for r in rs) / len(rs)
            calls = sum(int(r["a_calls"]) for r in rs) / len(rs)
            diff = ""
            if step == "exact":
                d = [float(by["exact"][k]["psnr"]) - float(by["cg"][k]["psnr"]) for k in by["exact"] if k in by["cg"]]
                diff = f"{sum(d) / len(d):+.4f} ({min(d):+.4f}, {max(d):+.4f}; n={len(d)})"
            print(f"| {task} | {step} | {mean:.2f} (n={len(rs)}) | {sec:.1f} | {cpu:.1f} | {calls:.0f} | {diff} |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
