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


def warn(message: str) -> None:
    """Issue a :class:`VidrestoreWarning` (printed by the CLI as one line on stderr)."""
    warnings.warn(message, VidrestoreWarning, stacklevel=3)
