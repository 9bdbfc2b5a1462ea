"""User-facing errors.

:class:`UserError` marks a mistake in the user's input (bad file, bad spec, bad shape).
The CLI prints its message on one line and exits with code 2; library users catch it as a
``ValueError``.

Warnings about the user's data (:func:`warn`) are :class:`VidrestoreWarning` instances; the CLI prints
each on one line (``vidrestore: warning: ...``).
"""

import warnings


class UserError(ValueError):
    """An input error that the user can fix; the message names the problem."""


class VidrestoreWarning(UserWarning):
    """Something the user should know about their data (e.g. a truncated input accepted)."""


def error_line(exc: BaseException) -> str | None:
    """The one line shown for a user-facing error, the same in the CLI and the web app:
    ``vidrestore: error: MESSAGE`` for a :class:`UserError` and for an ``OSError`` on a user's
    path (missing file, permissions, disk full, read-only file system); ``None`` for anything
    else (a bug, shown with its traceback)."""
    if isinstance(exc, UserError):
        return f"vidrestore: error: {exc}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"vidrestore: error: {exc.strerror or exc}{where}"
    return None


def warn(message: str) -> None:
    """Issue a :class:`VidrestoreWarning` (printed by the CLI as one line on stderr)."""
    warnings.warn(message, VidrestoreWarning, stacklevel=3)
