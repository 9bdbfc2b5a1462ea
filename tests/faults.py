"""Fault injection for the scheduler tests: a test-only window worker that fails on purpose.

``inject_fault(monkeypatch, window=K, item=SUBSTRING, mode="raise" | "exit", once=MARKER)``
makes the local and the Ray pools build :func:`faulty_worker` workers. Matching windows (all
when ``window``/``item`` are absent) raise a RuntimeError (``raise``) or end the worker
process with ``os._exit(3)`` (``exit``; remote workers only, a local one raises); with
``once`` only the first match fires (it creates the marker file, so this works across
processes).
"""

from __future__ import annotations

from vidrestore.workflows.distributed import RayPool
from vidrestore.workflows.scale import LocalPool
from vidrestore.workflows.worker import WindowWorker


def faulty_worker(**fault) -> type:
    """A :class:`WindowWorker` subclass that fails as ``fault`` says before solving a window.

    The class is made inside this function so that Ray ships it to the actors by value (the
    tests folder is not importable there); its method imports what it needs itself.
    """

    class FaultyWorker(WindowWorker):
        def run(self, job, k, callback=None):
            import os

            hit = ("window" not in fault or int(fault["window"]) == k) and ("item" not in fault or str(fault["item"]) in job.key)
            if hit and fault.get("once"):
                try:
                    os.close(os.open(str(fault["once"]), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    hit = False
            if hit:
                if fault.get("mode") == "exit" and self.remote:
                    os._exit(3)
                raise RuntimeError(f"injected fault in window {k} of {job.key}")
            return super().run(job, k, callback)

    return FaultyWorker


def inject_fault(monkeypatch, **fault) -> None:
    """Make every pool built from now on (until ``monkeypatch.undo()``) use a faulty worker."""
    cls = faulty_worker(**fault)
    monkeypatch.setattr(LocalPool, "worker_class", cls)
    monkeypatch.setattr(RayPool, "worker_class", cls)


def clear_faults(monkeypatch) -> None:
    """Back to the production worker."""
    monkeypatch.setattr(LocalPool, "worker_class", WindowWorker)
    monkeypatch.setattr(RayPool, "worker_class", WindowWorker)
