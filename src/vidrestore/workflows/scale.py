"""Windows as units of work: one engine for the local and the distributed (Ray) backends.

Every restoration runs the same three steps (:class:`~vidrestore.solvers.WindowedProblem`):

1. *plan* the clip into temporal windows (on the driver);
2. *solve window k*: :meth:`WindowWorker.run`, in this process (``backend="local"``) or in a
   Ray actor (``backend="ray"``, :mod:`.distributed`); a worker loads the method's heavy
   state (the diffusion prior) once and then solves any number of windows, of any video;
3. *stitch* the window cores in window order (on the driver).

Because step 2 depends only on the window (the solvers seed every random stream from
``seed`` and absolute frame indices, never from a global stream or from the order in which
windows run) and step 3 adds the cores in a fixed order, the output does not depend on the
backend, the number of workers or the scheduling. The one thing that changes float rounding is
the number of torch CPU threads of a window solve (multi-threaded reductions sum in another
order), so :class:`WorkerSpec` pins it (``threads``); with equal ``threads`` both backends are
bit-identical.

:func:`run_videos` schedules the windows of many videos on a pool of workers (used by
``restore`` for one video and by ``batch`` for many): it keeps a bounded number of videos in
flight, retries a window whose worker died or raised (``max_retries`` times, never for a
:class:`~vidrestore.errors.UserError`), and fails only the video whose window keeps failing.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator

import torch

from ..errors import UserError
from ..ops.base import LinearOperator
from .distributed import RayConfig, RayPool
from .progress import progress
from .worker import JobFailed, VideoJob, WindowWorker, WorkerSpec, make_spec, plan_job

__all__ = ["JobFailed", "WorkerSpec", "make_spec", "VideoJob", "plan_job", "WindowWorker", "LocalPool", "run_videos", "open_pool", "restore_video"]


# ------------------------------------------------------------------------------- pools


class LocalPool:
    """Runs windows one after the other in this process (the ``local`` backend)."""

    max_retries = 0  # a deterministic in-process failure would fail again
    max_videos = 1
    worker_class = WindowWorker

    def __init__(self, spec: WorkerSpec, *, step_callback: Callable[[dict], None] | None = None):
        self.worker = self.worker_class(spec)
        self.step_callback = step_callback
        self._pending: deque = deque()

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc) -> None:
        self._pending.clear()

    def put(self, job: VideoJob) -> VideoJob:
        return job

    def idle(self) -> bool:
        return not self._pending

    def busy(self) -> bool:
        return bool(self._pending)

    def submit(self, tag: Any, job: VideoJob, k: int) -> None:
        self._pending.append((tag, job, k))

    def wait(self) -> tuple[Any, torch.Tensor | None, BaseException | None]:
        tag, job, k = self._pending.popleft()
        try:
            return tag, self.worker.run(job, k, self.step_callback), None
        except Exception as e:  # noqa: BLE001 - reported per video by run_videos
            return tag, None, e


def _describe(job: VideoJob, k: int) -> str:
    win = job.problem.plan[k]
    s, e = win.core
    return f"window {k + 1}/{len(job.problem)} (frames {s}-{e - 1}) of {job.key}"


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, UserError)


def run_videos(
    items: Iterable[tuple[str, Callable[[], VideoJob]]],
    pool: Any,
    *,
    on_done: Callable[[str, torch.Tensor], None],
    on_failed: Callable[[str, BaseException], None],
    on_window: Callable[[str, int], None] | None = None,
) -> None:
    """Restore many videos on ``pool`` (:class:`LocalPool` or a Ray pool), windows as work units.

    Args:
        items: ``(key, load)`` pairs; ``load()`` reads the input and returns a
            :class:`VideoJob` (called on the driver, at most ``pool.max_videos`` videos are
            loaded at once).
        pool: Runs windows: ``put(job) -> handle``, ``submit(tag, handle, k)``, ``idle()``,
            ``busy()``, ``wait() -> (tag, core, exception)``, ``max_retries``, ``max_videos``.
        on_done: ``on_done(key, x)`` with the stitched video (``None`` for a job with a
            ``sink``, which has received every frame by then), in completion order. An
            exception in it fails that video (passed to ``on_failed``), except
            ``KeyboardInterrupt``, which stops everything.
        on_failed: ``on_failed(key, exc)`` when loading, a window (after its retries) or
            ``on_done`` failed; raise from it to stop the whole run.
        on_window: Called after every solved window with ``(key, k)``.
    """
    it: Iterator = iter(items)
    more = True
    active: dict[str, dict] = {}
    queue: deque = deque()
    while True:
        while more and len(active) < pool.max_videos:
            try:
                key, load = next(it)
            except StopIteration:
                more = False
                break
            try:
                job = load()
            except Exception as e:  # noqa: BLE001 - an unreadable input fails only its item
                on_failed(key, e)
                continue
            active[key] = {"job": job, "handle": pool.put(job), "stitch": job.problem.stitcher(emit=job.sink)}
            queue.extend((key, k, 0) for k in range(len(job.problem)))
        while queue and pool.idle():
            key, k, attempt = queue.popleft()
            if key in active:
                pool.submit((key, k, attempt), active[key]["handle"], k)
        if not pool.busy():
            if not more and not queue:
                return
            continue
        (key, k, attempt), core, exc = pool.wait()
        if key not in active:  # a window of a video that already failed
            continue
        state = active[key]
        if exc is not None:
            if _retryable(exc) and attempt < pool.max_retries:
                queue.appendleft((key, k, attempt + 1))
                continue
            del active[key]
            what = _describe(state["job"], k)
            if isinstance(exc, UserError):
                err = JobFailed(f"{what}: {exc}")
            else:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                err = JobFailed(f"{what} failed{tries}: {type(exc).__name__}: {_first_line(exc)}")
            err.__cause__ = exc
            on_failed(key, err)
            continue
        try:
            state["stitch"].add(k, core)  # streaming: may write finished frames (job.sink)
        except Exception as e:  # noqa: BLE001 - e.g. the output cannot be written: fails this video
            del active[key]
            on_failed(key, e)
            continue
        if on_window is not None:
            on_window(key, k)
        if state["stitch"].done:
            del active[key]
            x = state["stitch"].result()
            try:
                on_done(key, x)
            except Exception as e:  # noqa: BLE001 - e.g. the output cannot be written
                on_failed(key, e)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else repr(exc)


def open_pool(spec: WorkerSpec, backend: str, ray: Any = None, *, step_callback=None, limit: int | None = None):
    """A context-managed pool for ``backend`` (``local`` or ``ray``)."""
    if backend == "local":
        return LocalPool(spec, step_callback=step_callback)
    if backend == "ray":
        return RayPool(spec, ray if ray is not None else RayConfig(), limit=limit)
    raise UserError(f"unknown backend {backend!r}; use local or ray")


def restore_video(
    y: torch.Tensor,
    op: LinearOperator,
    *,
    method: str = "cg",
    sigma_y: float = 0.0,
    options: Any = None,
    device: str | None = None,
    quiet: bool = False,
    backend: str = "local",
    ray: Any = None,
    threads: int | None = None,
    key: str = "video",
    sink: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor | None:
    """Restore a measurement ``y`` (pixel units) with a named method; returns ``(B,C,T,H,W)``
    in ``[0, 1]`` on the CPU.

    ``options``: the method's :class:`~vidrestore.workflows.methods.Options` or a dict of
    option names. The clip is planned into temporal windows (``window``, default per method:
    16 frames for the diffusion methods, the whole clip for cg/admm-tv), every window is solved
    independently, and the cores are blended in window order. ``backend`` ``"local"`` solves
    the windows in this process; ``"ray"`` sends them to Ray actors (``ray``: a
    :class:`~vidrestore.workflows.distributed.RayConfig`). With the same ``threads`` (torch CPU
    threads per window solve) both backends give bit-identical output. Blind methods
    (``pvdnet``) take the identity operator.

    Streaming: ``y`` may be a :class:`~vidrestore.io.stream.VideoSource` (the local backend then
    reads each window's frames when it solves it), and with ``sink`` the finished frames are
    passed to ``sink`` in order as they are stitched (e.g. ``VideoWriter.write``) and ``None``
    is returned, so memory holds about two windows instead of the clip.
    """
    spec = make_spec(method, options, device=device, threads=threads, backend=backend)
    if backend != "local" and not isinstance(y, torch.Tensor):
        y = y.load()  # remote workers get the measurement itself, once per video
    job = plan_job(key, y, op, sigma_y, spec, sink=sink)
    n = len(job.problem)
    out: dict[str, torch.Tensor] = {}

    def failed(_key, exc):
        raise exc

    local = backend == "local"
    total = n * spec.options.num_steps() if local else n
    with progress(total, f"{method} ({n} window{'s' * (n > 1)}, {backend})", quiet) as bar:
        with open_pool(spec, backend, ray, step_callback=bar if local else None, limit=n) as pool:
            run_videos(
                [(key, lambda: job)], pool,
                on_done=lambda k, x: out.__setitem__(k, x), on_failed=failed,
                on_window=None if local else (lambda *_: bar()),
            )
    return None if sink is not None else out[key].float().cpu()
