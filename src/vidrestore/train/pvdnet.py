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

Options of phase 2 beyond the paper's recipe (all off by default, which keeps the paper's
recipe and earlier runs bit for bit; see :class:`PVDNetTrainConfig`): a linear warm-up and
single cosine instead of the restarts (``schedule="warmup-cosine"``,
:func:`warmup_cosine_lr`); an interior loss (``margin``: clips rendered larger, the loss
taken on the central ``size x size`` square only, so that the scored pixels keep their
motion-compensated source inside the frame when the motion is under ``margin`` pixels
per frame); clips whose last step has no next
frame (``no_next_prob``, as at the end of a video); a blur curriculum
(``curriculum_steps``, :func:`curriculum_strength`); and the blur families of
:mod:`vidrestore.data.blur_synth` (``blur.families``).

Both phases take their hyper-parameters as a frozen dataclass (:class:`BIMNetTrainConfig`,
:class:`PVDNetTrainConfig`) and the run-time options (data, device, workers, time limit) as
keyword arguments. Data batch ``k`` depends only on ``(seed, k)``; checkpoints hold model,
optimiser, step and log history, so ``resume=True`` continues a run exactly; a resume whose
config differs from the saved one in anything but ``steps`` is refused. Outputs::

    out_dir/checkpoint/   model.safetensors, optimizer.pt, trainer_state.json
    out_dir/bimnet/ or out_dir/pvdnet/   exported weight folder (vidrestore.checkpoint)
    out_dir/log.jsonl     one JSON line per log interval
    out_dir/train_config.json   the config of the run (``"model"``: the phase)
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import from_pretrained, save_pretrained
from .run import (CHECKPOINT, LOG, TRAIN_CONFIG, atomic_json, check_resume_config, config_record, has_checkpoint, load_checkpoint,
                  save_checkpoint, trim_log)
from ..data.blur_synth import BlurSynthConfig, SyntheticBlurClips
from ..errors import UserError
from ..nets import LITEFLOWNET_PRESETS, PVDNET_PRESETS, LiteFlowNet, PVDNetDeblur
from ..nets.liteflownet import backwarp
from ..nets.pvdnet import pixel_volume

__all__ = ["BIMNetTrainConfig", "PVDNetTrainConfig", "bim_loss", "pvdnet_clip_steps", "cosine_restarts_lr", "warmup_cosine_lr",
           "curriculum_strength", "interior_mse", "grow_pvdnet_cnn", "train_bimnet", "train_pvdnet", "export_pvdnet"]

PAIRINGS = ("bb", "bs", "sb", "ss")
#: Relative lengths of the paper's cosine-annealing cycles (50k, 100k, 150k, 150k, 150k of 600k).
CYCLES = (50, 100, 150, 150, 150)


def cosine_restarts_lr(step: int, total: int, lr: float, eta_min: float, cycles: Sequence[int] = CYCLES) -> float:
    """Learning rate of cosine annealing with warm restarts, cycle lengths proportional to ``cycles``."""
    bounds = np.cumsum([0] + list(cycles), dtype=np.float64) / float(sum(cycles)) * max(total, 1)
    k = int(np.searchsorted(bounds, step, side="right") - 1)
    k = min(max(k, 0), len(cycles) - 1)
    frac = (step - bounds[k]) / max(bounds[k + 1] - bounds[k], 1e-9)
    return _cosine(frac, lr, eta_min)


def _cosine(frac: float, lr: float, eta_min: float) -> float:
    """Half a cosine from ``lr`` (``frac = 0``) down to ``eta_min`` (``frac >= 1``)."""
    return eta_min + 0.5 * (lr - eta_min) * (1 + math.cos(math.pi * min(frac, 1.0)))


def warmup_cosine_lr(step: int, total: int, lr: float, eta_min: float, warmup: int) -> float:
    """Learning rate rising linearly from 0 to ``lr`` over the first ``warmup`` steps (``lr *
    step / warmup``), then one cosine from ``lr`` down to ``eta_min`` at step ``total``."""
    if step < warmup:
        return lr * step / warmup
    return _cosine((step - warmup) / max(total - warmup, 1), lr, eta_min)


#: Blur strength at the start of a curriculum (:func:`curriculum_strength`).
CURRICULUM_START = 0.3


def curriculum_strength(step: int, ramp_steps: int) -> float:
    """Blur strength of the data at optimiser step ``step``: from :data:`CURRICULUM_START`
    (30 %) linearly to 1 over ``ramp_steps`` steps, then 1 (``ramp_steps = 0``: always 1).
    See :func:`~vidrestore.data.blur_synth.blur_strength` for what it scales."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return 1.0
    return CURRICULUM_START + (1 - CURRICULUM_START) * step / ramp_steps


def interior_mse(out: torch.Tensor, target: torch.Tensor, margin: int = 0) -> torch.Tensor:
    """MSE over the pixels at least ``margin`` pixels away from every image border."""
    if margin > 0:
        out, target = out[..., margin:-margin, margin:-margin], target[..., margin:-margin, margin:-margin]
    return F.mse_loss(out, target)


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
    margin: int = 0,
    no_next: torch.Tensor | None = None,
) -> list[float]:
    """Recurrent per-frame optimisation over one batch of clips (phase 2).

    Args:
        model: BIMNet frozen, PVDNet trained.
        blurry, sharp: ``(B, 3, T, H, W)`` in ``[0, 1]``, ``T >= 3``.
        opt: optimiser over ``model.pvdnet`` parameters (``None``: evaluate only).
        flows: optional ``(B, 2, T, H, W)`` flows ``t -> t-1`` (default: BIMNet's, no grad).
        lr_fn: optional ``lr_fn(i)`` setting the learning rate before the ``i``-th update.
        clip: gradient-norm clip.
        margin: the loss ignores this many pixels at every border (:func:`interior_mse`);
            the network still sees the whole frames.
        no_next: optional ``(B,)`` bools: for these clips the last step (``t = T-2``) is
            given its own frame as the next frame, as :func:`~vidrestore.nets.pvdnet.deblur_frames`
            does at the last frame of a video (frame ``T-1`` is then unused).

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
        nxt = m_blur[:, :, t + 1]
        if no_next is not None and t == t_len - 2:
            nxt = torch.where(no_next.to(nxt.device).view(-1, 1, 1, 1), m_blur[:, :, t], nxt)
        out = model.pvdnet(vol, m_blur[:, :, t], m_blur[:, :, t - 1], nxt)
        loss = interior_mse(out, m_sharp[:, :, t], margin)
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


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class BIMNetTrainConfig:
    """Hyper-parameters of :func:`train_bimnet` (phase 1), stored as ``train_config.json``.

    Attributes:
        steps: total optimiser steps (a resumed run continues up to this number; the only
            field that may change on resume).
        batch, size: clips per step and crop side (a multiple of 32).
        preset: LiteFlowNet preset (:data:`~vidrestore.nets.LITEFLOWNET_PRESETS`).
        lr: Adam learning rate, cosine-annealed to ``lr / 100``.
        flow_weight: weight of the optional EPE term against the exact synthetic flow
            (0: the paper's loss only).
        pairings_per_step: how many of the four pairings each step uses (4: the paper's
            loss; fewer cycle through ``bb, bs, sb, ss`` step by step, the same expected loss
            at a fraction of the cost).
        seed: seed of initialisation and data.
        ckpt_every, log_every: intervals in steps.
        blur: synthetic motion ranges of the training clips.
    """

    steps: int = 600
    batch: int = 8
    size: int = 64
    preset: str = "small"
    lr: float = 3e-4
    flow_weight: float = 0.0
    pairings_per_step: int = 4
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    blur: BlurSynthConfig = field(default_factory=BlurSynthConfig)


@dataclass(frozen=True)
class PVDNetTrainConfig:
    """Hyper-parameters of :func:`train_pvdnet` (phase 2), stored as ``train_config.json``.

    Attributes:
        bimnet: weight folder of a trained BIMNet (:func:`train_bimnet`'s ``out/bimnet``, or a
            PVDNet folder, whose BIMNet is taken); it is frozen and exported with the model.
            May be ``None`` when ``flow_source`` is not ``"bimnet"`` (an untrained small BIMNet
            is then stored).
        steps: total per-frame optimiser steps (``frames - 2`` per clip batch, as in the
            paper where ``itr_inc = 13`` per 15-frame sample; the only field that may change
            on resume).
        batch, size, frames: clips per batch, crop side (multiple of 32), frames per clip.
        preset: PVDNet preset (:data:`~vidrestore.nets.PVDNET_PRESETS`).
        lr, weight_decay: RAdam learning rate (cosine restarts down to ``lr / 1000``) and
            decoupled weight decay.
        zero_init_residual: start the last conv at zero (the network starts as the identity
            on the blurry frame) instead of the paper's Xavier init; helps short CPU runs.
        flow_source: flow fed to the pixel volume during training: ``"bimnet"`` (the paper),
            ``"dis"`` (OpenCV DIS on the blurry frames), ``"gt"`` (the exact synthetic flow)
            or ``"zero"`` (no motion compensation, an ablation).
        init: optional PVDNet weight folder (e.g. a model trained with another flow source)
            whose deblurring CNN starts this run (fine-tuning); its config must be ``preset``'s,
            or differ only by fewer residual blocks (e.g. ``medium`` into ``medium-res4``:
            :func:`grow_pvdnet_cnn` starts the extra blocks as identities).
            ``zero_init_residual`` is then ignored. The BIMNet still comes from ``bimnet``.
        schedule: ``"restarts"`` (the paper's cosine restarts) or ``"warmup-cosine"``
            (:func:`warmup_cosine_lr`: ``warmup_steps`` of linear warm-up from 0, then one
            cosine to ``lr / 1000``).
        warmup_steps: warm-up length in optimiser steps (``"warmup-cosine"`` only).
        margin: clips are rendered ``size + 2 * margin`` pixels wide and high and the loss is
            taken on the central ``size x size`` square (the network sees the whole frame);
            even, so the frame stays a multiple of 4 (a multiple of 16 also keeps it on
            BIMNet's 32-pixel grid, beyond which BIMNet's flow is zero, as in inference).
        no_next_prob: probability that a clip's last step is taken without a next frame
            (its own frame instead, as at the end of a video; see :func:`pvdnet_clip_steps`),
            drawn per clip from ``(seed, batch index)``.
        curriculum_steps: blur curriculum: the data of optimiser step ``s`` are rendered at
            blur strength :func:`curriculum_strength` ``(s, curriculum_steps)`` (30 % rising
            to 100 %; it scales the drift speed and exposure); 0: off. Needs a dataset whose
            ``batch`` takes ``strength`` (:class:`~vidrestore.data.blur_synth.SyntheticBlurClips`).
        seed, ckpt_every, log_every, blur: as in :class:`BIMNetTrainConfig` (intervals in
            optimiser steps, rounded to whole clips).
    """

    bimnet: str | os.PathLike | None = None
    steps: int = 2000
    batch: int = 8
    size: int = 64
    frames: int = 6
    preset: str = "small"
    lr: float = 3e-4
    weight_decay: float = 0.01
    zero_init_residual: bool = False
    flow_source: str = "bimnet"
    init: str | os.PathLike | None = None
    schedule: str = "restarts"
    warmup_steps: int = 0
    margin: int = 0
    no_next_prob: float = 0.0
    curriculum_steps: int = 0
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 20
    blur: BlurSynthConfig = field(default_factory=BlurSynthConfig)


#: The options of :class:`PVDNetTrainConfig` beyond the paper's recipe (recorded in the
#: checkpoint and weight card when not at their defaults).
_RECIPE_OPTIONS = ("schedule", "warmup_steps", "margin", "no_next_prob", "curriculum_steps")


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


class _Curriculum:
    """A dataset whose batch ``k`` is rendered at blur strength ``curriculum_strength(k *
    per_clip, ramp_steps)`` (the first optimiser step the batch serves): still a pure function
    of ``(seed, k)``, so resumes and worker processes see the same data."""

    def __init__(self, ds: Any, per_clip: int, ramp_steps: int):
        self.ds, self.per_clip, self.ramp_steps = ds, int(per_clip), int(ramp_steps)

    def batch(self, index: int, batch_size: int) -> dict:
        return self.ds.batch(index, batch_size, strength=curriculum_strength(index * self.per_clip, self.ramp_steps))


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


def _check_crop_and_preset(size: int, preset: str, presets: Mapping[str, Any], name: str) -> None:
    if size % 32:
        raise UserError(f"--size must be a multiple of 32 for {name}, got {size}")
    if preset not in presets:
        raise UserError(f"unknown {name} preset {preset!r}; choose one of {', '.join(presets)}")


class _Run:
    """Run folder, resume and step loop of one phase (``phase`` = ``"bimnet"`` or ``"pvdnet"``).

    ``expect`` (the settings that fix the network and the data order) goes into every
    checkpoint and weight card and must match on resume, as must every field of ``cfg`` but
    ``steps`` (:func:`~vidrestore.train.run.check_resume_config`). The weights are exported
    to ``out_dir/<phase>``.
    """

    def __init__(self, phase: str, out_dir: str | os.PathLike, cfg: Any, expect: Mapping[str, Any], *,
                 num_threads: int | None, progress: bool):
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.phase, self.cfg, self.expect, self.progress = phase, cfg, dict(expect), progress
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir, self.log_path = self.out / CHECKPOINT, self.out / LOG
        self.start, self.history, self.seconds = 0, [], 0.0

    def say(self, msg: str) -> None:
        if self.progress:
            print(f"[{self.phase}] {msg}", flush=True)

    def begin(self, net: nn.Module, opt: torch.optim.Optimizer, resume: bool) -> None:
        """Restore the checkpoint (with ``resume``), then record the config of this run."""
        if resume and has_checkpoint(self.ckpt_dir):
            st = load_checkpoint(self.ckpt_dir, net, opt, expect=self.expect)
            check_resume_config(self.out / TRAIN_CONFIG, self.cfg)
            self.start, self.history, self.seconds = int(st["step"]), st.get("history", []), float(st.get("seconds", 0.0))
            trim_log(self.log_path, self.start)
            self.say(f"resumed at step {self.start}")
        atomic_json(self.out / TRAIN_CONFIG, {"model": self.phase, **config_record(self.cfg)})

    def save(self, step: int, net: nn.Module, opt: torch.optim.Optimizer, dtype: torch.dtype | None, card: Mapping[str, Any]) -> None:
        """Checkpoint and exported weight folder at ``step``."""
        save_checkpoint(self.ckpt_dir, net, opt, {**self.expect, "step": step, "history": self.history, "seconds": self.seconds})
        card = {"trained_steps": step, "phase": self.phase, "train_seconds": round(self.seconds, 1), **self.expect, **card}
        save_pretrained(net, self.out / self.phase, dtype=dtype, card=card)

    def train(self, net: nn.Module, opt: torch.optim.Optimizer, stream, advance: Callable[[int, dict], list],
              summarise: Callable[[int, list], tuple[list, dict, dict]], *, on_grid: bool, max_seconds: float | None,
              dtype: torch.dtype | None = None, card: Mapping[str, Any] | None = None) -> None:
        """Steps ``self.start .. cfg.steps``: ``advance(step, batch)`` takes one or more optimiser
        steps on the next batch of ``stream`` and returns one value per step; every
        ``cfg.log_every`` steps ``summarise(step, values) -> (history row, log fields, bar
        postfix)`` writes a log record; every ``cfg.ckpt_every`` steps, at the end and after
        ``max_seconds`` of wall time (then stopping) a checkpoint is saved. ``on_grid``: the
        intervals fall on multiples of the interval, else they count from the last record."""
        steps, log_every, ckpt_every = self.cfg.steps, self.cfg.log_every, self.cfg.ckpt_every

        def due(step: int, last: int, every: int) -> bool:
            return step % every == 0 if on_grid else step - last >= every

        bar = _progress_bar(steps, self.start, self.phase, self.progress)
        step = last_log = last_ckpt = self.start
        window: list = []
        t_call = time.time()
        while step < steps:
            t0 = time.time()
            values = advance(step, next(stream))
            self.seconds += time.time() - t0
            step += len(values)
            window += values
            bar.update(len(values))
            if due(step, last_log, log_every) or step >= steps:
                row, fields, postfix = summarise(step, window)
                self.history.append([step, *row])
                rec = {"step": step, **fields, "seconds": round(self.seconds, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                bar.set_postfix(**postfix)
                window, last_log = [], step
            out_of_time = max_seconds is not None and time.time() - t_call >= max_seconds
            if due(step, last_ckpt, ckpt_every) or step >= steps or out_of_time:
                self.save(step, net, opt, dtype, card or {})
                last_ckpt = step
            if out_of_time and step < steps:
                self.say(f"stopped at step {step} (max_seconds); resume to continue")
                break
        bar.close()


# --------------------------------------------------------------------------- phase 1


def train_bimnet(data: Sequence[str] | None, out_dir: str | os.PathLike, cfg: BIMNetTrainConfig, *, resume: bool = False,
                 num_threads: int | None = None, progress: bool = True, dataset: Any = None, device: str | torch.device = "cpu",
                 workers: int = 0, max_seconds: float | None = None) -> LiteFlowNet:
    """Phase 1: train BIMNet (a LiteFlowNet) with the blur-invariant loss (module docstring).

    Args:
        data: photo folders (held-out photos of :data:`~vidrestore.data.images.DEFAULT_HOLDOUT`
            are excluded).
        out_dir: run folder (checkpoint/, bimnet/, log.jsonl, train_config.json).
        cfg: the hyper-parameters (:class:`BIMNetTrainConfig`).
        resume: continue from ``out_dir/checkpoint`` if present; :class:`UserError` if ``cfg``
            differs from the run's ``train_config.json`` in anything but ``steps``.
        num_threads: ``torch.set_num_threads`` value.
        progress: progress bar and log lines on stdout.
        dataset: ready-made object with ``batch(index, batch_size)`` (tests).
        device: torch device of the network (data are rendered on the CPU).
        workers: data-rendering processes (0: in this process); the batches are the same.
        max_seconds: stop with a checkpoint after this much wall time (``resume`` continues;
            the learning-rate schedule still follows ``cfg.steps``).

    Returns:
        The trained network (also exported to ``out_dir/bimnet``).
    """
    _check_crop_and_preset(cfg.size, cfg.preset, LITEFLOWNET_PRESETS, "BIMNet")
    if not 1 <= cfg.pairings_per_step <= 4:
        raise UserError(f"--pairings must be 1..4, got {cfg.pairings_per_step}")
    expect = {"seed": cfg.seed, "batch": cfg.batch, "size": cfg.size, "preset": cfg.preset, "flow_weight": cfg.flow_weight,
              "pairings_per_step": cfg.pairings_per_step}
    run = _Run("bimnet", out_dir, cfg, expect, num_threads=num_threads, progress=progress)
    torch.manual_seed(cfg.seed)
    device = torch.device(device)
    net = LiteFlowNet(**LITEFLOWNET_PRESETS[cfg.preset]).train().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    run.begin(net, opt, resume)
    ds = _dataset(data, dataset, cfg.size, 2, cfg.seed, cfg.blur, run.say)
    run.say(f"{sum(p.numel() for p in net.parameters()):,} parameters; steps {run.start} -> {cfg.steps}, batch {cfg.batch}, size {cfg.size}")

    def advance(step: int, batch: dict) -> list:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(cfg.steps, 1))))
        b = _to(batch, device)
        pairs = [PAIRINGS[(step * cfg.pairings_per_step + k) % 4] for k in range(cfg.pairings_per_step)]
        loss, parts = bim_loss(net, b["blurry"], b["sharp"], b["flow"][:, :, 1], cfg.flow_weight, pairs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if not math.isfinite(float(loss.detach())):
            raise RuntimeError(f"non-finite loss at step {step + 1}")
        return [(float(loss.detach()), parts["photo"], parts["epe"])]

    def summarise(step: int, window: list) -> tuple[list, dict, dict]:
        m = [float(v) for v in np.mean(window, 0)]
        return m, {"loss": m[0], "photo_mse": m[1], "epe": m[2]}, {"loss": f"{m[0]:.4f}", "epe": f"{m[2]:.2f}"}

    stream = _batch_stream(ds, run.start, cfg.steps, cfg.batch, workers)
    run.train(net, opt, stream, advance, summarise, on_grid=True, max_seconds=max_seconds)
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


def _frozen_bimnet(bimnet: Any, flow_source: str) -> LiteFlowNet:
    """The flow network of phase 2: from a BIMNet or PVDNet weight folder, or an untrained small one."""
    if bimnet is None:
        if flow_source == "bimnet":
            raise UserError("--bimnet is required when training with BIMNet flow")
        return LiteFlowNet(**LITEFLOWNET_PRESETS["small"])
    flow_net = from_pretrained(bimnet) if isinstance(bimnet, (str, os.PathLike)) else bimnet
    if isinstance(flow_net, PVDNetDeblur):  # a whole PVDNet folder: use its BIMNet
        flow_net = flow_net.bimnet
    if not isinstance(flow_net, LiteFlowNet):
        raise UserError(f"{bimnet} is not a LiteFlowNet/BIMNet (or PVDNet) weight folder")
    return flow_net


def grow_pvdnet_cnn(dst: nn.Module, src: nn.Module, *, where: str = "init", preset: str = "") -> nn.Module:
    """Copy the PVDNet CNN ``src`` into ``dst`` in place; ``dst`` may have more residual blocks
    at 1/4 resolution (``num_blocks``) with otherwise equal widths.

    The extra blocks are appended after ``src``'s and start as exact identities: each block is
    ``x + relu(conv2(relu(conv1(x))))``, so zeroing ``conv2``'s weight and bias makes it return
    ``x``. The grown network therefore computes exactly what ``src`` does at step 0, and training
    can only start from the smaller model's quality (function-preserving growth, as in Net2Net,
    Chen et al. 2016). Raises :class:`UserError` when the configs differ in anything else.
    """
    a, b = dict(src.config), dict(dst.config)
    na, nb = a.pop("num_blocks"), b.pop("num_blocks")
    if a != b or na > nb:
        raise UserError(f"{where} is not a PVDNet weight folder with the {preset!r} preset's config "
                        f"(or the same widths with fewer residual blocks)")
    state = {k: v.float() for k, v in src.state_dict().items()}
    own = dst.state_dict()
    for k, v in own.items():
        if k not in state:
            if not k.startswith("rbs."):
                raise UserError(f"{where}: weight {k} missing")
            state[k] = torch.zeros_like(v) if k.split(".")[-2] == "2" else v
    dst.load_state_dict(state)
    return dst


def train_pvdnet(data: Sequence[str] | None, out_dir: str | os.PathLike, cfg: PVDNetTrainConfig, *, resume: bool = False,
                 num_threads: int | None = None, progress: bool = True, dataset: Any = None, device: str | torch.device = "cpu",
                 workers: int = 0, max_seconds: float | None = None) -> PVDNetDeblur:
    """Phase 2: train PVDNet with BIMNet frozen (module docstring).

    Args:
        data: photo folders (held-out photos excluded).
        out_dir: run folder (checkpoint/, pvdnet/, log.jsonl, train_config.json).
        cfg: the hyper-parameters (:class:`PVDNetTrainConfig`).
        resume, num_threads, progress, dataset, device, workers, max_seconds: as in
            :func:`train_bimnet`.

    Returns:
        The trained :class:`PVDNetDeblur` (also exported to ``out_dir/pvdnet``, float16).
    """
    if cfg.frames < 3:
        raise UserError(f"--frames must be >= 3, got {cfg.frames}")
    _check_crop_and_preset(cfg.size, cfg.preset, PVDNET_PRESETS, "PVDNet")
    if cfg.flow_source not in ("bimnet", "dis", "gt", "zero"):
        raise UserError(f"unknown flow source {cfg.flow_source!r}; choose bimnet, dis, gt or zero")
    _check_recipe(cfg)
    expect = {"seed": cfg.seed, "batch": cfg.batch, "size": cfg.size, "frames": cfg.frames, "preset": cfg.preset,
              "zero_init_residual": cfg.zero_init_residual, "flow_source": cfg.flow_source}
    defaults = PVDNetTrainConfig()
    expect.update({k: getattr(cfg, k) for k in _RECIPE_OPTIONS if getattr(cfg, k) != getattr(defaults, k)})
    if cfg.blur.families:
        expect["blur_families"] = list(cfg.blur.families)
    run = _Run("pvdnet", out_dir, cfg, expect, num_threads=num_threads, progress=progress)
    flow_net = _frozen_bimnet(cfg.bimnet, cfg.flow_source)
    torch.manual_seed(cfg.seed)
    model = PVDNetDeblur(flow_net.config, cfg.preset)
    model.bimnet.load_state_dict(flow_net.state_dict())
    model.bimnet.eval().requires_grad_(False)
    model.pvdnet.train()
    card = {}
    if cfg.init is not None:
        src = from_pretrained(cfg.init)
        if not isinstance(src, PVDNetDeblur):
            raise UserError(f"--init {cfg.init} is not a PVDNet weight folder with the {cfg.preset!r} preset's config")
        grow_pvdnet_cnn(model.pvdnet, src.pvdnet, where=f"--init {cfg.init}", preset=cfg.preset)
        card = {"init": str(cfg.init), "init_trained_steps": getattr(src, "pretrained_config", {}).get("trained_steps")}
    elif cfg.zero_init_residual:
        nn.init.zeros_(model.pvdnet.end.weight)
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.RAdam(model.pvdnet.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay,
                            decoupled_weight_decay=True)
    run.begin(model, opt, resume)
    ds = _dataset(data, dataset, cfg.size + 2 * cfg.margin, cfg.frames, cfg.seed, cfg.blur, run.say)
    n_train = sum(p.numel() for p in model.pvdnet.parameters())
    run.say(f"PVDNet {n_train:,} trainable parameters (BIMNet frozen); steps {run.start} -> {cfg.steps}, batch {cfg.batch}, "
            f"size {cfg.size}, frames {cfg.frames}")
    per_clip, eta_min = cfg.frames - 2, cfg.lr * 1e-3
    if cfg.curriculum_steps > 0:
        ds = _Curriculum(ds, per_clip, cfg.curriculum_steps)

    def lr_at(step: int) -> float:
        if cfg.schedule == "warmup-cosine":
            return warmup_cosine_lr(step, cfg.steps, cfg.lr, eta_min, cfg.warmup_steps)
        return cosine_restarts_lr(step, cfg.steps, cfg.lr, eta_min)

    def advance(step: int, b: dict) -> list:  # b is batch step // per_clip
        n = min(per_clip, cfg.steps - step)
        blurry, sharp = b["blurry"][:, :, : n + 2], b["sharp"][:, :, : n + 2]
        flows = _training_flows(cfg.flow_source, blurry, b.get("flow"))  # on the CPU (DIS is OpenCV)
        blurry, sharp = blurry.to(device), sharp.to(device)
        flows = None if flows is None else flows.to(device)
        no_next = None
        if cfg.no_next_prob > 0:
            draw = np.random.default_rng([cfg.seed, step // per_clip, 1]).random(blurry.shape[0])
            no_next = torch.from_numpy(draw < cfg.no_next_prob)
        losses = pvdnet_clip_steps(model, blurry, sharp, opt, flows=flows, lr_fn=lambda i: lr_at(step + i),
                                   margin=cfg.margin, no_next=no_next)
        if not all(math.isfinite(v) for v in losses):
            raise RuntimeError(f"non-finite loss near step {step + 1}")
        return losses

    def summarise(step: int, window: list) -> tuple[list, dict, dict]:
        m = float(np.mean(window))
        psnr = round(10 * math.log10(4.0 / max(m, 1e-12)), 2)
        return [m], {"loss": m, "psnr_est": psnr, "lr": lr_at(step)}, {"loss": f"{m:.5f}", "psnr": psnr}

    stream = _batch_stream(ds, run.start // per_clip, cfg.steps // per_clip + 2, cfg.batch, workers)
    run.train(model, opt, stream, advance, summarise, on_grid=False, max_seconds=max_seconds, dtype=torch.float16, card=card)
    return model


def _check_recipe(cfg: PVDNetTrainConfig) -> None:
    """One-line errors for the recipe options of :class:`PVDNetTrainConfig`."""
    if cfg.schedule not in ("restarts", "warmup-cosine"):
        raise UserError(f"unknown schedule {cfg.schedule!r}; choose restarts or warmup-cosine")
    if cfg.warmup_steps < 0 or (cfg.warmup_steps > 0 and cfg.schedule != "warmup-cosine"):
        raise UserError(f"--warmup-steps must be >= 0 and needs --schedule warmup-cosine, got {cfg.warmup_steps}")
    if cfg.margin < 0 or cfg.margin % 2:
        raise UserError(f"--margin must be even and >= 0 (the frame must stay a multiple of 4), got {cfg.margin}")
    if not 0 <= cfg.no_next_prob <= 1:
        raise UserError(f"--no-next-prob must be in [0, 1], got {cfg.no_next_prob}")
    if cfg.curriculum_steps < 0:
        raise UserError(f"--curriculum-steps must be >= 0, got {cfg.curriculum_steps}")


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
