"""``lazycheck bound``: every constant of Theorem 2 with its provenance, and the minimum alpha.

:func:`compute_bound` returns a :class:`BoundReport`: a list of :class:`Quantity` rows (name,
value, kind, formula, note) and the verdict. Kinds say what a number is:

* ``exact``: computed to floating-point accuracy (sigma's carry a stated accuracy);
* ``certified upper bound`` / ``certified``: follows from a certified beta;
* ``sampled lower bound`` / ``sampled estimate``: rests on a sampled beta, i.e. optimistic;
* ``given``: from the spec or the command line.

The verdict rests on one beta, chosen in this order: exact (relu: inf; linear model: 0),
given, certified, sampled. When it rests on a sampled beta the verdict says so.
JSON output follows ``lazycheck/schemas/bound.schema.json`` (``schema_version`` 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck._version import __version__
from lazycheck.beta import (
    BetaEstimate,
    certified_beta_auto,
    critical_radius,
    sampled_beta,
)
from lazycheck.console import stage
from lazycheck.display import Displayable
from lazycheck.hypothesis import (
    AlphaSolution,
    b_lin,
    b_prime,
    initial_loss,
    radius_kappa,
    safe_norm,
    solve_alpha,
    solve_alpha_on_ball,
)
from lazycheck.jsonio import encode_float
from lazycheck.models.base import Linearization
from lazycheck.numerics.spectrum import Spectrum, jacobian_spectrum
from lazycheck.problem import Problem
from lazycheck.status import BoundStatus

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["BOUND_SCHEMA_VERSION", "BoundReport", "Quantity", "compute_bound"]

BOUND_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Quantity:
    """One reported number: its value, what kind of number it is, and its formula."""

    name: str
    value: float
    kind: str
    formula: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": encode_float(self.value),
            "kind": self.kind,
            "formula": self.formula,
            "note": self.note,
        }


@dataclass(frozen=True)
class BoundReport(Displayable):
    """The result of ``lazycheck bound``.

    Attributes:
        status: ``"applies"`` (alpha in the feasible set), ``"alpha_too_small"``,
            ``"alpha_outside"`` (alpha beyond a bounded feasible interval), ``"infeasible"``
            (no alpha works), ``"assumption_fails"`` (rank or p > n, or beta infinite), or
            ``"not_computable"`` (a constant or alpha_min overflows float64: no verdict).
        message: the one-line verdict.
        quantities: every reported number, in display order.
        spectrum, betas, solutions: the underlying computations.
        beta_basis: which beta the verdict rests on.
    """

    spec: str
    seed: int
    n: int
    p: int
    alpha: float
    status: BoundStatus
    message: str
    quantities: tuple[Quantity, ...]
    spectrum: Spectrum = field(repr=False)
    betas: dict[str, BetaEstimate] = field(repr=False)
    solutions: dict[str, AlphaSolution] = field(repr=False)
    beta_basis: str = ""
    r_star: float = math.nan

    @property
    def feasible(self) -> bool:
        """Some alpha satisfies the hypothesis (with the beta the verdict rests on)."""
        sol = self.solutions.get(self.beta_basis)
        return bool(sol and sol.feasible and self.spectrum.ok)

    @property
    def alpha_ok(self) -> bool:
        return self.status == "applies"

    def quantity(self, name: str) -> Quantity:
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (schema ``lazycheck/schemas/bound.schema.json``)."""
        sol = self.solutions.get(self.beta_basis)
        return {
            "schema": "lazycheck.bound",
            "schema_version": BOUND_SCHEMA_VERSION,
            "lazycheck_version": __version__,
            "spec": self.spec,
            "seed": self.seed,
            "n": self.n,
            "p": self.p,
            "alpha": encode_float(self.alpha),
            "status": self.status,
            "verdict": self.message,
            "feasible": self.feasible,
            "alpha_satisfies_hypothesis": self.alpha_ok,
            "beta_basis": self.beta_basis,
            "alpha_range": {
                "status": sol.status if sol else "empty",
                "min": encode_float(sol.alpha_min if sol else math.nan),
                "max": encode_float(sol.alpha_max if sol else math.nan),
            },
            "assumption1": {
                "status": self.spectrum.status,
                "message": self.spectrum.message,
                "rank": self.spectrum.rank,
                "rank_tolerance": encode_float(self.spectrum.tol),
                "method": self.spectrum.method,
                "sigma_min_abs_error": encode_float(self.spectrum.sigma_min_abs_error),
            },
            "beta_estimates": {
                name: {
                    "value": encode_float(b.value),
                    "kind": b.kind,
                    "radius": encode_float(b.radius),
                    "radius_consistent": b.consistent,
                    "method": b.method,
                    "samples": b.samples,
                    "iterations": b.iterations,
                    "converged": b.converged,
                    "message": b.message,
                }
                for name, b in self.betas.items()
            },
            "quantities": {q.name: q.to_dict() for q in self.quantities},
        }

    def __repr__(self) -> str:
        return self._short_repr()

    def _repr_fields(self) -> dict[str, Any]:
        sol = self.solutions.get(self.beta_basis)
        return {
            "spec": self.spec,
            "alpha": self.alpha,
            "alpha_min": sol.alpha_min if sol else math.nan,
            "beta_basis": self.beta_basis,
            "status": self.status,
            "message": self.message,
        }

    def verdict_line(self) -> str:
        """The one verdict line (what ``--quiet`` prints)."""
        return f"verdict: {self.message}"

    def _renderables(self) -> list[Any]:
        """The table, the notes and the verdict."""
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=Text(f"lazycheck bound: {self.spec}  (n = {self.n}, p = {self.p})"),
            caption=Text(f"the verdict rests on beta[{self.beta_basis}]"),
        )
        table.add_column("quantity", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("kind")
        table.add_column("formula")
        for q in self.quantities:
            if q.formula.startswith("= "):
                continue  # alias rows (beta, alpha_min, B) exist for the JSON schema
            table.add_row(Text(q.name), _fmt(q.value), Text(q.kind), Text(q.formula))
        out: list[Any] = [table]
        out += [Text(f"  {q.name}: {q.note}") for q in self.quantities if q.note]
        style = "bold green" if self.status == "applies" else "bold yellow"
        if self.status in ("infeasible", "assumption_fails"):
            style = "bold red"
        out.append(Text(self.verdict_line(), style=style))
        return out


def compute_bound(
    problem: Problem, *, alpha: float | None = None, progress: Progress | None = None
) -> BoundReport:
    """Estimate sigma_min, sigma_max, beta and L0, and solve for the minimum alpha."""
    alpha = problem.alpha if alpha is None else float(alpha)
    task = progress.add_task("bound: spectrum", total=4) if progress else None

    def step(desc: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=f"bound: {desc}")

    lin0 = problem.linearize(problem.w0)
    f0 = lin0.f
    spec_ = jacobian_spectrum(lin0, problem.p)
    smin, smax = spec_.sigma_min, spec_.sigma_max
    L0 = initial_loss(alpha, f0, problem.y)
    step("beta")

    certified_stage = stage(progress, "bound: certified beta")  # runs first
    betas = _estimate_betas(problem, spec_, stage(progress, "bound: sampled beta"), certified_stage)
    if problem.spec.model.kind == "python":  # say whether smoothness was detected or declared
        betas = {
            k: b if k == "exact" else replace(b, message=f"{b.message}; {problem.smoothness}")
            for k, b in betas.items()
        }
    step("alpha")
    basis = next((k for k in ("exact", "given", "certified", "sampled") if k in betas), "")

    # each beta holds on its ball of radius R: the alpha it certifies has B'(alpha) <= min(R, B)
    solutions = {
        name: solve_alpha_on_ball(b.value, b.radius, smin, smax, f0, problem.y)
        for name, b in betas.items()
    }
    # r*: along the worst direction found, the radius where ||J_w - J_0|| reaches sigma_min/2
    r_star = _r_star(
        problem,
        lin0,
        spec_,
        betas.get("sampled"),
        betas.get("certified"),
        stage(progress, "bound: r_star"),
    )
    if not math.isnan(r_star):
        solutions["r_star"] = solve_alpha(radius_kappa(r_star, smin, smax), f0, problem.y)
    step("report")

    quantities = _quantities(problem, alpha, spec_, L0, f0, betas, solutions, r_star)
    status, message = _verdict(alpha, spec_, betas, solutions, basis, L0)
    if progress is not None and task is not None:
        progress.update(task, completed=4)
    return BoundReport(
        spec=str(problem.spec.path or problem.spec.label),
        seed=problem.seed,
        n=problem.n,
        p=problem.p,
        alpha=alpha,
        status=status,
        message=message,
        quantities=tuple(quantities),
        spectrum=spec_,
        betas=betas,
        solutions=solutions,
        beta_basis=basis,
        r_star=r_star,
    )


# ----------------------------------------------------------------------------- helpers


def _estimate_betas(
    problem: Problem,
    spec_: Spectrum,
    advance: Callable[[float], None] | None = None,
    certified_progress: Callable[[float], None] | None = None,
) -> dict[str, BetaEstimate]:
    """Every beta the spec asks for: exact (from the structure), given, certified, sampled."""
    chk = problem.spec.check
    smin = spec_.sigma_min
    betas: dict[str, BetaEstimate] = {}
    model = problem.model
    if not model.smooth:
        betas["exact"] = BetaEstimate(
            math.inf,
            "exact",
            math.inf,
            True,
            "activation not smooth",
            f"{problem.smoothness}, so w -> J_w is not Lipschitz: beta = inf whatever sampling "
            "says",
        )
    if isinstance(chk.beta, float):
        betas["given"] = BetaEstimate(
            chk.beta, "given", math.nan, None, "[check].beta or --beta", "given by the user"
        )
    if chk.beta in ("auto", "certified") and model.smooth:
        # the rank decision, not sigma_min > 0: a rank-deficient J0 gives no radius
        cert = certified_beta_auto(
            model,
            problem.X,
            problem.w0,
            smin if spec_.ok else 0.0,
            chk.radius,
            progress=certified_progress,
        )
        if cert is not None and cert.kind == "exact":
            betas["exact"] = cert
        elif cert is not None:
            betas["certified"] = cert
    if certified_progress is not None:
        certified_progress(1.0)
    if (chk.beta in ("auto", "sampled") and spec_.ok and "exact" not in betas) or (
        chk.beta in ("auto", "sampled") and not model.smooth and spec_.ok
    ):
        betas["sampled"] = sampled_beta(
            model,
            problem.X,
            problem.w0,
            smin,
            problem.rng("beta"),
            radius=chk.radius,
            samples=chk.beta_samples,
            iterations=chk.beta_iterations,
            progress=advance,
        )
    return betas


def _r_star(
    problem: Problem,
    lin0: Linearization,
    spec_: Spectrum,
    samp: BetaEstimate | None,
    cert: BetaEstimate | None = None,
    advance: Callable[[float], None] | None = None,
) -> float:
    """The least s with ||J_{w0+s h} - J_0|| = sigma_min/2 along the sampled search's worst h
    (nan when there is none). Below min(R, sigma_min / (2 beta)) for a certified beta on the
    ball of radius R, ||J_w - J_0|| <= beta s < sigma_min / 2: the scan starts there."""
    smin = spec_.sigma_min
    if (
        samp is None
        or samp.direction is None
        or not spec_.ok
        or not math.isfinite(samp.value)
        or samp.value <= 0
    ):
        return math.nan
    return critical_radius(
        problem.model,
        problem.X,
        lin0,
        problem.w0,
        samp.direction,
        0.5 * smin,
        s_max=100.0 * smin / (2.0 * samp.value),
        progress=advance,
        s_min=_certified_floor(cert, smin),
    )


def _certified_floor(cert: BetaEstimate | None, smin: float) -> float:
    """A radius below which ||J_w - J_0|| < sigma_min / 2 is certified (0 when unknown)."""
    if cert is None or not (cert.value > 0 and math.isfinite(cert.value)):
        return 0.0
    return 0.999 * min(cert.radius, smin / (2.0 * cert.value))


_BETA_KIND = {
    "exact": "exact",
    "given": "given",
    "certified": "certified upper bound",
    "sampled": "sampled lower bound",
}
_ALPHA_KIND = {
    "exact": "exact",
    "given": "from given beta",
    "certified": "certified (sufficient)",
    "sampled": "sampled estimate (optimistic, lower)",
}
_B_KIND = {
    "exact": "exact",
    "given": "from given beta",
    "certified": "certified lower bound",
    "sampled": "sampled estimate (optimistic, upper)",
}


def _quantities(
    problem: Problem,
    alpha: float,
    sp: Spectrum,
    L0: float,
    f0: np.ndarray,
    betas: dict[str, BetaEstimate],
    sols: dict[str, AlphaSolution],
    r_star: float,
) -> list[Quantity]:
    smin, smax = sp.sigma_min, sp.sigma_max
    acc = f"{sp.method}; accuracy +/- {sp.sigma_min_abs_error:.1e}"
    q = [
        Quantity("sigma_min", smin, "exact", "sigma_min(J0) = sqrt(lambda_min(J0 J0^T))", acc),
        Quantity("sigma_max", smax, "exact", "sigma_max(J0)", sp.method),
        Quantity(
            "rank_J0",
            float(sp.rank),
            "exact",
            f"#singular values > tol = {sp.tol:.2e}",
            sp.message,
        ),
        Quantity("f0_norm", safe_norm(f0), "exact", "||f(w0)||"),
        Quantity("L0", L0, "exact", "||alpha f(w0) - y||^2 / 2", f"at alpha = {alpha:g}"),
    ]
    q += _beta_rows(betas)
    q += _alpha_rows(betas, sols, smin)
    q += _radius_rows(alpha, L0, smin, smax, r_star, sols)
    q += _primary_rows(betas, sols, smin)
    return q


def _beta_rows(betas: dict[str, BetaEstimate]) -> list[Quantity]:
    q = []
    for name, b in betas.items():
        q.append(
            Quantity(
                f"beta[{name}]",
                b.value,
                _BETA_KIND[name],
                "sup ||J_w - J_0|| / ||w - w0|| on ||w - w0|| <= R",
                b.message,
            )
        )
        if math.isfinite(b.radius):
            q.append(
                Quantity(
                    f"R[{name}]",
                    b.radius,
                    "exact" if name != "given" else "given",
                    "radius of the ball beta holds on",
                    "R >= B"
                    if b.consistent
                    else "R < B: alpha_min is the least alpha with B'(alpha) <= R",
                )
            )
    return q


def _alpha_rows(
    betas: dict[str, BetaEstimate], sols: dict[str, AlphaSolution], smin: float
) -> list[Quantity]:
    q = []
    for name, b in betas.items():
        sol = sols[name]
        kind = _alpha_kind(name, sol, b)
        note = f"{sol.message}; {_ball_note(b)}{_radius_gap_note(name, betas, sols)}"
        q.append(Quantity(f"alpha_min[{name}]", sol.alpha_min, kind, _alpha_formula(b), note))
        if sol.status == "interval":
            q.append(
                Quantity(
                    f"alpha_max[{name}]",
                    sol.alpha_max,
                    kind,
                    "largest alpha satisfying the hypothesis",
                )
            )
        B = smin / (2.0 * b.value) if b.value > 0 else math.inf
        q.append(Quantity(f"B[{name}]", B, _B_KIND[name], "sigma_min / (2 beta)"))
    return q


def _radius_rows(
    alpha: float,
    L0: float,
    smin: float,
    smax: float,
    r_star: float,
    sols: dict[str, AlphaSolution],
) -> list[Quantity]:
    q = [
        Quantity(
            "B_prime",
            b_prime(alpha, L0, smin, smax),
            "exact",
            "3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2)",
            f"at alpha = {alpha:g}",
        ),
        Quantity(
            "B_lin",
            b_lin(alpha, L0, smin, smax),
            "exact",
            "sqrt(2 sigma_max^2 L0) / (alpha sigma_min^2)",
            "the linear model's radius (Lemma 5, corrected)",
        ),
    ]
    if not math.isnan(r_star):
        q.append(
            Quantity(
                "r_star",
                r_star,
                "sampled estimate (upper)",
                "least s with ||J_{w0+s h} - J_0|| = sigma_min/2 along the worst h found",
                "the proof needs only ||J_w - J_0|| <= sigma_min/2 within B'; other "
                "directions may reach it sooner",
            )
        )
        sol = sols["r_star"]
        q.append(
            Quantity(
                "alpha_r_star",
                sol.alpha_min,
                "sampled estimate (optimistic)",
                "least alpha with B'(alpha) <= r_star",
                sol.message,
            )
        )
    return q


def _primary_rows(
    betas: dict[str, BetaEstimate], sols: dict[str, AlphaSolution], smin: float
) -> list[Quantity]:
    """The primary names of the JSON schema: the beta the verdict rests on."""
    basis = next((k for k in ("exact", "given", "certified", "sampled") if k in betas), "")
    if not basis:
        return []
    b, sol = betas[basis], sols[basis]
    B = smin / (2.0 * b.value) if b.value > 0 else math.inf
    return [
        Quantity("beta", b.value, _BETA_KIND[basis], f"= beta[{basis}]"),
        Quantity("alpha_min", sol.alpha_min, _alpha_kind(basis, sol, b), f"= alpha_min[{basis}]"),
        Quantity("B", B, _B_KIND[basis], f"= B[{basis}]"),
    ]


def _alpha_kind(name: str, sol: AlphaSolution, b: BetaEstimate) -> str:
    """What an alpha_min is: none when no alpha is certified, else its beta's kind, and the
    ball it holds on when beta holds on a finite ball only."""
    if not sol.feasible:
        return "none (no alpha satisfies it)" if sol.status == "empty" else "not computable"
    kind = _ALPHA_KIND[name]
    if name in ("certified", "sampled") and math.isfinite(b.radius):
        kind += f" on R = {b.radius:.4g}"
    return kind


def _ball_note(b: BetaEstimate) -> str:
    """On which ball the alpha_min (through its beta) holds."""
    if math.isfinite(b.radius):
        return f"holds on the ball ||w - w0|| <= R = {b.radius:.4g} (where its beta holds)"
    return "holds on every ball (its beta holds for all w)"


def _radius_gap_note(
    name: str, betas: dict[str, BetaEstimate], sols: dict[str, AlphaSolution]
) -> str:
    """Why a sampled ("lower") alpha_min above the certified ("sufficient") one is no
    contradiction: the two betas, hence the two alpha_min, hold on balls of different radii."""
    if name != "sampled" or "certified" not in betas:
        return ""
    s, c = sols["sampled"], sols["certified"]
    if not (s.feasible and c.feasible and s.alpha_min > c.alpha_min):
        return ""
    rs, rc = betas["sampled"].radius, betas["certified"].radius
    if rs == rc:
        return ""
    return (
        f"; above alpha_min[certified] = {c.alpha_min:.6g}, which is no contradiction: "
        f"beta[sampled] is sampled on the ball of radius {rs:.4g}, beta[certified] holds on "
        f"radius {rc:.4g} only (a wider ball has a larger beta), so this one is a lower "
        f"estimate for radius {rs:.4g}, not for radius {rc:.4g}"
    )


def _alpha_formula(b: BetaEstimate) -> str:
    if math.isfinite(b.radius) and b.consistent is False:
        return "least alpha with B'(alpha) <= min(R, B): beta holds only for ||w - w0|| <= R"
    return "least alpha with alpha >= 6 beta sqrt(8 sigma_max^2 L0(alpha)) / sigma_min^3"


_SUFFICIENT = (
    "; alpha_min is a sufficient condition of the theorem, not the alpha where the flows "
    "start to differ: `lazycheck verify` (and `lazycheck sweep --threshold`) show what "
    "actually happens"
)


def _verdict(
    alpha: float,
    sp: Spectrum,
    betas: dict[str, BetaEstimate],
    sols: dict[str, AlphaSolution],
    basis: str,
    L0: float = 0.0,
) -> tuple[str, str]:
    """The bound's status and one-line verdict. "applies" needs every quantity it rests on
    to be finite: a non-finite number never satisfies an inequality."""
    bad = [
        f"{k} = {v:g}"
        for k, v in (("sigma_min", sp.sigma_min), ("sigma_max", sp.sigma_max), ("L0", L0))
        if not math.isfinite(v)
    ]
    if bad:
        return "not_computable", (
            f"not computable in float64 at alpha = {alpha:g}: {', '.join(bad)} (overflow); "
            "rescale the data or the targets: no verdict on Theorem 2"
        )
    if not sp.ok:
        return "assumption_fails", f"Assumption 1 fails: {sp.message}"
    if not basis:
        return "assumption_fails", "no beta is available"
    b = betas[basis]
    if math.isinf(b.value):
        return "assumption_fails", f"Assumption 1 fails: beta = inf ({b.message})"
    sol = sols[basis]
    rests = _rests_on(basis, b)
    if sol.status == "not_computable":
        return "not_computable", f"Theorem 2's alpha_min is {sol.message}{rests}"
    if not sol.feasible:
        return "infeasible", f"no alpha satisfies Theorem 2's hypothesis: {sol.message}{rests}"
    if sol.contains(alpha):
        return "applies", (
            f"Theorem 2 applies at alpha = {alpha:g}: alpha_min = {sol.alpha_min:.6g}{rests}"
        )
    if alpha < sol.alpha_min:
        return "alpha_too_small", (
            f"Theorem 2 does not apply at alpha = {alpha:g}: its hypothesis needs alpha >= "
            f"{sol.alpha_min:.6g}{rests}{_SUFFICIENT}"
        )
    return "alpha_outside", (
        f"Theorem 2 does not apply at alpha = {alpha:g}: its hypothesis needs "
        f"{sol.alpha_min:.6g} <= alpha <= {sol.alpha_max:.6g}{rests}{_SUFFICIENT}"
    )


def _rests_on(basis: str, b: BetaEstimate) -> str:
    ball = f" on ||w - w0|| <= {b.radius:.4g}" if math.isfinite(b.radius) else ""
    return {
        "sampled": f" (rests on a SAMPLED beta{ball}, a lower bound: the true alpha_min may be "
        "larger)",
        "given": " (rests on the given beta)",
        "certified": f" (certified beta{ball})",
        "exact": "",
    }[basis]


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"
