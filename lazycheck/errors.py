"""The one error type lazycheck raises for bad input.

Every problem a user can cause (a spec key, a data file, an option value) is raised as
:class:`LazycheckError` with a single-line message naming the file, the key and what is
allowed. The CLI prints it to stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

__all__ = ["LazycheckError", "NumericalError"]


class LazycheckError(ValueError):
    """Bad input: a spec, data file or option that lazycheck cannot use.

    The message is one line: ``<where>: <what is wrong>; <what is allowed>``.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class NumericalError(LazycheckError):
    """Numerics that cannot be trusted (a solver that failed, a step size that collapsed)."""
