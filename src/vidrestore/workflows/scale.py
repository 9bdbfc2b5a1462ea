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

import inspect
import json
import os
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch

from ..errors import UserError
from ..ops.base import LinearOperator
from ..solvers.windows import WindowedProblem
from .jobs import METHODS, prior_dtype, resolve_device
from .progress import progress

#: Environment variable of the fault-injection test hook (JSON, see :meth:`WindowWorker._fault`).
FAULT_ENV = "VIDRESTORE_TEST_FAULT"


class JobFailed(UserError):
    """A restoration job failed (a window failed on every attempt); the message says which
    window and why. Subclasses :class:`UserError` so the CLI prints one line, exit code 2."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to solve windows (picklable, shipped to remote workers).

    Attributes:
        method: Key of :data:`~vidrestore.workflows.jobs.METHODS`.
        options: Method options merged with the method's defaults.
        device: ``cpu`` | ``cuda`` | ``cuda:N`` (a Ray actor sees only its own GPU as ``cuda``).
        threads: torch CPU threads while solving a window (``None``: leave as is).
        fault: Test hook: a JSON string (see :meth:`WindowWorker._fault`), normally ``None``.
    """

    method: str
    options: dict = field(default_factory=dict)
    device: str = "cpu"
    threads: int | None = None
    fault: str | None = None


def make_spec(method: str, options: dict | None = None, *, device: str | None = None, threads: int | None = None, backend: str = "local") -> WorkerSpec:
    """Validate ``method``, merge its defaults into ``options`` and build a :class:`WorkerSpec`."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if threads is not None and int(threads) < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    if backend not in ("local", "ray"):
        raise UserError(f"unknown backend {backend!r}; use local or ray")
    if backend == "local":  # remote workers may have GPUs that this machine lacks
        resolve_device(device)
    o = {**METHODS[method].defaults, **(options or {})}
    if "precision" in o:
        prior_dtype(o["precision"])
    return WorkerSpec(method, o, device or "cpu", None if threads is None else int(threads), os.environ.get(FAULT_ENV) or None)


@dataclass
class VideoJob:
    """One video to restore: its windowed problem and noise level; ``key`` names it in messages."""

    key: str
    problem: WindowedProblem
    sigma_y: float


def plan_job(key: str, y: torch.Tensor, op: LinearOperator, sigma_y: float, spec: WorkerSpec) -> VideoJob:
    """Plan ``y`` into the method's temporal windows (``window``/``overlap``/``context`` options)."""
    m = METHODS[spec.method]
    window = spec.options.get("window", m.window)
    problem = WindowedProblem(op, y.cpu(), window=window, overlap=int(spec.options.get("overlap", 4)), context=int(spec.options.get("context", 0)))
    return VideoJob(key, problem, float(sigma_y))


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


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

    The same class runs in-process (local backend) and inside Ray actors (remote backend).
    """

    def __init__(self, spec: WorkerSpec, *, remote: bool = False):
        self.spec = spec
        self.method = METHODS[spec.method]
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
        self._fault(job.key, k)
        m, o, dev = self.method, self.spec.options, self.device
        state = self.state()
        cb = callback or (lambda info=None: None)
        extra_state = {"state": state} if _accepts(m.run, "state") else {}
        pass_ids = _accepts(m.run, "frame_ids")

        def solve(op_w, y_w, frame_ids=None):
            extra = dict(extra_state, frame_ids=frame_ids) if pass_ids else extra_state
            return m.run(op_w.to(dev), y_w.to(dev), job.sigma_y, o, cb, **extra)

        with torch.no_grad(), _threads(self.spec.threads):
            core = job.problem.solve_window(solve, k)
        return core.float().cpu()

    def _fault(self, key: str, k: int) -> None:
        """Test hook (``VIDRESTORE_TEST_FAULT``, JSON): ``{"window": K, "item": SUBSTRING,
        "mode": "raise" | "exit", "once": MARKER_PATH}``. Matching windows (all when
        ``window``/``item`` are absent) raise a RuntimeError (``raise``) or end the worker
        process with ``os._exit(3)`` (``exit``; remote workers only, a local one raises);
        with ``once`` only the first match fires (it creates the marker file)."""
        if not self.spec.fault:
            return
        f = json.loads(self.spec.fault)
        if "window" in f and int(f["window"]) != k:
            return
        if "item" in f and str(f["item"]) not in key:
            return
        if f.get("once"):
            try:
                os.close(os.open(f["once"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        if f.get("mode") == "exit" and self.remote:
            os._exit(3)
        raise RuntimeError(f"injected fault in window {k} of {key}")


# ------------------------------------------------------------------------------- pools


class LocalPool:
    """Runs windows one after the other in this process (the ``local`` backend)."""

    max_retries = 0  # a deterministic in-process failure would fail again
    max_videos = 1

    def __init__(self, spec: WorkerSpec, *, step_callback: Callable[[dict], None] | None = None):
        self.worker = WindowWorker(spec)
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
        on_done: ``on_done(key, x)`` with the stitched video, in completion order. An
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
            active[key] = {"job": job, "handle": pool.put(job), "stitch": job.problem.stitcher()}
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
        state["stitch"].add(k, core)
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
        from .distributed import RayConfig, RayPool

        return RayPool(spec, ray if ray is not None else RayConfig(), limit=limit)
    raise UserError(f"unknown backend {backend!r}; use local or ray")


def restore_windows(
    y: torch.Tensor,
    op: LinearOperator,
    *,
    method: str = "cg",
    sigma_y: float = 0.0,
    options: dict | None = None,
    device: str | None = None,
    quiet: bool = False,
    backend: str = "local",
    ray: Any = None,
    threads: int | None = None,
    key: str = "video",
) -> torch.Tensor:
    """Plan, solve (on ``backend``) and stitch one video; see :func:`~.jobs.restore_video`."""
    spec = make_spec(method, options, device=device, threads=threads, backend=backend)
    job = plan_job(key, y, op, sigma_y, spec)
    n = len(job.problem)
    out: dict[str, torch.Tensor] = {}

    def failed(_key, exc):
        raise exc

    local = backend == "local"
    total = n * METHODS[method].steps(spec.options) if local else n
    with progress(total, f"{method} ({n} window{'s' * (n > 1)}, {backend})", quiet) as bar:
        with open_pool(spec, backend, ray, step_callback=bar if local else None, limit=n) as pool:
            run_videos(
                [(key, lambda: job)], pool,
                on_done=lambda k, x: out.__setitem__(k, x), on_failed=failed,
                on_window=None if local else (lambda *_: bar()),
            )
    return out[key].float().cpu()
