#!/usr/bin/env python
"""Build the reference fixture for loading the official PVDNet checkpoints.

Son et al., "Recurrent Video Deblurring with Blur-Invariant Motion Estimation and Pixel
Volumes", ACM TOG 2021. The official release (github.com/codeslake/PVDNet) ships state dicts
of its ``DeblurNet`` (``BIMNet.*`` + ``PVDNet.*`` keys). Its weights are not needed here:
this script builds the official networks from a checkout of the official code with
deterministic pseudo-random weights (:func:`recipe_weights`, the same recipe lives in
``tests/test_pvdnet_official.py``), runs the official recurrent inference on a tiny seeded
clip on the CPU and saves inputs, outputs, the parameter names and shapes to one small
safetensors file. Nothing of the official code is copied into vidrestore: the test only
reads the numbers this script wrote.

The official code needs CUDA and CuPy. To run it unmodified on a CPU, this script

* replaces its correlation module (a CuPy kernel, ``models/archs/torch_correlation*.py``)
  by :func:`reference_correlation`, a plain loop over the 49 displacements written from
  the kernel's index arithmetic;
* makes ``Tensor.cuda()`` a no-op and maps ``torch.cuda.FloatTensor``/``IntTensor`` to
  their CPU types while the official modules are imported and run;
* stubs the training-only packages the official trainer imports (``termcolor``,
  ``ptflops``, ``torch_optimizer``) when they are not installed.

Usage::

    git clone https://github.com/codeslake/PVDNet ../PVDNet      # any checkout (no weights needed)
    python scripts/make_pvdnet_official_fixture.py ../PVDNet --commit f29db89
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

#: Seed of the weight recipe, shared with the test.
WEIGHT_SEED = 20210817
#: Frame size: multiples of 4 (the official mod-4 crop) but not of 32, so BIMNet's mod-32
#: crop and the zero-padded flow border are exercised; W != H catches x/y swaps. BIMNet's
#: crop must be at least 64 px a side: at 32 px its 1/32 level is one pixel wide and the
#: official warp divides by (size - 1) = 0.
FRAMES, HEIGHT, WIDTH = 3, 68, 76
#: The pixel volume truncates ``p + flow`` to integers. Inputs are chosen so that no
#: ``p + flow`` lies within this distance of an integer, so a float rounding difference of
#: ~1e-6 between two correct implementations cannot flip a truncation.
INTEGER_MARGIN = 5e-5
#: Rows of the stored pixel volume.
PV_ROWS = 24


def recipe_weights(shapes: dict[str, list[int]], seed: int = WEIGHT_SEED) -> dict[str, torch.Tensor]:
    """Deterministic weights for a state dict given as ``{name: shape}`` (official names).

    One ``torch.Generator`` seeded with ``seed`` draws ``z = randn(shape)`` for every name
    in sorted order; the tensor is then

    * ``1 + 0.1 z`` for names ending in ``ScaleX.weight`` / ``ScaleY.weight`` (BIMNet's
      regularisation then stays close to a weighted average of neighbouring flow vectors);
    * ``0.1 z`` for other 1-D tensors (biases);
    * ``z * sqrt(2 / fan_in)`` for other ``BIMNet.*`` tensors (LeakyReLU network) and
      ``z / sqrt(fan_in)`` for the rest, ``fan_in`` = product of all but the first dimension.

    This gives flows of a few pixels and bounded outputs, so every part of the computation
    shows in the fixture's numbers.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(shapes):
        shape = list(shapes[name])
        z = torch.randn(shape, generator=g, dtype=torch.float32)
        if name.endswith(("ScaleX.weight", "ScaleY.weight")):
            out[name] = 1.0 + 0.1 * z
        elif len(shape) == 1:
            out[name] = 0.1 * z
        else:
            gain = 2.0 if name.split(".")[0] == "BIMNet" else 1.0
            out[name] = z * math.sqrt(gain / math.prod(shape[1:]))
    return out


def reference_correlation(tensorFirst, tensorSecond, intStride):  # noqa: N803 (the official call uses these keywords)
    """The official correlation (7x7 displacements, mean over channels) on any device.

    Output channel ``(dy + 3) * 7 + (dx + 3)`` at ``(y, x)`` is
    ``mean_c first[c, s*y, s*x] * second[c, s*y + s*dy, s*x + s*dx]`` with zeros outside
    ``second`` and ``s = intStride``; the output is ``ceil(H / s) x ceil(W / s)``.
    """
    s = int(intStride)
    b, c, h, w = tensorFirst.shape
    ho, wo = math.ceil(h / s), math.ceil(w / s)
    padded = F.pad(tensorSecond, (3 * s, 3 * s, 3 * s, 3 * s))
    first = tensorFirst[:, :, ::s, ::s]
    out = tensorFirst.new_zeros(b, 49, ho, wo)
    for ch in range(49):
        dy, dx = ch // 7 - 3, ch % 7 - 3
        ys = torch.arange(ho) * s + 3 * s + dy * s
        xs = torch.arange(wo) * s + 3 * s + dx * s
        second = padded[:, :, ys][:, :, :, xs]
        out[:, ch] = (first * second).sum(1) / c
    return out


@contextlib.contextmanager
def cpu_shims():
    """Let the official CUDA-only code run on the CPU (see the module docstring)."""
    saved = {
        "cuda": torch.Tensor.cuda,
        "FloatTensor": torch.cuda.FloatTensor,
        "IntTensor": torch.cuda.IntTensor,
        "version": torch.version.cuda,
    }
    added = []
    corr = types.ModuleType("pvdnet_reference_correlation")
    corr.FunctionCorrelation = reference_correlation
    for name in ("models.archs.torch_correlation", "models.archs.torch_correlation_C11"):
        sys.modules[name] = corr
        added.append(name)
    for name, attrs in (("termcolor", {"colored": lambda s, *a, **k: s}), ("ptflops", {"get_model_complexity_info": None}), ("torch_optimizer", {})):
        try:
            importlib.import_module(name)
        except ImportError:
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            sys.modules[name] = mod
            added.append(name)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.FloatTensor = torch.FloatTensor
    torch.cuda.IntTensor = torch.IntTensor
    torch.version.cuda = saved["version"] or "11.1"  # the official liteFlowNet picks its kernel by CUDA version
    try:
        yield
    finally:
        torch.Tensor.cuda = saved["cuda"]
        torch.cuda.FloatTensor = saved["FloatTensor"]
        torch.cuda.IntTensor = saved["IntTensor"]
        torch.version.cuda = saved["version"]
        for name in added:
            sys.modules.pop(name, None)


def official_deblurnet(root: Path, network: str):
    """The official ``DeblurNet`` (``models/trainers/trainer.py``) with ``network`` =
    ``PVDNet`` or ``PVDNet_large``; call inside :func:`cpu_shims`."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    trainer = importlib.import_module("models.trainers.trainer")
    config = types.SimpleNamespace(dist=False, network_BIMNet="liteFlowNet", network=network, PV_ksize=5, fix_BIMNet=True, save_sample=False)
    return trainer.DeblurNet(config).eval()


def make_frames(seed: int) -> torch.Tensor:
    """``(T, 3, H, W)`` in ``[0, 1]``, 8-bit values: a smooth random texture drifting by
    (1, 2) px per frame plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 10, 18, generator=g)
    big = F.interpolate(base, size=(HEIGHT + 3 * FRAMES, WIDTH + 3 * FRAMES), mode="bicubic", align_corners=False)
    frames = []
    for t in range(FRAMES):
        f = big[0, :, t : t + HEIGHT, 2 * t : 2 * t + WIDTH]
        f = f + 0.02 * torch.randn(f.shape, generator=g)
        frames.append(f)
    return (torch.stack(frames).clamp(0, 1) * 255).round() / 255


def run_official(net, frames01: torch.Tensor):
    """The official test-time recurrence (``eval.py``): frame window clamped at the ends,
    the previous output (the blurry first frame at ``t = 0``) fed back unclamped.

    Returns ``(results, flows, volumes)``, each stacked over frames; results in ``[-1, 1]``.
    """
    x = frames01 * 2 - 1  # the official reader maps [0, 1] to [-1, 1]
    n = x.shape[0]
    outs, flows, pvs = [], [], []
    prev_out = None
    for j in range(n):
        idx = [min(max(k, 0), n - 1) for k in (j - 1, j, j + 1)]
        prev, cur, nxt = (x[k : k + 1] for k in idx)
        if j == 0:
            prev_out = prev
        with torch.no_grad():
            res = net(prev, cur, nxt, prev_out)
            # The flow BIMNet fed to the pixel volume (recomputed the way DeblurNet does).
            h, w = cur.shape[-2:]
            rh, rw = h - h % 32, w - w % 32
            flow = net.BIMNet((cur[..., :rh, :rw] + 1) / 2, (prev[..., :rh, :rw] + 1) / 2)
            flow = F.pad(F.interpolate(flow, size=(rh, rw), mode="bilinear", align_corners=False), (0, w - rw, 0, h - rh))
        prev_out = res["result"]
        outs.append(res["result"][0])
        flows.append(flow[0])
        pvs.append(res["PV"][0])
    return torch.stack(outs), torch.stack(flows), torch.stack(pvs)


def integer_margin(flows: torch.Tensor) -> float:
    """Smallest distance of ``p + flow`` to an integer over the BIMNet region."""
    h, w = flows.shape[-2:]
    rh, rw = h - h % 32, w - w % 32
    ys = torch.arange(rh, dtype=flows.dtype).view(1, rh, 1)
    xs = torch.arange(rw, dtype=flows.dtype).view(1, 1, rw)
    pos = torch.stack((xs + flows[:, 0, :rh, :rw], ys + flows[:, 1, :rh, :rw]))
    frac = pos - pos.floor()
    return float(torch.minimum(frac, 1 - frac).min())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("official", type=Path, help="checkout of github.com/codeslake/PVDNet")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data" / "pvdnet_official.safetensors")
    ap.add_argument("--commit", default="", help="commit of the checkout, recorded in the fixture")
    args = ap.parse_args(argv)
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"weight_seed": WEIGHT_SEED, "official_commit": args.commit, "integer_margin": INTEGER_MARGIN}
    with cpu_shims():
        nets = {}
        for variant, network in (("normal", "PVDNet"), ("large", "PVDNet_large")):
            net = official_deblurnet(args.official.resolve(), network)
            shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
            weights = recipe_weights(shapes)
            net.load_state_dict(weights, strict=True)
            # Fingerprint of the recipe, so the test can check its copy draws the same numbers.
            meta[f"{variant}_weight_sum"] = sum(float(weights[k].double().sum()) for k in sorted(weights))
            meta[f"{variant}_weight_abs_sum"] = sum(float(weights[k].double().abs().sum()) for k in sorted(weights))
            nets[variant] = net
            meta[f"{variant}_shapes"] = shapes
            meta[f"{variant}_params"] = sum(v.numel() for v in net.parameters())
        # Pick the first input seed whose flows keep the truncations of the pixel volume
        # INTEGER_MARGIN away from integers (the BIMNet weights are the same in both nets).
        for input_seed in range(100):
            frames = make_frames(input_seed)
            _, flows, _ = run_official(nets["normal"], frames)
            margin = integer_margin(flows)
            if margin >= INTEGER_MARGIN:
                break
        else:
            raise SystemExit("no input seed with a safe integer margin")
        meta["input_seed"], meta["flow_integer_margin"] = input_seed, margin
        tensors["frames"] = (frames * 255).round().to(torch.uint8).contiguous()
        tensors["flows"] = flows.contiguous()
        for variant, net in nets.items():
            out, fl, pv = run_official(net, frames)
            assert torch.equal(fl, flows)
            tensors[f"{variant}_result"] = out.contiguous()
            # Pixel volume of frame 1 (built from frame 0's output), top rows only, to keep
            # the file small; float16 (a diagnostic, the results are compared in float32).
            tensors[f"{variant}_pv1_top"] = pv[1, :, :PV_ROWS].half().contiguous()
    meta["flow_abs_max"] = float(flows.abs().max())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"fixture": json.dumps(meta)})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): input seed {input_seed}, "
          f"integer margin {margin:.2e}, |flow| max {meta['flow_abs_max']:.2f} px, "
          f"params normal {meta['normal_params']:,} large {meta['large_params']:,}")


if __name__ == "__main__":
    main()
