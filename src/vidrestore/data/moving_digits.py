"""Moving digits: a seeded, offline video dataset for training and testing LGC-VD on a CPU.

Every video is built from the 8x8 handwritten-digit glyphs that ship with scikit-learn
(``sklearn.datasets.load_digits``: 1,797 images from the UCI "Optical Recognition of
Handwritten Digits" set, values 0..16; the data files are inside the scikit-learn wheel, nothing
is downloaded). Recipe of one video (all randomness from ``numpy.random.default_rng([seed,
split, index])``):

1. Pick ``num_digits`` glyphs from the split's glyph pool (train: glyphs 0..1399, test: glyphs
   1400..1796, so test videos show handwriting never seen in training). Each glyph is scaled to
   [0, 1] and resized to ``digit_size`` x ``digit_size`` pixels (bilinear).
2. Start each digit at a uniform random position inside the ``size`` x ``size`` frame with a
   velocity of uniform direction and speed ``speed`` (px/frame, uniform in the given range).
   Positions are real-valued; digits bounce off the borders (reflection) and are drawn at the
   rounded position. With ``integer_motion=True`` the start position is a whole pixel and each
   velocity component a whole number of pixels per frame in ``{-2 .. 2}`` (not both zero), so
   every position stays exact and two frames determine a digit's future (up to occlusion);
   with real velocities, constant-velocity extrapolation from two rounded positions is off by
   1.5 px four frames ahead on average.
   With ``subpixel=True`` the digit is drawn at its **real-valued** position by bilinear
   (area-weighted) rendering: the glyph is split over the four whole-pixel placements around
   the position with weights ``(1 - fy)(1 - fx)``, ``fy (1 - fx)``, ``(1 - fy) fx``, ``fy fx``, so
   motion is smooth at sub-pixel precision and more frames pin a velocity down better than two.
   With ``bounce=False`` digits do not reflect: they move at constant velocity and wrap around
   the frame edges (a torus), so a digit's whole path is one straight line.
3. Composite back to front: digit k is drawn *over* digits < k with its intensity as alpha
   (``frame = frame * (1 - g) + g``), so crossing digits occlude each other.

Frames are grayscale; :class:`MovingDigits` returns ``(C, T, H, W)`` float32 in ``[0, 1]`` with
the gray value replicated to ``C`` channels (3 by default, the library convention).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..errors import UserError

__all__ = ["SPLITS", "load_glyphs", "render_video", "moving_digits", "MovingDigits"]

#: Glyph index ranges and RNG stream ids of each split.
SPLITS = {"train": (0, 1400, 0), "test": (1400, 1797, 1)}


@lru_cache(maxsize=4)
def load_glyphs(digit_size: int = 12) -> np.ndarray:
    """All 1,797 scikit-learn digit glyphs resized to ``digit_size``: float32 ``(1797, s, s)`` in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise UserError("the moving-digits dataset needs scikit-learn: pip install 'vidrestore[data]'") from None
    images = load_digits().images.astype(np.float32) / 16.0
    t = torch.from_numpy(images)[:, None]
    t = torch.nn.functional.interpolate(t, size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    return t[:, 0].clamp(0, 1).numpy()


def render_video(
    rng: np.random.Generator,
    glyphs: np.ndarray,
    *,
    frames: int = 16,
    size: int = 32,
    num_digits: int = 2,
    speed: tuple[float, float] = (1.0, 2.5),
    integer_motion: bool = False,
    subpixel: bool = False,
    bounce: bool = True,
) -> np.ndarray:
    """Render one video ``(T, H, W)`` float32 in [0, 1] from a glyph pool ``(n, s, s)`` (recipe in the module doc)."""
    s = glyphs.shape[-1]
    if size < s + 1:
        raise UserError(f"frame size {size} must exceed the digit size {s}")
    span = size - s
    video = np.zeros((frames, size, size), dtype=np.float32)
    for _ in range(num_digits):
        g = glyphs[rng.integers(len(glyphs))]
        if integer_motion:
            pos = rng.integers(0, span + 1, size=2).astype(np.float64)
            v = np.zeros(2)
            while not v.any():
                v = rng.integers(-2, 3, size=2).astype(np.float64)
        else:
            pos = rng.uniform(0, span, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            v = rng.uniform(*speed) * np.array([np.cos(angle), np.sin(angle)])
        if not bounce:
            pos = pos * (size / span) if not integer_motion else pos  # start anywhere on the torus
        for t in range(frames):
            if subpixel or not bounce:
                _draw(video[t], g, pos, subpixel=subpixel, wrap=not bounce)
            else:  # the original path, kept bit-exact
                y, x = (int(round(p)) for p in pos)
                patch = video[t, y : y + s, x : x + s]
                patch *= 1.0 - g
                patch += g
            pos = pos + v
            if not bounce:
                pos = np.mod(pos, size)
                continue
            for k in range(2):  # reflect at the borders
                if pos[k] < 0:
                    pos[k], v[k] = -pos[k], -v[k]
                elif pos[k] > span:
                    pos[k], v[k] = 2 * span - pos[k], -v[k]
    return video


def _draw(frame: np.ndarray, g: np.ndarray, pos: np.ndarray, *, subpixel: bool, wrap: bool) -> None:
    """Composite glyph ``g`` over ``frame`` (in place) at ``pos = (y, x)``.

    ``subpixel``: bilinear (area-weighted) placement at the real-valued position, an
    ``(s+1, s+1)`` patch; otherwise the rounded position. ``wrap``: indices modulo the frame
    size; otherwise rows/columns past the frame are dropped (they carry zero weight when
    ``0 <= pos <= size - s``).
    """
    s, size = g.shape[-1], frame.shape[-1]
    if subpixel:
        y0, x0 = (int(np.floor(p)) for p in pos)
        fy, fx = float(pos[0] - y0), float(pos[1] - x0)
        a = np.zeros((s + 1, s + 1), dtype=np.float32)
        a[:s, :s] += (1 - fy) * (1 - fx) * g
        a[1:, :s] += fy * (1 - fx) * g
        a[:s, 1:] += (1 - fy) * fx * g
        a[1:, 1:] += fy * fx * g
    else:
        y0, x0 = (int(round(p)) for p in pos)
        a = g
    rows, cols = y0 + np.arange(a.shape[0]), x0 + np.arange(a.shape[1])
    if wrap:
        rows, cols = rows % size, cols % size
    else:
        keep_r, keep_c = (rows >= 0) & (rows < size), (cols >= 0) & (cols < size)
        rows, cols, a = rows[keep_r], cols[keep_c], a[np.ix_(keep_r, keep_c)]
    idx = np.ix_(rows, cols)
    frame[idx] = frame[idx] * (1.0 - a) + a


def moving_digits(
    num: int,
    *,
    frames: int = 16,
    size: int = 32,
    split: str = "test",
    seed: int = 0,
    start: int = 0,
    channels: int = 3,
    num_digits: int = 2,
    digit_size: int = 12,
    speed: tuple[float, float] = (1.0, 2.5),
    integer_motion: bool = False,
    subpixel: bool = False,
    bounce: bool = True,
) -> torch.Tensor:
    """Videos ``start .. start+num-1`` of a split as one tensor ``(num, C, T, H, W)`` in [0, 1].

    Video ``i`` depends only on ``(seed, split, i)`` and the shape arguments.
    """
    ds = MovingDigits(start + num, frames=frames, size=size, split=split, seed=seed, channels=channels,
                      num_digits=num_digits, digit_size=digit_size, speed=speed, integer_motion=integer_motion,
                      subpixel=subpixel, bounce=bounce)
    return torch.stack([ds[i] for i in range(start, start + num)])


class MovingDigits(torch.utils.data.Dataset):
    """Map-style dataset of ``length`` moving-digit videos ``(C, T, H, W)`` in [0, 1].

    Args:
        length: Number of videos (video ``i`` is a pure function of ``(seed, split, i)``).
        frames, size: Video length ``T`` and square frame size.
        split: ``"train"`` or ``"test"`` (disjoint glyphs and RNG streams).
        seed: Dataset seed.
        channels: Output channels (gray value replicated).
        num_digits, digit_size, speed, integer_motion, subpixel, bounce: See the module docstring.
    """

    def __init__(self, length: int, *, frames: int = 16, size: int = 32, split: str = "train", seed: int = 0,
                 channels: int = 3, num_digits: int = 2, digit_size: int = 12, speed: tuple[float, float] = (1.0, 2.5),
                 integer_motion: bool = False, subpixel: bool = False, bounce: bool = True):
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        self.length, self.frames, self.size, self.split, self.seed = int(length), frames, size, split, int(seed)
        self.channels, self.num_digits, self.digit_size, self.speed = channels, num_digits, digit_size, tuple(speed)
        self.integer_motion, self.subpixel, self.bounce = bool(integer_motion), bool(subpixel), bool(bounce)
        lo, hi, self._stream = SPLITS[split]
        self._glyphs = load_glyphs(digit_size)[lo:hi]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self._stream, int(index)])
        v = render_video(rng, self._glyphs, frames=self.frames, size=self.size, num_digits=self.num_digits, speed=self.speed,
                         integer_motion=self.integer_motion, subpixel=self.subpixel, bounce=self.bounce)
        return torch.from_numpy(v)[None].expand(self.channels, -1, -1, -1).contiguous()
