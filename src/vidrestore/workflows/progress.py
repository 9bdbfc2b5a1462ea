"""Progress bars for long loops (tqdm), silenced by ``quiet``."""

from __future__ import annotations

from contextlib import contextmanager

from tqdm.auto import tqdm


@contextmanager
def progress(total: int, desc: str, quiet: bool = False):
    """Yield a solver callback that advances a tqdm bar by one per call."""
    bar = tqdm(total=total, desc=desc, disable=quiet, leave=False, dynamic_ncols=True)
    try:
        yield lambda info=None: bar.update(1)
    finally:
        bar.close()
