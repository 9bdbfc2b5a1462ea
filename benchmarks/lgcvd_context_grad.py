"""Gradient norm reaching the LGC-VD context encoder at initialisation, by cross-attention output scale.

The bottleneck cross-attention of LGC-VD (Yang et al., IJCAI 2023) is the only path from the
loss to the global-context encoder, so the initial scale of its output projection scales the
encoder's gradient. For each scale and seed: a fresh ``--preset`` network, one batch of 16
training windows (moving digits, sub-pixel motion), the stage-2 prediction loss on clip B with
the context of clip A; printed: the gradient norm of the encoder and of the rest of the network.

Run:  PYTHONPATH=src python benchmarks/lgcvd_context_grad.py [--preset digits-small --seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import torch

from vidrestore.nets.lgcvd import local_condition, next_context
from vidrestore.tensor import to_model
from vidrestore.train.lgcvd import TrainConfig, _batch, build_net, lgcvd_alphas_cumprod, v_loss


def grad_norms(preset: str, scale: float, seed: int, batch: int = 16) -> tuple[float, float]:
    torch.manual_seed(seed)
    cfg = TrainConfig(preset=preset, batch=batch, subpixel=True, net_overrides={"cross_out_scale": scale, "context_mode": "last"})
    net = build_net(cfg)
    f = net.frames
    window, _ = _batch(cfg, 0, f, net.channels)
    clip_a, clip_b = window[:, :, :f], window[:, :, f - 2 :]
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (batch,), generator=g)
    noise = torch.randn(clip_b.shape, generator=g)
    cond = local_condition(clip_b, torch.tensor([[0, 1]] * batch), f)
    loss, _ = v_loss(net, to_model(clip_b), cond, next_context(net, to_model(clip_a)), t, noise, lgcvd_alphas_cumprod().float())
    loss.backward()
    enc = sum(float((p.grad**2).sum()) for p in net.encoder.parameters()) ** 0.5
    rest = sum(float((p.grad**2).sum()) for k, p in net.named_parameters() if not k.startswith("encoder.") and p.grad is not None) ** 0.5
    return enc, rest


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="digits-small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scales", type=float, nargs="+", default=[1e-5, 1.0])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| cross_out_scale | seed | encoder grad norm | rest grad norm | ratio |\n|---|---|---|---|---|")
    for scale in args.scales:
        for seed in args.seeds:
            enc, rest = grad_norms(args.preset, scale, seed)
            print(f"| {scale:g} | {seed} | {enc:.2e} | {rest:.2e} | {enc / rest:.1e} |")


if __name__ == "__main__":
    main()
