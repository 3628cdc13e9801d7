"""BLAS threads: how many threads numpy's linear algebra may use.

:func:`set_threads` (the ``--threads`` option) caps the BLAS thread pools through
``threadpoolctl``. Results do not depend on the count: lazycheck's reductions are ordered the
same whatever the number of threads (tests pin this to the last bit).
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_threads", "threads"]

_controller: Any = None
_requested: int | None = None


def set_threads(n: int | None) -> None:
    """Cap BLAS at ``n`` threads for the rest of the process; ``None`` leaves the default."""
    global _controller, _requested
    if n is None:
        return
    from threadpoolctl import ThreadpoolController

    if _controller is None:
        _controller = ThreadpoolController()
    _controller.limit(limits=n, user_api="blas")
    _requested = n


def threads() -> int | None:
    """The thread count set by :func:`set_threads`, or ``None`` (the BLAS default)."""
    return _requested
