"""Train the tiny LGC-VD model of the context test: a clip's history is needed to predict it.

Data ("cycling levels"): every frame of a video is one flat grey level, and the levels cycle with
period 3 through three random values in [0.1, 0.9]. In a 14-frame training window, clip B
(frames 6..13) given its first two frames (the prediction task) still lacks the third level,
which appears only in clip A (frames 0..7), i.e. in the global context. A model whose context
works predicts that level; an inert context cannot.

Training: :func:`vidrestore.train.lgcvd.two_stage_step` with the ``"context"`` recipe
(low-noise stage-2 context built by ``next_context``, learnable cross-attention, 80 % prediction,
no loss on given frames), 8x8 frames, a 0.03 M-parameter network, batch 16, Adam; batch ``k`` is
a pure function of ``k``. Checkpoints every ``--ckpt-every`` iterations (``--resume``); the
final network is written as float16 weights to ``--out`` (default ``tests/data/lgcvd-tiny-context``).

``--recipe official`` trains the same network with the official recipe, for comparison.

Run:  PYTHONPATH=src python benchmarks/lgcvd_context_toy.py --steps 3000 --max-minutes 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vidrestore.checkpoint import save_pretrained
from vidrestore.nets.lgcvd import LGCVDUNet
from vidrestore.train.lgcvd import RECIPES, context_losses, lgcvd_alphas_cumprod, two_stage_step

SIZE = 8
NET = dict(channels=1, frames=8, image_size=SIZE, dim=8, dim_mults=[1, 2], num_res_blocks=1, attn_resolutions=[SIZE // 2],
           head_channels=8)


def cycling_levels(n: int, generator: torch.Generator, frames: int = 14, size: int = SIZE) -> torch.Tensor:
    """``n`` videos ``(n, 1, frames, size, size)`` of flat frames whose level cycles through 3 random values."""
    levels = torch.rand(n, 3, generator=generator) * 0.8 + 0.1
    return levels[:, torch.arange(frames) % 3][:, None, :, None, None].expand(n, 1, frames, size, size).contiguous()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/lgcvd_context_toy")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "data" / "lgcvd-tiny-context"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="context", help="official: for comparison")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rec = dict(RECIPES[args.recipe])
    torch.manual_seed(0)
    net = LGCVDUNet(**NET, **rec.pop("net_overrides"))
    opt = torch.optim.Adam(net.parameters(), args.lr)
    acp = lgcvd_alphas_cumprod().float()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    start, seconds = 0, 0.0
    if args.resume and (run / "state.pt").exists():
        state = torch.load(run / "state.pt")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start, seconds = state["step"], state["seconds"]
    probe = cycling_levels(32, torch.Generator().manual_seed(10**6))
    t0 = time.time()
    step = start
    for step in range(start + 1, args.steps + 1):
        g = torch.Generator().manual_seed(step)
        two_stage_step(net.train(), opt, cycling_levels(args.batch, g), acp, g, **rec)
        out_of_time = args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes
        if step % args.ckpt_every == 0 or step == args.steps or out_of_time:
            el = seconds + time.time() - t0
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "seconds": el}, run / "state.pt")
            r = context_losses(net.eval(), probe)
            with open(run / "log.jsonl", "a") as fh:
                fh.write(json.dumps({"step": step, "seconds": round(el, 1), **r}) + "\n")
            print(f"step {step} ({el:.0f} s) probe loss true {r['true']:.4f} grey {r['grey']:.4f} wrong {r['wrong']:.4f}", flush=True)
        if out_of_time:
            break
    save_pretrained(net.eval(), args.out, dtype=torch.float16,
                    card={"prediction": "v", "schedule": "cosine", "max_beta": 0.9999, "num_timesteps": 1000,
                          "dataset": "cycling levels (benchmarks/lgcvd_context_toy.py)", "size": SIZE, "steps": step,
                          "batch": args.batch, "lr": args.lr, "recipe": args.recipe, "train_seconds": round(seconds + time.time() - t0, 1)})


if __name__ == "__main__":
    main()
