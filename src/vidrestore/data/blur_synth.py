"""Synthetic motion-blurred videos with exact sharp ground truth and exact optical flow.

A sharp video is rendered from one high-resolution photo seen by a virtual camera that
moves along a smooth random trajectory (translation with drift, acceleration and hand-shake
oscillations, rotation and zoom). Each blurry frame averages ``n_sub`` sub-frame renders over
the exposure window (in linear light, gamma 2.2, like Nah et al.'s GoPro set); the sharp frame
is the render at the middle of the exposure. Because the motion is a known similarity
transform per instant, the backward optical flow between consecutive sharp frames is exact.

Camera model: output pixel ``p`` (x, y) at time ``tau`` (in frames) shows photo point
``P = c(tau) + s(tau) R(theta(tau)) (p - o)``, with ``o`` the crop centre,
``c(tau) = c0 + v D(tau) + a tau²/2 + sum_k A_k sin(2 pi f_k tau + phi_k)``,
``theta(tau) = theta0 + omega tau``, ``s(tau) = s0 exp(z tau)``.
``D(tau) = tau`` for a constant drift; in a "stop-and-go" clip the drift speed is modulated
as ``|v| (1 - rho cos(2 pi f_g tau + phi_g))``, whose closed-form integral is
``D(tau) = tau - rho (sin(2 pi f_g tau + phi_g) - sin(phi_g)) / (2 pi f_g)``, so some frames
of the clip are nearly sharp ("lucky" frames) while others are blurred up to ``(1 + rho)``
times the mean drift (see :class:`BlurSynthConfig`). The flow stays exact.

Everything is a function of ``(seed, index)`` (numpy ``default_rng([seed, index])``), so
training data are reproducible and resumable. See :class:`BlurSynthConfig` for the ranges.

Blur families (:data:`BLUR_FAMILIES`, :func:`family_config`): named variations of the
default recipe (translation only, rotation, zoom, stop-and-go, hand-shake, short exposure,
sensor noise, averaging in sRGB instead of linear light, JPEG compression). With
``BlurSynthConfig(families=(...))`` every clip draws one of the listed families (from its
``(seed, index)`` generator) and is rendered with that family's settings. The families are
meant to train on (:data:`TRAIN_FAMILIES`) or to be *held out* for evaluation
(:data:`HELDOUT_FAMILIES` = ``srgb-average`` and ``compression``): a model trained on
linear-light averages of clean frames and scored on sRGB averages and compressed frames
(and on real frame-averaged clips such as GoPro or DVD, which come from elsewhere) shows
how much it depends on the exact blur model of this generator. PVDNet (Son et al., ACM
TOG 2021) is trained on such frame-averaged blur; the families are our additions.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .images import DEFAULT_EXCLUDE, DEFAULT_HOLDOUT, IMAGE_EXTENSIONS, list_media

__all__ = ["BlurSynthConfig", "SyntheticBlurClips", "render_clip", "holdout_images", "BLUR_FAMILIES", "TRAIN_FAMILIES",
           "HELDOUT_FAMILIES", "family_config", "blur_strength", "jpeg_roundtrip"]

GAMMA = 2.2


@dataclass(frozen=True)
class BlurSynthConfig:
    """Ranges of the random camera motion (output-pixel units per frame).

    The defaults (drift up to 24 px/frame, exposure 0.75-1.0 of the frame interval, up to
    49 sub-frames), measured before the stop-and-go option existed (``stop_go_prob = 0``),
    give a held-out blurry-input PSNR of 29.47 dB (aligned luma protocol,
    ``benchmarks/pvdnet_table.py`` set: 12 clips x 8 frames, 128x160, seed 1234; range
    21.9-37.3 dB per clip), inside the 28-30 dB range reported for the blurry inputs of the
    DVD (Su et al. 2017) and GoPro (Nah et al. 2017) test sets (the range quoted in the PVDNet paper's setting;
    not re-checked against the papers here). GoPro averages 7-13
    consecutive 240 fps frames in disjoint windows, i.e. an exposure close to the whole
    frame interval, hence ``exposure = (0.75, 1.0)``. The first version (drift up to
    10 px/frame, exposure 0.5-1.0) gave 35.57 dB: much milder blur than those datasets.

    Attributes:
        max_speed: maximum drift speed ``|v|`` in pixels per frame (uniform in ``[0, max]``).
        max_accel: maximum ``|a|`` in pixels per frame².
        max_shake: maximum hand-shake amplitude per axis in pixels (two sinusoids).
        shake_freq: range of shake frequencies in cycles per frame.
        max_rot: maximum rotation speed in degrees per frame.
        max_zoom: maximum zoom rate ``|z|`` per frame (log scale).
        exposure: range of the exposure time as a fraction of the frame interval.
        scale: range of photo pixels per output pixel ``s0`` (``<= 1`` avoids aliasing).
        max_sub: cap on the number of sub-frames averaged per blurry frame.
        noise: std of Gaussian noise added to the blurry frames (``[0, 1]`` units).
        stop_go_prob: probability that a clip is "stop-and-go": its drift speed is modulated
            as ``|v| (1 - rho cos(2 pi f tau + phi))`` (closed-form integral in the module
            docstring), so the blur varies strongly from frame to frame within the clip.
        stop_go_depth: range of the modulation depth ``rho`` (uniform). ``rho`` near 1 gives
            frames whose drift nearly stops (only shake, rotation and zoom blur them).
        stop_go_freq: range of the modulation frequency ``f`` in cycles per frame (uniform).
        linear_light: average the sub-frames in linear light (gamma 2.2, the default) or, if
            False, directly on the gamma-encoded values (a cheaper camera pipeline; the sRGB
            average is darker at edges between bright and dark regions).
        noise_gain: signal-dependent (Poisson-like) part of the sensor noise: with it the
            noise of a blurry pixel of value ``x`` has std ``sqrt(noise_gain * x + noise²)``
            (``[0, 1]`` units, added to the gamma-encoded frame).
        jpeg_quality: ``(lo, hi)``: the blurry frames go through a JPEG encode/decode at a
            quality drawn uniformly (integers, one per clip) in this range; ``None``: no
            compression.
        families: names of :data:`BLUR_FAMILIES`; each clip draws one of them (uniformly,
            from the clip's generator) and is rendered with :func:`family_config`. Empty: every
            clip uses this config as it is.

    Why stop-and-go by default: hand-held video (Su et al. 2017, DVD; the data PVDNet,
    Son et al., ACM TOG 2021, is trained and tested on) does not blur every frame equally:
    the hand's motion slows and reverses, so clips contain occasional nearly sharp "lucky"
    frames between strongly blurred ones. That is what a recurrent deblurrer, which carries
    the previous *deblurred* frame forward through the pixel volume, can exploit; with
    equally blurred frames it can only do single-frame deconvolution. The defaults make
    half of the clips stop-and-go (``stop_go_prob = 0.5``; the other half keep the constant
    drift). ``f`` in 0.06-0.2 cycles/frame is 1.8-6 Hz at 30 fps: from the walking step
    rate (about 2 Hz) to the fast corrective hand movements of hand-held filming (a few Hz;
    physiological tremor at 8-12 Hz has sub-pixel amplitude and is the ``max_shake`` term),
    and a period of 5-17 frames, i.e. an 8-frame clip usually contains at least part of a
    slow phase. ``rho`` in 0.5-1.0 lets the slowest frame keep 0-50 % of the mean drift.
    These values are a modelling choice, not fitted to DVD statistics. The mean drift
    speed over a long clip is unchanged (the cosine averages to zero), so the blur level
    stays comparable to the constant-drift clips; the held-out benchmark
    (``benchmarks/pvdnet_table.py``) uses these same defaults.
    """

    max_speed: float = 24.0
    max_accel: float = 1.0
    max_shake: float = 2.0
    shake_freq: tuple[float, float] = (0.1, 0.5)
    max_rot: float = 0.5
    max_zoom: float = 0.01
    exposure: tuple[float, float] = (0.75, 1.0)
    scale: tuple[float, float] = (0.6, 1.0)
    max_sub: int = 49
    noise: float = 0.0
    stop_go_prob: float = 0.5
    stop_go_depth: tuple[float, float] = (0.5, 1.0)
    stop_go_freq: tuple[float, float] = (0.06, 0.2)
    linear_light: bool = True
    noise_gain: float = 0.0
    jpeg_quality: tuple[int, int] | None = None
    families: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.families))
        if self.jpeg_quality is not None:
            object.__setattr__(self, "jpeg_quality", tuple(int(q) for q in self.jpeg_quality))
        for name in self.families:
            family_config(name)  # UserError for an unknown name


#: Named blur families: :class:`BlurSynthConfig` fields that replace the base config's.
#: ``drift``: translation only (drift and acceleration); ``rotation``, ``zoom``, ``shake``:
#: blur dominated by camera roll, zoom or hand-shake (drift at most 4 px/frame);
#: ``stop-and-go``: every clip stop-and-go; ``short-exposure``: exposure 0.5-0.75 of the
#: frame interval; ``noise``: Poisson-Gaussian-like sensor noise on the blurry frames;
#: ``srgb-average``: sub-frames averaged in sRGB; ``compression``: JPEG at quality 60-90.
BLUR_FAMILIES: dict[str, dict] = {
    "drift": {"max_shake": 0.0, "max_rot": 0.0, "max_zoom": 0.0, "stop_go_prob": 0.0},
    "rotation": {"max_speed": 4.0, "max_rot": 5.0, "max_zoom": 0.0, "stop_go_prob": 0.0},
    "zoom": {"max_speed": 4.0, "max_rot": 0.0, "max_zoom": 0.06, "stop_go_prob": 0.0},
    "stop-and-go": {"stop_go_prob": 1.0},
    "shake": {"max_speed": 4.0, "max_shake": 6.0, "stop_go_prob": 0.0},
    "short-exposure": {"exposure": (0.5, 0.75)},
    "noise": {"noise": 0.004, "noise_gain": 6e-4},
    "srgb-average": {"linear_light": False},
    "compression": {"jpeg_quality": (60, 90)},
}
#: Families kept out of training to measure how a model copes with another blur model.
HELDOUT_FAMILIES = ("srgb-average", "compression")
#: The other families, meant for training.
TRAIN_FAMILIES = tuple(f for f in BLUR_FAMILIES if f not in HELDOUT_FAMILIES)


def family_config(name: str, base: BlurSynthConfig | None = None) -> BlurSynthConfig:
    """``base`` (default :class:`BlurSynthConfig`) with the settings of family ``name``
    (:data:`BLUR_FAMILIES`) and no family list; :class:`UserError` for an unknown name."""
    if name not in BLUR_FAMILIES:
        raise UserError(f"unknown blur family {name!r}; choose from {', '.join(BLUR_FAMILIES)}")
    return replace(base or BlurSynthConfig(), families=(), **BLUR_FAMILIES[name])


def blur_strength(cfg: BlurSynthConfig, strength: float) -> BlurSynthConfig:
    """``cfg`` with its blur scaled by ``strength`` (a training curriculum): the upper ends of
    the drift speed and exposure ranges are multiplied by it (the lower end of the exposure
    range is lowered where needed to keep the range valid). ``strength = 1``: ``cfg`` itself."""
    if strength == 1:
        return cfg
    lo, hi = cfg.exposure
    return replace(cfg, max_speed=cfg.max_speed * strength, exposure=(min(lo, hi * strength), hi * strength))


def jpeg_roundtrip(frames: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-encode and decode (PIL, 8 bits, default 4:2:0 chroma) each ``(3, h, w)`` frame of
    ``frames`` ``(N, 3, h, w)`` in ``[0, 1]`` at ``quality``."""
    from PIL import Image

    out = []
    for f in frames:
        arr = (f.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
        with Image.open(buf) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1))
    return torch.stack(out).float() / 255.0


class _Trajectory:
    def __init__(self, rng: np.random.Generator, cfg: BlurSynthConfig):
        ang = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0, cfg.max_speed)
        self.v = np.array([math.cos(ang), math.sin(ang)]) * speed
        self.a = rng.uniform(-1, 1, 2) * cfg.max_accel
        self.amp = rng.uniform(-1, 1, (2, 2)) * cfg.max_shake  # (sinusoid k, axis)
        self.freq = rng.uniform(*cfg.shake_freq, 2)
        self.phase = rng.uniform(0, 2 * math.pi, (2, 2))
        self.theta0 = rng.uniform(-math.pi, math.pi) if rng.random() < 0.5 else 0.0
        self.omega = math.radians(rng.uniform(-1, 1) * cfg.max_rot)
        self.s0 = rng.uniform(*cfg.scale)
        self.z = rng.uniform(-1, 1) * cfg.max_zoom
        # Stop-and-go drift (drawn only when enabled, so stop_go_prob=0 reproduces the
        # constant-drift clips of earlier versions exactly).
        self.rho, self.gfreq, self.gphase = 0.0, 0.1, 0.0
        if cfg.stop_go_prob > 0:
            go = rng.random() < cfg.stop_go_prob
            rho = rng.uniform(*cfg.stop_go_depth)
            self.gfreq = rng.uniform(*cfg.stop_go_freq)
            self.gphase = rng.uniform(0, 2 * math.pi)
            self.rho = rho if go else 0.0

    def drift(self, tau: np.ndarray) -> np.ndarray:
        """``D(tau)``: integral of the relative drift speed ``1 - rho cos(2 pi f tau + phi)``."""
        tau = np.asarray(tau, dtype=np.float64)
        if self.rho == 0:
            return tau
        w = 2 * math.pi * self.gfreq
        return tau - self.rho * (np.sin(w * tau + self.gphase) - math.sin(self.gphase)) / w

    def at(self, tau: np.ndarray):
        """Centre offset (N, 2), angle (N,), scale (N,) at times ``tau`` (N,)."""
        tau = np.asarray(tau, dtype=np.float64)
        c = self.v[None] * self.drift(tau)[:, None] + 0.5 * self.a[None] * tau[:, None] ** 2
        for k in range(2):
            c = c + self.amp[k][None] * np.sin(2 * math.pi * self.freq[k] * tau[:, None] + self.phase[k][None])
        # The shake and drift are in output pixels; convert to photo pixels with s0.
        return c * self.s0, self.theta0 + self.omega * tau, self.s0 * np.exp(self.z * tau)


def _grids(c, theta, s, h: int, w: int, origin) -> np.ndarray:
    """Photo coordinates (N, h, w, 2) of the output pixels for each instant."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xs - (w - 1) / 2.0, ys - (h - 1) / 2.0
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    ss = s[:, None, None]
    gx = origin[0] + c[:, 0, None, None] + ss * (cos * px - sin * py)
    gy = origin[1] + c[:, 1, None, None] + ss * (sin * px + cos * py)
    return np.stack((gx, gy), -1)


def _sample(photo: torch.Tensor, coords: np.ndarray) -> torch.Tensor:
    """Bilinear samples of ``photo`` (3, H, W) at photo coordinates (N, h, w, 2) -> (N, 3, h, w)."""
    _, hp, wp = photo.shape
    n, h, w, _ = coords.shape
    scale = np.array([2.0 / (wp - 1), 2.0 / (hp - 1)])
    g = torch.from_numpy((coords * scale - 1.0).astype(np.float32)).view(1, n * h, w, 2)
    out = F.grid_sample(photo[None], g, mode="bilinear", padding_mode="reflection", align_corners=True)
    return out.view(3, n, h, w).transpose(0, 1)


def _mean_gradient(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean())


def render_clip(
    photo: torch.Tensor,
    num_frames: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    cfg: BlurSynthConfig = BlurSynthConfig(),
    min_gradient: float = 0.0,
    strength: float = 1.0,
) -> dict[str, torch.Tensor] | None:
    """Render one blurry/sharp clip from a photo (see the module docstring).

    Args:
        photo: ``(3, H, W)`` float in ``[0, 1]`` (gamma-encoded sRGB).
        num_frames: frames ``T``.
        size: output ``(h, w)``.
        rng: numpy generator (all randomness comes from it).
        cfg: motion ranges; with ``cfg.families`` one family is drawn from ``rng`` first.
        min_gradient: return ``None`` (before rendering the blur) when the sharp clip's mean
            absolute gradient is below this (flat content).
        strength: blur strength (:func:`blur_strength`, applied after the family).

    Returns:
        ``{"blurry": (3, T, h, w), "sharp": (3, T, h, w), "flow": (2, T, h, w)}`` with
        values in ``[0, 1]``; ``flow[:, t]`` is the exact backward flow from sharp frame ``t``
        to sharp frame ``t - 1`` in pixels (``flow[:, 0] = 0``).
    """
    h, w = size
    if cfg.families:
        cfg = family_config(cfg.families[int(rng.integers(len(cfg.families)))], cfg)
    cfg = blur_strength(cfg, strength)
    traj = _Trajectory(rng, cfg)
    expo = rng.uniform(*cfg.exposure)
    # Sub-frames: about one per pixel of motion within the exposure.
    t_all = np.arange(num_frames, dtype=np.float64)
    c, th, s = traj.at(t_all)
    speed = np.abs(np.diff(c, axis=0)).max() / max(traj.s0, 1e-6) if num_frames > 1 else cfg.max_speed
    speed = max(speed, float(np.abs(traj.v).max()) * (1 + traj.rho))  # peak stop-and-go speed
    spin = abs(traj.omega) * max(h, w) / 2 + abs(traj.z) * max(h, w) / 2
    n_sub = int(min(cfg.max_sub, max(3, math.ceil((speed + spin + 2 * cfg.max_shake) * expo) + 1)))
    offs = (np.arange(n_sub) / (n_sub - 1) - 0.5) * expo
    taus = (t_all[:, None] + offs[None]).reshape(-1)
    cs, ths, ss = traj.at(taus)
    # Place the trajectory inside the photo (reflection padding covers any overshoot).
    _, hp, wp = photo.shape
    rel = _grids(cs, ths, ss, h, w, (0.0, 0.0))
    lo, hi = rel.reshape(-1, 2).min(0), rel.reshape(-1, 2).max(0)
    origin = []
    for axis, extent in ((0, wp), (1, hp)):
        a, b = -lo[axis], extent - 1 - hi[axis]
        origin.append(rng.uniform(a, b) if b > a else (a + b) / 2)
    sharp_coords = _grids(c, th, s, h, w, origin)
    sharp = _sample(photo, sharp_coords).clamp(0, 1)
    if min_gradient > 0 and _mean_gradient(sharp) < min_gradient:
        return None
    sub = _sample(photo, rel + np.asarray(origin)[None, None, None])  # (T*n_sub, 3, h, w)
    sub = sub.clamp(0, 1).view(num_frames, n_sub, 3, h, w)
    blurry = sub.pow(GAMMA).mean(1).pow(1 / GAMMA) if cfg.linear_light else sub.mean(1)
    if cfg.noise > 0 or cfg.noise_gain > 0:
        std = cfg.noise if cfg.noise_gain == 0 else (cfg.noise_gain * blurry + cfg.noise**2).sqrt()
        noise = torch.from_numpy(rng.standard_normal(blurry.shape)).float() * std
        blurry = (blurry + noise).clamp(0, 1)
    if cfg.jpeg_quality is not None:
        blurry = jpeg_roundtrip(blurry, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    # Exact backward flow t -> t-1: p' = o + R(-theta_{t-1}) (P - c_{t-1}) / s_{t-1} with P = A_t(p).
    flow = np.zeros((num_frames, h, w, 2))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for t in range(1, num_frames):
        P = sharp_coords[t] - np.asarray(origin) - c[t - 1]
        cos, sin = math.cos(th[t - 1]), math.sin(th[t - 1])
        qx = (cos * P[..., 0] + sin * P[..., 1]) / s[t - 1] + (w - 1) / 2.0
        qy = (-sin * P[..., 0] + cos * P[..., 1]) / s[t - 1] + (h - 1) / 2.0
        flow[t, ..., 0], flow[t, ..., 1] = qx - xs, qy - ys
    return {
        "blurry": blurry.permute(1, 0, 2, 3).contiguous(),
        "sharp": sharp.permute(1, 0, 2, 3).contiguous(),
        "flow": torch.from_numpy(flow).float().permute(3, 0, 1, 2).contiguous(),
    }


def _load_rgb(path: Path, max_side: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        while max(im.size) > max_side:
            im = im.resize((max(1, im.size[0] // 2), max(1, im.size[1] // 2)), Image.Resampling.LANCZOS)
        arr = np.asarray(im, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


def holdout_images(roots: Sequence[str | os.PathLike], holdout: Sequence[str] = DEFAULT_HOLDOUT) -> list[Path]:
    """Image files under ``roots`` whose name matches a ``holdout`` pattern (the evaluation set)."""
    import fnmatch

    out = []
    for root in roots:
        for p in list_media(root, exclude=DEFAULT_EXCLUDE):
            if p.suffix.lower() in IMAGE_EXTENSIONS and any(fnmatch.fnmatchcase(p.name, pat) for pat in holdout):
                out.append(p)
    return out


class SyntheticBlurClips:
    """Seeded random blurry/sharp clips rendered from a set of photos.

    Args:
        files: image files (see :meth:`from_folders`).
        size: output crop ``(h, w)`` (or one int for a square).
        num_frames: frames per clip.
        seed: base seed; clip ``k`` depends only on ``(seed, k)``.
        config: motion ranges (:class:`BlurSynthConfig`).
        max_side: photos are halved (Lanczos) until their longer side is at most this.
        min_gradient: clips whose sharp frames have a mean absolute gradient (x plus y) below
            this are redrawn (flat crops teach nothing about blur).
        max_tries: redraws before a flat clip is accepted.

    Example:
        >>> ds = SyntheticBlurClips.from_folders(["photos/"], size=64, num_frames=5)  # doctest: +SKIP
        >>> b = ds.batch(0, 4)   # {"blurry": (4, 3, 5, 64, 64), "sharp": ..., "flow": (4, 2, 5, 64, 64)}
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        size: int | tuple[int, int] = 64,
        num_frames: int = 5,
        *,
        seed: int = 0,
        config: BlurSynthConfig = BlurSynthConfig(),
        max_side: int = 768,
        min_gradient: float = 0.03,
        max_tries: int = 8,
    ):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise UserError("no photos to render synthetic blur from")
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.num_frames = int(num_frames)
        self.seed = int(seed)
        self.config = config
        self.min_gradient = float(min_gradient)
        self.max_tries = int(max_tries)
        self.photos = []
        for f in self.files:
            try:
                self.photos.append(_load_rgb(f, max_side))
            except Exception as exc:
                raise UserError(f"cannot read image {f}: {exc}".splitlines()[0]) from None
        area = np.array([p.shape[1] * p.shape[2] for p in self.photos], dtype=np.float64)
        self.probs = np.sqrt(area) / np.sqrt(area).sum()

    @classmethod
    def from_folders(cls, roots: Sequence[str | os.PathLike], *, split: str = "train", holdout: Sequence[str] = DEFAULT_HOLDOUT, **kwargs) -> "SyntheticBlurClips":
        """Photos from ``roots``: ``split="train"`` leaves out ``holdout``, ``"holdout"`` keeps only it."""
        if split == "holdout":
            files = holdout_images(roots, holdout)
        elif split == "train":
            files = [p for r in roots for p in list_media(r, holdout=holdout, exclude=DEFAULT_EXCLUDE) if p.suffix.lower() in IMAGE_EXTENSIONS]
        else:
            raise ValueError(f"split must be 'train' or 'holdout', got {split!r}")
        if not files:
            raise UserError(f"no {split} photos found in {', '.join(str(r) for r in roots)}")
        return cls(files, **kwargs)

    def describe(self) -> dict:
        """JSON-able description (files, size, frames, seed, motion config)."""
        return {"files": [f.name for f in self.files], "size": list(self.size), "num_frames": self.num_frames, "seed": self.seed, "config": asdict(self.config)}

    def clip(self, index: int, strength: float = 1.0) -> dict[str, torch.Tensor]:
        """Clip number ``index``: ``{"blurry", "sharp"}`` ``(3, T, h, w)``, ``"flow"`` ``(2, T, h, w)``;
        ``strength``: blur strength (:func:`blur_strength`)."""
        rng = np.random.default_rng([self.seed, int(index)])
        out = None
        for attempt in range(self.max_tries):
            j = int(rng.choice(len(self.photos), p=self.probs))
            photo = self.photos[j]
            if rng.random() < 0.5:
                photo = photo.flip(-1)
            # Flat crops (sky, walls) are redrawn; the last attempt is always accepted.
            last = attempt == self.max_tries - 1
            out = render_clip(photo, self.num_frames, self.size, rng, self.config, 0.0 if last else self.min_gradient, strength)
            if out is not None:
                break
        return out

    def batch(self, index: int, batch_size: int, strength: float = 1.0) -> dict[str, torch.Tensor]:
        """Clips ``index * batch_size ...`` stacked: ``(B, 3, T, h, w)`` and ``(B, 2, T, h, w)``."""
        clips = [self.clip(index * batch_size + k, strength) for k in range(batch_size)]
        return {key: torch.stack([c[key] for c in clips]) for key in clips[0]}
