"""Kernels from rows of the Jacobian, in memory-bounded blocks.

:class:`RowLinearization` is the base of every model whose derivatives come from outside
lazycheck (hand-written numpy models, JAX, PyTorch). A subclass supplies ``f``, ``jvp``,
``vjp`` and ``rows(lo, hi)`` (rows ``lo:hi`` of J, shape ``(hi - lo, p)``); this class builds
the full Jacobian, the tangent kernel ``J J^T``, the cross kernel ``J_w J_v^T`` and the
difference kernel ``(J_w - J_v)(J_w - J_v)^T`` from them by :func:`gram`, which holds J whole
only when it fits in a quarter of the memory limit (:mod:`lazycheck.resources`) and otherwise
multiplies blocks of rows, recomputing them as needed.

Accuracy of the difference kernel: its rows are the entrywise differences ``J_w[i] - J_v[i]``,
so ``||J_w - J_v||`` comes out with an absolute error of about ``eps ||J||`` (eps: the
accuracy of the model's derivative products, 1e-16 relative for exact formulas), i.e. a
relative error ``eps ||J|| / ||J_w - J_v||``; subtracting kernels (``K_w - 2 C + K_v``)
would give ``eps ||J||^2 / ||J_w - J_v||^2``, useless for the small steps of the beta search.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import numpy as np

from lazycheck import resources
from lazycheck.errors import LazycheckError
from lazycheck.models.base import Linearization

__all__ = ["RowLinearization", "check_output", "gram"]

Array = np.ndarray
Rows = Callable[[int, int], Array]

#: fraction of the memory limit the blocks of rows may take (frameworks need temporaries too)
_SHARE = 4


class RowLinearization(Linearization):
    """A linearization whose Jacobian is available by blocks of rows (see the module doc)."""

    n_params: int

    @abstractmethod
    def rows(self, lo: int, hi: int) -> Array:
        """Rows lo:hi of J_w, shape (hi - lo, p)."""

    @property
    def n(self) -> int:
        return int(self.f.shape[0])

    def jacobian(self) -> Array:
        self.check_jacobian_memory()
        return self.rows(0, self.n)

    def check_jacobian_memory(self) -> None:
        """Refuse (one line) when the full J would not fit in the memory limit."""
        resources.require(
            8.0 * self.n * self.n_params,
            f"the full Jacobian ({self.n} x {self.n_params})",
            "the kernels do not need it; reduce the data or the model",
        )

    def kernel(self) -> Array:
        return gram(self.rows, self.n, self.n_params)

    def cross_kernel(self, other: Linearization) -> Array:
        return gram(self.rows, self.n, self.n_params, _rows_of(other), int(other.f.shape[0]))

    def difference_kernel(self, other: Linearization) -> Array:
        theirs = _rows_of(other)
        return gram(lambda lo, hi: self.rows(lo, hi) - theirs(lo, hi), self.n, self.n_params)


def gram(rows_a: Rows, n: int, p: int, rows_b: Rows | None = None, m: int | None = None) -> Array:
    """A B^T for A (n x p) and B (m x p) given by blocks of rows (B = A when ``rows_b`` is None).

    Whole when A and B fit in a quarter of the memory limit; else A held whole and B streamed
    by blocks; else blocks of both (each block of B recomputed once per block of A)."""
    sym = rows_b is None
    rb: Rows = rows_a if rows_b is None else rows_b
    mm = n if m is None else int(m)
    resources.require(8.0 * n * mm, f"a kernel matrix ({n} x {mm})", "reduce the data")
    budget = resources.memory_limit() / _SHARE
    row = 8.0 * max(p, 1)
    if (n + (0 if sym else mm)) * row <= budget:
        A = rows_a(0, n)
        return A @ A.T if sym else A @ rb(0, mm).T
    k = int(budget // (2 * row))
    if k < 1:
        raise LazycheckError(
            f"one row of the Jacobian (p = {p}) needs {resources.format_bytes(row)}, over a "
            f"quarter of the memory limit of {resources.format_bytes(resources.memory_limit())}"
            " (--memory-limit); use a smaller model"
        )
    K = np.empty((n, mm))
    for lo in range(0, n, k):
        hi = min(lo + k, n)
        A = rows_a(lo, hi)
        start = lo if sym else 0
        for lo2 in range(start, mm, k):
            hi2 = min(lo2 + k, mm)
            B = A if (sym and lo2 == lo) else rb(lo2, hi2)
            K[lo:hi, lo2:hi2] = A @ B.T
            if sym and lo2 != lo:
                K[lo2:hi2, lo:hi] = K[lo:hi, lo2:hi2].T
    return K


def check_output(value: object, n: int, who: str, what: str = "f(w, X)") -> Array:
    """A model output as a float64 array of shape (n,); (n, 1) is accepted and flattened.

    Refuses other shapes and float32 (or lower) precision with one line naming ``who``."""
    dtype = getattr(value, "dtype", None)
    name = str(dtype) if dtype is not None else ""
    if any(t in name for t in ("float32", "float16", "bfloat16", "complex64")):
        raise LazycheckError(
            f"{who}: {what} is {name}; lazycheck computes in float64 throughout, so the "
            "model must compute in float64 (float32-only models are refused)"
        )
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape == (n, 1):
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise LazycheckError(
            f"{who}: {what} has shape {arr.shape}; expected ({n},) (or ({n}, 1)): one scalar "
            f"output per input row, for the {n} rows of X"
        )
    return arr


def _rows_of(lin: Linearization) -> Rows:
    if isinstance(lin, RowLinearization):
        return lin.rows
    J = lin.jacobian()
    return lambda lo, hi: J[lo:hi]
