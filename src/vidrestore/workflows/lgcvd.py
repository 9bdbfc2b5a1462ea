"""LGC-VD sampling: clip sampler and long-horizon prediction, interpolation and generation.

Yang et al., "Video Diffusion Models with Local-Global Context Guidance", IJCAI 2023
(arXiv 2306.02562). Behaviour of the official test loop (the released code ``exisas/LGC-VD``,
its trainer's ``test()``) and our deliberate differences:

* One clip = ``F`` frames (8) sampled jointly from pure noise with the respaced **ancestral**
  sampler (DDIM with ``eta = 1``, i.e. posterior variance ``beta~``, Song et al. 2021 eq. 16;
  trailing timestep spacing), ``x0`` clamped to ``[-1, 1]``. The official code uses 100 steps
  of guided-diffusion's respacing; we default to 50 (CPU budget).
* Long videos are built autoregressively with a stride of ``F - 2``: each new clip is
  conditioned on the last two frames so far at positions (0, 1).
* Global context: ``f_0 = E(fixed grey clip)``, then after each clip
  :func:`~vidrestore.nets.lgcvd.next_context`, the same function training uses: the official
  running average ``f_k = (E(previous generated clip) + f_{k-1}) / 2`` for networks with
  ``context_mode="average"`` (the bundled model), ``f_k = E(previous generated clip)`` for
  ``context_mode="last"``. We use the same (EMA) network for the encoder and the
  denoiser; the official code mixes the non-EMA encoder with the EMA denoiser.
* The conditioning frames are kept as given in the output (the official code overwrites them
  with the model's re-generation).
* Interpolation (no test path in the official code): for factor ``k`` (``2 <= k <= F-1``) the
  known frames ``a, b`` go to positions ``(0, k)`` and the model fills ``1 .. k-1``; the task is
  the trained "interpolation" task for ``k = F-1`` and a "random positions" task otherwise.

Networks with one channel (the bundled digits model) see the mean of the RGB channels; outputs
are replicated to the input's channel count. Public inputs/outputs are ``(B, C, T, H, W)`` in
``[0, 1]``.
"""

from __future__ import annotations

import json

import os
from importlib import resources
from pathlib import Path
from typing import Callable

import torch

from ..diffusion.denoisers import DiscreteDiffusionDenoiser
from ..diffusion.samplers import randn, sample_ddim
from ..diffusion.schedules import ddim_timesteps
from ..errors import UserError
from ..nets.lgcvd import LGCVDUNet, local_condition, next_context
from ..tensor import check_video, to_model, to_pixel
from ..train.lgcvd import lgcvd_alphas_cumprod

__all__ = [
    "BUNDLED_LGCVD",
    "load_lgcvd",
    "sample_clip",
    "predict_video",
    "interpolate_video",
    "generate_video",
    "predict_file",
    "interpolate_file",
    "generate_file",
]

BUNDLED_LGCVD = "lgcvd-digits"


def _weights_path(weights: str | os.PathLike | None) -> Path:
    if weights in (None, "default", BUNDLED_LGCVD):
        return Path(str(resources.files("vidrestore").joinpath("weights", BUNDLED_LGCVD)))
    return Path(weights)


def load_lgcvd(weights: str | os.PathLike | None = None) -> LGCVDUNet:
    """Load an LGC-VD weight folder (default: the bundled moving-digits model)."""
    from ..checkpoint import from_pretrained

    path = _weights_path(weights)
    net = from_pretrained(path)
    if not isinstance(net, LGCVDUNet):
        raise UserError(f"{path} is not an LGC-VD network (class {type(net).__name__})")
    return net


#: What the training data looked like, by the ``dataset`` name in a weight folder's config.
DATASET_DESCRIPTIONS = {"moving-digits": "synthetic moving digits, light strokes on a black background"}


def model_domain(weights: str | os.PathLike | None = None) -> dict:
    """The domain a weight folder was trained on, from its ``config.json``: ``channels``,
    ``size`` (``(H, W)`` of the training frames, or ``None`` if not recorded) and ``data`` (a
    description of the training data)."""
    path = _weights_path(weights)
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {"channels": None, "size": None, "data": None}
    dom = cfg.get("domain") or {}
    size = dom.get("size", cfg.get("size"))
    if isinstance(size, int):
        size = [size, size]
    data = dom.get("data") or cfg.get("dataset")
    return {
        "channels": dom.get("channels", cfg.get("kwargs", {}).get("channels")),
        "size": tuple(size) if size else None,
        "data": DATASET_DESCRIPTIONS.get(data, data) if data else None,
    }


def check_domain(domain: dict, x: torch.Tensor | None, *, allow: bool = False, what: str = "input") -> str | None:
    """Refuse a video outside the model's training domain (colour video for a grey model, or
    another frame size) with one line naming the domain, unless ``allow``; then return the same
    message as a warning. ``None`` when the video is inside the domain, or when the weight folder
    does not record its training data (``data`` is ``None``)."""
    problems = []
    if x is not None and domain.get("data"):
        c, h, w = x.shape[1], x.shape[-2], x.shape[-1]
        if domain.get("channels") == 1 and c == 3 and not (torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])):
            problems.append("colour frames")
        if domain.get("size") and (h, w) != tuple(domain["size"]):
            problems.append(f"{h}x{w} frames")
    if not problems:
        return None
    size = "x".join(map(str, domain["size"])) if domain.get("size") else "any-size"
    ch = {1: "grey", 3: "colour"}.get(domain.get("channels"), f"{domain.get('channels')}-channel")
    msg = (f"this LGC-VD model knows {ch} {size} frames of {domain['data']}; the {what} has {' and '.join(problems)}, "
           "so the output would not resemble it (train a model on your data with 'vidrestore train lgcvd --data DIR', "
           "or pass --allow-out-of-domain)")
    if not allow:
        raise UserError(msg)
    return msg


def _to_net(x: torch.Tensor, net: LGCVDUNet) -> torch.Tensor:
    c = x.shape[1]
    if c == net.channels:
        return x
    if net.channels == 1:
        return x.mean(dim=1, keepdim=True)
    if c == 1:
        return x.expand(-1, net.channels, -1, -1, -1)
    raise UserError(f"the network expects {net.channels} channels, the video has {c}")


def _from_net(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x if x.shape[1] == channels else x.expand(-1, channels, -1, -1, -1).contiguous()


@torch.no_grad()
def sample_clip(
    net: LGCVDUNet,
    cond_clip: torch.Tensor,
    positions: torch.Tensor,
    context: torch.Tensor | None,
    *,
    steps: int = 50,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    step_callback: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Sample one clip ``(B, C_net, F, H, W)`` in ``[0, 1]`` given its local and global context.

    Args:
        net: LGC-VD network.
        cond_clip: Pixel-space clip ``(B, C_net, F, H, W)`` holding the known frames at ``positions``.
        positions: ``(B, 2)`` int64 condition positions (``-1`` = absent).
        context: Global feature from ``net.encode_context`` (``None``: fixed grey clip).
        steps: Sampler steps (respaced from 1000, trailing).
        eta: 1 = ancestral DDPM, 0 = deterministic DDIM.
        generator: Noise generator.
        step_callback: Called after every sampler step (progress).
    """
    b, c, f, h, w = cond_clip.shape
    cond = local_condition(cond_clip, positions, f)
    if net.global_context and context is None:
        context = net.encode_context(None, like=cond_clip)
    den = DiscreteDiffusionDenoiser(lambda x, t: net(x, t, cond, context), lgcvd_alphas_cumprod(), prediction="v",
                                    clip_x0=True, per_frame=False)
    x_T = randn((b, c, f, h, w), generator, like=cond_clip)
    cb = (lambda info: step_callback()) if step_callback is not None else None
    x = sample_ddim(den, x_T, ddim_timesteps(steps, den.num_timesteps), eta=eta, generator=generator, callback=cb)
    return to_pixel(x).clamp(0.0, 1.0)


def _check_size(net: LGCVDUNet, x: torch.Tensor) -> None:
    h, w = x.shape[-2:]
    if h % net.factor or w % net.factor:
        raise UserError(f"frame size {h}x{w} must be a multiple of {net.factor} for this network")


class _ClipChain:
    """Clips sampled one after another with one sampler setting, carrying the global context.

    The context starts as ``f_0 = E(grey clip)`` and after each clip follows :func:`next_context`
    (the rule the network was trained with: running average or the last clip's encoding), unless
    ``carry`` is off (every clip then sees the fixed grey context, the "local context only"
    behaviour). ``callback`` runs after every clip, ``step_callback`` after every sampler step.
    """

    def __init__(self, net: LGCVDUNet, like: torch.Tensor, *, carry: bool = True, steps: int = 50, eta: float = 1.0,
                 generator: torch.Generator | None = None, callback: Callable[[], None] | None = None,
                 step_callback: Callable[[], None] | None = None):
        self.net, self.carry = net, carry
        self.steps, self.eta, self.generator = steps, eta, generator
        self.callback, self.step_callback = callback, step_callback
        self.feat = net.encode_context(None, like=like) if net.global_context else None

    def sample(self, cond_clip: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One clip given its local condition; then the context update and ``callback``."""
        clip = sample_clip(self.net, cond_clip, positions, self.feat, steps=self.steps, eta=self.eta,
                           generator=self.generator, step_callback=self.step_callback)
        self.update(clip)
        if self.callback is not None:
            self.callback()
        return clip

    def update(self, clip: torch.Tensor) -> None:
        """Advance the global context past ``clip`` (pixel space), if it is carried."""
        if self.feat is not None and self.carry:
            self.feat = next_context(self.net, to_model(clip), self.feat)

    def continue_from(self, frames: list[torch.Tensor], n: int) -> list[torch.Tensor]:
        """Predict ``n`` frames after ``frames`` (network space, at least one frame) with stride
        ``F - 2``: each clip is conditioned on the last two frames so far at positions (0, 1),
        or on a single known frame at position 0 (slot a empty)."""
        f, out = self.net.frames, []
        b, c, h, w = frames[-1].shape
        known = list(frames)
        while len(out) < n:
            cond_clip = torch.zeros(b, c, f, h, w)
            if len(known) >= 2:
                cond_clip[:, :, 0], cond_clip[:, :, 1] = known[-2], known[-1]
                pos, first_new = torch.tensor([[0, 1]] * b), 2
            else:
                cond_clip[:, :, 0] = known[-1]
                pos, first_new = torch.tensor([[-1, 0]] * b), 1
            clip = self.sample(cond_clip, pos)
            new = list(clip[:, :, first_new : first_new + min(f - first_new, n - len(out))].unbind(2))
            known += new
            out += new
        return out


#: Keyword arguments shared by :func:`predict_video`, :func:`interpolate_video` and
#: :func:`generate_video` (passed on to :class:`_ClipChain`): ``steps`` (sampler steps, respaced
#: from 1000), ``eta`` (1 = ancestral, 0 = deterministic DDIM), ``generator``, ``callback``
#: (after every clip) and ``step_callback`` (after every sampler step).
SAMPLING_OPTIONS = ("steps", "eta", "generator", "callback", "step_callback")


def _chain(net: LGCVDUNet, like: torch.Tensor, carry: bool, sampling: dict) -> _ClipChain:
    unknown = sorted(set(sampling) - set(SAMPLING_OPTIONS))
    if unknown:
        raise TypeError(f"unknown sampling option(s): {', '.join(unknown)} (accepted: {', '.join(SAMPLING_OPTIONS)})")
    return _ClipChain(net, like, carry=carry, **sampling)


@torch.no_grad()
def predict_video(net: LGCVDUNet, past: torch.Tensor, num_frames: int, *, carry_context: bool = True, **sampling) -> torch.Tensor:
    """Autoregressive prediction of ``num_frames`` frames after ``past``.

    Args:
        net: LGC-VD network.
        past: ``(B, C, T0, H, W)`` in ``[0, 1]``; its last two frames (or its only frame) condition
            the first clip.
        num_frames: Number of new frames (>= 1).
        carry_context: Carry the running global context across clips (``False``: every clip
            sees the fixed grey context, the "local context only" behaviour).
        **sampling: :data:`SAMPLING_OPTIONS`.

    Returns:
        ``(B, C, T0 + num_frames, H, W)``: ``past`` followed by the prediction.
    """
    check_video(past, "past")
    _check_size(net, past)
    if num_frames < 1:
        raise UserError("the number of frames to predict must be >= 1")
    x = _to_net(past, net)
    b, c, _, h, w = x.shape
    chain = _chain(net, torch.zeros(b, c, net.frames, h, w), carry_context, sampling)
    frames = list(x.unbind(2))
    return _from_net(torch.stack(frames + chain.continue_from(frames, num_frames), 2), past.shape[1])


@torch.no_grad()
def interpolate_video(net: LGCVDUNet, video: torch.Tensor, factor: int, *, carry_context: bool = True, **sampling) -> torch.Tensor:
    """Insert ``factor - 1`` frames between consecutive frames of ``video``.

    Args:
        video: ``(B, C, T, H, W)`` in ``[0, 1]`` with ``T >= 2``.
        factor: ``2 <= factor <= F - 1`` (7 for the published clip length).
        carry_context, **sampling: as in :func:`predict_video`.

    Returns:
        ``(B, C, (T - 1) * factor + 1, H, W)``; the input frames are kept at indices ``0, factor, ...``.
    """
    check_video(video, "video")
    _check_size(net, video)
    f = net.frames
    if not 2 <= factor <= f - 1:
        raise UserError(f"--factor must be in [2, {f - 1}] for a {f}-frame model, got {factor}")
    if video.shape[2] < 2:
        raise UserError("interpolation needs at least 2 frames")
    x = _to_net(video, net)
    b, c, t, h, w = x.shape
    chain = _chain(net, torch.zeros(b, c, f, h, w), carry_context, sampling)
    out = [x[:, :, 0]]
    pos = torch.tensor([[0, factor]] * b)
    for i in range(t - 1):
        cond_clip = torch.zeros(b, c, f, h, w)
        cond_clip[:, :, 0], cond_clip[:, :, factor] = x[:, :, i], x[:, :, i + 1]
        clip = chain.sample(cond_clip, pos)
        out += list(clip[:, :, 1:factor].unbind(2)) + [x[:, :, i + 1]]
    return _from_net(torch.stack(out, 2), video.shape[1])


@torch.no_grad()
def generate_video(net: LGCVDUNet, num_frames: int, *, batch: int = 1, size: int | None = None, channels: int = 3,
                   **sampling) -> torch.Tensor:
    """Unconditional video: the first clip without local condition, then prediction with the
    carried context (``**sampling``: :data:`SAMPLING_OPTIONS`).

    Returns:
        ``(batch, channels, num_frames, size, size)`` in ``[0, 1]`` (``size`` defaults to the
        network's training size).
    """
    if num_frames < 1:
        raise UserError("--frames must be >= 1")
    s = size or net.config["image_size"]
    f = net.frames
    like = torch.zeros(batch, net.channels, f, s, s)
    _check_size(net, like)
    chain = _chain(net, like, True, sampling)
    clip = chain.sample(like, torch.full((batch, 2), -1))
    first = list(clip[:, :, : min(f, num_frames)].unbind(2))
    if num_frames > f:
        first += chain.continue_from(first, num_frames - f)
    return _from_net(torch.stack(first, 2), channels)


# ----------------------------------------------------------------------------------------------
# File workflows (one call per CLI subcommand).
# ----------------------------------------------------------------------------------------------


def _clips_needed(n: int, per_clip: int) -> int:
    return max(1, -(-n // per_clip))


def predict_file(src, out, *, weights=None, context: int = 2, frames: int = 14, start: int = 0, steps: int = 50,
                 eta: float = 1.0, seed: int = 0, quiet: bool = False, allow_out_of_domain: bool = False) -> dict:
    """Read ``context`` frames of ``src`` from ``start``, predict ``frames`` more, write ``out``.
    Input outside the model's training domain is refused (:func:`check_domain`) unless
    ``allow_out_of_domain``; the returned dict then carries the ``warning``."""
    from ..io import read_video, write_video
    from .progress import progress

    if context not in (1, 2):
        raise UserError("--context must be 1 or 2 (LGC-VD has two local-condition slots)")
    net = load_lgcvd(weights)
    x, fps = read_video(src, start=start, frames=context)
    warning = check_domain(model_domain(weights), x, allow=allow_out_of_domain)
    g = torch.Generator().manual_seed(seed)
    per = net.frames - (2 if context == 2 else 1)
    clips = 1 + (_clips_needed(frames - per, net.frames - 2) if frames > per else 0)
    with progress(clips * steps, "predict (sampler steps)", quiet) as cb:
        y = predict_video(net, x, frames, steps=steps, eta=eta, generator=g, step_callback=cb)
    from ..io.stream import probe_audio

    if probe_audio(src):
        from ..errors import warn

        warn(f"predicted frames have no sound: {out} is written without the audio of {src}")
    write_video(out, y[0], fps)
    return {"output": str(out), "shape": tuple(y.shape), "warning": warning}


def interpolate_file(src, out, *, weights=None, factor: int = 7, max_frames: int | None = None, steps: int = 50,
                     eta: float = 1.0, seed: int = 0, quiet: bool = False, allow_out_of_domain: bool = False) -> dict:
    """Interpolate every gap of ``src`` by ``factor`` and write ``out`` (frame rate times ``factor``,
    so the duration is kept and a video output keeps the audio of ``src``); out-of-domain input
    as in :func:`predict_file`. :func:`predict_file` writes no audio (the predicted frames have
    none; a warning says so when ``src`` has an audio track)."""
    from ..io import read_video, write_video
    from .progress import progress

    net = load_lgcvd(weights)
    if not 2 <= factor <= net.frames - 1:
        raise UserError(f"--factor must be in [2, {net.frames - 1}] for a {net.frames}-frame model, got {factor}")
    x, fps = read_video(src, max_frames=max_frames)
    warning = check_domain(model_domain(weights), x, allow=allow_out_of_domain)
    g = torch.Generator().manual_seed(seed)
    with progress(max(0, x.shape[2] - 1) * steps, "interpolate (sampler steps)", quiet) as cb:
        y = interpolate_video(net, x, factor, steps=steps, eta=eta, generator=g, step_callback=cb)
    # The new frames fill the gaps, so the clip spans the same time: a video output keeps the
    # audio of the frames read (.mp4/.mov/.mkv/.avi).
    from ..io.stream import AudioCopy, VideoWriter, probe_audio

    audio = AudioCopy(str(src), 0.0, None if max_frames is None else x.shape[2] / fps) if probe_audio(src) else None
    with VideoWriter(out, fps * factor, num_frames=int(y.shape[2]), audio=audio) as writer:
        writer.write(y[0])
    return {"output": str(out), "shape": tuple(y.shape), "warning": warning}


def generate_file(out, *, weights=None, frames: int = 16, seed: int = 0, steps: int = 50, eta: float = 1.0,
                  fps: float = 8.0, quiet: bool = False) -> dict:
    """Generate one unconditional video and write it to ``out``."""
    from ..io import write_video
    from .progress import progress

    net = load_lgcvd(weights)
    g = torch.Generator().manual_seed(seed)
    clips = 1 + (_clips_needed(frames - net.frames, net.frames - 2) if frames > net.frames else 0)
    with progress(clips * steps, "generate (sampler steps)", quiet) as cb:
        y = generate_video(net, frames, steps=steps, eta=eta, generator=g, step_callback=cb)
    write_video(out, y[0], fps)
    return {"output": str(out), "shape": tuple(y.shape)}
