"""Benchmark: how fast the networks and the methods run on this machine, per engine.

Three parts (``--parts``, default all):

``engines``
    One forward pass of each network, side by side in one process: the bundled prior (16 frames
    at 128x128, the batch SVI sends per step), the bundled PVDNet CNN (one 128x128 frame with its
    pixel volume) and the bundled LGC-VD UNet (one clip). Paths: eager float32, eager bfloat16
    weights, bfloat16 autocast, bfloat16 weights in channels-last layout, ``torch.compile``
    (inductor, CPU; compile time reported; the prior only unless ``--compile``), OpenVINO (``openvino``, f32 and bf16 precision hints;
    conversion time reported) and ONNX Runtime (float32). Reported: best of ``--reps`` timed
    calls after one warm-up, the ratio to eager float32, and the relative RMS difference of the
    output from eager float32.

``svi``
    ``restore -m svi`` with its defaults on 16 frames at 128x128 of a tune clip (``vtest``,
    ``tblur:uniform:7:circular,sr:4``, noiseless), with the default precision and engine
    (``auto``) and with ``--precision fp32 --engine eager``, against NFE x one batched fp32
    eager forward of the same prior measured in the same run (NFE counted by wrapping the
    prior's network call). Also the PSNR of both runs.

``methods``
    Seconds per frame of ``cg``, ``svi``, ``dds`` and ``pvdnet`` with their defaults, each with
    ``fp32/eager`` and the default ``auto`` path, at 128x128 (8 frames), 256x448 (4 frames) and
    1280x720 (2 frames; the diffusion methods run 2 and 4 steps there and the time is
    extrapolated linearly in the number of diffusion steps to their default count, marked
    ``(extrapolated)``; 720p frames run the prior on 256-pixel tiles, the default above 512x512). Operator ``sr:4`` (pvdnet restores the ground-truth frames blurred by a
    5-frame average, as it is blind).

Usage::

    python benchmarks/speed.py --data $DATA [--threads 2] [--parts engines,svi,methods]
        [--device cpu] [--out benchmarks/results/speed]

``--data`` is the folder made by ``scripts/fetch_eval_clips.sh`` (``clips/vtest.avi``). Writes
``OUT.md`` and ``OUT.json``. Run it on an otherwise idle machine: every number is a wall time.
With ``--device cuda`` the ``methods`` part runs on the GPU (eager engine; precision fp32 and
auto) and the other parts are skipped.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "speed"
OP = "tblur:uniform:7:circular,sr:4"


def _rel(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.float(), ref.float()
    return float(((y - ref).pow(2).mean() / ref.pow(2).mean().clamp_min(1e-12)).sqrt())


def _best(fn, reps: int) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        out = fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
    return min(times), out


def _cast_bf16(net: torch.nn.Module) -> torch.nn.Module:
    from vidrestore.priors.base import _cast_net

    return _cast_net(copy.deepcopy(net), None, torch.bfloat16)


def _engine_rows(name: str, net: torch.nn.Module, inputs: tuple, reps: int, skip: set[str], compile_for=("prior",)) -> list[dict]:
    """Time one module's forward on ``inputs`` through every path."""
    net = net.float().eval()
    float_in = [i.is_floating_point() for i in inputs]
    bf = lambda: tuple(i.bfloat16() if f else i for i, f in zip(inputs, float_in))  # noqa: E731
    cl = lambda: tuple(i.bfloat16().contiguous(memory_format=torch.channels_last) if f and i.dim() == 4 else (i.bfloat16() if f else i)
                       for i, f in zip(inputs, float_in))  # noqa: E731
    rows: list[dict] = []
    base, ref = _best(lambda: net(*inputs), reps)
    rows.append({"network": name, "path": "eager fp32", "ms": 1000 * base, "ratio": 1.0, "rel_err": 0.0, "setup_s": 0.0})

    def add(path: str, fn, setup_s: float = 0.0) -> None:
        try:
            sec, out = _best(fn, reps)
            rows.append({"network": name, "path": path, "ms": 1000 * sec, "ratio": sec / base, "rel_err": _rel(out, ref), "setup_s": setup_s})
        except Exception as exc:  # report, do not stop the table
            rows.append({"network": name, "path": path, "ms": None, "ratio": None, "rel_err": None, "setup_s": setup_s,
                         "note": f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"})
        print(f"  {name:8s} {path:28s} {rows[-1]['ms'] or float('nan'):9.1f} ms", flush=True)

    nb = _cast_bf16(net)
    add("eager bf16 weights", lambda: nb(*bf()).float())

    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(*inputs).float()

    add("autocast bf16", autocast)
    ncl = _cast_bf16(net).to(memory_format=torch.channels_last)
    add("bf16 channels-last", lambda: ncl(*cl()).float())
    if "compile" not in skip and name in compile_for:
        for label, module, make in (("torch.compile fp32", net, lambda: inputs), ("torch.compile bf16", nb, bf)):
            t0 = time.perf_counter()
            try:
                compiled = torch.compile(copy.deepcopy(module))
                with torch.no_grad():
                    compiled(*make())
                setup = time.perf_counter() - t0
                add(label, lambda c=compiled, m=make: c(*m()).float(), setup)
            except Exception as exc:
                rows.append({"network": name, "path": label, "ms": None, "ratio": None, "rel_err": None, "setup_s": None,
                             "note": f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"})
    try:
        from vidrestore.priors.engine import import_openvino

        ov = import_openvino()

        t0 = time.perf_counter()
        with torch.no_grad():
            model = ov.convert_model(copy.deepcopy(net), example_input=inputs)
        conv = time.perf_counter() - t0
        core = ov.Core()
        for hint in ("f32", "bf16"):
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": "1",
                                                         "INFERENCE_NUM_THREADS": str(torch.get_num_threads())})
            req = compiled.create_infer_request()
            feed = {k: v.numpy() for k, v in enumerate(inputs)}

            def run(r=req, f=feed):
                r.infer(f)
                return torch.from_numpy(r.get_output_tensor(0).data.copy())

            add(f"openvino {hint}", run, conv)
    except ImportError:
        rows.append({"network": name, "path": "openvino", "ms": None, "ratio": None, "rel_err": None, "setup_s": None, "note": "not installed"})
    if "onnx" not in skip:
        try:
            import tempfile

            import onnxruntime as ort

            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                path = os.path.join(tmp, "m.onnx")
                with torch.no_grad():
                    torch.onnx.export(copy.deepcopy(net), inputs, path, dynamo=False, opset_version=17)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = torch.get_num_threads()
                sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                conv = time.perf_counter() - t0
                names = [i.name for i in sess.get_inputs()]
                feed = {n: v.numpy() for n, v in zip(names, inputs)}
                add("onnxruntime fp32", lambda: torch.from_numpy(sess.run(None, feed)[0]), conv)
        except Exception as exc:
            rows.append({"network": name, "path": "onnxruntime fp32", "ms": None, "ratio": None, "rel_err": None, "setup_s": None,
                         "note": f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"})
    return rows


def part_engines(reps: int, skip: set[str], compile_for=("prior",)) -> list[dict]:
    from vidrestore.priors import load_prior
    from vidrestore.workflows.deblur import load_pvdnet
    from vidrestore.workflows.lgcvd import load_lgcvd

    g = torch.Generator().manual_seed(0)
    rows: list[dict] = []
    prior = load_prior("default")
    x = torch.randn(16, 3, 128, 128, generator=g)
    t = torch.full((16,), 300, dtype=torch.long)
    rows += _engine_rows("prior", prior.net, (x, t), reps, skip, compile_for)
    pv = load_pvdnet().pvdnet
    k2 = pv.config["pv_size"] ** 2
    frames = [torch.rand(1, 3, 128, 128, generator=g) * 2 - 1 for _ in range(3)]
    rows += _engine_rows("pvdnet", pv, (torch.rand(1, k2, 128, 128, generator=g) * 2 - 1, *frames), reps, skip, compile_for)
    lg = load_lgcvd()
    c, f, s = lg.channels, lg.frames, int(lg.config.get("image_size", 64))
    xt = torch.randn(1, c, f, s, s, generator=g)
    cond = torch.randn(1, lg.conv_in.in_channels - c * f, s, s, generator=g)

    class _LG(torch.nn.Module):  # fixed timestep and no global context: a plain forward
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, a, b):
            return self.m(a, torch.full((a.shape[0],), 500, dtype=torch.long), b)

    rows += _engine_rows("lgcvd", _LG(lg), (xt, cond), reps, skip, compile_for)
    return rows


def _clip(data: Path, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """``frames`` frames of the tune clip vtest, area-resized and centre-cropped to ``size``
    (as ``vidrestore bench`` prepares clips)."""
    from vidrestore.workflows.bench import BenchClip, load_clip

    path = data / "clips" / "vtest.avi"
    if not path.is_file():
        sys.exit(f"speed.py: {path} not found (run scripts/fetch_eval_clips.sh DATA)")
    return load_clip(BenchClip(name="vtest", path=str(path)), size, frames)


class _Counter:
    """Counts the prior's network calls (and the frames they carry)."""

    def __init__(self):
        from vidrestore.priors.base import Prior

        self.cls, self.calls, self.frames = Prior, 0, 0
        self.orig = Prior._run_chunks

    def __enter__(self):
        counter = self

        def run(prior, x, t):
            counter.calls += 1
            counter.frames += int(x.shape[0])
            return counter.orig(prior, x, t)

        self.cls._run_chunks = run
        return self

    def __exit__(self, *exc):
        self.cls._run_chunks = self.orig


def _restore(y, op, method, options, device=None):
    from vidrestore.workflows.scale import restore_video

    with _Counter() as c:
        t0 = time.perf_counter()
        out = restore_video(y, op, method=method, options=options, device=device, quiet=True)
        sec = time.perf_counter() - t0
    return out, sec, c.calls, c.frames


def part_svi(data: Path, reps: int) -> dict:
    from vidrestore.metrics import psnr
    from vidrestore.ops import parse
    from vidrestore.priors import load_prior
    from vidrestore.priors.engine import resolve_engine, resolve_precision

    x = _clip(data, 16, (128, 128))
    op = parse(OP, seed=0, num_frames=x.shape[2])
    y = op.A(x.double()).float()
    # warm the engine cache first so the timed default run measures a second run
    _restore(y, op, "svi", {"steps": 1})
    out_auto, sec_auto, nfe, nframes = _restore(y, op, "svi", {})
    out_fp32, sec_fp32, nfe32, _ = _restore(y, op, "svi", {"precision": "fp32", "engine": "eager"})
    prior = load_prior("default")
    xb = torch.randn(16, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    fwd, _ = _best(lambda: prior.net(xb, torch.full((16,), 300, dtype=torch.long)), reps)
    return {
        "clip": "vtest", "op": OP, "frames": 16, "size": "128x128",
        "precision_auto": resolve_precision(None), "engine_auto": resolve_engine(None),
        "nfe": nfe, "frames_per_call": nframes / max(nfe, 1),
        "fp32_forward_s": fwd, "nfe_x_forward_s": nfe * fwd,
        "svi_auto_s": sec_auto, "svi_fp32_eager_s": sec_fp32,
        "ratio_auto": sec_auto / (nfe * fwd), "ratio_fp32_eager": sec_fp32 / (nfe * fwd),
        "psnr_auto": float(psnr(out_auto.clamp(0, 1), x)), "psnr_fp32_eager": float(psnr(out_fp32.clamp(0, 1), x)),
    }


METHODS = ("cg", "svi", "dds", "pvdnet")
SIZES = {"128x128": ((128, 128), 8), "256x448": ((256, 448), 4), "720x1280": ((720, 1280), 2)}
PATHS = {"fp32/eager": {"precision": "fp32", "engine": "eager"}, "auto": {}}


def part_methods(data: Path, device: str, methods, sizes) -> list[dict]:
    from vidrestore.ops import parse

    rows = []
    for size_name in sizes:
        (h, w), n = SIZES[size_name]
        x = _clip(data, 16, (h, w))[:, :, :n] if n < 16 else _clip(data, n, (h, w))
        for method in methods:
            for path, popts in PATHS.items():
                if method in ("cg", "pvdnet") and path != "auto":
                    continue
                if device == "cuda" and popts.get("engine") == "eager":
                    popts = {"precision": "fp32"}
                if method == "pvdnet":  # blind: the frames blurred by a 5-frame average
                    from vidrestore.ops import Identity

                    pad = torch.cat([x[:, :, :1]] * 2 + [x] + [x[:, :, -1:]] * 2, dim=2)
                    y = torch.stack([pad[:, :, i:i + 5].mean(2) for i in range(x.shape[2])], dim=2)
                    op = Identity()
                else:
                    op = parse("sr:4", num_frames=x.shape[2])
                    y = op.A(x)
                extrapolated = False
                opts = dict(popts)
                if size_name == "720x1280" and method in ("svi", "dds"):
                    # time is linear in the diffusion steps: two short runs give the slope
                    from vidrestore.workflows.methods import make_options

                    default_steps = make_options(method, {}).num_steps()
                    _, s2, _, _ = _restore(y, op, method, {**opts, "steps": 4}, device)
                    _, s1, _, _ = _restore(y, op, method, {**opts, "steps": 2}, device)
                    sec = s1 + (default_steps - 2) * (s2 - s1) / 2
                    calls, extrapolated = None, True
                else:
                    _, sec, calls, _ = _restore(y, op, method, opts, device)
                row = {"method": method, "path": path, "size": size_name, "frames": int(x.shape[2]), "calls": calls,
                       "seconds": sec, "s_per_frame": None if sec is None else sec / x.shape[2], "extrapolated": extrapolated}
                rows.append(row)
                print(f"  {size_name:9s} {method:7s} {path:11s} {row['s_per_frame'] or float('nan'):8.2f} s/frame"
                      f"{' (extrapolated)' if extrapolated else ''}", flush=True)
    return rows


def _markdown(result: dict) -> str:
    lines = [f"# Speed on this machine ({result['machine']})", "",
             f"{result['date']}; torch {result['torch']}, {result['threads']} threads; precision auto = "
             f"{result['precision_auto']}, engine auto = {result['engine_auto']}.", "",
             "```", f"python benchmarks/speed.py --data $DATA --threads {result['threads']} --parts {result['parts']}", "```", ""]
    if result.get("engines"):
        lines += ["### One forward pass per path", "",
                  "| network | path | ms | × eager fp32 | rel. RMS diff | setup s |", "|---|---|---:|---:|---:|---:|"]
        for r in result["engines"]:
            if r.get("ms") is None:
                lines.append(f"| {r['network']} | {r['path']} | n/a | | | {r.get('note', '')} |")
                continue
            lines.append(f"| {r['network']} | {r['path']} | {r['ms']:.1f} | {r['ratio']:.2f} | {r['rel_err']:.1e} | {r['setup_s']:.1f} |")
        lines.append("")
    if result.get("svi"):
        s = result["svi"]
        lines += ["### `restore -m svi` with its defaults, 16 frames at 128x128", "",
                  f"Clip vtest, op `{s['op']}`, {s['nfe']} network calls of {s['frames_per_call']:.0f} frames; one batched fp32 "
                  f"eager forward {s['fp32_forward_s']:.3f} s, so NFE x forward = {s['nfe_x_forward_s']:.1f} s.", "",
                  "| path | seconds | × (NFE x fp32 forward) | PSNR dB |", "|---|---:|---:|---:|",
                  f"| default (precision {s['precision_auto']}, engine {s['engine_auto']}) | {s['svi_auto_s']:.1f} | {s['ratio_auto']:.2f} | {s['psnr_auto']:.2f} |",
                  f"| `--precision fp32 --engine eager` | {s['svi_fp32_eager_s']:.1f} | {s['ratio_fp32_eager']:.2f} | {s['psnr_fp32_eager']:.2f} |", ""]
    if result.get("methods"):
        lines += ["### Seconds per frame", "", "| method | path | " + " | ".join(result["sizes"]) + " |",
                  "|---|---|" + "---:|" * len(result["sizes"])]
        keys = []
        for r in result["methods"]:
            if (r["method"], r["path"]) not in keys:
                keys.append((r["method"], r["path"]))
        for m, p in keys:
            cells = []
            for size in result["sizes"]:
                r = next((r for r in result["methods"] if (r["method"], r["path"], r["size"]) == (m, p, size)), None)
                cells.append("" if r is None or r["s_per_frame"] is None else f"{r['s_per_frame']:.2f}" + (" (extrap.)" if r["extrapolated"] else ""))
            lines.append(f"| {m} | {p} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=os.environ.get("DATA"), help="folder with clips/ (scripts/fetch_eval_clips.sh)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="engines,svi,methods")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--skip", default="", help="engines to skip: compile,onnx")
    ap.add_argument("--compile", default="prior", help="networks to try torch.compile on (prior,pvdnet,lgcvd; slow to compile)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from vidrestore.priors.engine import resolve_engine, resolve_precision

    parts = [p for p in args.parts.split(",") if p]
    if args.device != "cpu":
        parts = [p for p in parts if p == "methods"]
    if args.data is None and ("svi" in parts or "methods" in parts):
        sys.exit("speed.py: --data (or $DATA) is required for the svi and methods parts")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
              "date": _dt.date.today().isoformat(), "torch": torch.__version__, "threads": args.threads,
              "parts": args.parts, "precision_auto": resolve_precision(None, args.device), "engine_auto": resolve_engine(None, args.device),
              "sizes": [s for s in args.sizes.split(",") if s]}
    if "engines" in parts:
        result["engines"] = part_engines(args.reps, set(args.skip.split(",")), tuple(args.compile.split(",")))
    if "svi" in parts:
        result["svi"] = part_svi(Path(args.data), args.reps)
        print(json.dumps(result["svi"], indent=1), flush=True)
    if "methods" in parts:
        result["methods"] = part_methods(Path(args.data), args.device, [m for m in args.methods.split(",") if m], result["sizes"])
    md = _markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(md + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
