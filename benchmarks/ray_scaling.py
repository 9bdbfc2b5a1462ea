"""Ray scaling benchmark: one long clip restored locally and on 1 and 2 Ray actors.

Usage:

    python benchmarks/ray_scaling.py [--frames 64] [--size 64] [--method svi] [--steps 3]
        [--cg-steps 3] [--window 16] [--overlap 4] [--op tblur:uniform:3:circular,sr:2]
        [--configs local-1t,local-2t,ray-1w,ray-2w] [--repeats 1] [--out benchmarks/results]

The clip is ``frames`` frames of the bundled ``bikes`` video, resized to ``size`` rows and
centre-cropped square, measured with ``--op`` and sigma_y = 0.01. Every configuration restores
it with the same method, seed and temporal windows (the windows are the unit of work):

* ``local-1t`` / ``local-2t``: windows one after the other in this process, 1 or 2 torch threads;
* ``ray-1w`` / ``ray-2w``: windows on 1 or 2 Ray actors (1 CPU and 1 torch thread each) of a
  local Ray instance started once with ``num_cpus = os.cpu_count()``.

Reported per configuration (best of ``--repeats``): ``startup`` (Ray actors up: a process each,
importing torch; 0 for local), ``solve`` (all windows, including each worker's one-time prior
load, plus stitching), ``total``, ``solve_cpu_s`` (CPU seconds the solving processes used
during the solve) and ``cores_used = solve_cpu_s / solve_s`` (how many cores the configuration
actually got: on a busy shared machine 2 workers cannot get 2 cores), speed-up of ``total``
over ``local-1t``, and whether the output is bit-identical to ``local-1t`` (it must be for
every 1-thread configuration). The 1-min load average before each run is recorded: the
machine is shared, so timings are noisy. Local runs and Ray workers run at the same
niceness (``RAY_worker_niceness=0``; Ray's default would start its workers 15 levels lower).

On a GPU cluster the same code runs one actor per GPU (``--device cuda``: each actor reserves
one GPU); windows are independent, so the solve time scales with the number of actors until
the number of windows (or the driver's stitching and transfers) limits it.

Writes ``ray_scaling.{md,csv}`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import torch

from vidrestore.data.samples import sample_path
from vidrestore.io import read_video
from vidrestore.ops import measure, parse
from vidrestore.workflows.distributed import RayConfig, RayPool
from vidrestore.workflows.scale import LocalPool, make_spec, plan_job, run_videos


def _run(cfg: str, job, spec_kw) -> tuple[float, float, float, torch.Tensor]:
    out = {}

    def failed(key, exc):
        raise exc

    t0 = time.perf_counter()
    if cfg.startswith("local"):
        spec = make_spec(**spec_kw, threads=int(cfg.split("-")[1][:-1]))
        startup = 0.0
        c0 = time.process_time()
        with LocalPool(spec) as pool:
            run_videos([(job.key, lambda: job)], pool, on_done=out.__setitem__, on_failed=failed)
        cpu = time.process_time() - c0
    else:
        spec = make_spec(**spec_kw, threads=1, backend="ray")
        workers = int(cfg.split("-")[1][:-1])
        with RayPool(spec, RayConfig(workers=workers, max_retries=0)) as pool:
            c0 = pool.cpu_times()  # also waits until every actor process is up
            startup = time.perf_counter() - t0
            run_videos([(job.key, lambda: job)], pool, on_done=out.__setitem__, on_failed=failed)
            cpu = sum(pool.cpu_times()) - sum(c0)
    total = time.perf_counter() - t0
    return startup, total, cpu, out[job.key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--op", default="tblur:uniform:3:circular,sr:2")
    ap.add_argument("--method", default="svi")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--cg-steps", type=int, default=3)
    ap.add_argument("--iters", type=int, default=50, help="cg/admm-tv iterations")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--overlap", type=int, default=4)
    ap.add_argument("--configs", default="local-1t,local-2t,ray-1w,ray-2w")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    # Same priority for every configuration: Ray starts its workers at the driver's niceness + 15
    # unless RAY_worker_niceness says otherwise; 0 keeps them at the driver's (run under nice).
    os.environ.setdefault("RAY_worker_niceness", "0")

    x, _ = read_video(sample_path("bikes"), frames=a.frames, resize=(a.size, a.size * 640 // 272), crop=(a.size, a.size))
    op = parse(a.op, num_frames=a.frames)
    y = measure(op, x, 0.01, torch.Generator().manual_seed(1))
    options = {"window": a.window, "overlap": a.overlap}
    options.update({"steps": a.steps, "cg_steps": a.cg_steps} if a.method in ("svi", "dds") else {"steps": a.steps} if a.method == "dps" else {"iters": a.iters})
    spec_kw = {"method": a.method, "options": options}
    job = plan_job("bikes", y, op, 0.01, make_spec(**spec_kw))
    n_win = len(job.problem)
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    started_ray = False
    if any(c.startswith("ray") for c in configs):
        import logging

        import ray

        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        ray_init = time.perf_counter() - t
        started_ray = True
        print(f"ray.init: {ray_init:.1f} s")

    rows, ref = [], None
    for cfg in configs:
        best = None
        for r in range(a.repeats):
            load = os.getloadavg()[0]
            startup, total, cpu, xr = _run(cfg, job, spec_kw)
            print(f"{cfg} repeat {r}: startup {startup:.1f} s, total {total:.1f} s, solve cpu {cpu:.1f} s, load {load:.1f}", flush=True)
            if best is None or total < best[1]:
                best = (startup, total, cpu, xr, load)
        startup, total, cpu, xr, load = best
        if cfg == "local-1t":
            ref = xr
        rows.append({"config": cfg, "windows": n_win, "startup_s": round(startup, 1), "solve_s": round(total - startup, 1), "total_s": round(total, 1),
                     "solve_cpu_s": round(cpu, 1), "cores_used": round(cpu / max(total - startup, 1e-9), 2),
                     "load_1min": round(load, 1), "identical_to_local_1t": None if ref is None else bool(torch.equal(xr, ref)),
                     "max_abs_diff": None if ref is None else float((xr - ref).abs().max())})
    if started_ray:
        import ray

        ray.shutdown()
    base = next((r["total_s"] for r in rows if r["config"] == "local-1t"), None)
    for r in rows:
        r["speedup_vs_local_1t"] = round(base / r["total_s"], 2) if base else None

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    with open(out / "ray_scaling.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    cmd = (f"nice -n 5 python benchmarks/ray_scaling.py --frames {a.frames} --size {a.size} --op {a.op} --method {a.method} --steps {a.steps} "
           f"--cg-steps {a.cg_steps} --window {a.window} --overlap {a.overlap} --configs {a.configs} --repeats {a.repeats}")
    lines = [
        "# Ray scaling: one clip, local vs Ray actors",
        "",
        f"Clip: bikes, {a.frames} frames, {a.size}x{a.size}; op `{a.op}`, sigma_y 0.01; method {a.method} {options}; "
        f"{n_win} windows. Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), torch {torch.__version__}; "
        f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Best of {a.repeats} repeat(s).",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    lines += ["", f"Reproduce: `{cmd}`", ""]
    (out / "ray_scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
