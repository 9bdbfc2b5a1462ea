"""Long videos in temporal windows, and frame sizes that do not fit a prior's size multiple.

A diffusion solver keeps a few copies of the whole clip in memory (``x_t``, ``eps``, ``x0``, the
CG vectors) plus the network's activations for every frame, so peak memory grows with the clip
length. :func:`solve_in_windows` runs any solver on overlapping temporal windows of a fixed
number of frames and blends the results, so peak memory depends on the window, not on the video
(only the measurement and the output itself grow with the length). This is the temporal
counterpart of Real-ESRGAN's spatial tiles and BasicSR's ``--interval`` chunks; the SVI paper
(Kwon & Ye, ICLR 2025) itself only processes 16-frame clips.

**How a window sees the operator.** The whole-video operator ``A`` couples neighbouring frames
(a temporal blur of width ``K`` mixes ``K`` frames; a circular one also mixes the first and the
last frames; frame dropping keeps every ``K``-th frame). A window never approximates ``A``:
it builds the *exact restriction* of ``A`` to its frames,

    A_w = S ∘ A'  with  y_w = y[out_ids],

where ``A'`` is the same chain applied to the window's frames and ``S`` keeps only the output
frames that the window computes exactly (:func:`window_operator`). The rule is checked tap by
tap: an output frame of a temporal blur is kept iff every frame its taps read (after the
whole-video boundary rule: circular wrap, reflection or replication at the true video ends) is
the frame the window op reads. So

* at an *interior* window edge, the ``K//2`` measurement frames whose support leaves the window
  are dropped (a "valid" convolution); the window's outermost frames are then only partly
  observed, and the solver fills them from its prior / warm start. These *margin* frames are
  solved but discarded: only the window's *core* (``margin`` frames away from interior edges)
  enters the output. The partly observed margin still perturbs the core near it: for kernels
  whose transfer function has no zero on the unit circle (Gaussian PSFs) the perturbation decays
  geometrically into the core (``context`` adds discarded frames to push it further out); for
  uniform PSFs (frame averaging) the valid problem has a null space of ``K``-periodic zero-mean
  sequences spanning the whole window, which the whole-video problem pins down only through its
  boundary rule, so windowed and whole-video least-squares answers differ by such components
  everywhere (the diffusion prior, not the data, decides them in a window);
* at a true video end, a ``reflect``/``replicate`` blur keeps its boundary rule (exact);
* a ``circular`` blur couples frame 0 with frame ``T-1``. Windows then live on the ring of
  frames: the first window's left margin is the *last* frames of the video (indices wrap
  modulo ``T``), so the wrapped measurement frames stay exact too. (Chains that mix a circular
  blur with frame dropping use plain windows; the wrapped measurement frames at the two video
  ends are then dropped, so the first and last frames are less constrained than in the
  whole-video problem.)
* perframe inpainting masks are taken at absolute frame indices (``Inpaint.mask(t0=)``), and
  frame-drop windows start on kept frames and end on one (windows of ``m*K + 1`` frames,
  strides that are multiples of ``K``).

Nothing about the *prior* is exact across windows: each window is an independent diffusion run,
so the blend of two runs is not itself a sample. Batch-consistent SVI draws one noise image per
step for all frames, and every window draws the same one (same seed and shape), which keeps
overlapping windows close; per-frame noise is seeded by absolute frame index (``frame_ids``) so
that a frame gets the same noise in every window that contains it.

**Blending.** Cores overlap by ``overlap`` frames (more for the last window, whose end is
pinned to the video's end). Inside an overlap the earlier window's weight ramps down linearly
while the later one's ramps up (``1/(n+1), 2/(n+1), ...`` for an ``n``-frame overlap), and the
weights are normalised, so they sum to one on every frame (:func:`blend_weights`).

**Frame sizes.** Priors need frame sides that are multiples of ``2**(levels-1)`` (the
``multiple`` attribute; 8 when absent). :func:`pad_operator` solves on a reflect-padded grid with
the exact operator ``A ∘ crop``: the padded pixels are not observed, so the prior fills them and
the crop afterwards (:func:`crop_to`) returns the requested size.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import UserError
from ..ops import parse
from ..ops.base import Composition, Identity, LinearOperator
from ..ops.blur import SpatialBlur
from ..ops.functional import pad_indices
from ..ops.mask import Inpaint
from ..ops.resize import Downsample
from ..ops.temporal import FrameDrop, TemporalBlur

__all__ = [
    "DEFAULT_MULTIPLE",
    "FrameSelect",
    "SpatialCrop",
    "Window",
    "blend_weights",
    "crop_to",
    "pad_operator",
    "pad_to_multiple",
    "plan_windows",
    "solve_in_windows",
    "window_operator",
]

DEFAULT_MULTIPLE = 8

# ------------------------------------------------------------------------------------------
# Spatial padding to the prior's size multiple.
# ------------------------------------------------------------------------------------------


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims (bottom and right) up to multiples of ``multiple``.

    Uses the index-gather boundary rules of :mod:`vidrestore.ops.functional` (``reflect`` is
    half-sample symmetric and works for any pad width, unlike ``torch.nn.functional.pad``).

    Args:
        x: Tensor ``(..., H, W)``, e.g. a ``(B, C, T, H, W)`` video in ``[0, 1]``.
        multiple: Target multiple (``>= 1``).
        mode: ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Returns:
        ``(padded, (H, W))``: the padded tensor and the original size for :func:`crop_to`.
    """
    if int(multiple) < 1:
        raise UserError(f"multiple must be >= 1, got {multiple}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    ih = pad_indices(h, 0, ph, mode, device=x.device)
    iw = pad_indices(w, 0, pw, mode, device=x.device)
    return x.index_select(-2, ih).index_select(-1, iw), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (H, W)`` of the last two dims."""
    return x[..., : size[0], : size[1]]


class SpatialCrop(LinearOperator):
    """Crop ``(B, C, T, Hp, Wp)`` to its top-left ``(H, W)``; the adjoint zero-pads.

    Composed before an operator (``op @ SpatialCrop(...)``) it lets a solver work on a padded
    grid while the measurement only sees the original pixels. ``lift`` reflect-pads, so
    solver initialisations start from a continued image rather than from zeros.
    """

    def __init__(self, height: int, width: int, padded_height: int, padded_width: int):
        super().__init__()
        if not (0 < height <= padded_height and 0 < width <= padded_width):
            raise UserError(f"bad crop {height}x{width} of {padded_height}x{padded_width}")
        self.size = (int(height), int(width))
        self.padded = (int(padded_height), int(padded_width))
        self.spec = f"crop:{height}x{width}"

    def A(self, x):  # noqa: N802
        return crop_to(x, self.size)

    def A_adjoint(self, y):  # noqa: N802
        ph, pw = self.padded[0] - y.shape[-2], self.padded[1] - y.shape[-1]
        return torch.nn.functional.pad(y, (0, pw, 0, ph))

    def lift(self, y):
        ih = pad_indices(y.shape[-2], 0, self.padded[0] - y.shape[-2], "reflect", device=y.device)
        iw = pad_indices(y.shape[-1], 0, self.padded[1] - y.shape[-1], "reflect", device=y.device)
        return y.index_select(-2, ih).index_select(-1, iw)

    def output_shape(self, in_shape):
        return tuple(in_shape[:3]) + self.size

    def input_shape(self, out_shape):
        return tuple(out_shape[:3]) + self.padded


def pad_operator(op: LinearOperator, x_shape: Sequence[int], multiple: int) -> tuple[LinearOperator, tuple[int, ...]]:
    """The operator on a grid padded to ``multiple``: ``op ∘ crop`` (exact, see module doc).

    Args:
        op: Operator on videos of shape ``x_shape``.
        x_shape: ``(B, C, T, H, W)`` of the unknown video.
        multiple: Size multiple required by the prior.

    Returns:
        ``(op_padded, padded_shape)``; ``op`` itself when no padding is needed.
    """
    b, c, t, h, w = (int(s) for s in x_shape)
    hp, wp = h + (-h) % multiple, w + (-w) % multiple
    if (hp, wp) == (h, w):
        return op, (b, c, t, h, w)
    return Composition([SpatialCrop(h, w, hp, wp), op]), (b, c, t, hp, wp)


# ------------------------------------------------------------------------------------------
# Window restriction of an operator chain.
# ------------------------------------------------------------------------------------------


class FrameSelect(LinearOperator):
    """Keep the frames at ``positions`` of a ``num_frames``-frame video; the adjoint zero-fills.

    ``(B, C, num_frames, H, W)`` -> ``(B, C, len(positions), H, W)``. ``lift`` holds each kept
    frame over its nearest unkept neighbours (a cheap initialisation, not an inverse).
    """

    def __init__(self, positions: Sequence[int], num_frames: int):
        super().__init__()
        pos = [int(p) for p in positions]
        if not pos or len(set(pos)) != len(pos) or min(pos) < 0 or max(pos) >= num_frames:
            raise UserError(f"bad frame selection {pos} of {num_frames} frames")
        self.register_buffer("positions", torch.tensor(pos, dtype=torch.long), persistent=False)
        self.num_frames = int(num_frames)
        self.spec = f"select:{len(pos)}/{num_frames}"

    def A(self, x):  # noqa: N802
        return x.index_select(2, self.positions.to(x.device))

    def A_adjoint(self, y):  # noqa: N802
        shape = list(y.shape)
        shape[2] = self.num_frames
        return y.new_zeros(shape).index_add_(2, self.positions.to(y.device), y)

    def lift(self, y):
        pos = self.positions.to(torch.float64)
        frames = torch.arange(self.num_frames, dtype=torch.float64)
        nearest = (frames[:, None] - pos[None, :]).abs().argmin(dim=1)
        return y.index_select(2, nearest.to(y.device))

    def output_shape(self, in_shape):
        if in_shape[2] != self.num_frames:
            raise UserError(f"frame selection built for {self.num_frames} frames, got {in_shape[2]}")
        return (in_shape[0], in_shape[1], int(self.positions.numel()), in_shape[3], in_shape[4])

    def input_shape(self, out_shape):
        return (out_shape[0], out_shape[1], self.num_frames, out_shape[3], out_shape[4])


class _WindowInpaint(Inpaint):
    """A perframe :class:`Inpaint` restricted to the frames with absolute indices ``frame_ids``."""

    def __init__(self, base: Inpaint, frame_ids: Sequence[int]):
        super().__init__(base.ratio, base.mode, seed=base.seed)
        self._base = base
        self.frame_ids = [int(f) for f in frame_ids]
        self.spec = base.spec

    def mask(self, t: int, h: int, w: int, *, t0: int = 0) -> torch.Tensor:
        if t0 + t > len(self.frame_ids):
            raise UserError(f"window inpainting mask holds {len(self.frame_ids)} frames, asked for {t0 + t}")
        return torch.cat([self._base.mask(1, h, w, t0=f) for f in self.frame_ids[t0 : t0 + t]], dim=2)


_PER_FRAME = (SpatialBlur, Downsample, Identity)


def _flatten(op: LinearOperator) -> list[LinearOperator]:
    return list(op.ops) if isinstance(op, Composition) else [op]


def window_operator(op: LinearOperator, frame_ids: Sequence[int], num_frames: int) -> tuple[LinearOperator, list[int]]:
    """Exact restriction of a whole-video operator to a window of frames.

    Args:
        op: Whole-video operator (a chain of :mod:`vidrestore.ops` operators).
        frame_ids: Absolute indices (in ``[0, num_frames)``) of the window's frames, in order;
            consecutive, or consecutive modulo ``num_frames`` (ring windows for circular blurs).
        num_frames: Frame count ``T`` of the whole video.

    Returns:
        ``(op_w, out_ids)``: ``op_w`` maps the window's ``(B, C, len(frame_ids), H, W)`` video
        to the measurement frames ``y[:, :, out_ids]`` of the whole video, exactly.

    Raises:
        UserError: For an operator type with unknown temporal behaviour, or a window that
            observes no measurement frame.
    """
    ids = [int(f) for f in frame_ids]
    total = int(num_frames)
    chain: list[LinearOperator] = []
    for o in _flatten(op):
        if isinstance(o, TemporalBlur):
            k = o.width
            left, right = k // 2, k - 1 - k // 2
            n = len(ids)
            if n < k:
                raise UserError(f"window of {n} frames is shorter than the temporal kernel of {o.spec!r}")
            # Source frame of every tap: whole video (boundary rule at the true ends) vs window.
            whole = pad_indices(total, left, right, o.boundary).tolist()
            w_boundary = "replicate" if o.boundary == "circular" else o.boundary
            local = pad_indices(n, left, right, w_boundary).tolist()
            valid = [
                p
                for p in range(n)
                if all(ids[local[p + j]] == whole[ids[p] + j] for j in range(k))
            ]
            chain.append(TemporalBlur(o.weights, w_boundary, spec=o.spec))
            if len(valid) < n:
                if not valid:
                    raise UserError(f"window of {n} frames observes no frame of {o.spec!r}")
                chain.append(FrameSelect(valid, n))
            ids = [ids[p] for p in valid]
        elif isinstance(o, FrameDrop):
            kept = [p for p, f in enumerate(ids) if f % o.factor == 0]
            if not kept:
                raise UserError(f"window holds no kept frame of {o.spec!r}")
            chain.append(FrameSelect(kept, len(ids)))
            ids = [ids[p] // o.factor for p in kept]
            total = -(-total // o.factor)
        elif isinstance(o, Inpaint):
            chain.append(_WindowInpaint(o, ids) if o.mode == "perframe" else o)
        elif isinstance(o, _PER_FRAME):
            chain.append(o)
        else:
            raise UserError(f"cannot split operator {o.spec!r} ({type(o).__name__}) into temporal windows")
    op_w = chain[0] if len(chain) == 1 else Composition(chain)
    return op_w, ids


def _temporal_margins(op: LinearOperator) -> tuple[int, int, int, bool, bool]:
    """(left margin, right margin, frame-drop stride, has circular blur, has frame drop) in input frames."""
    scale, left, right, circular, drop = 1, 0, 0, False, False
    for o in _flatten(op):
        if isinstance(o, TemporalBlur):
            k = o.width
            left += (k // 2) * scale
            right += (k - 1 - k // 2) * scale
            circular = circular or o.boundary == "circular"
        elif isinstance(o, FrameDrop):
            scale *= o.factor
            drop = True
    return left, right, scale, circular, drop


# ------------------------------------------------------------------------------------------
# Window plan and blending.
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One temporal window.

    Attributes:
        frame_ids: Absolute indices of the frames the solver sees (wrap modulo ``T`` on a ring).
        core: ``(start, end)``: the absolute frames ``[start, end)`` this window contributes.
    """

    frame_ids: tuple[int, ...]
    core: tuple[int, int]


def plan_windows(num_frames: int, op: LinearOperator, *, window: int = 16, overlap: int = 4, context: int = 0) -> list[Window]:
    """Split ``num_frames`` frames into overlapping windows for ``op`` (see the module doc).

    Each window holds ``window`` frames (frame-drop chains: ``m*K + 1`` of them, and the last
    window up to ``K - 1`` more); its core excludes the temporal margins at interior edges,
    consecutive cores overlap by at least ``overlap`` frames, and the cores cover every frame.

    Args:
        num_frames: Frame count ``T`` of the video.
        op: Whole-video operator.
        window: Frames per solver call.
        overlap: Frames shared by consecutive cores (blending width), ``>= 0``.
        context: Extra frames per interior edge, solved and discarded on top of the
            operator's support (more context, fewer edge effects, more windows).

    Returns:
        The windows in temporal order; one window holding every frame when ``T <= window``.

    Raises:
        UserError: When ``window`` leaves no stride after margins and overlap.
    """
    T = int(num_frames)
    if window < 1 or overlap < 0 or context < 0:
        raise UserError(f"window must be >= 1, overlap and context >= 0; got window={window}, overlap={overlap}, context={context}")
    if T <= window:
        return [Window(tuple(range(T)), (0, T))]
    m_left, m_right, drop, circular, has_drop = _temporal_margins(op)
    m_left, m_right = m_left + int(context), m_right + int(context)
    ring = circular and not has_drop
    win = window if drop == 1 else ((window - 1) // drop) * drop + 1
    core_len = win - m_left - m_right
    stride = ((core_len - overlap) // drop) * drop
    if stride < 1:
        raise UserError(
            f"window={window} is too short for overlap={overlap} and the operator's temporal margins "
            f"({m_left}+{m_right} frames{', frame-drop stride ' + str(drop) if drop > 1 else ''}); "
            f"use a window of at least {m_left + m_right + overlap + drop} frames"
        )
    out: list[Window] = []
    if ring:
        # Cores tile [0, T) linearly; margins wrap around the ring of frames.
        starts = list(range(0, T - core_len, stride)) + [T - core_len]
        for c in starts:
            ids = tuple((c - m_left + i) % T for i in range(win))
            out.append(Window(ids, (c, c + core_len)))
        return out
    last = max(T - win, 0) // drop * drop
    starts = list(range(0, last, stride)) + [last]
    for n, a in enumerate(starts):
        end = T if n == len(starts) - 1 else a + win
        core = (0 if a == 0 else a + m_left, T if end == T else end - m_right)
        out.append(Window(tuple(range(a, end)), core))
    return out


def blend_weights(windows: Sequence[Window], num_frames: int) -> torch.Tensor:
    """Per-window blending weights ``(len(windows), T)`` (float64) that sum to one per frame.

    A window's weight is 1 on its core, 0 outside, and ramps linearly over the part of its core
    shared with the previous / next window's core; the weights are then normalised.
    """
    T = int(num_frames)
    w = torch.zeros(len(windows), T, dtype=torch.float64)
    for k, win in enumerate(windows):
        s, e = win.core
        f = torch.arange(s, e, dtype=torch.float64)
        ramp = torch.ones_like(f)
        if k > 0:
            n_left = max(windows[k - 1].core[1] - s, 0)
            ramp = torch.minimum(ramp, (f - s + 1) / (n_left + 1))
        if k + 1 < len(windows):
            n_right = max(e - windows[k + 1].core[0], 0)
            ramp = torch.minimum(ramp, (e - f) / (n_right + 1))
        w[k, s:e] = ramp
    total = w.sum(0)
    if bool((total <= 0).any()):
        raise UserError("window cores do not cover every frame")
    return w / total


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _resolve_op(op_spec_or_factory, num_frames: int | None, op_seed: int) -> LinearOperator:
    if isinstance(op_spec_or_factory, str):
        return parse(op_spec_or_factory, seed=op_seed, num_frames=num_frames)
    if isinstance(op_spec_or_factory, LinearOperator):
        return op_spec_or_factory
    if callable(op_spec_or_factory):
        if num_frames is None:
            raise UserError("num_frames is required with an operator factory")
        return op_spec_or_factory(int(num_frames))
    raise UserError(f"op_spec_or_factory must be a spec string, an operator or a factory, got {type(op_spec_or_factory).__name__}")


class WindowedProblem:
    """A whole-video problem split into independent window problems, and their stitching.

    The three steps every backend shares (local loop, Ray actors, ...):

    1. *plan*: ``problem = WindowedProblem(op, y, window=..., overlap=...)`` fixes the windows
       (:func:`plan_windows`) and the blending weights (:func:`blend_weights`);
    2. *run window k* (any order, any process): ``problem.solve_window(solve_fn, k, **kw)``
       builds the exact window operator and measurement (:func:`window_operator`), calls
       ``solve_fn`` (with ``frame_ids=`` when it accepts it) and returns the window's *core*
       frames. The result depends only on ``k`` and the problem, never on which windows ran
       before or where: every random stream of a solver is seeded from ``seed`` and absolute
       frame indices;
    3. *stitch*: ``problem.stitch(cores)`` blends the cores in window order.

    The object is picklable (operators are modules, ``y`` a tensor), so it can be shipped to
    worker processes once per video.

    Args:
        op_spec_or_factory: The whole-video operator (see :func:`solve_in_windows`).
        y: Whole-video measurement in pixel units, ``(B, C, T_y, h, w)``.
        window, overlap, context: See :func:`plan_windows`; ``window=None`` solves the whole
            video as one window.
        num_frames: Frame count ``T`` of the unknown video (default ``op.input_shape``).
        op_seed: Seed of random operator parameters for spec strings.
    """

    def __init__(
        self,
        op_spec_or_factory: str | LinearOperator | Callable[[int], LinearOperator],
        y: torch.Tensor,
        *,
        window: int | None = 16,
        overlap: int = 4,
        context: int = 0,
        num_frames: int | None = None,
        op_seed: int = 0,
    ):
        if not isinstance(y, torch.Tensor) or y.ndim != 5:
            raise UserError(f"y must be a (B, C, T, H, W) tensor, got {getattr(y, 'shape', type(y))}")
        op = _resolve_op(op_spec_or_factory, num_frames, op_seed)
        x_shape = tuple(op.input_shape(tuple(y.shape)))
        if num_frames is not None:
            x_shape = x_shape[:2] + (int(num_frames),) + x_shape[3:]
        T = int(x_shape[2])
        if tuple(op.output_shape(x_shape)) != tuple(y.shape):
            raise UserError(f"measurement shape {tuple(y.shape)} does not match operator {op.spec!r} for {T} frames")
        self.op, self.y, self.x_shape, self.num_frames = op, y, x_shape, T
        self.plan = plan_windows(T, op, window=T if window is None else int(window), overlap=overlap, context=context)
        self.weights = blend_weights(self.plan, T) if len(self.plan) > 1 else None

    def __len__(self) -> int:
        return len(self.plan)

    def window_inputs(self, k: int) -> tuple[LinearOperator, torch.Tensor, list[int]]:
        """``(op_w, y_w, frame_ids)`` of window ``k`` (the whole problem for a single window)."""
        win = self.plan[k]
        if len(self.plan) == 1:
            return self.op, self.y, list(range(self.num_frames))
        op_w, out_ids = window_operator(self.op, win.frame_ids, self.num_frames)
        y_w = self.y.index_select(2, torch.tensor(out_ids, dtype=torch.long, device=self.y.device))
        return op_w, y_w, list(win.frame_ids)

    def core(self, k: int, x_w: torch.Tensor) -> torch.Tensor:
        """The core frames ``[start, end)`` of window ``k``'s solution ``x_w``, in order."""
        win = self.plan[k]
        if len(self.plan) == 1:
            return x_w
        pos = {f: p for p, f in enumerate(win.frame_ids)}
        s, e = win.core
        idx = torch.tensor([pos[f] for f in range(s, e)], dtype=torch.long, device=x_w.device)
        return x_w.index_select(2, idx)

    def solve_window(self, solve_fn: Callable[..., torch.Tensor], k: int, **solve_kwargs) -> torch.Tensor:
        """Solve window ``k`` with ``solve_fn(op_w, y_w, **solve_kwargs)``; returns its core frames."""
        op_w, y_w, ids = self.window_inputs(k)
        kw = dict(solve_kwargs, frame_ids=ids) if _accepts(solve_fn, "frame_ids") else solve_kwargs
        return self.core(k, solve_fn(op_w, y_w, **kw))

    def stitcher(self) -> "Stitcher":
        """An incremental :class:`Stitcher` (accepts cores in any order, blends in window order)."""
        return Stitcher(self)

    def stitch(self, cores: Sequence[torch.Tensor]) -> torch.Tensor:
        """Blend the cores of all windows (``cores[k]`` from :meth:`core`) into ``(B, C, T, H, W)``."""
        st = self.stitcher()
        for k, c in enumerate(cores):
            st.add(k, c)
        return st.result()


class Stitcher:
    """Adds window cores into the output in window order, whatever order they arrive in.

    Blending is a floating-point sum, so the order of the additions is fixed (window 0, 1, ...)
    to make the result bit-identical however the windows were scheduled; cores that arrive
    early wait in a buffer until their turn.
    """

    def __init__(self, problem: WindowedProblem):
        self.problem = problem
        self.out: torch.Tensor | None = None
        self.next = 0
        self.pending: dict[int, torch.Tensor] = {}

    @property
    def done(self) -> bool:
        return self.next == len(self.problem)

    def add(self, k: int, core: torch.Tensor) -> None:
        if k < self.next or k in self.pending or not 0 <= k < len(self.problem):
            raise ValueError(f"window {k} added twice or out of range")
        self.pending[k] = core
        p = self.problem
        while self.next in self.pending:
            c = self.pending.pop(self.next)
            if len(p) == 1:
                self.out = c
            else:
                if self.out is None:
                    self.out = c.new_zeros(p.x_shape[:2] + (p.num_frames,) + tuple(c.shape[3:]))
                s, e = p.plan[self.next].core
                wk = p.weights[self.next, s:e].to(device=c.device, dtype=c.dtype).view(1, 1, -1, 1, 1)
                self.out[:, :, s:e] += wk * c.to(self.out.device)
            self.next += 1

    def result(self) -> torch.Tensor:
        if not self.done or self.out is None:
            raise ValueError(f"only {self.next} of {len(self.problem)} windows stitched")
        return self.out


def solve_in_windows(
    solve_fn: Callable[..., torch.Tensor],
    op_spec_or_factory: str | LinearOperator | Callable[[int], LinearOperator],
    y: torch.Tensor,
    *,
    window: int = 16,
    overlap: int = 4,
    context: int = 0,
    num_frames: int | None = None,
    op_seed: int = 0,
    callback: Callable[[dict], None] | None = None,
    **solve_kwargs,
) -> torch.Tensor:
    """Solve a video inverse problem of any length in overlapping temporal windows.

    For each window of :func:`plan_windows`: build the exact window operator and measurement
    (:func:`window_operator`), run ``solve_fn(op_w, y_w, **solve_kwargs)`` (plus
    ``frame_ids=...`` when ``solve_fn`` accepts it, so per-frame noise follows absolute frame
    indices), and add its core frames to the output with :func:`blend_weights`. See the module
    docstring for the treatment of window edges and circular operators. This is the in-process
    loop over a :class:`WindowedProblem`; distributed backends run the same window solves
    elsewhere and stitch identically.

    Args:
        solve_fn: ``solve_fn(op, y, **kwargs) -> x`` returning a pixel-space ``(B, C, T_w, H, W)``
            video, e.g. ``functools.partial(solve_svi, denoiser)`` or
            :func:`~vidrestore.solvers.classical.solve_cg`.
        op_spec_or_factory: The whole-video operator: a spec string (parsed with ``op_seed``
            and ``num_frames``), a :class:`~vidrestore.ops.LinearOperator`, or a callable
            ``num_frames -> LinearOperator``.
        y: Whole-video measurement in pixel units, ``(B, C, T_y, h, w)``.
        window: Frames per solver call (the memory knob).
        overlap: Frames shared by consecutive window cores.
        context: Extra discarded frames per interior window edge (see :func:`plan_windows`).
        num_frames: Frame count ``T`` of the unknown video (default: ``op.input_shape``, which
            for ``fdrop:K`` assumes ``(T_y - 1) K + 1``).
        op_seed: Seed of random operator parameters (inpainting masks) for spec strings; must
            be the seed the measurement was made with.
        callback: Called after each window with ``dict(window=k, num_windows=n, frames=ids,
            core=(start, end), x=core_frames)``.
        **solve_kwargs: Passed to every ``solve_fn`` call (e.g. ``steps``, ``eta``, ``seed``).

    Returns:
        The restored video ``(B, C, T, H, W)`` in pixel space.
    """
    problem = WindowedProblem(op_spec_or_factory, y, window=window, overlap=overlap, context=context, num_frames=num_frames, op_seed=op_seed)
    st = problem.stitcher()
    for k, win in enumerate(problem.plan):
        core = problem.solve_window(solve_fn, k, **solve_kwargs)
        st.add(k, core)
        if callback is not None:
            callback(dict(window=k, num_windows=len(problem), frames=win.frame_ids, core=win.core, x=core))
        del core
    return st.result()
