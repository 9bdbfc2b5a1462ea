"""DiffIR2VR-Zero benchmark: frame-by-frame DDS vs DDS + the consistency wrapper.

Usage:

    python benchmarks/diffir2vr_table.py [--clip bikes] [--frames 16] [--size 64x128] [--steps 20]
        [--tasks sr4,sr4n,dn] [--ablation-task sr4] [--threads 1] [--seed 0] [--out benchmarks/results]

Clip: ``--frames`` frames of a bundled sample clip, area-resized so the short side is the
requested height, centre-cropped to ``--size``. Tasks (pixel units, noise seed = ``--seed``):

* ``sr4``  — x4 SR (``sr:4``: 4x4 box average then subsample), no noise;
* ``sr4n`` — x4 SR with Gaussian noise sigma_y = 0.02;
* ``dn``   — denoising (identity operator), sigma_y = 0.1.

Base restorer: our per-frame DDS (``solve_dds`` with the bundled prior, ``--steps`` steps) with
the ``vidrestore restore -m diffir2vr`` base settings ``DIFFIR2VR_BASE`` (eta 0.8, 20 CG steps,
t_start 100, noisy data weight gamma 0.3 (sigma_t / sigma_y)^2; picked on ``bigbuckbunny`` by
``diffir2vr_base_sweep.py``), overridable with ``--t-start``, ``--gamma``, ``--gamma-schedule``,
``--cg-steps``; the same base for every row. Rows per task (``--methods`` picks a subset):

* ``frame-by-frame`` — the base alone;
* ``diffir2vr-paper`` — the wrapper with the released settings (batch 10, middle keyframe, latent
  warping (replacement) in the first 10 % of steps, nearest; HS-ToMe r 0.9 -> 0, flow in down /
  cosine in up);
* ``diffir2vr`` — the library / CLI defaults: batch 5, warping in the second half of the steps,
  bilinear, warp strength 0.1 (picked on ``bigbuckbunny``, ``results/diffir2vr_tune_bbb.md``);
* ``diffir2vr-warp-half`` / ``-warp-late`` / ``-warp-all`` (batch 10) and ``-warp-late-b5``
  (batch 5): replacement (strength 1) in the first half / second half / all of the steps,
  bilinear; ``-aX`` suffixes: warp strength X;

and on ``--ablation-task``: warping only, merging only, flow-only correspondence (down and up),
cosine-only correspondence (down and up) with our defaults otherwise, and warping only / merging
only with the released settings.

Columns: PSNR, SSIM (mean over frames), warping error E_warp (Lai et al. 2018, flows and
occlusion masks on the ground truth, x 1e-3, same convention as the paper's E*warp), wall seconds
of the solve (flows included), and the ratios to the frame-by-frame row. Writes
``diffir2vr_table.{md,csv}`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS = {"sr4": ("sr:4", 0.0), "sr4n": ("sr:4", 0.02), "dn": ("id", 0.1)}


from vidrestore.consistency.diffir2vr import PAPER_SETTINGS as PAPER  # noqa: E402  released settings


def variants():
    from vidrestore.consistency import DiffIR2VRConfig

    main = {
        "frame-by-frame": DiffIR2VRConfig(enabled=False),
        "diffir2vr-paper": DiffIR2VRConfig(**PAPER),
        "diffir2vr": DiffIR2VRConfig(),  # the library / CLI defaults
        "diffir2vr-warp-half": DiffIR2VRConfig(warp_strength=1.0, warp_period=(0.0, 0.5), warp_mode="bilinear", batch_size=10),
        "diffir2vr-warp-late": DiffIR2VRConfig(warp_strength=1.0, warp_period=(0.5, 1.0), warp_mode="bilinear", batch_size=10),
        "diffir2vr-warp-all": DiffIR2VRConfig(warp_strength=1.0, warp_period=(0.0, 1.0), warp_mode="bilinear", batch_size=10),
        "diffir2vr-warp-late-b5": DiffIR2VRConfig(warp_period=(0.5, 1.0), warp_mode="bilinear", batch_size=5, warp_strength=1.0),
        "diffir2vr-warp-late-b5-a0.5": DiffIR2VRConfig(warp_period=(0.5, 1.0), warp_mode="bilinear", batch_size=5, warp_strength=0.5),
        "diffir2vr-warp-late-b5-a0.2": DiffIR2VRConfig(warp_period=(0.5, 1.0), warp_mode="bilinear", batch_size=5, warp_strength=0.2),
        "diffir2vr-warp-late-b5-a0.1": DiffIR2VRConfig(warp_period=(0.5, 1.0), warp_mode="bilinear", batch_size=5, warp_strength=0.1),
        "diffir2vr-warp-all-b5-a0.5": DiffIR2VRConfig(warp_period=(0.0, 1.0), warp_mode="bilinear", batch_size=5, warp_strength=0.5),
    }
    ablation = {
        "warping only": DiffIR2VRConfig(merge=False),
        "merging only": DiffIR2VRConfig(warp=False),
        "flow-only corr.": DiffIR2VRConfig(down_match="flow", up_match="flow"),
        "cosine-only corr.": DiffIR2VRConfig(down_match="cos", up_match="cos"),
        "paper: warping only": DiffIR2VRConfig(merge=False, **PAPER),
        "paper: merging only": DiffIR2VRConfig(warp=False, **PAPER),
    }
    return main, ablation


def load(name: str, frames: int, h: int, w: int) -> torch.Tensor:
    from vidrestore.data.samples import sample_path
    from vidrestore.io import read_video

    path = sample_path(name)
    if path is None:
        raise SystemExit(f"clip {name!r} is not available")
    x, _ = read_video(path, frames=frames)
    _, _, t, H, W = x.shape
    s = max(h / H, w / W)
    nh, nw = max(h, round(H * s)), max(w, round(W * s))
    f = torch.nn.functional.interpolate(x[0].permute(1, 0, 2, 3), size=(nh, nw), mode="area")
    top, left = (nh - h) // 2, (nw - w) // 2
    return f[:, :, top : top + h, left : left + w].permute(1, 0, 2, 3)[None].contiguous().clamp(0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="bikes")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="64x128")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tasks", default="sr4,sr4n,dn")
    ap.add_argument("--ablation-task", default="sr4")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="First frame of the clip.")
    ap.add_argument("--t-start", type=int, default=None, help="Base DDS start time (default: the diffir2vr base default).")
    ap.add_argument("--gamma", type=float, default=None, help="Base DDS data weight (default: the diffir2vr base default).")
    ap.add_argument("--gamma-schedule", default=None, help="const or sigma (default: the diffir2vr base default).")
    ap.add_argument("--cg-steps", type=int, default=None, help="Base DDS CG iterations (default: the diffir2vr base default).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--methods", default=None, help="Comma-separated subset of the rows to run (default: all).")
    ap.add_argument("--append", action="store_true",
                    help="Add the rows to an existing diffir2vr_table.csv in --out (ratios use its frame-by-frame rows).")
    ap.add_argument("--timing", type=int, default=0,
                    help="Only time frame-by-frame vs diffir2vr vs diffir2vr-warp-all on sr4, alternating, "
                         "this many repetitions (min is reported); writes diffir2vr_timing.{md,csv}.")
    ap.add_argument("--probe", action="store_true",
                    help="Only measure how much token merging changes the prior's noise prediction on "
                         "the clip (relative L2 change of eps at several t, ratio 0.9 and 0).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        return probe(args)
    if args.timing:
        return timing(args)

    from vidrestore.consistency import solve_diffir2vr
    from vidrestore.metrics import compute_ref_flows, psnr, ssim, warp_error
    from vidrestore.ops import measure, parse
    from vidrestore.priors import load_prior

    h, w = (int(v) for v in args.size.lower().split("x"))
    x = load(args.clip, args.start + args.frames, h, w)[:, :, args.start :].contiguous()
    ref = compute_ref_flows(x)
    prior = load_prior("default")
    solver_kw = base_kw(args)
    main_v, abl_v = variants()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.append and (out / "diffir2vr_table.csv").exists():
        with open(out / "diffir2vr_table.csv", newline="") as f:
            for r in csv.DictReader(f):
                for k in ("psnr", "ssim", "ewarp_1e3", "seconds", "ewarp_vs_base", "time_vs_base", "dpsnr", "sigma_y"):
                    r[k] = float(r[k])
                rows.append(r)
    wanted = None if args.methods is None else set(args.methods.split(","))
    for task in args.tasks.split(","):
        spec, sigma = TASKS[task]
        op = parse(spec, num_frames=x.shape[2])
        y = measure(op, x, sigma, torch.Generator().manual_seed(args.seed + 1))
        todo = dict(main_v)
        if task == args.ablation_task:
            todo.update(abl_v)
        base_row = next((r for r in rows if r["task"] == task and r["method"] == "frame-by-frame"), None)
        for name, cfg in todo.items():
            if wanted is not None and name not in wanted:
                continue
            info: dict = {}
            t0 = time.perf_counter()
            with torch.no_grad():
                v = solve_diffir2vr(prior, op, y, base="dds", config=cfg, sigma_y=sigma, info=info, **solver_kw)
            sec = time.perf_counter() - t0
            row = {
                "task": task, "op": spec, "sigma_y": sigma, "method": name,
                "psnr": round(float(psnr(v, x)), 3),
                "ssim": round(float(ssim(v, x)), 4),
                "ewarp_1e3": round(warp_error(v, flows=ref) * 1e3, 4),
                "seconds": round(sec, 1),
                "warped_steps": info.get("warped_steps", 0),
                "kept_tokens": round(info["merge_stats"]["kept"] / max(info["merge_stats"]["tokens"], 1), 3)
                if info.get("merge_stats") else "",
            }
            if base_row is None:
                base_row = row
            row["ewarp_vs_base"] = round(row["ewarp_1e3"] / base_row["ewarp_1e3"], 3)
            row["time_vs_base"] = round(row["seconds"] / base_row["seconds"], 2)
            row["dpsnr"] = round(row["psnr"] - base_row["psnr"], 3)
            rows.append(row)
            rows.sort(key=lambda r: (list(TASKS).index(r["task"]), _order(r["method"])))
            print(row, flush=True)
            _write(out, rows, args, x)


def base_kw(args) -> dict:
    """Base DDS settings: the ``vidrestore restore -m diffir2vr`` defaults unless overridden."""
    from vidrestore.workflows.jobs import DIFFIR2VR_BASE

    kw = dict(DIFFIR2VR_BASE)
    for k in ("t_start", "gamma", "gamma_schedule", "cg_steps"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    kw.update(steps=args.steps, seed=args.seed)
    return kw


def _order(name: str) -> int:
    main_v, abl_v = variants()
    names = list(main_v) + list(abl_v)
    return names.index(name) if name in names else len(names)


def probe(args):
    """Relative change ``||eps_merged - eps|| / ||eps||`` of the bundled prior on noised clip frames."""
    from vidrestore.consistency import FrameGroup, TokenMerger, frame_batches, token_merging
    from vidrestore.priors import load_prior
    from vidrestore.tensor import to_model

    h, w = (int(v) for v in args.size.lower().split("x"))
    x = load(args.clip, args.frames, h, w)
    prior = load_prior("default")
    acp = prior.alphas_cumprod
    g = torch.Generator().manual_seed(args.seed)
    groups = [FrameGroup(b, len(b) // 2) for b in frame_batches(x.shape[2], 10)]
    for t in (500, 250, 50):
        z = torch.randn(x.shape, generator=g)
        xt = (acp[t].sqrt() * to_model(x) + (1 - acp[t]).sqrt() * z).float()
        with torch.no_grad():
            e0, _ = prior.eps_and_x0(xt, t)
            m = TokenMerger(groups, x.shape[2], down_match="cos")
            res = []
            with token_merging(prior.net, m):
                for r in (0.9, 0.0):
                    m.set_ratio(r)
                    e1, _ = prior.eps_and_x0(xt, t)
                    res.append(float((e1 - e0).norm() / e0.norm()))
        print(f"t={t}: relative eps change, ratio 0.9: {res[0]:.2e}, ratio 0 (joint attention): {res[1]:.2e}", flush=True)


def timing(args):
    """Alternate the three main rows ``--timing`` times on sr4 and keep each one's fastest run
    (the machine is shared, so single wall times are noisy upper bounds)."""
    from vidrestore.consistency import solve_diffir2vr
    from vidrestore.ops import measure, parse
    from vidrestore.priors import load_prior

    h, w = (int(v) for v in args.size.lower().split("x"))
    x = load(args.clip, args.start + args.frames, h, w)[:, :, args.start :].contiguous()
    prior = load_prior("default")
    op = parse("sr:4", num_frames=x.shape[2])
    y = measure(op, x)
    kw = base_kw(args)
    main_v, _ = variants()
    main_v = {k: main_v[k] for k in ("frame-by-frame", "diffir2vr-paper", "diffir2vr")}
    best: dict[str, float] = {}
    for rep in range(args.timing):
        for name, cfg in main_v.items():
            t0 = time.perf_counter()
            with torch.no_grad():
                solve_diffir2vr(prior, op, y, base="dds", config=cfg, **kw)
            sec = time.perf_counter() - t0
            best[name] = min(best.get(name, float("inf")), sec)
            print(rep, name, round(sec, 2), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = best["frame-by-frame"]
    rows = [{"method": k, "best_seconds": round(v, 2), "time_vs_base": round(v / base, 3)} for k, v in best.items()]
    with open(out / "diffir2vr_timing.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    lines = [f"# DiffIR2VR timing: sr4, {args.frames} frames at {args.size}, DDS {args.steps} steps, "
             f"best of {args.timing} alternating runs, {args.threads} thread(s), shared CPU", "",
             "| method | best seconds | time / frame-by-frame |", "|---|---|---|"]
    lines += [f"| {r['method']} | {r['best_seconds']:.2f} | {r['time_vs_base']:.3f} |" for r in rows]
    lines += ["", f"Command: `PYTHONPATH=src nice -n 5 python benchmarks/diffir2vr_table.py --timing {args.timing} "
                  f"--frames {args.frames} --size {args.size} --steps {args.steps} --threads {args.threads}`", ""]
    (out / "diffir2vr_timing.md").write_text("\n".join(lines))


def _base_text(kw: dict) -> str:
    return (f"{kw['steps']} steps (eta {kw['eta']}, {kw['cg_steps']} CG steps, t_start {kw['t_start']}, "
            f"noisy data weight gamma {kw['gamma']} schedule {kw['gamma_schedule']!r})")


def _write(out: Path, rows: list[dict], args, x):
    keys = list(rows[0].keys())
    with open(out / "diffir2vr_table.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    lines = [
        "# DiffIR2VR-Zero wrapper around per-frame DDS (bundled prior)",
        "",
        f"Clip `{args.clip}`, frames {args.start}..{args.start + x.shape[2] - 1} at {x.shape[3]}x{x.shape[4]}, "
        f"base DDS {_base_text(base_kw(args))}, seed {args.seed}, {args.threads} torch thread(s), "
        f"{platform.processor() or platform.machine()} CPU (shared).",
        "E_warp x 1e-3 (flows on the ground truth). Ratios are to the frame-by-frame row of the same task.",
        "",
        "| task | method | PSNR | dPSNR | SSIM | E_warp x1e-3 | E_warp / base | seconds | time / base | warped steps | kept tokens |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} (`{r['op']}`, σ={r['sigma_y']}) | {r['method']} | {r['psnr']:.2f} | {r['dpsnr']:+.2f} | "
            f"{r['ssim']:.4f} | {r['ewarp_1e3']:.4f} | {r['ewarp_vs_base']:.3f} | {r['seconds']:.1f} | "
            f"{r['time_vs_base']:.2f} | {r['warped_steps']} | {r['kept_tokens']} |"
        )
    lines += ["", "Command: `PYTHONPATH=src nice -n 5 python benchmarks/diffir2vr_table.py "
              f"--clip {args.clip} --start {args.start} --frames {args.frames} --size {args.size} --steps {args.steps} "
              f"--tasks {args.tasks} --ablation-task {args.ablation_task} --threads {args.threads}`"
              + (" (rows added with `--append --methods ...`)" if args.append else ""), ""]
    (out / "diffir2vr_table.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
