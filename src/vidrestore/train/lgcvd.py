"""Two-stage training of LGC-VD (Yang et al., IJCAI 2023, arXiv 2306.02562).

Diffusion: cosine beta schedule (Nichol & Dhariwal 2021; ``s = 0.008``, betas clipped at 0.9999
as in the official code), ``T = 1000``, **v-prediction** (Salimans & Ho 2022) with an **L1** loss
averaged over all channels of all frames of the clip (conditioning positions included).

One iteration (``shared/research/lgcvd.md`` §4), on a window of ``F + (F - cond)`` frames (14
for ``F = 8``):

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..checkpoint import save_pretrained
from .run import CHECKPOINT, LOG, atomic_json, has_checkpoint, load_checkpoint, save_checkpoint, trim_log
from ..diffusion.denoisers import v_from_eps_x0, x0_from_v
from ..diffusion.samplers import add_noise
from ..diffusion.schedules import alphas_cumprod, cosine_betas
from ..errors import UserError
from ..nets.lgcvd import LGCVD_PRESETS, LGCVDUNet, local_condition
from ..tensor import append_dims, to_model, to_pixel
from .ema import EMA

__all__ = [
    "TASKS",
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


def lgcvd_alphas_cumprod(num_timesteps: int = NUM_TIMESTEPS) -> torch.Tensor:
    """``abar`` of the official schedule: cosine, ``s = 0.008``, betas clipped at 0.9999 (float64 ``[N]``)."""
    return alphas_cumprod(cosine_betas(num_timesteps, s=0.008, max_beta=0.9999))


def sample_tasks(batch: int, generator: torch.Generator | None = None) -> list[str]:
    """One task per sample with the official thresholds on ``p ~ U(0, 1)``.

    ``p > 0.55`` prediction (45%), ``0.15 < p <= 0.55`` unconditional (40%),
    ``0.10 < p <= 0.15`` interpolation (5%), ``p <= 0.10`` random positions (10%).
    """
    p = torch.rand(batch, generator=generator).tolist()
    return ["prediction" if q > 0.55 else "unconditional" if q > 0.15 else "interpolation" if q > 0.10 else "random" for q in p]


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
           noise: torch.Tensor, acp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 v-prediction loss and the one-step estimate ``x0_hat`` (model space, detached, clamped).

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
    loss = (v_hat - v).abs().mean()
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


def two_stage_step(net: LGCVDUNet, opt: torch.optim.Optimizer, window: torch.Tensor, acp: torch.Tensor,
                   generator: torch.Generator, *, two_stage: bool = True) -> tuple[float, float]:
    """One LGC-VD iteration (two optimiser updates) on a pixel-space window ``(B, C, 2F-2, H, W)``.

    Returns ``(loss_stage1, loss_stage2)``. See the module docstring for the two stages.
    """
    b = window.shape[0]
    f = net.frames
    dev = window.device
    if window.shape[2] < 2 * f - 2:
        raise ValueError(f"window needs {2 * f - 2} frames, got {window.shape[2]}")
    tasks = sample_tasks(b, generator)
    pos = task_positions(tasks, f, generator)
    clip_a = window[:, :, :f]
    clip_b = window[:, :, f - 2 : 2 * f - 2]

    # Stage 1: fixed (mid-grey) global context, ground-truth local conditions.
    # Noise and times are drawn on the CPU generator (same draws on every device), then moved.
    t1 = torch.randint(0, acp.shape[0], (b,), generator=generator).to(dev)
    n1 = torch.randn(clip_a.shape, generator=generator).to(dev)
    ctx = net.encode_context(None, like=clip_a) if net.global_context else None
    loss1, x0_a = v_loss(net, to_model(clip_a), local_condition(clip_a, pos, f), ctx, t1, n1, acp)
    opt.zero_grad(set_to_none=True)
    loss1.backward()
    opt.step()

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
            ctx = net.encode_context(x0_a)
    loss2, _ = v_loss(net, to_model(clip_b), local_condition(cond_clip, pos, f), ctx, t2, n2, acp)
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
                          integer_motion=cfg.integer_motion)
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
        state = load_checkpoint(out / CHECKPOINT, net, opt, ema=ema, map_location=device)
        start, seconds = int(state["step"]), float(state.get("seconds", 0.0))
        trim_log(out / LOG, start)
        log(f"resumed from step {start}")
    elif resume:
        log("no checkpoint found; starting from scratch")
    atomic_json(out / "train_config.json", asdict(cfg))
    card = {"prediction": "v", "schedule": "cosine", "max_beta": 0.9999, "num_timesteps": NUM_TIMESTEPS,
            "dataset": "moving-digits" if cfg.data == "moving-digits" else f"video folder {Path(str(cfg.data)).name}",
            "size": cfg.size, "two_stage": cfg.two_stage,
            "integer_motion": cfg.integer_motion, "device": device.type}
    n_params = sum(p.numel() for p in net.parameters())
    log(f"LGC-VD {cfg.preset} ({n_params / 1e6:.2f} M params), two_stage={cfg.two_stage}, steps {start}..{cfg.steps}")
    t0, sums, count = time.time(), [0.0, 0.0], 0
    net.train()
    for step in range(start, cfg.steps):
        window, g = _batch(cfg, step, net.frames, net.channels)
        window = window.to(device)
        l1, l2 = two_stage_step(net, opt, window, acp, g, two_stage=cfg.two_stage)
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
