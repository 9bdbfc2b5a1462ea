"""DiffIR2VR-Zero: a training-free temporal-consistency wrapper around an image diffusion restorer.

Yeh et al., "DiffIR2VR-Zero: Zero-Shot Video Restoration with Diffusion-based Image Restoration
Models", arXiv 2407.01519 (v5). The per-frame restorer (here: our zero-shot per-frame DDS/DPS
solvers with the bundled prior, or any solver with the same hooks) is run on the whole clip
with two additions:

1. **Batches and keyframes.** Frames are split into consecutive non-overlapping batches
   (default 5, released code 10; a tail of at most 2 frames joins the previous batch, as the released code does)
   with one keyframe each (the middle frame as released; ``keyframe="random"`` draws one per
   batch from ``seed``, as the paper states).
2. **Optical flow** (:func:`vidrestore.flow.flow_pair`, OpenCV DIS by default) between cheap
   "stage-1" frames (``op.lift(y)``, plus the prior's one-step denoiser when the measurement is
   noisy; the released code uses its regression stage-1 output): every frame -> its keyframe,
   and every keyframe -> the previous keyframe, with occlusion masks and confidences.
3. **Hierarchical latent warping** (:class:`~vidrestore.consistency.warping.LatentWarper`)
   through the solvers' ``x0_hook``, by default in the *second half* of the steps with bilinear
   interpolation (the paper/released code: the first 10 %, nearest; :meth:`DiffIR2VRConfig.paper`).
   In DDS/SVI the hook edits the network's Tweedie estimate *before* the data step (the model's
   x̂0, as in the paper, where DiffBIR's conditioning lives inside the network); in DPS it edits
   the x̂0 of the ancestral step. With our DDS base the per-frame data step (CG on each frame's
   own measurement) and the fresh per-frame noise of the later steps override early edits, so
   warping only the first 10 % leaves the output practically unchanged, and it is the late steps
   that create the per-frame detail that flickers; bilinear is better than nearest for a
   pixel-space model. Measured in the README (``benchmarks/diffir2vr_table.py``).
4. **Hybrid token merging** (:func:`~vidrestore.consistency.patch.token_merging`) in the
   prior network's self-attention, with the ratio cosine-annealed from ``r`` (0.9) to 0 (Eq. 8):
   ``ratio_i = r_end + cos(pi/2 * s) (r_start - r_end)``, ``s = (i - i0) / (i1 - i0)``.
   The ratio of step ``i`` is set before the step's network call by a denoiser proxy that counts
   calls (one per step in :func:`~vidrestore.solvers.solve_dds` / ``solve_dps`` / ``solve_svi``).

With both parts disabled the base solver is called unchanged (bit-identical output).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from typing import Callable

import torch

from ..diffusion.denoisers import denoise_pixel
from ..errors import UserError
from ..flow import FlowEstimator, flow_pair
from ..ops.base import LinearOperator
from ..solvers.svi import solve_dds, solve_dps, solve_svi
from ..solvers.windows import DEFAULT_MULTIPLE, pad_to_multiple
from ..tensor import check_video
from .patch import FrameGroup, TokenMerger, token_merging
from .warping import LatentWarper, WarpLink

__all__ = ["BASES", "PAPER_SETTINGS", "DiffIR2VRConfig", "frame_batches", "merge_ratio", "pick_keyframes", "solve_diffir2vr", "stage1_guide"]

#: Base per-frame restorers that :func:`solve_diffir2vr` can wrap by name.
BASES: dict[str, Callable[..., torch.Tensor]] = {"dds": solve_dds, "dps": solve_dps, "svi": solve_svi}


#: Where the settings of the authors' released DiffIR2VR-Zero code differ from our defaults.
PAPER_SETTINGS: dict = {"batch_size": 10, "warp_period": (0.0, 0.1), "warp_mode": "nearest", "warp_strength": 1.0}


@dataclass
class DiffIR2VRConfig:
    """Settings of the wrapper.

    Defaults are those of the authors' released DiffIR2VR-Zero code except batch 5 (released 10), warping
    in the second half of the steps (released: first 10 %) and bilinear warping (released:
    nearest), which make the wrapper effective around our DDS base (README, DiffIR2VR section);
    :meth:`paper` gives the released settings.

    Attributes:
        enabled: master switch; ``False`` calls the base solver unchanged.
        batch_size: frames per batch (5; released 10).
        keyframe: ``"middle"`` (released code) or ``"random"`` (paper).
        warp: hierarchical latent warping on/off.
        warp_period: fractions of the steps with warping (``(0.5, 1)``; released ``(0, 0.1)``).
        warp_mode: ``"bilinear"`` (default) or ``"nearest"`` (released).
        warp_strength: ``alpha`` of the warp, ``x̂0 <- x̂0 + alpha M (W(x̂0_key) - x̂0)`` at every
            warped step (0.1); 1 = the paper's replacement, < 1 blends (our extension: with the
            tuned base, replacement costs PSNR on the noisy tasks, see the README).
        global_warp: also chain keyframes across batches (keyframe <- previous keyframe).
        merge: token merging on/off.
        merge_ratio: ``(r_start, r_end)`` of the cosine annealing (``(0.9, 0.0)``).
        merge_period: fractions of the steps with merging (``(0, 1)``: all).
        down_match, up_match: ``"flow"`` or ``"cos"`` correspondence in encoder / other blocks.
        radius: ``R`` of the spatial weight in tokens (``None``: ``max(1, w // 30)``; 0: off).
        levels: finest attention resolutions merged (2).
        chunk: src rows per block of the cosine matching (memory bound).
        flow: flow estimator name or callable (``"dis"``).
        seed: seed of the random keyframes.
    """

    enabled: bool = True
    batch_size: int = 5
    keyframe: str = "middle"
    warp: bool = True
    warp_period: tuple[float, float] = (0.5, 1.0)
    warp_mode: str = "bilinear"
    warp_strength: float = 0.1
    global_warp: bool = True
    merge: bool = True
    merge_ratio: tuple[float, float] = (0.9, 0.0)
    merge_period: tuple[float, float] = (0.0, 1.0)
    down_match: str = "flow"
    up_match: str = "cos"
    radius: float | None = None
    levels: int = 2
    chunk: int = 1024
    flow: str | FlowEstimator = "dis"
    seed: int = 0

    @classmethod
    def paper(cls, **kw) -> "DiffIR2VRConfig":
        """The released code's settings (batch 10, warping in the first 10 % of the steps,
        nearest), other fields as given."""
        return cls(**{**PAPER_SETTINGS, **kw})

    def with_options(self, **kw) -> "DiffIR2VRConfig":
        """A copy with some fields changed (unknown names raise)."""
        bad = set(kw) - set(self.__dataclass_fields__)
        if bad:
            raise UserError(f"unknown DiffIR2VR option(s): {sorted(bad)}")
        return replace(self, **kw)

    def validate(self) -> None:
        if int(self.batch_size) < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.keyframe not in ("middle", "random"):
            raise UserError(f"keyframe must be 'middle' or 'random', got {self.keyframe!r}")
        if not 0.0 <= float(self.warp_strength) <= 1.0:
            raise UserError(f"warp_strength must lie in [0, 1], got {self.warp_strength}")
        if self.warp_mode not in ("nearest", "bilinear"):
            raise UserError(f"warp_mode must be 'nearest' or 'bilinear', got {self.warp_mode!r}")
        for name in ("warp_period", "merge_period"):
            a, b = getattr(self, name)
            if not 0.0 <= a <= b <= 1.0:
                raise UserError(f"{name} must satisfy 0 <= start <= end <= 1, got {(a, b)}")
        r0, r1 = self.merge_ratio
        if not (0.0 <= r0 <= 1.0 and 0.0 <= r1 <= 1.0):
            raise UserError(f"merge_ratio values must lie in [0, 1], got {self.merge_ratio}")
        for m in (self.down_match, self.up_match):
            if m not in ("flow", "cos"):
                raise UserError(f"correspondence must be 'flow' or 'cos', got {m!r}")


# ------------------------------------------------------------------------------------------
# Batches, keyframes, schedule.
# ------------------------------------------------------------------------------------------


def frame_batches(num_frames: int, batch_size: int) -> list[list[int]]:
    """Consecutive non-overlapping batches; a tail of <= 2 frames joins the previous batch.

    >>> frame_batches(22, 10)
    [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]]
    >>> [len(b) for b in frame_batches(16, 10)]
    [10, 6]
    """
    n, bs = int(num_frames), max(1, int(batch_size))
    out: list[list[int]] = []
    s = 0
    while s < n:
        e = min(n, s + bs)
        if 0 < n - e <= 2 and bs > 2:
            e = n
        out.append(list(range(s, e)))
        s = e
    return out


def pick_keyframes(batches: list[list[int]], mode: str = "middle", seed: int = 0) -> list[int]:
    """Keyframe position inside each batch: ``len // 2`` or a seeded random position."""
    if mode == "middle":
        return [len(b) // 2 for b in batches]
    g = torch.Generator().manual_seed(int(seed))
    return [int(torch.randint(len(b), (1,), generator=g)) for b in batches]


def merge_ratio(i: int, num_steps: int, ratio: tuple[float, float] = (0.9, 0.0),
                period: tuple[float, float] = (0.0, 1.0)) -> float | None:
    """Cosine-annealed merge ratio of step ``i`` (paper Eq. 8 with delta = 1, released code).

    ``i0 = int(p0 N)``, ``i1 = int(p1 N)``; outside ``[i0, i1)`` merging is off (``None``);
    inside, ``s = (i - i0) / (i1 - i0)`` and ``ratio = r1 + cos(pi s / 2) (r0 - r1)``.

    >>> round(merge_ratio(0, 50), 3), round(merge_ratio(49, 50), 3), merge_ratio(5, 10, period=(0, 0.5))
    (0.9, 0.028, None)
    """
    i0, i1 = int(period[0] * num_steps), int(period[1] * num_steps)
    if not i0 <= i < i1:
        return None
    s = (i - i0) / max(i1 - i0, 1e-6)
    r0, r1 = float(ratio[0]), float(ratio[1])
    return r1 + math.cos(math.pi / 2 * s) * (r0 - r1)


# ------------------------------------------------------------------------------------------
# Stage-1 guide and flows.
# ------------------------------------------------------------------------------------------


def stage1_guide(denoiser, op: LinearOperator, y: torch.Tensor, sigma_y: float = 0.0) -> torch.Tensor:
    """Cheap restored frames for the optical flow: ``lift(y)``, denoised when ``sigma_y > 0``.

    The denoising is the prior's one-step Tweedie denoiser at ``sigma_y``
    (:func:`~vidrestore.diffusion.denoisers.denoise_pixel`), on a padded grid.

    Returns:
        ``(B, C, T, H, W)`` in ``[0, 1]`` on the grid of the unknown video.
    """
    with torch.no_grad():
        g = op.lift(y)
        if float(sigma_y) > 0:
            mult = int(getattr(denoiser, "multiple", DEFAULT_MULTIPLE) or 1)
            gp, size = pad_to_multiple(g, mult)
            g = denoise_pixel(denoiser, gp, float(sigma_y))[..., : size[0], : size[1]]
    return g.clamp(0.0, 1.0)


def _frames(v: torch.Tensor, b: int, ts: list[int]) -> torch.Tensor:
    return v[b, :, ts].permute(1, 0, 2, 3)  # (len, C, H, W)


class _MergingDenoiser:
    """Denoiser proxy that sets the merge ratio of each network call (one call per step)."""

    def __init__(self, base, merger: TokenMerger, num_steps: int, cfg: DiffIR2VRConfig):
        self._base = base
        self._merger = merger
        self._num_steps = int(num_steps)
        self._cfg = cfg
        self.calls = 0

    def eps_and_x0(self, x_t, t, **kw):
        self._merger.set_ratio(merge_ratio(min(self.calls, self._num_steps - 1), self._num_steps,
                                           self._cfg.merge_ratio, self._cfg.merge_period))
        self.calls += 1
        try:
            return self._base.eps_and_x0(x_t, t, **kw)
        finally:
            self._merger.set_ratio(None)

    def __getattr__(self, name):
        return getattr(self._base, name)


def _default_steps(fn: Callable) -> int:
    p = inspect.signature(fn).parameters.get("steps")
    return int(p.default) if p is not None and p.default is not inspect.Parameter.empty else 20


# ------------------------------------------------------------------------------------------
# The wrapper.
# ------------------------------------------------------------------------------------------


def solve_diffir2vr(
    denoiser,
    op: LinearOperator,
    y: torch.Tensor,
    *,
    base: str | Callable[..., torch.Tensor] = "dds",
    config: DiffIR2VRConfig | None = None,
    guide: torch.Tensor | None = None,
    sigma_y: float = 0.0,
    info: dict | None = None,
    **solver_kwargs,
) -> torch.Tensor:
    """Restore a video with a per-frame diffusion solver made temporally consistent (DiffIR2VR-Zero).

    Args:
        denoiser: the image prior (:class:`vidrestore.priors.Prior` or any denoiser whose
            ``net`` attribute is an ADM or diffusers UNet; needed for token merging).
        op: linear operator on pixel videos.
        y: measurement in pixel units.
        base: ``"dds"`` (default), ``"dps"``, ``"svi"`` or a solver callable
            ``solver(denoiser, op, y, *, sigma_y, x0_hook, steps, ...)``.
        config: :class:`DiffIR2VRConfig` (defaults: ours; ``DiffIR2VRConfig.paper()``: released settings).
        guide: ``(B, C, T, H, W)`` frames in ``[0, 1]`` to estimate the flows on (default
            :func:`stage1_guide`).
        sigma_y: measurement noise std in pixel units (passed to the base solver).
        info: optional dict filled with diagnostics (batches, keyframes, merge statistics,
            warped steps).
        **solver_kwargs: passed to the base solver (``steps``, ``eta``, ``seed``, ...).

    Returns:
        The restored video ``(B, C, T, H, W)`` in ``[0, 1]``.
    """
    cfg = config or DiffIR2VRConfig()
    cfg.validate()
    fn = BASES[base] if isinstance(base, str) and base in BASES else base
    if isinstance(base, str) and base not in BASES:
        raise UserError(f"unknown base {base!r}; choose one of {', '.join(BASES)}")
    if not callable(fn):
        raise UserError(f"base must be a solver name or callable, got {type(base).__name__}")
    check_video(y, "measurement y")
    x_shape = tuple(op.input_shape(tuple(y.shape)))
    B, _, T, H, W = x_shape
    if not cfg.enabled or (not cfg.warp and not cfg.merge) or T < 2:
        return fn(denoiser, op, y, sigma_y=sigma_y, **solver_kwargs)

    # 1. Batches and keyframes.
    batches = frame_batches(T, cfg.batch_size)
    keys = pick_keyframes(batches, cfg.keyframe, cfg.seed)

    # 2. Flows on the stage-1 frames: frame -> keyframe (local), keyframe -> previous keyframe.
    if guide is None:
        guide = stage1_guide(denoiser, op, y, sigma_y)
    if tuple(guide.shape[-2:]) != (H, W) or guide.shape[2] != T or guide.shape[0] != B:
        raise UserError(f"guide must have shape {(B, 3, T, H, W)}, got {tuple(guide.shape)}")
    guide = guide.detach().float().cpu()
    tgt, src, meta = [], [], []
    for b in range(B):
        for gi, (frames, k) in enumerate(zip(batches, keys)):
            kf = frames[k]
            if gi > 0 and cfg.global_warp:
                pk = batches[gi - 1][keys[gi - 1]]
                tgt.append(kf), src.append(pk), meta.append((b, "global", gi, kf, pk))
            for f in frames:
                if f != kf:
                    tgt.append(f), src.append(kf), meta.append((b, "local", gi, f, kf))
    # One batched flow call per clip (pairs stacked along the batch dimension).
    flows, masks, confs = [], [], []
    for b in range(B):
        ids = [n for n, m in enumerate(meta) if m[0] == b]
        if not ids:
            continue
        fp = flow_pair(_frames(guide, b, [tgt[n] for n in ids]), _frames(guide, b, [src[n] for n in ids]), method=cfg.flow)
        flows.append(fp.flow), masks.append(fp.mask), confs.append(fp.confidence)
    flow_all, mask_all, conf_all = torch.cat(flows), torch.cat(masks), torch.cat(confs)

    # 3. Latent warping hook.
    hook = None
    if cfg.warp:
        links = [WarpLink(m[0], m[3], m[4], flow_all[n : n + 1], mask_all[n : n + 1]) for n, m in enumerate(meta)]
        # Order: per clip and batch, the global keyframe link before the batch's local links.
        hook = LatentWarper(links, cfg.warp_period, cfg.warp_mode, cfg.warp_strength)

    # 4. Token merging.
    steps = int(solver_kwargs.get("steps", _default_steps(fn)))
    den = denoiser
    merger = None
    if cfg.merge:
        net = getattr(denoiser, "net", None)
        if not isinstance(net, torch.nn.Module):
            raise UserError("token merging needs a denoiser with a .net network (ADM or diffusers UNet)")
        if getattr(denoiser, "chunk_size", None) not in (None, 0) and int(denoiser.chunk_size) < B * T:
            raise UserError("token merging needs all frames in one network call; the prior's chunk_size is smaller")
        groups = []
        for b in range(B):
            for gi, (frames, k) in enumerate(zip(batches, keys)):
                fl = torch.zeros(len(frames), 2, H, W)
                cf = torch.zeros(len(frames), 1, H, W)
                for n, m in enumerate(meta):
                    if m[0] == b and m[1] == "local" and m[2] == gi:
                        j = frames.index(m[3])
                        fl[j], cf[j] = flow_all[n], conf_all[n]
                groups.append(FrameGroup([b * T + f for f in frames], k, fl, cf))
        mult = int(getattr(denoiser, "multiple", DEFAULT_MULTIPLE) or 1)
        hp, wp = H + (-H) % mult, W + (-W) % mult
        merger = TokenMerger(groups, B * T, valid_fraction=(H / hp, W / wp), down_match=cfg.down_match,
                             up_match=cfg.up_match, radius=cfg.radius, levels=cfg.levels, chunk=cfg.chunk)
        den = _MergingDenoiser(denoiser, merger, steps, cfg)

    if merger is not None:
        with token_merging(denoiser.net, merger):
            out = fn(den, op, y, sigma_y=sigma_y, x0_hook=hook, **solver_kwargs)
    else:
        out = fn(den, op, y, sigma_y=sigma_y, x0_hook=hook, **solver_kwargs)
    if info is not None:
        info.update(batches=batches, keyframes=[f[k] for f, k in zip(batches, keys)],
                    warped_steps=0 if hook is None else hook.applied,
                    merge_stats=None if merger is None else dict(merger.stats),
                    flow_valid=float(mask_all.mean()))
    return out
