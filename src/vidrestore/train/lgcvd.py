"""Two-stage training of LGC-VD (Yang et al., IJCAI 2023, arXiv 2306.02562).

Diffusion: cosine beta schedule (Nichol & Dhariwal 2021; ``s = 0.008``, betas clipped at 0.9999
as in the official code), ``T = 1000``, **v-prediction** (Salimans & Ho 2022) with an **L1** loss
averaged over all channels of all frames of the clip (conditioning positions included).

One iteration (after the trainer's ``train()`` of the released code, ``exisas/LGC-VD``), on a
window of ``F + (F - cond)`` frames (14 for ``F = 8``):

1. Draw one task per sample: prediction (positions (0, 1), 45%), unconditional (no condition,
   40%), interpolation (positions (0, F-1), 5%) or "random" (two distinct positions from
   ``{-1 .. F-2}``, 10%).
2. **Stage 1** on clip A = frames ``0 .. F-1``: local condition = ground-truth frames at the task
   positions, global context = the encoding of the fixed mid-grey clip. Loss, optimiser step.
   Keep the one-step estimate ``x0_A = sqrt(abar) x_t - sqrt(1 - abar) v_hat`` (clamped, detached).
3. **Stage 2** on clip B = frames ``F-2 .. 2F-3`` (overlapping A by two frames): global context =
   the encoding of ``x0_A``; for prediction samples the two local conditions are ``x0_A``'s last
   two frames (the model's own noisy estimate, not the ground truth), other tasks use ground
   truth. Loss, second optimiser step.

**Context recipe** (``context_source="low-t"``, the fix of three ways the steps above leave the
global context inert; ``"one-step"`` keeps the steps above bit-exact for the shipped weights):

* Stage 1's one-step estimate is taken at a uniformly random ``t``, so half the time
  ``t > 500`` and ``x0_A`` is a blur that carries little of clip A. With ``"low-t"`` the context
  is the model's own estimate of clip A from a *separate* low noise level
  ``t' ~ U{0 .. context_t_max}`` (250 by default; one extra forward pass without gradients, same
  task and conditions as stage 1), close to the finished clip the sampler conditions on.
* The stage-2 context is built by :func:`~vidrestore.nets.lgcvd.next_context`, the same function
  the sampler uses after every clip (with ``context_mode="last"``: ``E(x0_A)``), so training
  shows the context sampling feeds.
* ``task_mix="prediction"`` spends 80% of samples on prediction (10% unconditional, 5%
  interpolation, 5% random) instead of the official 45/40/5/10, and ``cond_loss=False`` leaves
  the given (conditioning) frames out of the loss.
* Build the network with ``cross_out_scale=1.0`` (:class:`~vidrestore.nets.lgcvd.LGCVDUNet`):
  the official near-zero output projection of the cross-attention scales the encoder's gradient
  by ``1e-5``.

The recipe is ``RECIPES["context"]`` (training options and network overrides).

``two_stage=False`` is the ablation used in our table: stage 2 conditions on ground truth only
and the global context is never used (train it with a network built with
``global_context=False``); it makes the same number of optimiser updates on the same data.

Optimisation as in the official code: Adam (default betas), no LR schedule, no clipping; EMA
with decay ``ema_decay`` updated every ``ema_every`` iterations and copied from the model before
iteration ``ema_start``. Batch ``k`` depends only on ``(seed, k)``; checkpoints hold model, EMA,
optimiser, step and RNG-free state, so ``resume`` reproduces an uninterrupted run.

Outputs in ``out_dir``::

    checkpoint/  model.safetensors  ema.safetensors  optimizer.pt  trainer_state.json
    model/       the EMA network as a weight folder (vidrestore.checkpoint), used for sampling
    log.jsonl    one line per log interval: step, loss1, loss2, seconds
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..checkpoint import save_pretrained
from .run import CHECKPOINT, LOG, atomic_json, check_resume_config, config_record, has_checkpoint, load_checkpoint, save_checkpoint, trim_log
from ..diffusion.denoisers import v_from_eps_x0, x0_from_v
from ..diffusion.samplers import add_noise
from ..diffusion.schedules import alphas_cumprod, cosine_betas
from ..errors import UserError
from ..nets.lgcvd import LGCVD_PRESETS, LGCVDUNet, local_condition, next_context
from ..tensor import append_dims, to_model, to_pixel
from .ema import EMA

__all__ = [
    "TASKS",
    "TASK_MIXES",
    "RECIPES",
    "TrainConfig",
    "lgcvd_alphas_cumprod",
    "sample_tasks",
    "task_positions",
    "v_loss",
    "two_stage_step",
    "train_lgcvd",
]

NUM_TIMESTEPS = 1000
TASKS = ("prediction", "unconditional", "interpolation", "random")

#: Task mixes as thresholds on ``p ~ U(0, 1)``: ``p <= r`` random, ``r < p <= i`` interpolation,
#: ``i < p <= u`` unconditional, ``p > u`` prediction.
TASK_MIXES: dict[str, tuple[float, float, float]] = {
    "official": (0.10, 0.15, 0.55),  # prediction 45%, unconditional 40%, interpolation 5%, random 10%
    "prediction": (0.05, 0.10, 0.20),  # prediction 80%, unconditional 10%, interpolation 5%, random 5%
}

#: Named training recipes: TrainConfig fields and network overrides. ``"official"`` is the
#: published recipe (the shipped weights); ``"context"`` makes the global context learnable and
#: shows it the context sampling uses (module docstring).
RECIPES: dict[str, dict[str, Any]] = {
    "official": dict(context_source="one-step", task_mix="official", cond_loss=True, net_overrides={}),
    "context": dict(context_source="low-t", task_mix="prediction", cond_loss=False,
                    net_overrides={"cross_out_scale": 1.0, "context_mode": "last"}),
}


def lgcvd_alphas_cumprod(num_timesteps: int = NUM_TIMESTEPS) -> torch.Tensor:
    """``abar`` of the official schedule: cosine, ``s = 0.008``, betas clipped at 0.9999 (float64 ``[N]``)."""
    return alphas_cumprod(cosine_betas(num_timesteps, s=0.008, max_beta=0.9999))


def sample_tasks(batch: int, generator: torch.Generator | None = None, mix: str = "official") -> list[str]:
    """One task per sample from thresholds on ``p ~ U(0, 1)`` (:data:`TASK_MIXES`).

    Official: ``p > 0.55`` prediction (45%), ``0.15 < p <= 0.55`` unconditional (40%),
    ``0.10 < p <= 0.15`` interpolation (5%), ``p <= 0.10`` random positions (10%).
    """
    if mix not in TASK_MIXES:
        raise UserError(f"unknown task mix {mix!r}; known: {', '.join(TASK_MIXES)}")
    r, i, u = TASK_MIXES[mix]
    p = torch.rand(batch, generator=generator).tolist()
    return ["prediction" if q > u else "unconditional" if q > i else "interpolation" if q > r else "random" for q in p]


def task_positions(tasks: list[str], frames: int = 8, generator: torch.Generator | None = None) -> torch.Tensor:
    """Condition positions ``(B, 2)`` (int64, ``-1`` = absent slot) of each task.

    * prediction: ``(0, 1)``;  unconditional: ``(-1, -1)``;  interpolation: ``(0, F-1)``;
    * random: two distinct values from ``{-1, 0, .., F-2}``, sorted (so ``-1`` may leave one slot empty).
    """
    out = []
    for task in tasks:
        if task == "prediction":
            out.append((0, 1))
        elif task == "unconditional":
            out.append((-1, -1))
        elif task == "interpolation":
            out.append((0, frames - 1))
        elif task == "random":
            pick = torch.randperm(frames, generator=generator)[:2] - 1  # values in {-1 .. F-2}
            a, b = sorted(int(v) for v in pick)
            out.append((a, b))
        else:
            raise ValueError(f"unknown task {task!r}; known: {TASKS}")
    return torch.tensor(out, dtype=torch.int64)


def v_loss(net: LGCVDUNet, x0: torch.Tensor, cond: torch.Tensor, context: torch.Tensor | None, t: torch.Tensor,
           noise: torch.Tensor, acp: torch.Tensor, skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 v-prediction loss and the one-step estimate ``x0_hat`` (model space, detached, clamped).

    ``skip`` (bool ``(B, F)``, optional) marks frames left out of the loss (the given frames);
    the loss is then the mean over the other frames' elements.

    Args:
        net: The denoiser.
        x0: Clean clip in model space ``(B, C, F, H, W)``.
        cond: Local condition from :func:`~vidrestore.nets.lgcvd.local_condition`.
        context: Global-context feature or ``None``.
        t: int64 timesteps ``[B]``.
        noise: Standard normal noise like ``x0``.
        acp: ``abar`` schedule ``[N]``.
    """
    abar = append_dims(acp[t].to(x0.dtype), x0.ndim)
    x_t = add_noise(x0, abar, noise)
    v = v_from_eps_x0(noise, x0, abar)
    v_hat = net(x_t, t, cond, context)
    if skip is None:
        loss = (v_hat - v).abs().mean()
    else:
        keep = (~skip).to(x0.dtype)[:, None, :, None, None]
        per_frame = x0.shape[1] * x0.shape[3] * x0.shape[4]
        loss = ((v_hat - v).abs() * keep).sum() / (keep.sum() * per_frame).clamp_min(1.0)
    x0_hat = x0_from_v(x_t, v_hat.detach(), abar).clamp(-1.0, 1.0)
    return loss, x0_hat


@dataclass
class TrainConfig:
    """Options of :func:`train_lgcvd` (saved as ``train_config.json`` in the run folder)."""

    preset: str = "digits-small"
    net_overrides: dict[str, Any] = field(default_factory=dict)
    two_stage: bool = True
    steps: int = 4000
    batch: int = 8
    lr: float = 2e-4
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 1000
    seed: int = 0
    ckpt_every: int = 250
    log_every: int = 25
    flip: bool = True
    # data: "moving-digits" (offline, built on the fly) or a folder for open_video_dataset
    data: str = "moving-digits"
    split: str = "train"
    size: int = 32
    num_digits: int = 2
    digit_size: int = 12
    # whole-pixel positions and velocities, so two frames determine the future (moving_digits)
    integer_motion: bool = False
    # bilinear rendering at real-valued positions; bounce=False: constant velocity, wrap-around
    subpixel: bool = False
    bounce: bool = True
    # stage-2 context: "one-step" (stage 1's estimate at its random t, official) or "low-t"
    context_source: str = "one-step"
    context_t_max: int = 250
    task_mix: str = "official"
    # loss on the given (conditioning) frames too (official)
    cond_loss: bool = True


def _given(pos: torch.Tensor, frames: int, device: torch.device) -> torch.Tensor:
    """Bool ``(B, F)``: the clip positions that hold a given (conditioning) frame."""
    out = torch.zeros(pos.shape[0], frames, dtype=torch.bool)
    for k in range(pos.shape[1]):
        rows = (pos[:, k] >= 0).nonzero().flatten()
        out[rows, pos[rows, k]] = True
    return out.to(device)


def two_stage_step(net: LGCVDUNet, opt: torch.optim.Optimizer, window: torch.Tensor, acp: torch.Tensor,
                   generator: torch.Generator, *, two_stage: bool = True, context_source: str = "one-step",
                   context_t_max: int = 250, task_mix: str = "official", cond_loss: bool = True) -> tuple[float, float]:
    """One LGC-VD iteration (two optimiser updates) on a pixel-space window ``(B, C, 2F-2, H, W)``.

    Returns ``(loss_stage1, loss_stage2)``. See the module docstring for the two stages and for
    ``context_source`` (``"one-step"`` or ``"low-t"`` with ``t' <= context_t_max``),
    ``task_mix`` and ``cond_loss``. The defaults are the official recipe.
    """
    if context_source not in ("one-step", "low-t"):
        raise UserError(f"unknown context source {context_source!r}; known: one-step, low-t")
    b = window.shape[0]
    f = net.frames
    dev = window.device
    if window.shape[2] < 2 * f - 2:
        raise ValueError(f"window needs {2 * f - 2} frames, got {window.shape[2]}")
    tasks = sample_tasks(b, generator, task_mix)
    pos = task_positions(tasks, f, generator)
    skip = None if cond_loss else _given(pos, f, dev)
    clip_a = window[:, :, :f]
    clip_b = window[:, :, f - 2 : 2 * f - 2]

    # Stage 1: fixed (mid-grey) global context, ground-truth local conditions.
    # Noise and times are drawn on the CPU generator (same draws on every device), then moved.
    t1 = torch.randint(0, acp.shape[0], (b,), generator=generator).to(dev)
    n1 = torch.randn(clip_a.shape, generator=generator).to(dev)
    ctx = net.encode_context(None, like=clip_a) if net.global_context else None
    cond_a = local_condition(clip_a, pos, f)
    loss1, x0_a = v_loss(net, to_model(clip_a), cond_a, ctx, t1, n1, acp, skip)
    opt.zero_grad(set_to_none=True)
    loss1.backward()
    opt.step()
    if two_stage and context_source == "low-t":
        # The model's own estimate of clip A from a low noise level t' (no gradients), with the
        # same task, conditions and grey context as stage 1: close to a finished sample.
        tc = torch.randint(0, context_t_max + 1, (b,), generator=generator).to(dev)
        nc = torch.randn(clip_a.shape, generator=generator).to(dev)
        with torch.no_grad():
            grey = net.encode_context(None, like=clip_a) if net.global_context else None
            _, x0_a = v_loss(net, to_model(clip_a), cond_a, grey, tc, nc, acp)

    # Stage 2: context = one-step estimate of clip A; prediction conditions on its last frames.
    t2 = torch.randint(0, acp.shape[0], (b,), generator=generator).to(dev)
    n2 = torch.randn(clip_b.shape, generator=generator).to(dev)
    cond_clip = clip_b
    ctx = None
    if two_stage:
        est = to_pixel(x0_a)
        is_pred = torch.tensor([task == "prediction" for task in tasks], device=dev)
        if bool(is_pred.any()):
            cond_clip = clip_b.clone()
            cond_clip[is_pred, :, 0:2] = est[is_pred][:, :, f - 2 : f]
        if net.global_context:
            # "one-step": the official E(x0_A); "low-t": the sampler's rule after a first clip
            ctx = net.encode_context(x0_a) if context_source == "one-step" else next_context(net, x0_a)
    loss2, _ = v_loss(net, to_model(clip_b), local_condition(cond_clip, pos, f), ctx, t2, n2, acp, skip)
    opt.zero_grad(set_to_none=True)
    loss2.backward()
    opt.step()
    return float(loss1.detach()), float(loss2.detach())


_DATASETS: dict[tuple[str, str], Any] = {}


def _batch(cfg: TrainConfig, step: int, frames: int, channels: int) -> tuple[torch.Tensor, torch.Generator]:
    """Training window ``(B, C, 2F-2, H, W)`` and the step's generator; a pure function of ``(seed, step)``."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    n = 2 * frames - 2
    if cfg.data == "moving-digits":
        from ..data.moving_digits import MovingDigits

        ds = MovingDigits(2**31 - 1, frames=n, size=cfg.size, split="train", seed=cfg.seed,
                          channels=channels, num_digits=cfg.num_digits, digit_size=cfg.digit_size,
                          integer_motion=cfg.integer_motion, subpixel=cfg.subpixel, bounce=cfg.bounce)
        idx = torch.randint(0, len(ds), (cfg.batch,), generator=g).tolist()
        x = torch.stack([ds[i] for i in idx])
    else:
        from ..data.video_clips import open_video_dataset

        key = (cfg.data, cfg.split)
        if key not in _DATASETS:
            _DATASETS[key] = open_video_dataset(cfg.data, cfg.split)
        x = torch.stack([_DATASETS[key].sample(n, g) for _ in range(cfg.batch)])
        if x.shape[1] != channels:
            x = x.mean(1, keepdim=True).expand(-1, channels, -1, -1, -1) if channels in (1, 3) else x
            x = x[:, :channels].contiguous()
    if cfg.flip:
        flip = torch.rand(cfg.batch, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
    return x, g


def build_net(cfg: TrainConfig) -> LGCVDUNet:
    """The network of a config: the preset, overrides applied; no global context for the one-stage ablation."""
    if cfg.preset not in LGCVD_PRESETS:
        raise UserError(f"unknown preset {cfg.preset!r}; known: {', '.join(LGCVD_PRESETS)}")
    kwargs = dict(LGCVD_PRESETS[cfg.preset])
    kwargs.update(cfg.net_overrides)
    kwargs.setdefault("image_size", cfg.size)
    return LGCVDUNet(**kwargs)


def _save(out: Path, net: nn.Module, ema: EMA, opt: torch.optim.Optimizer, state: dict, card: dict) -> None:
    save_checkpoint(out / CHECKPOINT, net, opt, state, ema=ema)
    export = type(net)(**net.config)
    ema.copy_to(export)
    save_pretrained(export, out / "model", card=card)


def train_lgcvd(out_dir: str | os.PathLike, cfg: TrainConfig, *, resume: bool = False, num_threads: int | None = None,
                log: Callable[[str], None] = print, device: str | torch.device = "cpu",
                max_seconds: float | None = None, snapshot_every: int | None = None) -> Path:
    """Train LGC-VD on moving digits (see the module docstring). Returns the exported model folder.

    ``device`` runs the network there (data and random draws stay on the CPU, so a seed gives
    the same batches everywhere). ``max_seconds`` stops early, with a checkpoint, once this much
    wall time has passed in this call (for jobs with a time limit; ``resume`` continues).
    ``snapshot_every`` also keeps the EMA network of every such iteration, float16, in
    ``out_dir/snapshots/step_NNNNNN`` (to compare runs at equal iteration counts).
    """
    out = Path(out_dir)
    device = torch.device(device)
    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.manual_seed(cfg.seed)
    net = build_net(cfg).to(device)
    if cfg.two_stage and not net.global_context:
        raise UserError("two-stage training needs a network with global_context=True")
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    ema = EMA(net, decay=cfg.ema_decay, warmup=False)
    acp = lgcvd_alphas_cumprod().float().to(device)
    start = 0
    out.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    if resume and has_checkpoint(out / CHECKPOINT):
        check_resume_config(out / "train_config.json", cfg)
        state = load_checkpoint(out / CHECKPOINT, net, opt, ema=ema, map_location=device)
        start, seconds = int(state["step"]), float(state.get("seconds", 0.0))
        trim_log(out / LOG, start)
        log(f"resumed from step {start}")
    elif resume:
        log("no checkpoint found; starting from scratch")
    atomic_json(out / "train_config.json", config_record(cfg))
    card = {"prediction": "v", "schedule": "cosine", "max_beta": 0.9999, "num_timesteps": NUM_TIMESTEPS,
            "dataset": "moving-digits" if cfg.data == "moving-digits" else f"video folder {Path(str(cfg.data)).name}",
            "size": cfg.size, "two_stage": cfg.two_stage,
            "integer_motion": cfg.integer_motion, "device": device.type}
    if cfg.subpixel or not cfg.bounce:  # recorded only when set, so older cards stay as they were
        card.update(subpixel=cfg.subpixel, bounce=cfg.bounce, num_digits=cfg.num_digits, digit_size=cfg.digit_size)
    if (cfg.context_source, cfg.task_mix, cfg.cond_loss) != ("one-step", "official", True):
        card.update(context_source=cfg.context_source, context_t_max=cfg.context_t_max, task_mix=cfg.task_mix,
                    cond_loss=cfg.cond_loss)
    n_params = sum(p.numel() for p in net.parameters())
    log(f"LGC-VD {cfg.preset} ({n_params / 1e6:.2f} M params), two_stage={cfg.two_stage}, steps {start}..{cfg.steps}")
    t0, sums, count = time.time(), [0.0, 0.0], 0
    net.train()
    for step in range(start, cfg.steps):
        window, g = _batch(cfg, step, net.frames, net.channels)
        window = window.to(device)
        l1, l2 = two_stage_step(net, opt, window, acp, g, two_stage=cfg.two_stage, context_source=cfg.context_source,
                                context_t_max=cfg.context_t_max, task_mix=cfg.task_mix, cond_loss=cfg.cond_loss)
        sums[0] += l1
        sums[1] += l2
        count += 1
        done = step + 1
        if done < cfg.ema_start:
            ema.load_state_dict(net.state_dict())
        elif done % cfg.ema_every == 0:
            ema.update(net)
        if done % cfg.log_every == 0 or done == cfg.steps:
            el = time.time() - t0
            rec = {"step": done, "loss1": sums[0] / count, "loss2": sums[1] / count, "seconds": seconds + el}
            with open(out / LOG, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(f"step {done}/{cfg.steps} loss1 {rec['loss1']:.4f} loss2 {rec['loss2']:.4f} ({rec['seconds']:.0f} s)")
            sums, count = [0.0, 0.0], 0
        out_of_time = max_seconds is not None and time.time() - t0 >= max_seconds
        if done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time:
            state = {"step": done, "ema_updates": ema.num_updates, "seconds": seconds + time.time() - t0}
            _save(out, net, ema, opt, state, {**card, "steps": done, "train_seconds": round(state["seconds"], 1)})
        if snapshot_every and done % snapshot_every == 0:
            snap = type(net)(**net.config)
            ema.copy_to(snap)
            save_pretrained(snap, out / "snapshots" / f"step_{done:06d}", dtype=torch.float16,
                            card={**card, "steps": done, "train_seconds": round(seconds + time.time() - t0, 1)})
        if out_of_time and done < cfg.steps:
            log(f"stopped at step {done} after {time.time() - t0:.0f} s (max_seconds); resume to continue")
            break
    return out / "model"


def export_weights(run_dir: str | os.PathLike, dest: str | os.PathLike, *, which: str = "ema",
                   dtype: torch.dtype | None = torch.float16, card: str | None = None) -> Path:
    """Write a run's checkpoint (``which`` = ``"ema"`` or ``"model"``) as a weight folder ``dest``.

    The config fields of the run's exported ``model/config.json`` (prediction, schedule, steps)
    are kept; ``card`` (markdown) becomes ``README.md``.
    """
    from safetensors.torch import load_file

    from ..checkpoint import load_config

    run = Path(run_dir)
    cfg = load_config(run / "model")
    net = LGCVDUNet(**cfg["kwargs"])
    net.load_state_dict(load_file(str(run / "checkpoint" / f"{which}.safetensors")))
    extra = {k: v for k, v in cfg.items() if k not in ("class", "format_version", "kwargs")}
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    extra.update(steps=state["step"], weights=which, train_seconds=round(state.get("seconds", 0.0), 1))
    dest = Path(dest)
    save_pretrained(net, dest, dtype=dtype, card=extra)
    if card is not None:
        (dest / "README.md").write_text(card)
    return dest


#: Condition positions of the probe tasks of :func:`context_losses`.
PROBE_TASKS = {"prediction": (0, 1), "prediction-1": (-1, 0), "unconditional": (-1, -1)}


@torch.no_grad()
def context_losses(net: LGCVDUNet, windows: torch.Tensor, *, timesteps: torch.Tensor | None = None, seed: int = 0,
                   noise_draws: int = 1, task: str = "prediction") -> dict[str, float]:
    """Prediction loss of clip B under three global contexts: a probe for an inert context.

    Each pixel-space window ``(N, C, 2F-2, H, W)`` gives clip A (frames ``0 .. F-1``) and clip B
    (frames ``F-2 .. 2F-3``). Clip B is scored on ``task`` (:data:`PROBE_TASKS`; default
    ``"prediction"``: its first two frames given as local conditions, ground truth;
    ``"prediction-1"``: only its first frame; ``"unconditional"``: none) with the L1 v-loss over
    the frames not given, at ``timesteps`` (default ``100, 200, .., 900``) with seeded noise,
    under the context of

    * ``"true"``: clip A itself, through :func:`~vidrestore.nets.lgcvd.next_context`;
    * ``"grey"``: the fixed grey clip (what the model sees without history);
    * ``"wrong"``: clip A of another window (window ``i`` gets window ``i+1``'s, cyclically).

    A model whose context is inert scores the three the same; one that uses it scores
    ``"true"`` lowest. Same noise and timesteps for the three. Returns the mean losses.
    """
    f = net.frames
    acp = lgcvd_alphas_cumprod().float().to(windows.device)
    if timesteps is None:
        timesteps = torch.arange(100, 1000, 100)
    clip_a, clip_b = windows[:, :, :f], windows[:, :, f - 2 : 2 * f - 2]
    n = windows.shape[0]
    if task not in PROBE_TASKS:
        raise UserError(f"unknown probe task {task!r}; known: {', '.join(PROBE_TASKS)}")
    pos = torch.tensor([PROBE_TASKS[task]] * n)
    cond = local_condition(clip_b, pos, f)
    skip = _given(pos, f, windows.device)
    x0 = to_model(clip_b)
    contexts = {
        "true": next_context(net, to_model(clip_a)),
        "grey": net.encode_context(None, like=clip_a),
        "wrong": next_context(net, to_model(clip_a.roll(1, dims=0))),
    }
    g = torch.Generator().manual_seed(seed)
    draws = [(int(t), torch.randn(x0.shape, generator=g).to(windows.device)) for _ in range(noise_draws) for t in timesteps]
    out = {}
    for name, ctx in contexts.items():
        losses = [float(v_loss(net, x0, cond, ctx, torch.full((n,), t, device=windows.device), noise, acp, skip)[0])
                  for t, noise in draws]
        out[name] = sum(losses) / len(losses)
    return out
