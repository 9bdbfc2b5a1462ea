"""Training of the bundled image diffusion prior (an ε-prediction ADM UNet).

Objective: the "simple" DDPM loss of Ho et al. 2020 ("Denoising Diffusion Probabilistic
Models", Algorithm 1) with the linear β schedule (1e-4 → 0.02 over 1000 steps) that ADM
(Dhariwal & Nichol 2021) also uses:

    x0 ∈ [-1, 1],  ε ~ N(0, I),  x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε,
    L = || ε_θ(x_t, t) - ε ||²   (mean over pixels and batch).

Timesteps: half of every batch is uniform on [0, 1000), the other half uniform on [0, 300),
which puts more weight on the low-noise range that restoration (denoising, plug-and-play and
posterior sampling near the end of the trajectory) relies on. Networks with learned variance
(6 output channels) are trained on their first 3 (ε) channels only.

Optimisation: AdamW (lr 3e-4, no weight decay), gradient-norm clipping at 1.0, EMA of the
weights (:class:`vidrestore.train.ema.EMA`).

Determinism and resume: batch ``k`` (crops, timesteps and noise) depends only on
``(seed, k)``, and checkpoints hold the model, EMA, optimiser state, global RNG state and step,
so a resumed run reproduces an uninterrupted one.

Outputs in ``out_dir``::

    checkpoint/   model.safetensors, ema.safetensors, optimizer.pt, trainer_state.json, config.json
    prior/        the EMA network as a weight folder (float16), see vidrestore.checkpoint
    log.jsonl     one JSON line per log interval: step, loss (mean over the interval), ...
    train_config.json   the :class:`PriorTrainConfig` of the run, the crop sides and the network
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import save_pretrained
from .run import (CHECKPOINT, LOG, TRAIN_CONFIG, atomic_json, check_resume_config, config_record, has_checkpoint, load_checkpoint,
                  save_checkpoint, trim_log)
from ..diffusion.schedules import alphas_cumprod, linear_betas
from ..errors import UserError
from ..nets import ADMUNet
from ..tensor import append_dims, to_model
from .ema import EMA

__all__ = [
    "NUM_TIMESTEPS",
    "PRIOR_NET_KWARGS",
    "build_prior_net",
    "sample_timesteps",
    "eps_loss",
    "PriorTrainConfig",
    "PRIOR_RESUME_MAY_CHANGE",
    "train_prior",
]

NUM_TIMESTEPS = 1000
#: Half of each batch draws t from [0, LOW_T_MAX) (the low-noise range), the other half from [0, 1000).
LOW_T_MAX = 300

#: Architecture of the bundled 64x64 prior (``image_size`` follows the crop size).
PRIOR_NET_KWARGS: dict[str, Any] = dict(
    image_size=64,
    in_channels=3,
    model_channels=32,
    out_channels=3,
    num_res_blocks=2,
    attention_resolutions=(8,),
    dropout=0.0,
    channel_mult=(1, 2, 4, 4),
    num_head_channels=32,
    use_scale_shift_norm=True,
    resblock_updown=False,
)


def build_prior_net(size: int = 64, net_kwargs: Mapping[str, Any] | None = None) -> ADMUNet:
    """The prior network: :data:`PRIOR_NET_KWARGS` updated by ``net_kwargs``, ``image_size=size``."""
    kwargs = {**PRIOR_NET_KWARGS, "image_size": size, **(dict(net_kwargs) if net_kwargs else {})}
    return ADMUNet(**kwargs)


def _step_generator(seed: int, step: int) -> torch.Generator:
    # Independent stream per (seed, step): resume-safe without carrying generator state.
    s = int(np.random.SeedSequence([int(seed), int(step), 0x5EED]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(s & ((1 << 63) - 1))


def sample_timesteps(batch: int, generator: torch.Generator | None = None, *, num_timesteps: int = NUM_TIMESTEPS,
                     low_max: int = LOW_T_MAX) -> torch.Tensor:
    """Training timesteps: ``batch - batch // 2`` uniform on ``[0, num_timesteps)``, ``batch // 2`` on ``[0, low_max)``.

    Returns:
        ``[batch]`` int64 tensor.
    """
    n_low = batch // 2
    full = torch.randint(0, num_timesteps, (batch - n_low,), generator=generator)
    low = torch.randint(0, low_max, (n_low,), generator=generator)
    return torch.cat([full, low])


def lr_at(step: int, steps: int, lr: float, decay_steps: int, warmup_steps: int = 0) -> float:
    """Learning rate of (0-based) ``step``: a linear ramp from ``lr / warmup_steps`` to ``lr``
    over the first ``warmup_steps`` steps, ``lr`` until ``steps - decay_steps``, then a cosine
    decay that reaches ``lr / 10`` at ``steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return float(lr) * (step + 1) / warmup_steps
    if decay_steps <= 0 or step < steps - decay_steps:
        return float(lr)
    frac = min(1.0, (step - (steps - decay_steps) + 1) / decay_steps)
    return float(lr) * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def eps_loss(net: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """DDPM ε-prediction loss (Ho et al. 2020, Algorithm 1).

    Args:
        net: ``net(x_t, t)`` predicting ε (extra output channels, e.g. learned variance, are ignored).
        x0: ``[B, C, H, W]`` clean images in model space ``[-1, 1]``.
        t: ``[B]`` integer timesteps.
        noise: ε, same shape as ``x0``.
        abar: ``[N]`` cumulative products ᾱ of the schedule.

    Returns:
        Scalar mean squared error.
    """
    a = append_dims(abar.to(x0.dtype)[t], x0.ndim)
    xt = a.sqrt() * x0 + (1.0 - a).sqrt() * noise
    pred = net(xt, t)[:, : x0.shape[1]]
    return F.mse_loss(pred.float(), noise)


def _ckpt_config(net: ADMUNet) -> dict:
    return {"class": "adm_unet", "kwargs": net.config}


def _warm_start(net: ADMUNet, ema: EMA, source: str) -> None:
    """Copy the weights of the prior ``source`` (a weight folder, or a bundled prior's name such
    as ``"default"`` or ``"v2"``) into ``net`` and ``ema``; :class:`UserError` if its
    architecture differs from ``net``'s."""
    from ..checkpoint import from_pretrained, load_config

    from ..priors.registry import BUNDLED_PRIORS, bundled_prior_dir

    folder = Path(source)
    if str(source) in BUNDLED_PRIORS and not folder.exists():
        folder = bundled_prior_dir(str(source))
    config = load_config(folder)
    theirs = {k: v for k, v in config.get("kwargs", {}).items() if k != "image_size"}
    ours = {k: v for k, v in net.config.items() if k != "image_size"}
    diff = sorted(k for k in set(theirs) | set(ours) if _plain(theirs.get(k)) != _plain(ours.get(k)))
    if config.get("class") != "adm_unet" or diff:
        raise UserError(f"--init-from {source}: architecture differs from this run's ({', '.join(diff) or config.get('class')})")
    src = from_pretrained(folder, dtype=torch.float32)
    net.load_state_dict(src.state_dict(), strict=True)
    ema.load_state_dict(src.state_dict())


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _export_prior(prior_dir: Path, net: ADMUNet, ema: EMA, step: int, extra: Mapping[str, Any]) -> None:
    ema_net = ADMUNet(**net.config)
    ema.copy_to(ema_net)
    card = {
        "prediction": "eps",
        "schedule": "linear",
        "num_timesteps": NUM_TIMESTEPS,
        "trained_steps": int(step),
        **extra,
    }
    save_pretrained(ema_net, prior_dir, dtype=torch.float16, card=card)


@dataclass(frozen=True)
class PriorTrainConfig:
    """Hyper-parameters of :func:`train_prior`, stored as ``train_config.json``.

    Attributes:
        steps: Total number of optimisation steps (a resumed run continues up to this number).
        batch: Crops per step.
        size: Crop side (pixels); also the network's ``image_size``.
        lr: AdamW learning rate (weight decay 0).
        seed: Seed of initialisation, data, timesteps and noise.
        ema_decay: EMA decay.
        ckpt_every: Write checkpoint/ and prior/ every this many steps (and at the end).
        log_every: Log the mean loss of the last ``log_every`` steps.
        net_kwargs: Overrides of :data:`PRIOR_NET_KWARGS`.
        amp: ``"none"`` (float32) or ``"bf16"``: run the forward pass under bfloat16 autocast
            (weights, optimiser state and the loss stay float32). On CPUs with AVX512-BF16 this
            is about 1.6x faster per step (batch 16 at 64²).
        decay_steps: Learning-rate schedule: constant ``lr`` until ``steps - decay_steps``, then
            cosine decay to ``lr / 10`` at ``steps`` (0: constant). The rate is set from the step
            number every step, so a resumed run can add a decay phase by raising ``steps`` and
            setting ``decay_steps``.
        extra_sizes: Multi-scale training: step ``k`` uses the crop side
            ``[size, *extra_sizes][k % n]`` with ``batch * (size / side)^2`` crops (same pixels
            per step); the network stays fully convolutional. Recorded in the checkpoint.
        rotate: Random 90-degree rotations of the crops (with the flips: all 8 symmetries).
        holdout: More file-name patterns never loaded (e.g. the lines of
            ``vidrestore/data/prior_holdout_v2.txt``), on top of ``DEFAULT_HOLDOUT``.
        init_from: Warm start: a prior weight folder (``config.json`` + ``model.safetensors``,
            e.g. another run's ``prior/`` export) or a bundled prior's name (``"default"``,
            ``"v2"``), whose weights initialise the network and its EMA at step 0. Its architecture must equal
            this run's (``net_kwargs``); only a fresh run reads it (a resume continues from the
            checkpoint). Optimiser moments start at zero, so pair it with ``warmup_steps``.
        warmup_steps: Linear learning-rate warm-up over the first this many steps (0: none).

    On resume only the fields of :data:`PRIOR_RESUME_MAY_CHANGE` may differ from the run's
    saved config.
    """

    steps: int = 20000
    batch: int = 16
    size: int = 64
    lr: float = 3e-4
    seed: int = 0
    ema_decay: float = 0.999
    ckpt_every: int = 250
    log_every: int = 10
    net_kwargs: Mapping[str, Any] | None = None
    amp: str = "none"
    decay_steps: int = 0
    extra_sizes: Sequence[int] = ()
    rotate: bool = False
    holdout: Sequence[str] = ()
    init_from: str | None = None
    warmup_steps: int = 0


#: Fields of :class:`PriorTrainConfig` a resumed run may change: the length of the run, its
#: learning-rate decay phase and the autocast precision.
PRIOR_RESUME_MAY_CHANGE = ("steps", "decay_steps", "amp")


def train_prior(data_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: PriorTrainConfig, *, resume: bool = False,
                num_threads: int | None = None, progress: bool = True, dataset: Any = None) -> ADMUNet:
    """Train an ε-prediction ADM UNet prior on random crops (see the module docstring).

    Args:
        data_dir: Folder of images and videos for :class:`vidrestore.data.images.ImageCropDataset`
            (held-out files excluded by its defaults).
        out_dir: Run folder (checkpoint/, prior/, log.jsonl, train_config.json).
        cfg: The hyper-parameters (:class:`PriorTrainConfig`).
        resume: Continue from ``out_dir/checkpoint`` if it exists (else start fresh);
            :class:`UserError` if ``cfg`` differs from the run's ``train_config.json`` in a field
            outside :data:`PRIOR_RESUME_MAY_CHANGE`.
        num_threads: ``torch.set_num_threads`` value (default: leave as is).
        progress: Print log lines to stdout.
        dataset: Optional ready-made object with ``batch(index, batch_size) -> [B, 3, size, size]``
            in ``[0, 1]`` (overrides ``data_dir``; used by tests).

    Returns:
        The trained network (raw weights; the EMA weights are in ``out_dir/prior``).
    """
    steps, batch, size, lr, seed = cfg.steps, cfg.batch, cfg.size, cfg.lr, cfg.seed
    ckpt_every, log_every, amp, decay_steps = cfg.ckpt_every, cfg.log_every, cfg.amp, cfg.decay_steps
    extra_sizes, rotate, holdout = cfg.extra_sizes, cfg.rotate, cfg.holdout
    if steps < 0 or batch < 1 or ckpt_every < 1 or log_every < 1:
        raise UserError("steps must be >= 0 and batch, ckpt_every, log_every >= 1")
    if cfg.warmup_steps < 0:
        raise UserError(f"warmup_steps must be >= 0, got {cfg.warmup_steps}")
    if decay_steps < 0:
        raise UserError(f"decay_steps must be >= 0, got {decay_steps}")
    if amp not in ("none", "bf16"):
        raise UserError(f"amp must be 'none' or 'bf16', not {amp!r}")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir, prior_dir, log_path = out / CHECKPOINT, out / "prior", out / LOG

    def say(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    # Network (seeded initialisation), optimiser, EMA.
    torch.manual_seed(seed)
    net = build_prior_net(size, cfg.net_kwargs)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    ema = EMA(net, cfg.ema_decay)
    abar = alphas_cumprod(linear_betas(NUM_TIMESTEPS)).float()
    n_params = sum(p.numel() for p in net.parameters())

    scales = [size, *[int(v) for v in extra_sizes]]
    if extra_sizes and any(v < 8 or v % 8 for v in scales):
        raise UserError(f"crop sizes must be multiples of 8, got {scales}")
    # multi-scale and rotations change the data order: a resume must use the same settings
    # (None for single-scale / no rotation, so checkpoints of earlier runs resume unchanged)
    expect = {"seed": seed, "scales": scales if extra_sizes else None, "rotate": True if rotate else None}
    start = 0
    history: list[list[float]] = []
    if resume and has_checkpoint(ckpt_dir):
        state = load_checkpoint(ckpt_dir, net, opt, ema=ema, expect=expect, config=_ckpt_config(net))
        check_resume_config(out / TRAIN_CONFIG, cfg, PRIOR_RESUME_MAY_CHANGE)
        torch.set_rng_state(torch.tensor(state["torch_rng_state"], dtype=torch.uint8))
        start = int(state["step"])
        history = [list(h) for h in state.get("loss_history", [])]
        trim_log(log_path, start)
        say(f"[prior] resumed from {ckpt_dir} at step {start}")
    elif resume and not cfg.init_from:
        say(f"[prior] no checkpoint in {ckpt_dir}; starting from scratch")
    if start == 0 and cfg.init_from:
        _warm_start(net, ema, cfg.init_from)
        say(f"[prior] initialised from {cfg.init_from}")

    if dataset is None:
        from ..data.images import ImageCropDataset

        t0 = time.time()
        from ..data.images import DEFAULT_HOLDOUT

        dataset = ImageCropDataset(data_dir, max([size, *extra_sizes]), seed=seed, rotate=rotate,
                                   holdout=tuple(DEFAULT_HOLDOUT) + tuple(holdout))
        say(f"[prior] data: {len(dataset.files)} files, {len(dataset)} entries, "
            f"{dataset.nbytes / 1e6:.0f} MB, loaded in {time.time() - t0:.1f}s")
    say(f"[prior] net: {n_params / 1e6:.2f} M parameters; steps {start} -> {steps}, batch {batch}, "
        f"size {size}, threads {torch.get_num_threads()}, amp {amp}")

    atomic_json(out / TRAIN_CONFIG, {"model": "prior", **config_record(cfg), "scales": scales, "net": net.config})

    def trainer_state(step: int) -> dict:
        return {
            "step": step,
            "seed": seed,
            "batch": batch,
            "size": size,
            "lr": lr,
            "ema_decay": cfg.ema_decay,
            "ema_updates": ema.num_updates,
            "torch_rng_state": torch.get_rng_state().tolist(),
            **{k: v for k, v in expect.items() if k != "seed" and v is not None},
            "loss_history": history,
        }

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_dir, net, opt, trainer_state(step), ema=ema, config=_ckpt_config(net))
        _export_prior(prior_dir, net, ema, step, {"train_size": size, "train_batch": batch, "seed": seed})

    window: list[float] = []
    t_window = time.time()
    for step in range(start, steps):
        cur_lr = lr_at(step, steps, lr, decay_steps, cfg.warmup_steps)
        for group in opt.param_groups:
            group["lr"] = cur_lr
        # 1. Data: crops of batch `step` mapped to [-1, 1]; timesteps and noise from the step's stream.
        if extra_sizes:
            side = scales[step % len(scales)]
            x0 = to_model(dataset.batch(step, max(1, round(batch * (size / side) ** 2)), side))
        else:
            x0 = to_model(dataset.batch(step, batch))
        gen = _step_generator(seed, step)
        t = sample_timesteps(x0.shape[0], gen)
        noise = torch.randn(x0.shape, generator=gen)
        # 2. Loss, backward, clipped AdamW step, EMA update.
        device_type = next(net.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=(amp == "bf16")):
            loss = eps_loss(net, x0, t, noise, abar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema.update(net)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"non-finite loss at step {step + 1}")
        window.append(value)
        done = step + 1
        # 3. Logging and checkpoints.
        if done % log_every == 0 or done == steps:
            mean = float(np.mean(window))
            dt = (time.time() - t_window) / len(window)
            history.append([done, mean])
            rec = {"step": done, "loss": mean, "grad_norm": float(grad_norm), "sec_per_step": round(dt, 4),
                   "lr": cur_lr, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            say(f"[prior] step {done:7d}  loss {mean:.5f}  |g| {float(grad_norm):.3f}  {dt:.2f}s/step")
            window, t_window = [], time.time()
        if done % ckpt_every == 0 or done == steps:
            checkpoint(done)
    return net
