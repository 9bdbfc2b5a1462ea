"""Progress inside one step: long network calls report how much of the current step is done.

A progress bar (:func:`vidrestore.workflows.progress.progress`) advances once per solver step.
On large frames one step can take a minute (a diffusion step runs the prior on every spatial
tile of every frame), so the code that splits a step into pieces (:func:`vidrestore.tiling.tiled_map`,
the prior's frame chunks) calls :func:`report_fraction` after each piece, and the innermost
open bar shows the fraction. Outside a bar the call does nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

__all__ = ["report_fraction", "fraction_listener"]

_LISTENER: ContextVar[Callable[[float], None] | None] = ContextVar("vidrestore_fraction_listener", default=None)


def report_fraction(fraction: float) -> None:
    """Tell the innermost progress bar that ``fraction`` (0-1) of its current step is done."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(min(max(float(fraction), 0.0), 1.0))


@contextmanager
def fraction_listener(listener: Callable[[float], None]):
    """Send the :func:`report_fraction` calls made inside this block to ``listener``."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)
