"""Ray backend: temporal windows solved by a pool of Ray actors (``pip install vidrestore[ray]``).

Each actor is a :class:`~vidrestore.workflows.worker.WindowWorker`: it loads the method's
state (the diffusion prior) once, on its first window, and then solves windows of any video
it is sent. The driver plans the windows, ships each video's problem to the object store
once (``ray.put``; an actor fetches it on the first window it gets of that video), hands one
window at a time to each idle actor, and stitches the returned cores in window order, so the
output equals the local backend's for the same ``threads``.

Scaling: on a CPU machine an actor takes ``cpus_per_worker`` CPUs (and as many torch
threads); with ``device="cuda"`` it takes ``gpus_per_worker`` GPUs (default 1: one actor per
GPU, Ray sets ``CUDA_VISIBLE_DEVICES`` so the actor sees its GPU as ``cuda``). ``address``
``"auto"`` or ``"HOST:PORT"`` joins a running cluster (every node needs vidrestore and its
dependencies installed); without it a local Ray instance is started (or the one this process
already initialised is reused) and shut down afterwards.

Faults: an actor that dies (process crash, node loss) is replaced by a fresh one and its
window is sent again; a window that raised is sent again too, except for a
:class:`~vidrestore.errors.UserError`. After ``max_retries`` retries the window, hence its
video, fails with a message naming the window (:class:`~vidrestore.workflows.worker.JobFailed`).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from ..errors import UserError
from .worker import VideoJob, WindowWorker, WorkerSpec

__all__ = ["RayConfig", "RayPool", "WorkerDied"]


class WorkerDied(RuntimeError):
    """The Ray actor solving a window died before returning (retried like any failure)."""


@dataclass(frozen=True)
class RayConfig:
    """Ray backend settings.

    Attributes:
        address: ``None``: start a local instance (or reuse an initialised one); ``"auto"``
            or ``"HOST:PORT"``: connect to a running cluster.
        workers: Number of actors (default: cluster GPUs / ``gpus_per_worker`` with CUDA,
            else cluster CPUs / ``cpus_per_worker``; at most the number of windows of a
            single video).
        cpus_per_worker: CPUs reserved per actor; also its torch thread count unless the job
            sets ``threads``.
        gpus_per_worker: GPUs per actor (default 1 with a CUDA device, else 0).
        max_retries: Retries of a window after its actor died or it raised.
        num_cpus: CPUs of a locally started instance (default: all).
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    max_retries: int = 2
    num_cpus: int | None = None


def import_ray():
    """``import ray`` with a clear error when the extra is not installed."""
    try:
        import ray
    except ImportError:
        raise UserError("the ray backend needs Ray: pip install 'vidrestore[ray]'") from None
    return ray


class _RayWorker:
    """Actor body: a :class:`WindowWorker` plus a small cache of fetched video problems."""

    def __init__(self, spec: WorkerSpec, worker_class: type = WindowWorker):
        self.worker = worker_class(spec, remote=True)
        self.jobs: OrderedDict[str, VideoJob] = OrderedDict()

    def run(self, uid: str, box: list, k: int):
        import ray

        job = self.jobs.get(uid)
        if job is None:
            job = ray.get(box[0])  # the ref is boxed so that it is fetched once per actor
            self.jobs[uid] = job
            while len(self.jobs) > 2:
                self.jobs.popitem(last=False)
        return self.worker.run(job, k)

    def pid(self) -> int:
        return os.getpid()

    def cpu_time(self) -> float:
        import time

        return time.process_time()


class RayPool:
    """A pool of Ray actors for :func:`~vidrestore.workflows.scale.run_videos` (context manager).

    Args:
        spec: What every actor solves (method, options, device, threads).
        config: :class:`RayConfig`.
        limit: Upper bound on the number of actors (e.g. the number of windows of one video).
    """

    worker_class = WindowWorker

    def __init__(self, spec: WorkerSpec, config: RayConfig | None = None, *, limit: int | None = None):
        self.config = config or RayConfig()
        if self.config.max_retries < 0:
            raise UserError(f"max_retries must be >= 0, got {self.config.max_retries}")
        if self.config.workers is not None and self.config.workers < 1:
            raise UserError(f"--workers must be >= 1, got {self.config.workers}")
        cuda = spec.device.startswith("cuda")
        self.gpus = float(self.config.gpus_per_worker if self.config.gpus_per_worker is not None else (1 if cuda else 0))
        self.cpus = float(self.config.cpus_per_worker)
        threads = spec.threads if spec.threads is not None else max(1, int(self.cpus))
        # A Ray actor sees only its own GPU(s), as cuda:0.
        self.spec = replace(spec, device="cuda" if cuda else spec.device, threads=threads)
        self.limit = limit
        self.max_retries = int(self.config.max_retries)
        self._ray = None
        self._started = False
        self._actors: list[Any] = []
        self._busy: dict[int, Any] = {}  # slot -> ref
        self._inflight: dict[Any, tuple[Any, int]] = {}  # ref -> (tag, slot)
        self._uid = itertools.count()
        self.replaced = 0

    # -- lifecycle
    def __enter__(self) -> "RayPool":
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
            if self.config.address:
                ray.init(address=self.config.address, **kw)
            else:
                ray.init(num_cpus=self.config.num_cpus, **kw)
            self._started = True
        try:
            n = self._num_workers()
            self._cls = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0, max_task_retries=0)(_RayWorker)
            self._actors = [self._new_actor() for _ in range(n)]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        ray = self._ray
        if ray is None:
            return
        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self._actors, self._busy, self._inflight = [], {}, {}
        if self._started:
            ray.shutdown()
            self._started = False

    def _num_workers(self) -> int:
        res = self._ray.cluster_resources()
        if self.gpus > 0 and res.get("GPU", 0) < self.gpus:
            raise UserError(f"the Ray cluster has {res.get('GPU', 0):g} GPUs; each worker needs {self.gpus:g}")
        if res.get("CPU", 0) < self.cpus:
            raise UserError(f"the Ray cluster has {res.get('CPU', 0):g} CPUs; each worker needs {self.cpus:g}")
        n = self.config.workers
        if n is None:
            n = int(res.get("GPU", 0) // self.gpus) if self.gpus > 0 else int(res.get("CPU", 1) // max(self.cpus, 1e-9))
        if self.limit is not None:
            n = min(n, int(self.limit))
        return max(1, int(n))

    def _new_actor(self):
        return self._cls.remote(self.spec, self.worker_class)

    @property
    def max_videos(self) -> int:
        return len(self._actors) + 1

    def pids(self) -> list[int]:
        """Process ids of the actors (diagnostics and tests)."""
        return self._ray.get([a.pid.remote() for a in self._actors])

    def cpu_times(self) -> list[float]:
        """CPU seconds used so far by each actor process (diagnostics and benchmarks)."""
        return self._ray.get([a.cpu_time.remote() for a in self._actors])

    # -- pool protocol of run_videos
    def put(self, job: VideoJob):
        return (f"{next(self._uid)}:{job.key}", self._ray.put(replace(job, sink=None)))

    def idle(self) -> bool:
        return len(self._busy) < len(self._actors)

    def busy(self) -> bool:
        return bool(self._inflight)

    def submit(self, tag: Any, handle, k: int) -> None:
        slot = next(i for i in range(len(self._actors)) if i not in self._busy)
        uid, ref = handle
        out = self._actors[slot].run.remote(uid, [ref], k)
        self._busy[slot] = out
        self._inflight[out] = (tag, slot)

    def wait(self):
        ray = self._ray
        from ray.exceptions import RayActorError, RayTaskError

        ready, _ = ray.wait(list(self._inflight), num_returns=1)
        ref = ready[0]
        tag, slot = self._inflight.pop(ref)
        del self._busy[slot]
        try:
            return tag, ray.get(ref), None
        except RayActorError as e:
            self._replace(slot)
            return tag, None, WorkerDied(f"Ray worker died ({_first_line(e)})")
        except RayTaskError as e:
            cause = e.cause if isinstance(getattr(e, "cause", None), Exception) else e
            return tag, None, cause
        except Exception as e:  # noqa: BLE001 - other Ray system errors: retried
            return tag, None, e

    def _replace(self, slot: int) -> None:
        try:
            self._ray.kill(self._actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001
            pass
        self._actors[slot] = self._new_actor()
        self.replaced += 1


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__
