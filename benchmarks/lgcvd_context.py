"""Does an LGC-VD model use its global context? Held-out moving digits, true vs grey vs wrong context.

Yang et al. (IJCAI 2023) condition each clip on an encoding of the previous clip (the global
context). This benchmark measures how much a trained model gains from it:

* Test set: ``--videos`` moving-digit videos of the *test* split (unseen glyphs), seed 0, 14
  frames, drawn with the data settings recorded in the model's ``config.json`` (frame size,
  digits, glyph size, sub-pixel rendering, bounces).
* **Loss probe** (:func:`vidrestore.train.lgcvd.context_losses`): L1 v-loss of clip B (frames
  6..13) on the prediction task (frames 6, 7 given) over its 6 new frames at t = 100..900, with
  the context of clip A (frames 0..7, "true"), of the fixed grey clip ("grey") or of another
  video's clip A ("wrong").
* **Prediction with history**: clip B sampled (``--steps`` ancestral steps, ``--seeds``) from
  ground-truth frames 6, 7 with each of the three contexts; PSNR over frames 8..13 per video
  (mean over seeds), then the mean over videos with a 95 % t-interval, and the paired
  difference true - grey and true - wrong with its interval.
* **Autoregressive prediction** (:func:`vidrestore.workflows.lgcvd.predict_video`): frames 0, 1
  given, 12 predicted in two clips; the second clip (frames 8..13) sees the context carried from
  the first (``carry``) or the grey context (``no carry``).
* Baseline: copy the last given frame (frame 7).

Run:  PYTHONPATH=src python benchmarks/lgcvd_context.py --model runs/context/model --model runs/official/model
Writes ``--out`` (markdown) and the same numbers as JSON next to it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from vidrestore.checkpoint import from_pretrained
from vidrestore.data.moving_digits import moving_digits
from vidrestore.metrics import psnr
from vidrestore.nets.lgcvd import next_context
from vidrestore.tensor import to_model
from vidrestore.train.lgcvd import context_losses
from vidrestore.workflows.lgcvd import predict_video, sample_clip

RESULTS = Path(__file__).resolve().parent / "results"


def interval(x: torch.Tensor) -> tuple[float, float, float]:
    """Mean and 95 % t-interval ``(mean, lo, hi)`` of a sample ``[N]``."""
    from scipy.stats import t as student

    x = x.double()
    n = x.numel()
    m = float(x.mean())
    h = float(student.ppf(0.975, n - 1)) * float(x.std()) / math.sqrt(n) if n > 1 else float("nan")
    return m, m - h, m + h


def fmt(ci: tuple[float, float, float], digits: int = 2) -> str:
    m, lo, hi = ci
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def frame_psnr(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean PSNR over frames per video ``[N]`` (videos ``(N, C, T, H, W)`` in [0, 1])."""
    return psnr(pred, gt, reduction="none").reshape(pred.shape[0], -1).mean(1).float()


def data_settings(card: dict, digits: int = 2, digit_size: int = 12) -> dict:
    """Moving-digits settings of a model's training data, from its config.json; ``digits`` and
    ``digit_size`` where the card does not record them (older cards)."""
    return dict(size=int(card.get("size", 32)), num_digits=int(card.get("num_digits", digits)),
                digit_size=int(card.get("digit_size", digit_size)), subpixel=bool(card.get("subpixel", False)),
                bounce=bool(card.get("bounce", True)), integer_motion=bool(card.get("integer_motion", False)))


@torch.no_grad()
def evaluate(model_dir: str, args) -> dict:
    net = from_pretrained(model_dir).eval()
    card = net.pretrained_config
    data = data_settings(card, args.digits, args.digit_size)
    video = moving_digits(args.videos, frames=14, split="test", seed=0, channels=net.channels, **data)
    f, n = net.frames, video.shape[0]
    t0 = time.time()
    res = {"model": model_dir, "steps_trained": card.get("steps"), "context_mode": net.context_mode, "data": data,
           "loss": context_losses(net, video, noise_draws=2)}
    # Prediction with history: clip B from ground-truth frames 6, 7 under three contexts.
    clip_a, clip_b = video[:, :, :f], video[:, :, f - 2 :]
    contexts = {"true": next_context(net, to_model(clip_a)), "grey": net.encode_context(None, like=clip_a),
                "wrong": next_context(net, to_model(clip_a.roll(1, dims=0)))}
    pos = torch.tensor([[0, 1]] * n)
    scores = {}
    for name, ctx in contexts.items():
        per_seed = []
        for seed in args.seeds:
            y = sample_clip(net, clip_b, pos, ctx, steps=args.steps, generator=torch.Generator().manual_seed(seed))
            per_seed.append(frame_psnr(y[:, :, 2:], clip_b[:, :, 2:]))
        scores[name] = torch.stack(per_seed).mean(0)
    scores["copy-last"] = frame_psnr(clip_b[:, :, 1:2].expand(-1, -1, f - 2, -1, -1), clip_b[:, :, 2:])
    res["history"] = {k: interval(v) for k, v in scores.items()}
    res["history_diff"] = {"true-grey": interval(scores["true"] - scores["grey"]),
                           "true-wrong": interval(scores["true"] - scores["wrong"])}
    # Autoregressive: frames 0, 1 -> 12 frames; the second clip sees carried or grey context.
    auto = {}
    for carry in (True, False):
        per_seed = []
        for seed in args.seeds:
            y = predict_video(net, video[:, :, :2], 12, steps=args.steps, carry_context=carry,
                              generator=torch.Generator().manual_seed(seed))
            per_seed.append(frame_psnr(y[:, :, 8:14], video[:, :, 8:14]))
        auto["carry" if carry else "no carry"] = torch.stack(per_seed).mean(0)
    res["autoregressive"] = {k: interval(v) for k, v in auto.items()}
    res["autoregressive_diff"] = interval(auto["carry"] - auto["no carry"])
    res["seconds"] = round(time.time() - t0, 1)
    return res


def to_markdown(results: list[dict], args) -> str:
    lines = ["# LGC-VD: does the model use its global context?", "",
             f"Held-out moving digits (test split, unseen glyphs), {args.videos} videos, seeds {args.seeds}, "
             f"{args.steps}-step ancestral sampler. PSNR in dB, mean over videos with a 95 % t-interval.", "",
             "Command: `" + args.command + "`", ""]
    lines += ["## Loss probe (prediction task, clip B, L1 v-loss over the 6 new frames, t = 100..900)", "",
              "| model | iterations | true context | grey context | wrong clip's context | true/grey | true/wrong |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        lo = r["loss"]
        lines.append(f"| {r['model']} | {r['steps_trained']} | {lo['true']:.4f} | {lo['grey']:.4f} | {lo['wrong']:.4f} | "
                     f"{lo['true'] / lo['grey']:.3f} | {lo['true'] / lo['wrong']:.3f} |")
    lines += ["", "## Prediction with history (frames 6, 7 given; PSNR of frames 8..13)", "",
              "| model | true context | grey context | wrong clip's context | copy last frame | true - grey | true - wrong |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        h, d = r["history"], r["history_diff"]
        lines.append(f"| {r['model']} | {fmt(h['true'])} | {fmt(h['grey'])} | {fmt(h['wrong'])} | {fmt(h['copy-last'])} | "
                     f"{fmt(d['true-grey'])} | {fmt(d['true-wrong'])} |")
    lines += ["", "## Autoregressive (frames 0, 1 given; PSNR of frames 8..13, the second clip)", "",
              "| model | carried context | grey context | carried - grey |", "|---|---|---|---|"]
    for r in results:
        a = r["autoregressive"]
        lines.append(f"| {r['model']} | {fmt(a['carry'])} | {fmt(a['no carry'])} | {fmt(r['autoregressive_diff'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="LGC-VD weight folder (repeat to compare)")
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--digits", type=int, default=2, help="digits per video if the model card does not say")
    ap.add_argument("--digit-size", type=int, default=12, help="glyph size if the model card does not say")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "lgcvd_context.md"))
    args = ap.parse_args(argv)
    args.command = "PYTHONPATH=src python benchmarks/lgcvd_context.py " + " ".join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    results = [evaluate(m, args) for m in args.model]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(results, args))
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(out.read_text())


if __name__ == "__main__":
    main()
