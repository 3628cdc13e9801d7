"""Benchmark: the exponential integrator against the one before issue 9, a tight DOP853 reference
and scipy's RK45, side by side in one process.

``old-new`` (issue 9): today's integrator (:mod:`lazycheck.numerics.flow`) against the one on
``main`` before dense output (commit :data:`BASELINE_REF`: steps cut to land on every output time,
the basis at w0 computed again; read from git and loaded as a module), both through
:func:`lazycheck.commands.simulate.simulate` on the same runs:

* ``samples/two_layer_tanh.toml`` (tanh, n = 10 on the sphere in R^3, width 200, cond(K0) about
  4000) at alpha = 1 and 100, decay 5, rtol 1e-6, atol 1e-15, with the deviation of each from a
  DOP853 reference at rtol 1e-11 (the largest relative error of the loss over the grid where it
  lies above 100x its rounding floor, and of the final displacement w - w0);
* ``benchmarks/specs/wide_tanh.toml`` (width 2000, d = 10, alpha = 1e4, decay 8, default rtol
  1e-6) at each ``--n`` (default 100; 800 takes minutes), with the
  deviation between the two (an explicit reference is out of reach there: it would need
  alpha^2 lambda_max t_end / 6 > 1e5 stages).

Printed per run: accepted and rejected steps, model evaluations (of which ``dense``: spent
only to record an output time inside a step, dense output), JVP/VJP products, kernels built
and eigendecomposed, integrator wall time, the deviations (``dev tol``: the loss's where the
residual's rounding floor lies below rtol ||r||, so that the tolerance and not rounding sets
the accuracy; near the end of a run the loss may sit within 1e4 of its floor, where
``dev loss`` measures rounding), and the time ratio old / new.

``rk45``: the default integrator against scipy's RK45 at matched accuracy on the stiff sample at
alpha = 1, 10, 100, 1000 (targets: >= 100x fewer evaluations at alpha >= 100, >= 20x at
alpha = 1, the same final loss to 4 significant digits).

``--baseline REF`` compares with another commit's integrator instead (its package
``lazycheck/numerics/flow/``, its module ``lazycheck/numerics/flow.py`` before round 14, or
``lazycheck/flow.py`` before that move): round 11 measured
the cached products taken from the basis point with ``--baseline 20f7f3d``, round 13 the
moving reference point and the rebuild rules with ``--baseline 96c3b94``. ``--alpha A`` runs
wide_tanh at alpha = A instead of its spec's 1e4; ``--tight`` adds, for each wide_tanh run, a
reference by today's integrator at rtol 1e-10 (minutes at n = 400), and the deviations are
then measured against it rather than between old and new.

Usage: ``python -m benchmarks.bench_integrator [old-new] [rk45] [--n 100 400] [--baseline REF]
[--alpha A] [--tight]`` (default: both parts, --n 100, the baseline dbb9e81). Wall times need
an idle machine; counts do not.
"""

from __future__ import annotations

import argparse
import inspect
import math
import re
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "samples" / "two_layer_tanh.toml"
WIDE = ROOT / "benchmarks" / "specs" / "wide_tanh.toml"
#: main before dense output (issue 9; branch h-dense started here)
BASELINE_REF = "dbb9e81"
ALPHAS = (1.0, 10.0, 100.0, 1000.0)
DECAY = 5.0
RTOL_EXP = 1e-6
RTOL_RK45 = 1e-6
RTOL_REF = 1e-11
#: --tight: wide_tanh's reference, today's integrator at this rtol and atol
RTOL_TIGHT, ATOL_TIGHT = 1e-10, 1e-18
ATOL = 1e-15


def main(argv: list[str] | None = None) -> None:
    """Run the parts asked for."""
    ap = argparse.ArgumentParser(prog="bench_integrator")
    ap.add_argument("parts", nargs="*", help="old-new, rk45 (default: both)")
    ap.add_argument("--n", type=int, nargs="+", default=[100])
    ap.add_argument("--baseline", default=BASELINE_REF, help="the commit to compare with")
    ap.add_argument("--alpha", type=float, default=None, help="wide_tanh's alpha (default 1e4)")
    ap.add_argument("--tight", action="store_true", help="a tight reference for wide_tanh")
    args = ap.parse_args(argv)
    from lazycheck.threads import set_threads

    set_threads(None)  # as every command does: BLAS on one thread outside large products
    parts = args.parts or ["old-new", "rk45"]
    unknown = set(parts) - {"old-new", "rk45"}
    if unknown:
        ap.error(f"unknown part(s) {sorted(unknown)}; choose from old-new, rk45")
    if "old-new" in parts:
        old_vs_new(args.n, args.baseline, args.alpha, args.tight)
    if "rk45" in parts:
        exp_vs_rk45()


def old_vs_new(
    sizes: list[int], ref: str = BASELINE_REF, alpha: float | None = None, tight: bool = False
) -> None:
    """Today's integrator against the one at commit ``ref``, on the small sample and on
    wide_tanh (at ``alpha`` when given; against a tight reference run when ``tight``)."""
    from lazycheck.problem import load_problem

    base, path = _baseline_flow(ref)
    print(f"old = {path} at {ref[:10]}, new = this checkout")
    header = (
        f"{'case':<26} {'which':<5} {'steps':>6} {'rej':>4} {'evals':>6} {'dense':>6} "
        f"{'products':>9} {'kernels':>7} {'int s':>7} | {'dev loss':>9} {'dev tol':>9} "
        f"{'dev disp':>9} | old/new time"
    )
    print(header)
    print("-" * len(header))
    small = load_problem(SPEC)
    for a in (1.0, 100.0):
        kw = {"alpha": a, "decay": DECAY, "atol": ATOL}
        ref = _run(None, small, method="DOP853", rtol=RTOL_REF, **kw)
        runs = {w: _run(base if w == "old" else None, small, rtol=RTOL_EXP, **kw) for w in _W}
        _rows(f"two_layer_tanh alpha={a:g}", runs, ref)
    kw = {} if alpha is None else {"alpha": alpha}
    case = "wide_tanh" + ("" if alpha is None else f" a={alpha:g}")
    for n in sizes:
        prob = load_problem(WIDE, settings={"data.n": n})
        runs = {w: _run(base if w == "old" else None, prob, **kw) for w in _W}
        if tight:
            ref = _run(None, prob, rtol=RTOL_TIGHT, atol=ATOL_TIGHT, **kw)
            _rows(f"{case} n={n}", runs, ref, ref_name=f"exp at rtol {RTOL_TIGHT:g}")
        else:
            _rows(f"{case} n={n}", runs, runs["old"], ref_name="old")


def exp_vs_rk45() -> None:
    """The default integrator against RK45 at matched accuracy (module docstring)."""
    import numpy as np

    from lazycheck.commands.simulate import simulate
    from lazycheck.problem import load_problem

    prob = load_problem(SPEC)
    lam = np.linalg.eigvalsh(prob.linearize(prob.w0).kernel())
    print(
        f"\nexp vs RK45: {prob.model.describe()}, n = {prob.n}, "
        f"cond(K0) = {lam[-1] / lam[0]:.4g}, decay = {DECAY:g}; exp rtol {RTOL_EXP:g} vs RK45 "
        f"rtol {RTOL_RK45:g}, both atol {ATOL:g}; evaluations = forward+backward passes"
    )
    header = (
        f"{'alpha':>6} | {'exp evals':>9} {'exp s':>6} | {'RK45 evals':>10} {'RK45 s':>7} | "
        f"{'eval ratio':>10} {'time ratio':>10} | {'final loss exp':>15} "
        f"{'final loss RK45':>15} {'digits':>6} | target"
    )
    print(header)
    print("-" * len(header))
    failed = []
    for alpha in ALPHAS:
        t0 = time.perf_counter()
        run_exp = simulate(prob, alpha=alpha, decay=DECAY, method="exp", rtol=RTOL_EXP, atol=ATOL)
        s_exp = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_rk = simulate(prob, alpha=alpha, decay=DECAY, method="RK45", rtol=RTOL_RK45, atol=ATOL)
        s_rk = time.perf_counter() - t0
        ratio = run_rk.nfev / run_exp.nfev
        digits = _agreeing_digits(run_exp.final_loss, run_rk.final_loss)
        target = 100.0 if alpha >= 100 else 20.0
        ok = run_exp.success and run_rk.success and ratio >= target and digits >= 4
        if not ok:
            failed.append(alpha)
        print(
            f"{alpha:>6g} | {run_exp.nfev:>9d} {s_exp:>6.2f} | {run_rk.nfev:>10d} {s_rk:>7.2f} | "
            f"{ratio:>9.1f}x {s_rk / s_exp:>9.1f}x | {run_exp.final_loss:>15.8e} "
            f"{run_rk.final_loss:>15.8e} {digits:>6.1f} | >= {target:g}x, 4 digits: "
            f"{'ok' if ok else 'MISSED'}",
            flush=True,
        )
    if failed:
        print(f"bench_integrator: targets missed at alpha = {failed}", file=sys.stderr)


_W = ("old", "new")


def _run(flow_module: types.ModuleType | None, prob: Any, **overrides: Any) -> tuple[Any, dict]:
    """simulate() with the given integrator module (None: today's); (result, counts)."""
    import lazycheck.commands.simulate as sim
    import lazycheck.numerics.flow

    kernels: dict[str, int] = {"n": 0}
    module = flow_module or lazycheck.numerics.flow
    integrate = module.integrate

    takes_eig0 = "eig0" in inspect.signature(integrate).parameters

    def counted(*a: Any, **k: Any) -> Any:
        if not takes_eig0:  # a baseline that recomputes K0's eigendecomposition (dbb9e81)
            k.pop("eig0", None)
        stats = integrate(*a, **k)
        kernels["n"] = getattr(stats, "n_kernels", 0)
        return stats

    saved = sim.integrate
    sim.integrate = counted
    try:
        res = sim.simulate(prob, **overrides)
    finally:
        sim.integrate = saved
    return res, kernels


def _rows(case: str, runs: dict[str, tuple[Any, dict]], ref: tuple[Any, dict], **kw: str) -> None:
    for which in _W:
        res, counts = runs[which]
        dev_l, dev_tol, dev_d = _deviation(res, ref[0])
        ratio = runs["old"][0].wall_time / runs["new"][0].wall_time
        print(
            f"{case:<26} {which:<5} {res.n_steps:>6d} {res.n_rejected:>4d} {res.nfev:>6d} "
            f"{res.nfev_output:>6d} {res.n_products:>9d} {counts['n']:>7d} "
            f"{res.wall_time:>7.2f} | {dev_l:>9.2e} {dev_tol:>9.2e} {dev_d:>9.2e} | "
            + (f"{ratio:.2f}x" if which == "new" else ""),
            flush=True,
        )
    if kw.get("ref_name"):
        print(f"{'':<26} (dev: against {kw['ref_name']})")


def _deviation(res: Any, ref: Any) -> tuple[float, float, float]:
    """Largest relative deviation of the loss where the reference lies above 100x its
    rounding floor; the same where the residual's rounding floor lies below rtol ||r||
    (loss above loss_floor / rtol^2: there the tolerance, not rounding, sets the accuracy);
    relative deviation of the final displacement."""
    import numpy as np

    def worst(ok: Any) -> float:
        dl = np.abs(res.loss - ref.loss)[ok] / ref.loss[ok]
        return float(dl.max()) if dl.size else math.nan

    dev_l = worst(ref.loss > 100.0 * ref.loss_floor)
    dev_tol = worst(ref.loss > ref.loss_floor / res.rtol**2)
    num = float(np.linalg.norm(res.w_final - ref.w_final))
    den = max(float(ref.disp[-1]), 1e-300)
    return dev_l, dev_tol, num / den


def _baseline_flow(ref: str) -> tuple[types.ModuleType, str]:
    """The integrator at commit ``ref``, loaded beside today's (needs git and the history), and
    the path it was read from: the package ``lazycheck/numerics/flow/`` (round 14 on), its
    files written to a temporary directory as a package of another name, their imports of one
    another pointed at it; or the module ``lazycheck/numerics/flow.py`` (``lazycheck/flow.py``
    before it moved), its imports of the modules moved with it pointed at their new places."""
    package = "lazycheck/numerics/flow"
    files = _git("ls-tree", "--name-only", ref, f"{package}/").split()
    if f"{package}/__init__.py" in files:
        return _baseline_package(ref, [f for f in files if f.endswith(".py")]), package
    err: Exception | None = None
    for path in ("lazycheck/numerics/flow.py", "lazycheck/flow.py"):
        try:
            src = _git("show", f"{ref}:{path}")
            break
        except (OSError, subprocess.CalledProcessError) as exc:
            err = exc
    else:
        raise SystemExit(f"bench_integrator: cannot read the baseline from git: {err}") from None
    src = re.sub(r"\blazycheck\.(linear_flow|spectrum)\b", r"lazycheck.numerics.\1", src)
    mod = types.ModuleType("lazycheck_flow_baseline")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{ref[:10]}:{path}", "exec"), mod.__dict__)
    return mod, path


def _baseline_package(ref: str, files: list[str]) -> types.ModuleType:
    """The package at ``ref`` as ``lazycheck_flow_baseline`` (see :func:`_baseline_flow`)."""
    import importlib
    import tempfile

    name = "lazycheck_flow_baseline"
    root = Path(tempfile.mkdtemp(prefix="bench_integrator_"))
    (root / name).mkdir()
    for path in files:
        src = re.sub(r"\blazycheck\.numerics\.flow\b", name, _git("show", f"{ref}:{path}"))
        (root / name / Path(path).name).write_text(src)
    sys.path.insert(0, str(root))
    return importlib.import_module(name)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout


def _agreeing_digits(a: float, b: float) -> float:
    """Significant digits to which a and b agree: -log10 |a - b| / |b|."""
    if a == b:
        return 16.0
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return 0.0
    return max(0.0, -math.log10(abs(a - b) / abs(b)))


if __name__ == "__main__":
    main()
