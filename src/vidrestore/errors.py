"""User-facing errors.

:class:`UserError` marks a mistake in the user's input (bad file, bad spec, bad shape).
The CLI prints its message on one line and exits with code 2; library users catch it as a
``ValueError``.
"""


class UserError(ValueError):
    """An input error that the user can fix; the message names the problem."""
