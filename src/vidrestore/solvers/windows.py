"""Long videos in temporal windows, and frame sizes that do not fit a prior's size multiple.

Contract: :func:`solve_in_windows` runs any solver on overlapping temporal windows of a fixed
number of frames and blends the window cores, so peak memory depends on the window, not on the
video. Each window solves the *exact* restriction of the whole-video operator to its frames
(:func:`~vidrestore.ops.window.window_operator`), plans keep the partly observed margins out of
the output, and the cores are blended with weights that sum to one on every frame
(:func:`blend_weights`). :func:`pad_operator` solves on a grid padded to the prior's size
multiple with the exact operator ``A ∘ crop``; :func:`crop_to` returns the requested size.

Steps: plan (:func:`plan_windows`), solve window ``k`` (:class:`WindowedProblem`), stitch in
window order (:class:`Stitcher`). The reasoning behind the exactness rules (interior edges,
circular blurs, frame dropping, inpainting masks) is in docs/windows.md.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import UserError
from ..ops import parse
from ..ops.base import LinearOperator
from ..ops.functional import pad_indices
from ..ops.temporal import FrameDrop, TemporalBlur
from ..ops.window import FrameSelect, SpatialCrop, _flatten, crop_to, _WindowInpaint, pad_operator, window_operator  # noqa: F401 - re-exported

__all__ = [
    "DEFAULT_MULTIPLE",
    "FrameSelect",
    "SpatialCrop",
    "Window",
    "blend_weights",
    "crop_to",
    "default_window",
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


def default_window(op: LinearOperator, *, overlap: int = 4, context: int = 0, base: int = 16) -> int:
    """Frames per window when none is asked for: ``base``, or more when the operator's temporal
    margins (plus ``context`` and ``overlap``) need it, so that every window still has a core of
    at least 8 strides. Bounds peak memory whatever the clip length (see :func:`plan_windows`)."""
    left, right, drop, _, _ = _temporal_margins(op)
    return max(int(base), left + right + 2 * int(context) + int(overlap) + 8 * drop)


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
        if not hasattr(y, "index_select") or getattr(y, "ndim", None) != 5:
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
            y = self.y if isinstance(self.y, torch.Tensor) else self.y.index_select(2, torch.arange(self.y.shape[2]))
            return self.op, y, list(range(self.num_frames))
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

    def stitcher(self, emit: Callable[[torch.Tensor], None] | None = None) -> "Stitcher":
        """An incremental :class:`Stitcher` (accepts cores in any order, blends in window order);
        with ``emit``, finished frames are handed out as they are done instead of kept."""
        return Stitcher(self, emit=emit)

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

    Streaming (``emit`` given): window cores start in frame order, so once window ``k`` is
    added every frame before the core of window ``k + 1`` is final. Those frames are passed to
    ``emit`` as one ``(B, C, n, H, W)`` tensor and dropped, so the stitcher holds at most about
    one window of output instead of the whole video; the frames and their values are the same
    as without ``emit`` (same additions in the same order), and :meth:`result` returns ``None``.
    """

    def __init__(self, problem: WindowedProblem, emit: Callable[[torch.Tensor], None] | None = None):
        self.problem = problem
        self.out: torch.Tensor | None = None
        self.next = 0
        self.pending: dict[int, torch.Tensor] = {}
        self.emit = emit
        self.base = 0  # streaming: absolute index of self.out's first frame

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
                if self.emit is not None:
                    self.emit(c)
                else:
                    self.out = c
            elif self.emit is None:
                if self.out is None:
                    self.out = c.new_zeros(p.x_shape[:2] + (p.num_frames,) + tuple(c.shape[3:]))
                s, e = p.plan[self.next].core
                wk = p.weights[self.next, s:e].to(device=c.device, dtype=c.dtype).view(1, 1, -1, 1, 1)
                self.out[:, :, s:e] += wk * c.to(self.out.device)
            else:
                self._add_streaming(self.next, c)
            self.next += 1

    def _add_streaming(self, k: int, c: torch.Tensor) -> None:
        p = self.problem
        s, e = p.plan[k].core
        if self.out is None:
            self.out = c.new_zeros(tuple(c.shape[:2]) + (0,) + tuple(c.shape[3:]))
        end = self.base + self.out.shape[2]
        if e > end:  # grow the buffer with zeros up to this core's end
            self.out = torch.cat([self.out, c.new_zeros(tuple(c.shape[:2]) + (e - end,) + tuple(c.shape[3:]))], dim=2)
        wk = p.weights[k, s:e].to(device=c.device, dtype=c.dtype).view(1, 1, -1, 1, 1)
        self.out[:, :, s - self.base : e - self.base] += wk * c.to(self.out.device)
        final = p.plan[k + 1].core[0] if k + 1 < len(p) else p.num_frames
        n = final - self.base
        if n > 0:
            self.emit(self.out[:, :, :n].clone())
            self.out = self.out[:, :, n:].clone()
            self.base = final

    def result(self) -> torch.Tensor | None:
        if not self.done or (self.out is None and self.emit is None):
            raise ValueError(f"only {self.next} of {len(self.problem)} windows stitched")
        return None if self.emit is not None else self.out


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
