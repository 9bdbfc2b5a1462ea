"""Progress bars for long loops (tqdm), silenced by ``quiet``.

A bar advances once per solver step (a diffusion step of one window, a CG or ADMM iteration,
a frame, a sampler step). When the first step shows that the job will take longer than half a
minute, one line estimates the total time on this machine; when the job ends, one line gives
the steps done and the wall time (and says when an iterative solver stopped early because it
converged).

Other front ends (the web app of ``vidrestore ui``) follow the same steps with
:func:`progress_listener`: every :func:`progress` block opened inside it reports
``(done, total, desc)`` to the listener after each step.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

from tqdm.auto import tqdm

from ..heartbeat import fraction_listener

#: Listeners of the progress blocks opened in this context (:func:`progress_listener`).
_LISTENERS: ContextVar[tuple[Callable[[int, int, str], None], ...]] = ContextVar("vidrestore_progress_listeners", default=())

#: Jobs whose first step predicts more than this many seconds get an up-front estimate line.
ESTIMATE_AFTER_S = 30.0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@contextmanager
def progress_listener(listener: Callable[[int, int, str], None]):
    """Report every step of the :func:`progress` blocks opened inside this block to
    ``listener(done, total, desc)`` (also once with ``done = 0`` when a block opens, and with a
    fractional ``done`` at most twice a second while a long step reports its pieces through
    :func:`vidrestore.heartbeat.report_fraction`), in addition to their bars. Listeners nest; they are per thread/task (a context variable)."""
    token = _LISTENERS.set(_LISTENERS.get() + (listener,))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


@contextmanager
def progress(total: int, desc: str, quiet: bool = False, *, unit: str = "steps", stream=None):
    """Yield a callback that advances a tqdm bar by one step per call (``total`` steps;
    ``callback.grow(k)`` adds ``k`` steps to the total when more work becomes known).

    Unless ``quiet``: after the first step, a line ``desc: about N min on this machine`` when
    the extrapolated total exceeds :data:`ESTIMATE_AFTER_S`; when the block ends normally,
    ``desc: K/total UNIT in S`` (``stream``: where these lines go, default stderr)."""
    out = stream if stream is not None else sys.stderr
    bar = tqdm(total=total, desc=desc, unit=unit[:-1] if unit.endswith("s") else unit, disable=quiet, leave=False,
               dynamic_ncols=True, mininterval=0.5, file=out)
    t0 = time.perf_counter()
    state = {"n": 0}
    listeners = _LISTENERS.get()
    for listener in listeners:
        listener(0, total, desc)

    def grow(k: int) -> None:
        # more work became known (e.g. the windows of the next video of a batch)
        nonlocal total
        total += int(k)
        bar.total = total
        bar.refresh()

    last = {"refresh": t0}

    def fraction(frac: float) -> None:
        # part of the current step is done (network tiles/chunks): show it, at most twice a second
        now = time.perf_counter()
        if now - last["refresh"] >= 0.5:
            done = state["n"] + round(0.99 * frac, 2)
            bar.n = done
            bar.refresh()
            for listener in listeners:
                listener(done, total, desc)
            last["refresh"] = now

    def step(info=None):
        bar.n = state["n"]
        bar.update(1)
        state["n"] += 1
        for listener in listeners:
            listener(state["n"], total, desc)
        if state["n"] == 1 and not quiet and total > 1:
            estimate = (time.perf_counter() - t0) * total
            if estimate > ESTIMATE_AFTER_S:
                bar.write(f"{desc}: about {_duration(estimate)} on this machine ({total} steps)", file=out)

    step.grow = grow  # type: ignore[attr-defined]
    try:
        with fraction_listener(fraction):
            yield step
    except BaseException:
        bar.close()
        raise
    bar.close()
    if not quiet:
        n = state["n"]
        early = f" (stopped early after {n} of {total}: converged)" if 0 < n < total else ""
        print(f"{desc}: {min(n, total)}/{total} {unit} in {_duration(time.perf_counter() - t0)}{early}", file=out)
