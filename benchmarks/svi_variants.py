"""Compare variants of a diffusion method on the *tune* split of the evaluation protocol.

The measurements are made exactly as ``vidrestore bench`` makes them (same clips, crops,
operators, operator seeds and noise seeds: ``vidrestore.workflows.bench``), but only the tune
clips are used, so a default chosen from this table never sees a test clip. Every variant runs
the same (clip, task, seed) problems; the table gives each variant's mean PSNR per task and its
paired difference to the first variant, with a 95 % Student-t interval over the (clip, seed)
pairs of the task and over all pairs. (With two tune clips the pairs are not independent draws
of clips: the interval says whether a difference is larger than seed-to-seed and
clip-to-clip scatter on the tune split, not that it generalises.)

Usage::

    python benchmarks/svi_variants.py --variants '{"ddim": {}, "dpm++2m": {"sampler": "dpm++2m"}}' \\
        [--method svi] [--tasks avg7-deblur-n01,avg7-sr4-n01,avg7-inpaint-n01,avg7-sr4-n0] \\
        [--seeds 0,1,2] [--size 128x128] [--out benchmarks/results/svi_sampler]

Needs ``$DATA`` (``scripts/fetch_eval_clips.sh``). Writes ``OUT.md`` and ``OUT.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _ci(values: list[float]) -> tuple[float, float]:
    from vidrestore.workflows.bench import t_quantile

    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, t_quantile(n - 1) * math.sqrt(var / n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", default=str(ROOT / "benchmarks" / "protocol.yaml"))
    ap.add_argument("--method", default="svi")
    ap.add_argument("--variants", required=True, help="JSON object: name -> extra options (the first is the reference)")
    ap.add_argument("--tasks", default="avg7-deblur-n01,avg7-sr4-n01,avg7-inpaint-n01,avg7-sr4-n0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vidrestore.metrics import psnr
    from vidrestore.workflows.bench import RunTable, _Runner, load_protocol
    from vidrestore.workflows.scale import restore_video

    proto = load_protocol(args.protocol)
    variants = json.loads(args.variants)
    names = list(variants)
    h, w = (int(v) for v in args.size.split("x"))
    tasks = [t for t in args.tasks.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    clips = list(proto.tune)
    runner = _Runner(proto, RunTable.__new__(RunTable), device=None, progress=lambda: None, log=print)
    rows = []
    total = len(tasks) * len(clips) * len(seeds) * len(names)
    k = 0
    for task_name in tasks:
        task = proto.tasks[task_name]
        for clip in clips:
            for seed in seeds:
                prob = runner.problem(clip, task, (h, w), seed)
                for name in names:
                    opts = {**variants[name], "seed": seed}
                    t0 = time.perf_counter()
                    x = restore_video(prob.y, prob.op, method=args.method, sigma_y=prob.sigma_y, options=opts, quiet=True)
                    sec = time.perf_counter() - t0
                    rows.append({"task": task_name, "clip": clip, "seed": seed, "variant": name,
                                 "psnr": float(psnr(x.clamp(0, 1), prob.x)), "seconds": sec})
                    k += 1
                    print(f"[{k}/{total}] {task_name} {clip} seed {seed} {name}: {rows[-1]['psnr']:.2f} dB ({sec:.1f} s)", flush=True)

    def psnr_of(task, clip, seed, name):
        return next(r["psnr"] for r in rows if (r["task"], r["clip"], r["seed"], r["variant"]) == (task, clip, seed, name))

    ref = names[0]
    lines = [f"# {args.method} variants on the tune split ({', '.join(clips)})", "",
             f"{_dt.date.today().isoformat()}; protocol `{Path(args.protocol).name}`, {args.size}, {proto.frames} frames, "
             f"seeds {args.seeds}; variants (options on top of the method's defaults): "
             + "; ".join(f"`{n}` = `{json.dumps(v)}`" for n, v in variants.items()) + ".", "",
             "```", "python benchmarks/svi_variants.py --variants '" + json.dumps(variants) + f"' --method {args.method} "
             f"--tasks {args.tasks} --seeds {args.seeds} --size {args.size}", "```", "",
             "Mean PSNR (dB) per task; Δ = paired difference to `" + ref + "` with its 95 % interval over the "
             "(clip, seed) pairs.", "",
             "| task | " + " | ".join(names) + " | " + " | ".join(f"Δ {n}" for n in names[1:]) + " |",
             "|---|" + "---:|" * (2 * len(names) - 1)]
    all_d: dict[str, list[float]] = {n: [] for n in names[1:]}
    for task in tasks:
        means = [sum(r["psnr"] for r in rows if r["task"] == task and r["variant"] == n) / (len(clips) * len(seeds)) for n in names]
        deltas = []
        for n in names[1:]:
            d = [psnr_of(task, c, s, n) - psnr_of(task, c, s, ref) for c in clips for s in seeds]
            all_d[n] += d
            m, hw = _ci(d)
            deltas.append(f"{m:+.2f} ± {hw:.2f}")
        lines.append(f"| {task} | " + " | ".join(f"{m:.2f}" for m in means) + " | " + " | ".join(deltas) + " |")
    overall = []
    for n in names[1:]:
        m, hw = _ci(all_d[n])
        overall.append(f"{m:+.2f} ± {hw:.2f}")
    lines.append("| **all tasks** | " + " | ".join("" for _ in names) + " | " + " | ".join(overall) + " |")
    secs = [sum(r["seconds"] for r in rows if r["variant"] == n) / max(1, sum(r["variant"] == n for r in rows)) for n in names]
    lines += ["", "Mean seconds per run: " + ", ".join(f"`{n}` {s:.1f}" for n, s in zip(names, secs)) + "."]
    md = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(md)
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["task", "clip", "seed", "variant", "psnr", "seconds"])
        wr.writeheader()
        wr.writerows(rows)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
