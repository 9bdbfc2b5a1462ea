"""Operator spec strings: ``vidrestore.ops.parse("tblur:uniform:7:circular,sr:4", seed=0)``.

Tokens are separated by commas and applied left to right (``A = A_n ∘ ... ∘ A_1``; SVI's
convention is temporal first, then spatial).
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Callable

from ..errors import UserError
from .base import Composition, Identity, LinearOperator
from .blur import SpatialBlur, gaussian_kernel, load_kernel, motion_kernel
from .mask import Inpaint
from .resize import Downsample
from .temporal import FrameDrop, TemporalBlur, gaussian_taps, uniform_taps

GRAMMAR = """\
Operator spec: tokens separated by ',' applied left to right (first token acts first).
  tblur:uniform:K[:BOUNDARY]     temporal uniform PSF over K frames (frame averaging)
  tblur:gauss:SIGMA[:BOUNDARY]   temporal Gaussian PSF, width 2*ceil(3*SIGMA)+1 frames
                                 BOUNDARY: circular (default, SVI) | reflect | replicate;
                                 the frame count is preserved; needs T >= width
  blur:gauss:SIGMA[:SIZE]        spatial Gaussian blur (SIZE odd, default 2*ceil(3*SIGMA)+1)
  blur:motion:LENGTH:ANGLE_DEG   spatial linear motion blur
  blur:kernel:PATH.npy           spatial blur with a user kernel (2-D, odd sizes, normalised)
                                 spatial blurs use the reflect (half-sample symmetric) boundary
  sr:F[:box|bicubic]             downsample by integer F (default box = FxF average pooling)
  inpaint:R[:shared|perframe]    random pixel mask, fraction R missing, seeded (default shared)
  fdrop:K                        keep every K-th frame (frames 0, K, 2K, ...)
  id                             identity
Names are case-insensitive; kernels are at most 1025 pixels a side (and 4x the frame),
temporal widths at most the clip length.
Noise is not an operator: y = A(x) + sigma_y * n (sigma_y in [0,1] units, --sigma-y).
Examples: "tblur:uniform:7:circular,sr:4"  "tblur:uniform:7,blur:gauss:2.0"  "inpaint:0.5"
"""

FORMS = {
    "tblur": "tblur:uniform:K[:BOUNDARY] or tblur:gauss:SIGMA[:BOUNDARY]",
    "blur": "blur:gauss:SIGMA[:SIZE], blur:motion:LENGTH:ANGLE_DEG or blur:kernel:PATH.npy",
    "sr": "sr:F[:box|bicubic]",
    "inpaint": "inpaint:R[:shared|perframe]",
    "fdrop": "fdrop:K",
    "id": "id",
}


#: Largest side (pixels) of a spatial blur kernel built from a spec. With the frame-size check
#: of :class:`~vidrestore.ops.blur.SpatialBlur` (side at most a few frame sides) it bounds the
#: kernel's memory (8 MiB as float64) before anything is allocated.
MAX_KERNEL_SIDE = 1025
#: Largest temporal support (taps) of ``tblur``; the clip must be at least that long anyway.
MAX_TAPS = 4097
#: Largest SR factor and frame-drop factor.
MAX_FACTOR = 4096
#: Operator seeds are unsigned 32-bit integers (inpainting masks derive per-frame seeds from it).
MAX_SEED = 2**32 - 1


def _form(token: str) -> str:
    return FORMS.get(token.split(":")[0].strip().lower(), "see 'vidrestore ops'")


def _num(token: str, value: str, kind: type, what: str):
    """``value`` as a finite int or float; UserError naming the field otherwise."""
    try:
        v = kind(value)
    except (ValueError, OverflowError):
        raise UserError(f"bad operator token {token!r}: {what} must be {'an integer' if kind is int else 'a number'}, got {value!r}; expected {_form(token)}") from None
    if kind is float and not math.isfinite(v):
        raise _bad(token, f"{what} must be a finite number, got {value!r}")
    return v


def _bad(token: str, why: str) -> UserError:
    return UserError(f"bad operator token {token!r}: {why}; expected {_form(token)}")


def _check_side(token: str, size: float, what: str) -> None:
    """Refuse a kernel side (or temporal width) above its limit before allocating it; the
    message gives the memory it would take (float64) and the limit."""
    temporal = what == "temporal width"
    limit = MAX_TAPS if temporal else MAX_KERNEL_SIDE
    if size > limit:
        need = (size if temporal else size * size) * 8
        cap = (limit if temporal else limit * limit) * 8
        raise _bad(token, f"{what} {size:.0f} would need {need / 2**20:.3g} MiB; the limit is {limit} ({cap / 2**20:.3g} MiB)")


def _suggest(word: str, choices) -> str:
    m = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.4)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _check_width(token: str, width: float, num_frames: int | None) -> None:
    _check_side(token, width, "temporal width")
    if num_frames is not None and width > num_frames:
        raise _bad(token, f"temporal width {width:.0f} needs at least {width:.0f} frames, the clip has {num_frames}")


def _tblur(token: str, args: list[str], num_frames: int | None = None, **_):
    if len(args) not in (2, 3):
        raise _bad(token, "wrong number of fields")
    boundary = args[2] if len(args) == 3 else "circular"
    if boundary not in ("circular", "reflect", "replicate"):
        raise _bad(token, f"unknown boundary {boundary!r}{_suggest(boundary, ('circular', 'reflect', 'replicate'))}")
    if args[0] == "uniform":
        k = _num(token, args[1], int, "K")
        if k < 1:
            raise _bad(token, "K must be >= 1")
        _check_width(token, k, num_frames)
        return TemporalBlur(uniform_taps(k), boundary, spec=f"tblur:uniform:{k}:{boundary}")
    if args[0] in ("gauss", "gaussian"):
        s = _num(token, args[1], float, "SIGMA")
        if s <= 0:
            raise _bad(token, "SIGMA must be > 0")
        _check_width(token, 2 * math.ceil(3 * s) + 1, num_frames)
        return TemporalBlur(gaussian_taps(s), boundary, spec=f"tblur:gauss:{s:g}:{boundary}")
    raise _bad(token, f"unknown temporal PSF {args[0]!r}{_suggest(args[0], ('uniform', 'gauss'))}")


def _blur(token: str, args: list[str], **_):
    if not args:
        raise _bad(token, "missing blur type")
    kind = args[0]
    if kind in ("gauss", "gaussian"):
        if len(args) not in (2, 3):
            raise _bad(token, "wrong number of fields")
        s = _num(token, args[1], float, "SIGMA")
        if s <= 0:
            raise _bad(token, "SIGMA must be > 0")
        size = _num(token, args[2], int, "SIZE") if len(args) == 3 else None
        if size is not None and (size < 1 or size % 2 == 0):
            raise _bad(token, "SIZE must be a positive odd integer")
        _check_side(token, size if size is not None else 2 * math.ceil(3 * s) + 1, "kernel side")
        k = gaussian_kernel(s, size)
        return SpatialBlur(k, spec=f"blur:gauss:{s:g}" + (f":{size}" if size else ""))
    if kind == "motion":
        if len(args) != 3:
            raise _bad(token, "wrong number of fields")
        length = _num(token, args[1], float, "LENGTH")
        angle = _num(token, args[2], float, "ANGLE_DEG")
        if length <= 0:
            raise _bad(token, "LENGTH must be > 0")
        _check_side(token, 2 * math.ceil(length / 2) + 3, "kernel side")
        return SpatialBlur(motion_kernel(length, angle), spec=f"blur:motion:{length:g}:{angle:g}")
    if kind == "kernel":
        if len(args) < 2:
            raise _bad(token, "missing kernel path")
        path = ":".join(args[1:])  # paths may contain ':'
        return SpatialBlur(load_kernel(path, MAX_KERNEL_SIDE), spec=f"blur:kernel:{path}")
    raise _bad(token, f"unknown blur type {kind!r}{_suggest(kind, ('gauss', 'motion', 'kernel'))}")


def _sr(token: str, args: list[str], **_):
    if len(args) not in (1, 2):
        raise _bad(token, "wrong number of fields")
    f = _num(token, args[0], int, "F")
    if not 1 <= f <= MAX_FACTOR:
        raise _bad(token, f"F must be in 1..{MAX_FACTOR}")
    kind = args[1] if len(args) == 2 else "box"
    if kind not in ("box", "bicubic"):
        raise _bad(token, f"unknown downsampling {kind!r}{_suggest(kind, ('box', 'bicubic'))}")
    return Downsample(f, kind)


def _inpaint(token: str, args: list[str], seed: int = 0, **_):
    if len(args) not in (1, 2):
        raise _bad(token, "wrong number of fields")
    r = _num(token, args[0], float, "R")
    if not 0 <= r < 1:
        raise _bad(token, "R must be in [0, 1)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"operator seed must be an integer in 0..{MAX_SEED} (inpainting masks), got {seed!r}")
    mode = args[1] if len(args) == 2 else "shared"
    if mode not in ("shared", "perframe"):
        raise _bad(token, f"unknown mask mode {mode!r}{_suggest(mode, ('shared', 'perframe'))}")
    return Inpaint(r, mode, seed=seed)


def _fdrop(token: str, args: list[str], num_frames: int | None = None, **_):
    if len(args) != 1:
        raise _bad(token, "wrong number of fields")
    k = _num(token, args[0], int, "K")
    if not 1 <= k <= MAX_FACTOR:
        raise _bad(token, f"K must be in 1..{MAX_FACTOR}")
    return FrameDrop(k, num_frames=num_frames)


def _id(token: str, args: list[str], **_):
    if args:
        raise _bad(token, "id takes no fields")
    return Identity()


BUILDERS: dict[str, Callable[..., LinearOperator]] = {
    "tblur": _tblur,
    "blur": _blur,
    "sr": _sr,
    "inpaint": _inpaint,
    "fdrop": _fdrop,
    "id": _id,
}


def parse(spec: str, seed: int = 0, *, num_frames: int | None = None) -> LinearOperator:
    """Build an operator chain from a spec string (grammar in :data:`GRAMMAR`).

    Args:
        spec: e.g. ``"tblur:uniform:7:circular,sr:4"``.
        seed: seed of random operator parameters (inpainting masks).
        num_frames: frame count of the clean video (needed only by ``fdrop`` when the
            frame count is not ``(T'-1)*K + 1``); frames are counted before any ``fdrop``.

    Returns:
        A :class:`LinearOperator` (a :class:`Composition` when there are several tokens).

    Names and keywords are case-insensitive (``SR:2`` = ``sr:2``; kernel paths keep their
    case). Numbers must be finite; kernel sides, temporal widths and factors are bounded
    (:data:`MAX_KERNEL_SIDE`, :data:`MAX_TAPS`, :data:`MAX_FACTOR`, and the clip length when
    ``num_frames`` is given) before anything is allocated, so no spec string makes ``parse``
    allocate more than a few MiB.

    Raises:
        UserError: for an unknown, malformed, non-finite or oversized token, naming it and the
            closest valid form. No other exception escapes for any ``spec`` string.

    Example:
        >>> op = parse("tblur:uniform:7:circular,sr:4")
        >>> op.output_shape((1, 3, 16, 64, 64))
        (1, 3, 16, 16, 16)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("empty operator spec; see 'vidrestore ops' for the grammar")
    ops: list[LinearOperator] = []
    frames = num_frames
    for raw in spec.split(","):
        token = raw.strip()
        if not token:
            raise UserError(f"empty token in operator spec {spec!r}")
        name, *args = token.split(":")
        name = name.strip().lower()
        keep = 1 if name == "blur" and args and args[0].strip().lower() == "kernel" else len(args)
        args = [a.strip().lower() for a in args[:keep]] + args[keep:]  # kernel paths keep their case
        if name not in BUILDERS:
            raise UserError(f"unknown operator {name!r} in token {token!r}{_suggest(name, BUILDERS)}; valid: {', '.join(BUILDERS)}")
        op = BUILDERS[name](token, args, seed=seed, num_frames=frames)
        if isinstance(op, FrameDrop) and frames is not None:
            frames = -(-frames // op.factor)
        ops.append(op)
    return ops[0] if len(ops) == 1 else Composition(ops)
