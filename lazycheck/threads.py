"""BLAS threads: how many threads numpy's linear algebra may use, chosen by the size of the work.

On a loaded machine (every CI box, a shared workstation) a BLAS thread pool that spins on small
products burns several times the CPU for the same result: measured on a 2-core machine under
load, the beta search at n = 50 took 44 s with two OpenBLAS threads and 1.7 s with one. So
lazycheck runs small products on one thread and only the large ones on every thread allowed:

* :func:`set_threads` (the ``--threads`` option; every command calls it) sets the cap, and
  makes one thread the default for everything outside a large product;
* :func:`blas_threads` is the context manager put around each heavy BLAS/LAPACK call, given
  its flop count: at or above :data:`PARALLEL_FLOPS` it runs on the cap, below on one thread.

Results do not depend on the count, because only products whose bits do not depend on it run
in parallel: the kernel's symmetric Gram products (``dsyrk``, each entry summed by one thread
in the same order). OpenBLAS's ``dgemm`` and LAPACK's ``syevd`` were measured to change their
last bits between one and two threads (1e-16 and 7e-12 absolute on 150- and 600-point
problems), so they stay on one thread. ``tests/test_threads.py`` pins the kernels and
``bound --format json`` byte for byte under ``--threads 1`` and ``--threads 2``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PARALLEL_FLOPS", "blas_threads", "max_threads", "set_threads", "threads"]

#: a BLAS call of at least this many flops runs on every thread allowed (about 0.1 s of work on
#: one core). Set high on purpose: on the 2-core machine under a load of 8, two OpenBLAS
#: threads made a difference kernel at n = 400 (2e9 flops) six times slower than one thread.
PARALLEL_FLOPS = 4e9

_controller: Any = None
_requested: int | None = None
_policy = False  # True once set_threads has run: one thread outside large products
_libs: list[Any] | None = None


def set_threads(n: int | None) -> None:
    """Cap BLAS at ``n`` threads (``None``: every core) for the rest of the process, and run
    everything but the large products (:func:`blas_threads`) on one thread."""
    global _requested, _policy
    _requested = n
    _policy = True
    for lib in _blas_libs():
        lib.set_num_threads(1)


def threads() -> int | None:
    """The thread count set by :func:`set_threads`, or ``None`` (the BLAS default)."""
    return _requested


def max_threads() -> int:
    """The threads a large product may use: the ``--threads`` cap, else every core."""
    return _requested if _requested is not None else max(os.cpu_count() or 1, 1)


@contextmanager
def blas_threads(flops: float) -> Iterator[None]:
    """Run the enclosed BLAS/LAPACK calls on :func:`max_threads` threads when they take at
    least :data:`PARALLEL_FLOPS` flops, else on one; the previous setting is restored."""
    want = max_threads() if flops >= PARALLEL_FLOPS else 1
    if (not _policy and _requested is None and flops >= PARALLEL_FLOPS) or (_policy and want == 1):
        # untouched: the library's default (the Python API without set_threads), or the one
        # thread the policy keeps outside large products (no threadpoolctl calls: 16 us each
        # time, 3% of verify at n = 50)
        yield
        return
    libs = _blas_libs()
    old = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(want)
    try:
        yield
    finally:
        for lib, k in zip(libs, old, strict=True):
            lib.set_num_threads(k)


def _blas_libs() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries numpy and scipy loaded."""
    global _controller, _libs
    if _libs is None:
        import numpy  # noqa: F401  (load the BLAS before inspecting)
        import scipy.linalg  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
        _libs = [lib for lib in _controller.lib_controllers if lib.user_api == "blas"]
    return _libs
