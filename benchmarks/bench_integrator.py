"""Benchmark: the exponential integrator against scipy's RK45 on the stiff sample problem.

The case: ``samples/two_layer_tanh.toml`` (tanh, NTK parameterization, n = 10 points on the unit
sphere in R^3, width 200, centered; cond(K0) = sigma_max^2 / sigma_min^2 about 4000), run until
Theorem 2's bound has fallen by e^-5 (decay = 5), at alpha = 1, 10, 100, 1000. Both methods
run side by side in one process through :func:`lazycheck.simulate.simulate`, recording the same
201-point output grid:

* ``exp`` (default integrator) at rtol 1e-6;
* ``RK45`` at rtol 1e-6, the accuracy at which it gives the same final loss as ``exp`` to
  at least 4 significant digits (the table prints the digits of agreement).

Both use atol = 1e-15 so that rtol governs the final loss, which is 1e-15 to 1e-20 and would
otherwise be resolved only to atol. Counted: model evaluations (one forward + backward pass each,
including the ones RK45 spends only to record the output grid) and wall time.
Targets: >= 100x fewer evaluations at alpha >= 100, >= 20x at alpha = 1, same final loss to
4 significant digits.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

ALPHAS = (1.0, 10.0, 100.0, 1000.0)
DECAY = 5.0
RTOL_EXP = 1e-6
RTOL_RK45 = 1e-6
ATOL = 1e-15
SPEC = Path(__file__).resolve().parent.parent / "samples" / "two_layer_tanh.toml"


def main() -> None:
    """Run the comparison and print one row per alpha."""
    import numpy as np

    from lazycheck.problem import load_problem
    from lazycheck.simulate import simulate

    prob = load_problem(SPEC)
    lam = np.linalg.eigvalsh(prob.linearize(prob.w0).kernel())
    print(
        f"bench_integrator: {prob.model.describe()}, n = {prob.n}, "
        f"cond(K0) = {lam[-1] / lam[0]:.4g}, decay = {DECAY:g}"
    )
    print(
        f"exp rtol {RTOL_EXP:g} vs RK45 rtol {RTOL_RK45:g}, both atol {ATOL:g}; "
        "evaluations = forward+backward passes (incl. output recording)"
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


def _agreeing_digits(a: float, b: float) -> float:
    """Significant digits to which a and b agree: -log10 |a - b| / |b|."""
    if a == b:
        return 16.0
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return 0.0
    return max(0.0, -math.log10(abs(a - b) / abs(b)))


if __name__ == "__main__":
    main()
