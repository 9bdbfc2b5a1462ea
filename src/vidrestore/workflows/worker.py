"""Window workers: what solves one temporal window of one video, in this process or in a
Ray actor (:mod:`.distributed`). See :mod:`.scale` for the plan / solve / stitch engine.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import UserError
from ..ops.base import LinearOperator
from ..solvers.windows import WindowedProblem, default_window
from .methods import Options, WindowedOptions, get_method, make_options, prior_dtype, resolve_device

__all__ = ["JobFailed", "WorkerSpec", "make_spec", "VideoJob", "plan_job", "WindowWorker"]


class JobFailed(UserError):
    """A restoration job failed (a window failed on every attempt); the message says which
    window and why. Subclasses :class:`UserError` so the CLI prints one line, exit code 2."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to solve windows (picklable, shipped to remote workers).

    Attributes:
        method: Key of :data:`~vidrestore.workflows.methods.METHODS`.
        options: The method's :class:`~vidrestore.workflows.methods.Options` (defaults filled in).
        device: ``cpu`` | ``cuda`` | ``cuda:N`` (a Ray actor sees only its own GPU as ``cuda``).
        threads: torch CPU threads while solving a window (``None``: leave as is).
    """

    method: str
    options: Options
    device: str = "cpu"
    threads: int | None = None


def make_spec(method: str, options: Options | dict | None = None, *, device: str | None = None, threads: int | None = None, backend: str = "local") -> WorkerSpec:
    """Validate ``method`` and its options, merge its defaults into ``options`` and build a
    :class:`WorkerSpec`."""
    o = make_options(method, options)
    if threads is not None and int(threads) < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    if backend not in ("local", "ray"):
        raise UserError(f"unknown backend {backend!r}; use local or ray")
    if backend == "local":  # remote workers may have GPUs that this machine lacks
        resolve_device(device)
    if getattr(o, "precision", None) is not None:
        prior_dtype(o.precision)
    return WorkerSpec(method, o, device or "cpu", None if threads is None else int(threads))


@dataclass
class VideoJob:
    """One video to restore: its windowed problem and noise level; ``key`` names it in messages.

    ``sink``: when set, finished output frames are passed to it in order as ``(B, C, n, H, W)``
    chunks while the windows are stitched (streaming), instead of being kept until the end; it
    stays on the driver (never shipped to remote workers)."""

    key: str
    problem: WindowedProblem
    sigma_y: float
    sink: Callable[[torch.Tensor], None] | None = None


def plan_job(key: str, y: Any, op: LinearOperator, sigma_y: float, spec: WorkerSpec, *, sink: Callable[[torch.Tensor], None] | None = None) -> VideoJob:
    """Plan ``y`` into the method's temporal windows (``window``/``overlap``/``context`` options).

    ``y``: the measurement, a ``(B, C, T, H, W)`` tensor or a lazily read
    :class:`~vidrestore.io.stream.VideoSource` (a window's frames are then read when it is
    solved). Methods with windows and no ``window`` set get
    :func:`~vidrestore.solvers.windows.default_window` frames; methods without windows
    (``pvdnet``) get the whole clip."""
    o = spec.options
    overlap, context = int(getattr(o, "overlap", 4)), int(getattr(o, "context", 0))
    window = getattr(o, "window", None)
    if window is None and isinstance(o, WindowedOptions):
        window = default_window(op, overlap=overlap, context=context)
    problem = WindowedProblem(op, y.cpu(), window=window, overlap=overlap, context=context)
    return VideoJob(key, problem, float(sigma_y), sink)


@contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class WindowWorker:
    """Solves windows with one method; the method's ``setup`` (the prior) runs once, lazily.

    The same class runs in-process (local backend) and inside Ray actors (remote backend;
    ``remote=True``).
    """

    def __init__(self, spec: WorkerSpec, *, remote: bool = False):
        self.spec = spec
        self.method = get_method(spec.method)
        self.device = resolve_device(spec.device)
        self.remote = remote
        self._state: Any = None
        self._ready = False

    def state(self) -> Any:
        if not self._ready:
            with _threads(self.spec.threads):
                self._state = self.method.setup(self.spec.options, self.device) if self.method.setup else None
            self._ready = True
        return self._state

    def run(self, job: VideoJob, k: int, callback: Callable[[dict], None] | None = None) -> torch.Tensor:
        """Solve window ``k`` of ``job``; returns its core frames ``(B, C, T_core, H, W)`` on the CPU."""
        m, o, dev = self.method, self.spec.options.resolve(job.sigma_y), self.device
        state = self.state()
        cb = callback or (lambda info=None: None)

        def solve(op_w, y_w, frame_ids=None):
            return m.run(op_w.to(dev), y_w.to(dev), job.sigma_y, o, cb, frame_ids=frame_ids, state=state)

        with torch.no_grad(), _threads(self.spec.threads):
            core = job.problem.solve_window(solve, k)
        return core.float().cpu()
