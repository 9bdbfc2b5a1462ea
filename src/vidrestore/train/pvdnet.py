"""Two-phase training of PVDNet (Son et al., ACM TOG 2021) on synthetic blurry videos.

Phase 1, :func:`train_bimnet`: the LiteFlowNet is trained with the blur-invariant loss of the
paper (Eq. 1), averaged over the four pairings ``ab in {bb, bs, sb, ss}`` (``b`` blurry,
``s`` sharp):

    W^{ab} = BIMNet(I^a_t, I^b_{t-1}),   L^{ab} = masked MSE( warp(I^s_{t-1}, W^{ab}), I^s_t ),

where the mask keeps pixels whose warp stays inside the image and images are in ``[0, 1]``.
Because our synthetic clips come with exact flow, an optional multi-scale end-point-error
term ``flow_weight * mean_levels EPE(W^{ab}_level, W_gt)`` (LiteFlowNet's own training loss,
same four pairings; the sizes must be multiples of 32) speeds up training from scratch on a
CPU budget; it is *not* in the PVDNet paper and is 0 by default.

Phase 2, :func:`train_pvdnet`: BIMNet frozen, PVDNet trained with MSE in ``[-1, 1]`` space,
recurrently: for each clip of ``frames`` frames the state starts as the blurry frame 0, and
for every centre frame ``t = 1 .. frames-2`` one optimiser step is taken on
``MSE(PVDNet(V(state, W_t), I_{t-1}, I_t, I_{t+1}), S_t)``, then the output is detached and
becomes the state (truncated BPTT of length 1, as the official trainer). RAdam with decoupled
weight decay 0.01, gradient-norm clipping 1.0, cosine annealing with restarts whose periods
are the paper's ``[50k, 100k, 150k, 150k, 150k] / 600k`` fractions of the total.

Both phases: data batch ``k`` depends only on ``(seed, k)``; checkpoints hold model,
optimiser, step and log history, so ``resume=True`` continues a run exactly. Outputs::

    out_dir/checkpoint/   model.safetensors, optimizer.pt, trainer_state.json
    out_dir/bimnet/ or out_dir/pvdnet/   exported weight folder (vidrestore.checkpoint)
    out_dir/log.jsonl     one JSON line per log interval
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import from_pretrained, save_pretrained
from .run import CHECKPOINT, LOG, atomic_json, has_checkpoint, load_checkpoint, save_checkpoint, trim_log
from ..data.blur_synth import BlurSynthConfig, SyntheticBlurClips
from ..errors import UserError
from ..nets import LITEFLOWNET_PRESETS, PVDNET_PRESETS, LiteFlowNet, PVDNetDeblur
from ..nets.liteflownet import backwarp
from ..nets.pvdnet import pixel_volume

__all__ = ["bim_loss", "pvdnet_clip_steps", "cosine_restarts_lr", "train_bimnet", "train_pvdnet", "export_pvdnet"]

PAIRINGS = ("bb", "bs", "sb", "ss")
#: Relative lengths of the paper's cosine-annealing cycles (50k, 100k, 150k, 150k, 150k of 600k).
CYCLES = (50, 100, 150, 150, 150)


def cosine_restarts_lr(step: int, total: int, lr: float, eta_min: float, cycles: Sequence[int] = CYCLES) -> float:
    """Learning rate of cosine annealing with warm restarts, cycle lengths proportional to ``cycles``."""
    bounds = np.cumsum([0] + list(cycles), dtype=np.float64) / float(sum(cycles)) * max(total, 1)
    k = int(np.searchsorted(bounds, step, side="right") - 1)
    k = min(max(k, 0), len(cycles) - 1)
    frac = (step - bounds[k]) / max(bounds[k + 1] - bounds[k], 1e-9)
    return eta_min + 0.5 * (lr - eta_min) * (1 + math.cos(math.pi * min(frac, 1.0)))


def bim_loss(
    net: LiteFlowNet,
    blurry: torch.Tensor,
    sharp: torch.Tensor,
    gt_flow: torch.Tensor | None = None,
    flow_weight: float = 0.0,
    pairings: Sequence[str] = PAIRINGS,
) -> tuple[torch.Tensor, dict]:
    """Blur-invariant motion loss (Son et al. 2021, Eq. 1), mean over the four pairings.

    Args:
        net: the flow network.
        blurry, sharp: ``(B, 3, 2, H, W)`` frame pairs ``(t-1, t)`` in ``[0, 1]``.
        gt_flow: optional ``(B, 2, H, W)`` exact backward flow ``t -> t-1`` (for the EPE term).
        flow_weight: weight of the optional EPE term (0: the paper's loss only).
        pairings: the pairings to average (default all four, as the paper).

    Returns:
        ``(loss, {"photo": ..., "epe": ...})``.
    """
    images = {"b": blurry, "s": sharp}
    s_prev, s_cur = sharp[:, :, 0], sharp[:, :, 1]
    photo, epe = 0.0, 0.0
    h, w = s_cur.shape[-2:]
    for a, b in pairings:
        cur, prev = images[a][:, :, 1], images[b][:, :, 0]
        if gt_flow is not None and flow_weight > 0:
            # Multi-scale EPE (LiteFlowNet's own training loss) on every pyramid level.
            half, pyramid = net(cur, prev, return_pyramid=True)
            flow = F.interpolate(half, size=(h, w), mode="bilinear", align_corners=False)
            for f in pyramid:
                target = F.adaptive_avg_pool2d(gt_flow, f.shape[-2:])
                epe = epe + (f - target).square().sum(1).add(1e-9).sqrt().mean() / len(pyramid)
        else:
            flow = net.estimate(cur, prev)
        warped = backwarp(s_prev, flow)
        mask = (backwarp(torch.ones_like(s_prev[:, :1]), flow) > 0.999).to(flow.dtype)
        photo = photo + ((warped - s_cur).square() * mask).sum() / (mask.sum() * 3).clamp_min(1.0)
    photo = photo / len(pairings)
    epe = epe / len(pairings) if gt_flow is not None and flow_weight > 0 else torch.zeros(())
    loss = photo + flow_weight * epe if gt_flow is not None and flow_weight > 0 else photo
    return loss, {"photo": float(photo.detach()), "epe": float(epe.detach()) if torch.is_tensor(epe) else float(epe)}


def pvdnet_clip_steps(
    model: PVDNetDeblur,
    blurry: torch.Tensor,
    sharp: torch.Tensor,
    opt: torch.optim.Optimizer | None,
    *,
    flows: torch.Tensor | None = None,
    lr_fn=None,
    clip: float = 1.0,
) -> list[float]:
    """Recurrent per-frame optimisation over one batch of clips (phase 2).

    Args:
        model: BIMNet frozen, PVDNet trained.
        blurry, sharp: ``(B, 3, T, H, W)`` in ``[0, 1]``, ``T >= 3``.
        opt: optimiser over ``model.pvdnet`` parameters (``None``: evaluate only).
        flows: optional ``(B, 2, T, H, W)`` flows ``t -> t-1`` (default: BIMNet's, no grad).
        lr_fn: optional ``lr_fn(i)`` setting the learning rate before the ``i``-th update.
        clip: gradient-norm clip.

    Returns:
        The loss (MSE in ``[-1, 1]``) of each centre frame ``1 .. T-2``.
    """
    t_len = blurry.shape[2]
    m_blur, m_sharp = 2 * blurry - 1, 2 * sharp - 1
    state = m_blur[:, :, 0]
    losses = []
    for t in range(1, t_len - 1):
        if flows is None:
            with torch.no_grad():
                flow = model.flow(blurry[:, :, t], blurry[:, :, t - 1])
        else:
            flow = flows[:, :, t]
        vol = pixel_volume(state, flow, m_blur[:, :, t])
        out = model.pvdnet(vol, m_blur[:, :, t], m_blur[:, :, t - 1], m_blur[:, :, t + 1])
        loss = F.mse_loss(out, m_sharp[:, :, t])
        if opt is not None:
            if lr_fn is not None:
                for g in opt.param_groups:
                    g["lr"] = lr_fn(len(losses))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.pvdnet.parameters(), clip)
            opt.step()
        losses.append(float(loss.detach()))
        state = out.detach()
    return losses


# --------------------------------------------------------------------------- shared plumbing


def _dataset(data: Sequence[str] | None, dataset: Any, size: int, frames: int, seed: int, config: BlurSynthConfig, say) -> Any:
    if dataset is not None:
        return dataset
    if not data:
        raise UserError("no training data: pass --data FOLDER (photos; see scripts/fetch_training_data.sh)")
    t0 = time.time()
    ds = SyntheticBlurClips.from_folders(list(data), split="train", size=size, num_frames=frames, seed=seed, config=config)
    say(f"data: {len(ds.files)} photos (held-out ones excluded), loaded in {time.time() - t0:.1f}s")
    return ds


class _BatchRange(torch.utils.data.Dataset):
    """Batches ``first .. last-1`` of a dataset with ``batch(index, size)``, as a map-style dataset."""

    def __init__(self, ds: Any, first: int, last: int, size: int):
        self.ds, self.first, self.last, self.size = ds, int(first), int(last), int(size)

    def __len__(self) -> int:
        return max(self.last - self.first, 0)

    def __getitem__(self, i: int) -> dict:
        return self.ds.batch(self.first + i, self.size)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


def _batch_stream(ds: Any, first: int, last: int, size: int, workers: int):
    """Batches ``first, first+1, ...`` in order; ``workers > 0`` renders them in worker processes.

    Batch ``k`` is a pure function of ``(seed, k)``, so the stream is the same with or without
    workers (they only run ahead).
    """
    if workers <= 0:
        for k in range(first, last):
            yield ds.batch(k, size)
        return
    loader = torch.utils.data.DataLoader(_BatchRange(ds, first, last, size), batch_size=None, shuffle=False,
                                         num_workers=int(workers), prefetch_factor=4, worker_init_fn=_one_thread)
    yield from loader


def _to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _progress_bar(total: int, start: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=desc, disable=not enabled, dynamic_ncols=True, mininterval=5.0)


# --------------------------------------------------------------------------- phase 1


def train_bimnet(
    data: Sequence[str] | None,
    out_dir: str | os.PathLike,
    *,
    steps: int,
    batch: int = 8,
    size: int = 64,
    preset: str = "small",
    lr: float = 3e-4,
    flow_weight: float = 0.0,
    pairings_per_step: int = 4,
    seed: int = 0,
    ckpt_every: int = 100,
    log_every: int = 10,
    resume: bool = False,
    num_threads: int | None = None,
    progress: bool = True,
    dataset: Any = None,
    config: BlurSynthConfig = BlurSynthConfig(),
    device: str | torch.device = "cpu",
    workers: int = 0,
    max_seconds: float | None = None,
) -> LiteFlowNet:
    """Phase 1: train BIMNet (a LiteFlowNet) with the blur-invariant loss (module docstring).

    Args:
        data: photo folders (held-out photos of :data:`~vidrestore.data.images.DEFAULT_HOLDOUT`
            are excluded).
        out_dir: run folder (checkpoint/, bimnet/, log.jsonl).
        steps: total optimiser steps (a resumed run continues up to this number).
        batch, size: clips per step and crop side (a multiple of 32).
        preset: LiteFlowNet preset (``small`` or ``full``).
        lr: Adam learning rate, cosine-annealed to ``lr / 100``.
        flow_weight: weight of the optional EPE term against the exact synthetic flow.
        pairings_per_step: how many of the four pairings each step uses (4: the paper's
            loss; fewer cycle through ``bb, bs, sb, ss`` step by step, the same expected loss
            at a fraction of the cost).
        seed: seed of initialisation and data.
        ckpt_every, log_every: intervals in steps.
        resume: continue from ``out_dir/checkpoint`` if present.
        num_threads: ``torch.set_num_threads`` value.
        progress: progress bar and log lines on stdout.
        dataset: ready-made object with ``batch(index, batch_size)`` (tests).
        config: synthetic motion ranges.
        device: torch device of the network (data are rendered on the CPU).
        workers: data-rendering processes (0: in this process); the batches are the same.
        max_seconds: stop with a checkpoint after this much wall time (``resume`` continues;
            the learning-rate schedule still follows ``steps``).

    Returns:
        The trained network (also exported to ``out_dir/bimnet``).
    """
    if size % 32:
        raise UserError(f"--size must be a multiple of 32 for BIMNet, got {size}")
    if preset not in LITEFLOWNET_PRESETS:
        raise UserError(f"unknown BIMNet preset {preset!r}; choose one of {', '.join(LITEFLOWNET_PRESETS)}")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir, log_path = out / CHECKPOINT, out / LOG
    say = (lambda m: print(f"[bimnet] {m}", flush=True)) if progress else (lambda m: None)

    torch.manual_seed(seed)
    device = torch.device(device)
    net = LiteFlowNet(**LITEFLOWNET_PRESETS[preset]).train().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    if not 1 <= pairings_per_step <= 4:
        raise UserError(f"--pairings must be 1..4, got {pairings_per_step}")
    expect = {"seed": seed, "batch": batch, "size": size, "preset": preset, "flow_weight": flow_weight, "pairings_per_step": pairings_per_step}
    atomic_json(out / "train_config.json", {"model": "bimnet", **expect, "steps": steps, "lr": lr})
    start, history, seconds = 0, [], 0.0
    if resume and has_checkpoint(ckpt_dir):
        st = load_checkpoint(ckpt_dir, net, opt, expect=expect)
        start, history, seconds = int(st["step"]), st.get("history", []), float(st.get("seconds", 0.0))
        trim_log(log_path, start)
        say(f"resumed at step {start}")
    ds = _dataset(data, dataset, size, 2, seed, config, say)
    say(f"{sum(p.numel() for p in net.parameters()):,} parameters; steps {start} -> {steps}, batch {batch}, size {size}")

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_dir, net, opt, {**expect, "step": step, "history": history, "seconds": seconds})
        card = {"trained_steps": step, "phase": "bimnet", "train_seconds": round(seconds, 1), **expect}
        save_pretrained(net, out / "bimnet", card=card)

    window: list[tuple[float, float, float]] = []
    bar = _progress_bar(steps, start, "bimnet", progress)
    stream = _batch_stream(ds, start, steps, batch, workers)
    t_call = time.time()
    for step in range(start, steps):
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1))))
        b = _to(next(stream), device)
        pairs = [PAIRINGS[(step * pairings_per_step + k) % 4] for k in range(pairings_per_step)]
        loss, parts = bim_loss(net, b["blurry"], b["sharp"], b["flow"][:, :, 1], flow_weight, pairs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if not math.isfinite(float(loss.detach())):
            raise RuntimeError(f"non-finite loss at step {step + 1}")
        seconds += time.time() - t0
        window.append((float(loss.detach()), parts["photo"], parts["epe"]))
        done = step + 1
        bar.update(1)
        if done % log_every == 0 or done == steps:
            m = np.mean(window, 0)
            history.append([done, float(m[0]), float(m[1]), float(m[2])])
            rec = {"step": done, "loss": float(m[0]), "photo_mse": float(m[1]), "epe": float(m[2]), "seconds": round(seconds, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{m[0]:.4f}", epe=f"{m[2]:.2f}")
            window = []
        out_of_time = max_seconds is not None and time.time() - t_call >= max_seconds
        if done % ckpt_every == 0 or done == steps or out_of_time:
            checkpoint(done)
        if out_of_time and done < steps:
            say(f"stopped at step {done} (max_seconds); resume to continue")
            break
    bar.close()
    return net


# --------------------------------------------------------------------------- phase 2


def _training_flows(source: str, blurry: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor | None:
    """Flows ``t -> t-1`` (B, 2, T, H, W) for the pixel volume, or None for BIMNet's."""
    if source == "bimnet":
        return None
    b, _, t_len, h, w = blurry.shape
    if source == "zero":
        return blurry.new_zeros(b, 2, t_len, h, w)
    if source == "gt":
        if gt is None:
            raise UserError("flow source 'gt' needs a dataset with exact flow")
        return gt[:, :, :t_len]
    from ..flow import dis_flow

    out = blurry.new_zeros(b, 2, t_len, h, w)
    for t in range(1, t_len):
        out[:, :, t] = dis_flow(blurry[:, :, t], blurry[:, :, t - 1])
    return out


def train_pvdnet(
    data: Sequence[str] | None,
    out_dir: str | os.PathLike,
    *,
    bimnet: str | os.PathLike | None,
    steps: int,
    batch: int = 8,
    size: int = 64,
    frames: int = 6,
    preset: str = "small",
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    zero_init_residual: bool = False,
    flow_source: str = "bimnet",
    seed: int = 0,
    ckpt_every: int = 100,
    log_every: int = 20,
    resume: bool = False,
    num_threads: int | None = None,
    progress: bool = True,
    dataset: Any = None,
    config: BlurSynthConfig = BlurSynthConfig(),
    device: str | torch.device = "cpu",
    workers: int = 0,
    max_seconds: float | None = None,
    init: str | os.PathLike | None = None,
) -> PVDNetDeblur:
    """Phase 2: train PVDNet with BIMNet frozen (module docstring).

    Args:
        data: photo folders (held-out photos excluded).
        out_dir: run folder (checkpoint/, pvdnet/, log.jsonl).
        bimnet: weight folder of a trained BIMNet (``train_bimnet``'s ``out/bimnet``, or a
            PVDNet folder, whose BIMNet is taken); it is frozen and exported with the model. May be ``None`` when ``flow_source`` is not
            ``"bimnet"`` (an untrained small BIMNet is then stored).
        steps: total per-frame optimiser steps (``frames - 2`` per clip batch, as in the
            paper where ``itr_inc = 13`` per 15-frame sample).
        batch, size, frames: clips per batch, crop side (multiple of 32), frames per clip.
        preset: PVDNet preset (``small``, ``normal``, ``large``).
        lr, weight_decay: RAdam learning rate (cosine restarts down to ``lr / 1000``) and
            decoupled weight decay.
        flow_source: flow fed to the pixel volume during training: ``"bimnet"`` (the paper),
            ``"dis"`` (OpenCV DIS on the blurry frames), ``"gt"`` (the exact synthetic flow)
            or ``"zero"`` (no motion compensation, an ablation).
        zero_init_residual: start the last conv at zero (the network starts as the identity
            on the blurry frame) instead of the paper's Xavier init; helps short CPU runs.
        seed, ckpt_every, log_every, resume, num_threads, progress, dataset, config: as in
            :func:`train_bimnet` (intervals in optimiser steps, rounded to whole clips).
        device, workers, max_seconds: as in :func:`train_bimnet`.
        init: optional PVDNet weight folder (e.g. a model trained with another flow source)
            whose deblurring CNN starts this run (fine-tuning); its config must be ``preset``'s.
            ``zero_init_residual`` is then ignored. The BIMNet still comes from ``bimnet``.

    Returns:
        The trained :class:`PVDNetDeblur` (also exported to ``out_dir/pvdnet``, float16).
    """
    if frames < 3:
        raise UserError(f"--frames must be >= 3, got {frames}")
    if size % 32:
        raise UserError(f"--size must be a multiple of 32, got {size}")
    if preset not in PVDNET_PRESETS:
        raise UserError(f"unknown PVDNet preset {preset!r}; choose one of {', '.join(PVDNET_PRESETS)}")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir, log_path = out / CHECKPOINT, out / LOG
    say = (lambda m: print(f"[pvdnet] {m}", flush=True)) if progress else (lambda m: None)

    if flow_source not in ("bimnet", "dis", "gt", "zero"):
        raise UserError(f"unknown flow source {flow_source!r}; choose bimnet, dis, gt or zero")
    if bimnet is None:
        if flow_source == "bimnet":
            raise UserError("--bimnet is required when training with BIMNet flow")
        flow_net = LiteFlowNet(**LITEFLOWNET_PRESETS["small"])
    else:
        flow_net = from_pretrained(bimnet) if isinstance(bimnet, (str, os.PathLike)) else bimnet
        if isinstance(flow_net, PVDNetDeblur):  # a whole PVDNet folder: use its BIMNet
            flow_net = flow_net.bimnet
    if not isinstance(flow_net, LiteFlowNet):
        raise UserError(f"{bimnet} is not a LiteFlowNet/BIMNet (or PVDNet) weight folder")
    torch.manual_seed(seed)
    model = PVDNetDeblur(flow_net.config, preset)
    model.bimnet.load_state_dict(flow_net.state_dict())
    model.bimnet.eval().requires_grad_(False)
    model.pvdnet.train()
    if init is not None:
        src = from_pretrained(init)
        if not isinstance(src, PVDNetDeblur) or src.pvdnet.config != model.pvdnet.config:
            raise UserError(f"--init {init} is not a PVDNet weight folder with the {preset!r} preset's config")
        model.pvdnet.load_state_dict({k: v.float() for k, v in src.pvdnet.state_dict().items()})
        init_steps = getattr(src, "pretrained_config", {}).get("trained_steps")
    elif zero_init_residual:
        nn.init.zeros_(model.pvdnet.end.weight)
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.RAdam(model.pvdnet.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, decoupled_weight_decay=True)
    per_clip = frames - 2
    expect = {"seed": seed, "batch": batch, "size": size, "frames": frames, "preset": preset, "zero_init_residual": zero_init_residual, "flow_source": flow_source}
    atomic_json(out / "train_config.json", {"model": "pvdnet", **expect, "steps": steps, "lr": lr, "weight_decay": weight_decay})
    start, history, seconds = 0, [], 0.0
    if resume and has_checkpoint(ckpt_dir):
        st = load_checkpoint(ckpt_dir, model, opt, expect=expect)
        start, history, seconds = int(st["step"]), st.get("history", []), float(st.get("seconds", 0.0))
        trim_log(log_path, start)
        say(f"resumed at step {start}")
    ds = _dataset(data, dataset, size, frames, seed, config, say)
    n_train = sum(p.numel() for p in model.pvdnet.parameters())
    say(f"PVDNet {n_train:,} trainable parameters (BIMNet frozen); steps {start} -> {steps}, batch {batch}, size {size}, frames {frames}")

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_dir, model, opt, {**expect, "step": step, "history": history, "seconds": seconds})
        card = {"trained_steps": step, "phase": "pvdnet", "train_seconds": round(seconds, 1), **expect}
        if init is not None:
            card.update(init=str(init), init_trained_steps=init_steps)
        save_pretrained(model, out / "pvdnet", dtype=torch.float16, card=card)

    eta_min = lr * 1e-3
    window: list[float] = []
    bar = _progress_bar(steps, start, "pvdnet", progress)
    step = start
    last_ckpt, last_log = start, start
    stream = _batch_stream(ds, start // per_clip, steps // per_clip + 2, batch, workers)
    t_call = time.time()
    while step < steps:
        t0 = time.time()
        b = next(stream)  # batch step // per_clip
        n = min(per_clip, steps - step)
        blurry, sharp = b["blurry"][:, :, : n + 2], b["sharp"][:, :, : n + 2]
        flows = _training_flows(flow_source, blurry, b.get("flow"))  # on the CPU (DIS is OpenCV)
        blurry, sharp = blurry.to(device), sharp.to(device)
        flows = None if flows is None else flows.to(device)
        base = step
        losses = pvdnet_clip_steps(model, blurry, sharp, opt, flows=flows, lr_fn=lambda i: cosine_restarts_lr(base + i, steps, lr, eta_min))
        if not all(math.isfinite(v) for v in losses):
            raise RuntimeError(f"non-finite loss near step {step + 1}")
        seconds += time.time() - t0
        step += len(losses)
        window += losses
        bar.update(len(losses))
        if step - last_log >= log_every or step >= steps:
            m = float(np.mean(window))
            history.append([step, m])
            rec = {"step": step, "loss": m, "psnr_est": round(10 * math.log10(4.0 / max(m, 1e-12)), 2), "lr": cosine_restarts_lr(step, steps, lr, eta_min), "seconds": round(seconds, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{m:.5f}", psnr=rec["psnr_est"])
            window, last_log = [], step
        out_of_time = max_seconds is not None and time.time() - t_call >= max_seconds
        if step - last_ckpt >= ckpt_every or step >= steps or out_of_time:
            checkpoint(step)
            last_ckpt = step
        if out_of_time and step < steps:
            say(f"stopped at step {step} (max_seconds); resume to continue")
            break
    bar.close()
    return model


def export_pvdnet(pvdnet_dir: str | os.PathLike, out_dir: str | os.PathLike, *, bimnet_dir: str | os.PathLike | None = None, flow: str = "bimnet", readme: str | None = None) -> Path:
    """Assemble a shippable PVDNet weight folder (float16).

    Takes the PVDNet of ``pvdnet_dir`` (a ``train_pvdnet`` export), optionally replaces its
    BIMNet by the one in ``bimnet_dir``, records the default inference ``flow`` in
    ``config.json`` and writes ``readme`` as the model card.
    """
    model = from_pretrained(pvdnet_dir)
    if not isinstance(model, PVDNetDeblur):
        raise UserError(f"{pvdnet_dir} is not a PVDNet weight folder")
    extra = {k: v for k, v in getattr(model, "pretrained_config", {}).items() if k not in ("class", "format_version", "kwargs")}
    if bimnet_dir is not None:
        bim = from_pretrained(bimnet_dir)
        if not isinstance(bim, LiteFlowNet) or bim.config != model.bimnet.config:
            raise UserError(f"{bimnet_dir} is not a BIMNet with the config of {pvdnet_dir}")
        model.bimnet.load_state_dict(bim.state_dict())
        extra["bimnet_trained_steps"] = getattr(bim, "pretrained_config", {}).get("trained_steps")
    extra["flow"] = flow
    out = Path(out_dir)
    save_pretrained(model, out, dtype=torch.float16, card=extra)
    if readme is not None:
        (out / "README.md").write_text(readme)
    return out
