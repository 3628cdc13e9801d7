"""``lazycheck kernel``: the empirical tangent kernel K0 against its infinite-width limit.

:func:`compare_kernels` computes K0 = J0 J0^T at the problem's w0 and the analytic K_inf of the
same architecture (:mod:`lazycheck.models.infinite_width`), and returns a :class:`KernelReport`:
the relative distance ||K0 - K_inf|| / ||K_inf|| in operator and Frobenius norm, and the extreme
eigenvalues lambda of both kernels with sigma = sqrt(lambda), the singular values of the
Jacobian whose kernel it is (sigma_min, sigma_max of J0 for K0; of the limit's feature map for
K_inf). What each number is:

* K0's eigenvalues: exact (to floating point) for this one draw of w0;
* K_inf's: exact (closed form) or from quadrature with a stated relative error;
* the distances: a sampled quantity, one initialization (the seed); they shrink like
  width^-1/2.

JSON output follows ``lazycheck/schemas/kernel.schema.json`` (``schema_version`` 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck._version import __version__
from lazycheck.jsonio import encode_float
from lazycheck.models.infinite_width import InfiniteWidthKernel, infinite_width_ntk
from lazycheck.problem import Problem

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["KERNEL_SCHEMA_VERSION", "KernelReport", "KernelStats", "compare_kernels"]

KERNEL_SCHEMA_VERSION = 1
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class KernelStats:
    """Extreme eigenvalues of a kernel K = J J^T, and sigma = sqrt(lambda) (singular values of
    J; a negative rounding-level lambda gives sigma = 0)."""

    lambda_min: float
    lambda_max: float

    @property
    def sigma_min(self) -> float:
        return math.sqrt(max(self.lambda_min, 0.0))

    @property
    def sigma_max(self) -> float:
        return math.sqrt(max(self.lambda_max, 0.0))

    @property
    def condition_number(self) -> float:
        """lambda_max / lambda_min (inf when lambda_min <= 0)."""
        return self.lambda_max / self.lambda_min if self.lambda_min > 0 else math.inf

    @classmethod
    def of(cls, K: np.ndarray) -> KernelStats:
        lam = np.linalg.eigvalsh(K)
        return cls(float(lam[0]), float(lam[-1]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda_min": encode_float(self.lambda_min),
            "lambda_max": encode_float(self.lambda_max),
            "sigma_min": encode_float(self.sigma_min),
            "sigma_max": encode_float(self.sigma_max),
            "condition_number": encode_float(self.condition_number),
        }


@dataclass(frozen=True)
class KernelReport:
    """The result of ``lazycheck kernel``.

    Attributes:
        status: ``"ok"``, or ``"singular_limit"`` when K_inf is singular to working precision
            (lambda_min <= n eps lambda_max): sigma_min(J0) -> 0 as the width grows, so
            Assumption 1 fails in the limit.
        message: one line saying so, with the relative distance.
        rel_error_op, rel_error_fro: ||K0 - K_inf|| / ||K_inf|| (operator, Frobenius norm).
        rel_error_lambda_min: |lambda_min(K0) - lambda_min(K_inf)| / lambda_min(K_inf).
        empirical, limit: eigenvalue statistics of K0 and K_inf.
        infinite: how K_inf was computed (method, quadrature error, limit or equivalent).
        K0, K_inf: the two kernels (n x n).
    """

    spec: str
    seed: int
    n: int
    p: int
    widths: tuple[int, ...]
    activation: str
    parameterization: str
    init: str
    bias: bool
    status: str
    message: str
    rel_error_op: float
    rel_error_fro: float
    rel_error_lambda_min: float
    empirical: KernelStats
    limit: KernelStats
    infinite: InfiniteWidthKernel = field(repr=False)
    K0: np.ndarray = field(repr=False)
    K_inf: np.ndarray = field(repr=False)

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def limit_kind(self) -> str:
        """How K_inf's numbers are known: exact (closed form) or quadrature."""
        if self.infinite.method == "closed form":
            return "exact (closed form)"
        return f"quadrature (rel. error <= {self.infinite.quadrature_error:.1e})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (schema ``lazycheck/schemas/kernel.schema.json``)."""
        inf = self.infinite
        return {
            "schema": "lazycheck.kernel",
            "schema_version": KERNEL_SCHEMA_VERSION,
            "lazycheck_version": __version__,
            "spec": self.spec,
            "seed": self.seed,
            "n": self.n,
            "p": self.p,
            "model": {
                "widths": list(self.widths),
                "depth": self.depth,
                "activation": self.activation,
                "parameterization": self.parameterization,
                "init": self.init,
                "bias": self.bias,
            },
            "status": self.status,
            "message": self.message,
            "relative_error": {
                "operator": encode_float(self.rel_error_op),
                "frobenius": encode_float(self.rel_error_fro),
                "lambda_min": encode_float(self.rel_error_lambda_min),
                "kind": f"sampled: one initialization (seed {self.seed})",
            },
            "empirical": {**self.empirical.to_dict(), "kind": "exact (this draw of w0)"},
            "infinite_width": {
                **self.limit.to_dict(),
                "kind": self.limit_kind,
                "limit": inf.limit,
                "method": inf.method,
                "quadrature_nodes": inf.max_nodes,
                "quadrature_error": encode_float(inf.quadrature_error),
            },
        }

    def render(self, console: Console) -> None:
        """Print the table and the one-line verdict."""
        from rich.table import Table
        from rich.text import Text

        arch = " x ".join(str(m) for m in self.widths)
        table = Table(
            title=Text(f"lazycheck kernel: {self.spec}  (n = {self.n}, p = {self.p})"),
            caption=Text(
                f"{self.activation}, widths {arch}, {self.parameterization} parameterization; "
                f"K_inf: {self.infinite.limit}"
            ),
        )
        # cells wrap (a long word folds) rather than being cut: nothing is lost on a narrow terminal
        table.add_column("quantity", overflow="fold")
        table.add_column("K0 = J0 J0^T", justify="right", overflow="fold")
        table.add_column("K_inf", justify="right", overflow="fold")
        for name in ("lambda_min", "lambda_max", "sigma_min", "sigma_max", "condition_number"):
            label = _LABELS.get(name, name)
            table.add_row(
                Text(label),
                _fmt(getattr(self.empirical, name)),
                _fmt(getattr(self.limit, name)),
            )
        table.add_row(Text("kind"), Text("exact (this w0)"), Text(self.limit_kind))
        console.print(table)
        rows = (
            ("||K0 - K_inf||_op / ||K_inf||_op", self.rel_error_op),
            ("||K0 - K_inf||_F / ||K_inf||_F", self.rel_error_fro),
            ("|lambda_min(K0) - lambda_min(K_inf)| / lambda_min(K_inf)", self.rel_error_lambda_min),
        )
        for label, value in rows:
            console.print(f"  {label} = {value:.4g}", highlight=False, markup=False)
        console.print(
            f"  (sampled: one initialization, seed {self.seed}; expected to shrink like "
            "width^-1/2)",
            highlight=False,
            markup=False,
        )
        style = "bold green" if self.status == "ok" else "bold yellow"
        console.print(f"verdict: {self.message}", style=style, highlight=False, markup=False)


def compare_kernels(problem: Problem, *, progress: Progress | None = None) -> KernelReport:
    """K0 at the problem's w0 against the analytic infinite-width kernel of its architecture.

    Raises :class:`~lazycheck.errors.LazycheckError` when the model is not the built-in MLP.
    """
    mspec = problem.spec.model
    task = progress.add_task("kernel: K_inf", total=2) if progress else None
    inf = infinite_width_ntk(mspec, problem.X)  # raises first for unsupported models
    if progress is not None and task is not None:
        progress.update(task, advance=1, description="kernel: K0")
    K0 = problem.kernel(problem.w0)
    if progress is not None and task is not None:
        progress.update(task, advance=1)
    K_inf = inf.theta
    diff = K0 - K_inf
    op_inf = float(np.linalg.norm(K_inf, 2))
    rel_op = _ratio(float(np.linalg.norm(diff, 2)), op_inf)
    rel_fro = _ratio(float(np.linalg.norm(diff)), float(np.linalg.norm(K_inf)))
    emp, lim = KernelStats.of(K0), KernelStats.of(K_inf)
    rel_lmin = _ratio(abs(emp.lambda_min - lim.lambda_min), lim.lambda_min)
    status, message = _verdict(problem.n, mspec.widths, emp, lim, rel_op, rel_fro)
    return KernelReport(
        spec=problem.spec.label,
        seed=problem.seed,
        n=problem.n,
        p=problem.p,
        widths=tuple(mspec.widths),
        activation=mspec.activation,
        parameterization=mspec.parameterization,
        init=mspec.init,
        bias=mspec.bias,
        status=status,
        message=message,
        rel_error_op=rel_op,
        rel_error_fro=rel_fro,
        rel_error_lambda_min=rel_lmin,
        empirical=emp,
        limit=lim,
        infinite=inf,
        K0=K0,
        K_inf=K_inf,
    )


def _verdict(
    n: int,
    widths: tuple[int, ...],
    emp: KernelStats,
    lim: KernelStats,
    rel_op: float,
    rel_fro: float,
) -> tuple[str, str]:
    arch = "x".join(str(m) for m in widths)
    dist = (
        f"||K0 - K_inf|| / ||K_inf|| = {rel_op:.3g} (operator), {rel_fro:.3g} (Frobenius) "
        f"at width {arch}"
    )
    if lim.lambda_min <= n * _EPS * lim.lambda_max:
        return "singular_limit", (
            f"K_inf is singular (lambda_min = {lim.lambda_min:.3g} <= n eps lambda_max): "
            "sigma_min(J0) -> 0 as the width grows, so Assumption 1 fails in the limit; " + dist
        )
    return "ok", (
        f"{dist}; sigma_min(J0) = {emp.sigma_min:.4g} against {lim.sigma_min:.4g} in the limit"
    )


_LABELS = {
    "sigma_min": "sigma_min = sqrt(lambda_min)",
    "sigma_max": "sigma_max = sqrt(lambda_max)",
    "condition_number": "lambda_max / lambda_min",
}


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.6g}"
