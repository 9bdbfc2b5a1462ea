"""Atomic file and folder writes.

Every output of vidrestore (videos, frame folders, metric JSON, plots, sidecars) is written
to a hidden temporary sibling first (``.<name>.tmp-<pid>-<random>`` in the same directory)
and moved into place only once it is complete, so an interrupted run never leaves a truncated
or half-populated output behind, and an existing output stays untouched until the new one
is ready.

Leftovers: an exception (including ``KeyboardInterrupt``) deletes the temporary path; so does
SIGTERM once :func:`install_sigterm_cleanup` is installed (the CLI does); after a SIGKILL or a
power loss, :func:`sweep_stale` (run before every write and by the CLI before a job starts)
deletes the temporaries of our naming pattern next to an output whose process is gone.
Disk full, read-only file system, quota and permission errors become :class:`UserError`
naming the output.

Example:
    >>> with atomic_path("out/report.json") as tmp:   # doctest: +SKIP
    ...     tmp.write_text("{}")
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "install_sigterm_cleanup", "sweep_stale"]

# Keep temporary names below common 255-byte file-name limits.
_MAX_STEM = 180

#: Write errors the user can fix (full disk, read-only file system, quota, permissions, ...).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG})

#: Temporary paths being written by this process (removed by the SIGTERM handler).
_IN_FLIGHT: set[Path] = set()


def _sibling(final: Path, tag: str) -> Path:
    """A hidden, random sibling name of ``final`` such as ``.name.tmp-1234-1a2b3c4d`` (pid, random)."""
    name = final.name[:_MAX_STEM]
    return final.parent / f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep_stale(final_path: str | os.PathLike) -> list[Path]:
    """Delete leftover temporaries of ``final_path`` (``.<name>.tmp-<pid>-<hex>`` and
    ``.<name>.old-<pid>-<hex>`` siblings, and the older pid-less ``.<name>.tmp-<hex>``) whose
    writing process no longer runs on this machine. Returns the paths deleted; never raises."""
    final = Path(os.fspath(final_path))
    pattern = re.compile(rf"^\.{re.escape(final.name[:_MAX_STEM])}\.(?:tmp|old)-(?:(\d+)-)?[0-9a-f]{{8}}$")
    removed = []
    try:
        entries = list(final.parent.iterdir()) if final.name and final.parent.is_dir() else []
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and entry not in _IN_FLIGHT and not (m.group(1) and _alive(int(m.group(1)))):
            _remove(entry)
            removed.append(entry)
    return removed


def _on_sigterm(signum, frame):
    for tmp in list(_IN_FLIGHT):
        _remove(tmp)
    raise SystemExit(128 + signum)


def install_sigterm_cleanup() -> bool:
    """Make SIGTERM delete this process's in-flight temporaries and exit with 143 (128 +
    SIGTERM), as SIGINT already does through ``KeyboardInterrupt``. Only possible from the main
    thread; returns whether the handler was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def _write_error(final: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {final}: {exc.strerror or exc}")


def _remove(path: Path) -> None:
    """Delete a file, link or folder if it exists; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()
    except OSError:
        pass


def _reserve(final: Path, is_dir: bool) -> Path:
    """Create (exclusively) the temporary file or folder next to ``final``."""
    for _ in range(100):
        tmp = _sibling(final, "tmp")
        try:
            if is_dir:
                os.mkdir(tmp)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise OSError(f"could not create a temporary name next to {final}")


def _commit_dir(tmp: Path, final: Path) -> None:
    """Move folder ``tmp`` to ``final``; an existing ``final`` is moved aside, then deleted."""
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return
    aside = _sibling(final, "old")
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)  # put the previous output back
        raise
    _remove(aside)


@contextmanager
def atomic_path(final_path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path that replaces ``final_path`` when the block succeeds.

    The temporary path is a hidden sibling of ``final_path`` (same directory, hence same
    file system, so the final move is an atomic rename). Parent directories are created.

    * ``is_dir=False``: the yielded path is an existing, empty file that the caller
      overwrites; on success it replaces ``final_path`` with :func:`os.replace`.
    * ``is_dir=True``: the yielded path is an existing, empty folder that the caller fills;
      on success an existing ``final_path`` is renamed aside, the temporary folder is
      renamed into place and the old one is deleted.

    On any exception (including ``KeyboardInterrupt``) the temporary path is deleted, the
    existing ``final_path`` is left untouched and the exception propagates.

    Args:
        final_path: Destination path (a trailing slash is ignored).
        is_dir: Whether the output is a folder.

    Yields:
        The temporary :class:`~pathlib.Path` to write to.

    Raises:
        UserError: If ``final_path`` is an existing folder and ``is_dir`` is false, or the
            write fails with one of :data:`WRITE_ERRNOS` (disk full, read-only, quota, ...).
    """
    final = Path(os.fspath(final_path))
    if not final.name:
        raise UserError(f"cannot write to {final_path!s}: the path has no file name")
    if not is_dir and final.is_dir():
        raise UserError(f"cannot write file {final}: a folder with that name exists")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(final)
        tmp = _reserve(final, is_dir)
    except OSError as e:
        if e.errno in WRITE_ERRNOS:
            raise _write_error(final, e) from None
        raise
    _IN_FLIGHT.add(tmp)
    try:
        yield tmp
        if is_dir:
            _commit_dir(tmp, final)
        else:
            os.replace(tmp, final)
    except OSError as e:
        _remove(tmp)
        if e.errno in WRITE_ERRNOS:
            raise _write_error(final, e) from None
        raise
    except BaseException:
        _remove(tmp)
        raise
    finally:
        _IN_FLIGHT.discard(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path`` (parents created, flushed to disk first).

    Args:
        path: Destination file.
        data: Bytes to write.

    Returns:
        The destination as a :class:`~pathlib.Path`.
    """
    final = Path(os.fspath(path))
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return final


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path`` (see :func:`atomic_write_bytes`).

    Args:
        path: Destination file.
        text: Text to write.
        encoding: Text encoding.

    Returns:
        The destination as a :class:`~pathlib.Path`.
    """
    return atomic_write_bytes(path, text.encode(encoding))
