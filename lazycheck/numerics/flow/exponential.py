"""The default method, ``"exp"``: a variable-step exponential Adams integrator.

The flow is integrated in the rescaled time tau = alpha^2 t of :mod:`lazycheck.numerics.flow`,
dw/dtau = F(w) = -(1/alpha) J_w^T r(w). This docstring is the method's account, with what was
measured for each choice; one step's computations are in :mod:`.steps`, this module drives
them (step sizes, rejections, rebuilds of the basis, dense output).

At an accepted point w_k (one model evaluation gives f, J_k and K_k = Q Lambda Q^T) split

    F(w) = F_k + L_k (w - w_k) + N_k(w),     L_k = -J_k^T J_k   (the Gauss-Newton Jacobian).

The remainder N_k vanishes at w_k and holds only the curvature of the model (Hessian terms),
which is O(1/alpha) in the lazy regime. Variation of constants is exact:

    w(tau_k + h) = w_k + h phi1(h L_k) F_k + int_0^h exp((h - s) L_k) N_k(w(tau_k + s)) ds.

Dropping N_k gives the exact flow of the model linearized at w_k (exponential Euler):
w_{k+1} = w_k - (1/alpha) J_k^T Q diag((1 - e^{-h lambda}) / lambda) Q^T r_k, with predicted
residual Q e^{-h Lambda} Q^T r_k. It is exact for a linear model, whatever h lambda_max, but
only first order in the nonlinearity. The integrator raises the order at no extra model
evaluation: N_k is known exactly at the previous accepted points,
N_k(w_j) = F(w_j) - F_k - L_k (w_j - w_k) (stored vectors and products with the cached J_k),
so s -> N_k(w(tau_k + s)) is replaced by the polynomial p(s) = sum_{m=1..q} c_m s^m through
p(0) = 0 and the q <= 3 previous points, and integrated exactly with
int_0^h e^{(h-s)L} s^m ds = m! h^(m+1) phi_{m+1}(hL):

    w_{k+1} = w_k + h phi1(hL) F_k + sum_m m! h^(m+1) phi_{m+1}(hL) c_m      (order q + 1).

Every phi-function of L = -J^T J is applied to a p-vector through the n x n eigenproblem of K,
never forming J: phi_j(hL) v = v / j! - h J^T Q diag(phi_{j+1}(-h lambda)) Q^T (J v). A trial
step costs one VJP; a step costs one model evaluation (at the new point, which is needed anyway
to start the next step). With q = 3 the method is of order 4.

Error control. (1) A priori: the local error estimate is the difference between the steps made
with the interpolant through q and through q - 1 past points, a genuine O(h^(q+1)) estimate;
the step keeps the higher-order value (local extrapolation). It is measured twice and both must
pass: in weight space, ||est|| <= atol + rtol ||w - w0||, and in residual space,
alpha ||J_k est|| <= atol + rtol ||r||, which keeps the loss accurate relative to itself after
it has fallen by many orders of magnitude. (2) A posteriori: after evaluating the model at w_{k+1},
the actual N_k(w_{k+1}) is compared with p(h); since the interpolation error grows on [0, h] no
faster than linearly and exp((h-s)L) has positive weights, h phi2(hL) (N_k(w_{k+1}) - p(h))
bounds the error the interpolant committed over the step and must pass the same test, or the
step is rejected. This catches what extrapolation from the past cannot see, and starts the
integration (the first step is exponential Euler checked this way). After a rejection by the
a-posteriori test, or a second rejection at a point, the history is dropped and the integrator
restarts at order 1 (the past may not extrapolate across a kink). A first rejection by the
a-priori estimate says only that the step was too long: it is retried at the same order, the
step shrunk (round 14, :data:`_SAME_ORDER_RETRIES`). Restarting there too made a cycle at tight
tolerances: exponential Euler, sized from the order-4 step, was rejected by its own
a-posteriori test until it was small enough, the order built up again, and the next order-4
step was rejected; and the thousands of first-order steps accepted at up to the tolerance
added up. ``samples/deep_tanh.toml`` (a kernel at every point) at rtol 1e-9: 9728 steps, 4294
rejected, the loss up to 403 rtol from a run at rtol 1e-10; now 2891 steps, 8 rejected,
10.5 rtol (at rtol 1e-10, 18,056 and 7852 -> 4597 and 39; at rtol 1e-6 to 1e-8 nothing
changed there). ``samples/narrow_plateau.toml``: 1306 steps, 26 rejected -> 1280, 9 (the loss
2.2 -> 0.8 rtol from a run at rtol 1e-11). Keeping the order after every a-priori rejection
had been measured worse there (1463 steps, 214 rejected). Steps rejected on an earlier point's
basis follow their own rule, "Kernel reuse" below. Both tests add a rounding
floor to the tolerance: residuals cannot be resolved below the rounding of alpha f(w)
(:func:`residual_floor`: 16 eps (alpha ||J_w (w o s)|| + alpha ||f|| + ||y||) for a fixed
random sign vector s, one JVP), nor weights below 16 eps ||w||; without it, noise in the
estimates makes the step size collapse once the loss nears float64 resolution. Step sizes
follow h_new = h min(2, max(0.2, 0.9 err^(-1/(q+1)))), with one difference from the acceptance
test: there the rounding floors are raised to twice the estimate's own rounding, which is the
rounding of F times the sum of the absolute weights with which the estimate combines F at the
q + 2 points (16 for q = 3 at equal steps). An estimate at that level can be rounding alone,
which no smaller step reduces; before issue 9 it held the steps at a size where it hovered near
the floor (wide_tanh, n = 100: the last half of the run at h/tau = 0.003; 402 steps where 229
do).
Dense output (issue 9). The steps are the size the error control chooses; only the last is
cut to land on tau[-1] (in one step, or in two equal ones rather than leave a sliver). An
output time tau_k + s inside an accepted step [tau_k, tau_k + h] comes from the step's own
continuous extension: variation of constants with the same Adams polynomial integrated over
[0, s],

    w(tau_k + s) = w_k + s phi1(sL) F_k + sum_m m! s^(m+1) phi_{m+1}(sL) c_m,

the phi's of sL through the same eigenbasis (one VJP), of the step's order. The recorder gets
the model at that w (one evaluation, ``nfev_output``) but no error-control products, no drift
measurement and no rebuild. Nothing more is needed for the error control: the step's a-priori
estimate is int_0^h e^{(h-u)L} c g(u) du with a fixed vector c (the divided difference of N)
and g(u) = u prod_j (u - s_j), which is >= 0 and increasing on [0, h] (the nodes s_j < 0), so
in each eigendirection of L (weight e^{-mu (s-u)}) the estimate at s grows with s: the step's
bounds the continuous extension's everywhere in the step, exactly (tests/test_numerics_flow_dense.py
checks it on every step of a run: in norm, and componentwise on the range of J_b^T); the local
error itself has that form to leading order (c = N^(q+1) / (q+1)!), and the a-posteriori
bound's e(u) <= (u/h) e(h) likewise. The residual-space tolerance rtol ||r|| is no smaller at s
than at h, as ||r|| does not grow along the flow (d||r||^2/dtau = -2 r^T K r); the weight-space
one is rtol max(||d_k||, ||d(s)||) against the step's rtol max(||d_k||, ||d_{k+1}||), smaller
at most by the relative motion over the step. Measured against DOP853 at rtol 1e-10 on
test_numerics_flow.py's problem (rtol 1e-5 to 1e-8), the dense points' loss error is 1.2 to 2.5
rtol and falls like rtol (slope 1.10), as at the steps' ends. The first steps are the log grid's
first spacing, as before; later a step spans several output times (wide_tanh, n = 100: 75 steps for
200 output times where 232 landed on them). Longer steps do let more error accumulate per step
where the loss has fallen by orders of magnitude: on test_numerics_flow.py's problem at alpha = 1
the largest relative loss error went from 5.2 to 7.8 rtol (at the end, loss 4e-9 L0).
The integrated state is the displacement d = w - w0 (w0 + d is formed only to evaluate the model),
so tiny steps do not round away against |w_i| ~ 1. A step budget (``EXP_MAX_STEPS``) ends runs
that crawl: a non-smooth model (relu) has a Jacobian that jumps where a unit switches, its flow
can slide along the switch, and no integrator of any order gets far there.

Kernel reuse (issue 9). Any fixed L_b = -J_b^T J_b may replace L_k in the splitting above: the
remainder N_k(w) = F(w) - F_k - L_b (w - w_k) then also holds (L_k - L_b)(w - w_k), which the
Adams polynomial integrates explicitly, and both error tests above measure it as they measure
the curvature. So the eigenbasis of the kernel is built at one point b and kept while it serves:
each point's products with it (L_b e_j, Q^T J_b F_j, Q^T J_b L_b e_j with e_j = d_j - d_b, the
displacement from the basis point: three products, cached, two at b itself) give N_k(w_j) and
its image for every step whose history holds the point, since
L_b (d_j - d_k) = L_b e_j - L_b e_k; and where the basis is the current point's own, J_k x comes
from it (Q (Q^T J x)) with no product. The products are taken from b, not from w0 (round 11):
L_b d_j - L_b d_k carries the rounding of eps lambda_max ||d_j||, which does not fall with the
residual; late in a lazy run, where ||d_j - d_k|| is a tiny fraction of ||d_j|| and the steps
are long, the step's residual image J_b x (through the eigenbasis, which the error control
measures) and the residual its weights make drifted apart, up to 1.4e4 times the residual's
error budget (tests/test_numerics_flow_steps.py; on wide_tanh.toml at n = 400, with the basis
rebuilt ahead of every step that followed a rebuild, a final loss 50 times the true one was
accepted). From b they agree to 2e-4 budgets (round 13: the reference point then moves on, as
below), and the noise no longer rejects steps on an
earlier point's basis: wide_tanh.toml at n = 800, 208 steps, 35 rejected, 70 kernels -> 214, 4,
47 (1.26x in one process, ``bench_integrator old-new --baseline 20f7f3d``); n = 400, 156, 9, 20
-> 156, 6, 17; n = 1600, 275 -> 274 kernels at the same drift limit (there the drift, not the
noise, asked for them; the limit's cap below). The rounding still grows with ||d_j - d_b|| as a
basis ages, while the steps use only the differences over the history: the residual-image test
measured 0.016 budgets at round 11's drift limit, 0.096 at twice it and 0.84 at 16 times. So
the reference point moves (round 13): the products are taken from a point ref, L_b (d_j - d_ref)
(L_b (d_j - d_k) is their difference for any ref), ref = b at a rebuild and moved to the
current point when ||d_k - d_ref|| exceeds :data:`_REANCHOR` = 8 times the history's span
||d_k - d_oldest|| (the history's points then take two products each again): at most 5e-4
budgets at each of those limits, for 0.1 to 1% more products (wide_tanh.toml at n = 800 at
round 12's limit: 3306 -> 3309). Where the basis is an earlier point's, the
residual-space errors are measured with J_k itself (alpha ||J_k est||, one JVP each). In the
lazy regime one kernel serves most of the run; far from it (``samples/deep_tanh.toml``,
alpha = 1) 7 kernels for 703 steps replace 659 kernels for 658 steps. Below n = 128
(:data:`KERNEL_REUSE_MIN_N`) a kernel costs less than the products reuse adds, and it is rebuilt
at every point. The kernel's eigenvalues at the recorded times (sigma_min, sigma_max along the
path) are then computed by the recorder, at those times only.

When to rebuild (issue 9, cost-aware). A rebuild (one kernel, ~n^2 p flops, and one
eigendecomposition, ~n^3) buys nothing the error control needs: it only lets the steps grow
where the explicit part, of stiffness h ||L_k - L_b||, limits them. So it is paid for only when
the steps it saves are worth it, by a deterministic cost model (no clock: results must be
reproducible) in units of JVP/VJP products, R = (n / 80 + 0.5 n^2 / p) / 14 accepted steps
(:func:`_rebuild_cost`; measured on ``wide_tanh.toml`` at n = 1600, p = 22,000, one BLAS thread:
a product 13 ms, the kernel 0.27 s = n / 80 products, the eigendecomposition ~0.8 s =
0.5 n^2 / p products, an accepted step one model evaluation (50 ms, ~4 products) and ~10
products). R is 0.6 at n = 400, 1.8 at n = 800, 5.6 at n = 1600. The basis is rebuilt

* at an accepted point when h ||L_k - L_b|| > min(1 + R, 8) (round 13; min((1 + R) / 4, 2)
  before, (1 + R) / 4 capped at 1/2 before round 11, 1/4 before that: at n = 1600 it rebuilt
  the basis 357 times in 544 steps, 388 s of a 673 s run). A larger limit lets a basis serve
  longer, which needed the moving reference point above, and is only safe with the next rule
  bounded: wide_tanh.toml at n = 1600, 378 steps, 7 rejected, 180 kernels and 169.7 s at
  round 12's limit 1.65; 372, 9, 57 and 87.6 s at 6.6, side by side (docs/benchmarks.md,
  round 13). The cap of 8
  binds from n ~ 3000 on, where it is not measured; twice the limit (13.2 at n = 1600) was no
  faster, and at n = 400 (3.2) made 434 rejections in 694 steps;
* at an accepted point where the drift over the next step is at least :data:`_STALE_SHARE` =
  1/10 of the limit and the steps grew by less than 1.25x (:data:`_HELD_GROWTH`) over the last
  max(8, 4 (1 + R)) accepted points on the basis (round 13): there the drift holds the steps
  (its explicit integration sets their size), and the limit is never reached. Found with the
  kernel kept (forced) on ``samples/narrow_plateau.toml``, where the drift over a step settled
  at 0.23 of the limit 1 + R and the steps shrank (50,000 steps, the budget, and no rebuild),
  and on ``samples/deep_tanh.toml`` at rtol 1e-9, where it settled at 0.29 with the steps
  constant (21,724 steps, no rebuild); with the rule 1274 and 3413 steps (round 12's rules:
  1291 and 3763). It costs at most one rebuild, R steps, every 4 (1 + R) steps;
* after a rejected step on an earlier point's basis, when the drift over the step,
  h ||L_k - L_b||, is at least :data:`_STALE_SHARE` = 1/10 of the limit (round 13; always
  before). The same step is then retried on the new basis at order 1 (exponential Euler, the
  history set aside); if that is rejected too, it is retried with the history back, smaller
  (by the first rejection's error), and from then on only a rejection by the a-posteriori
  test or a fourth rejection restarts at order 1. Where the drift is below that share the
  basis is not to blame: the first rejection at a point is retried at the same order, the step
  shrunk; a restart at order 1 would not do, since exponential Euler on a basis that is not
  the point's own integrates the drift at first order only. Unbounded, the rule made a cycle
  (round 12's trace at n = 800, round 13's tests): after a rebuild where the model's remainder
  N is even in the step (N(s) ~ a s^2 late in a lazy run, L_b = L_k), exponential Euler is
  accepted at err ~ 0.79, and the order-2 step that follows, sized from it, errs twice as much
  (its line through p(0) = 0 and N(-h) = a h^2 extrapolates to -a h^2): rejected on a basis one
  step old, rebuilt, exponential Euler again, every step. On wide_tanh.toml at n = 400,
  alpha = 1e2, that was 1421 steps, 1352 rejected, 1348 kernels and a loss 165 rtol from a
  run at rtol 1e-10; now 584 steps, 18 rejected, 68 kernels, 0.36 rtol, 4.6-4.8x faster.
  Retrying smaller on a stale basis had been measured worse before (at n = 800, 1850 steps and
  829 kernels against 416 and 69), but that retry restarted at order 1. (Before
  dense output an order-1 retry was the end of it: the history was dropped and the step shrunk
  from there. With steps no longer cut at output times that set up a cycle far from the lazy
  regime, on test_numerics_flow.py's costly-rebuild case (alpha = 1, rtol 1e-7): 796 steps,
  247 rejected, 83 kernels and a loss error of 18.9 rtol, where the retry with the history
  back took 492, 30, 12 and 1.8 rtol. Keeping the order after any a-priori rejection on the
  point's own basis took 1463 steps and 214 rejections on ``samples/narrow_plateau.toml``
  where restarting took 1306 and 26; keeping it after the first only (round 14, above) takes
  1280 and 9.)

||L_k - L_b|| comes from a power iteration warm-started from the last direction (one step,
four products: an estimate from below that tightens as it is repeated). It is measured at the
first accepted point of a basis, at every 4th accepted point (:data:`_DRIFT_EVERY`) and where
its prediction exceeds a quarter of the limit; elsewhere it is predicted, with no product, from
the last measurement scaled with ||d_k - d_b|| (L_w - L_b is linear in w - w_b to first
order). Measuring only where the prediction neared the limit was tried: far from the lazy
regime (``samples/deep_tanh.toml``, alpha = 1, the basis kept, R = 0) the estimate from one
power step never converged, the basis was never rebuilt and the run took 20,211 steps where
726 do.
The rounding floor's probe (one JVP, :func:`residual_floor`) is taken at every 8th model
evaluation and carried between: it moves with J_w and w, which change little over a few
steps. The eigendecomposition stays numpy's ``eigh``: scipy's ``eigh(driver="evd")`` (the
same LAPACK algorithm through scipy's BLAS) took 1.04 CPU-s against numpy's 0.95 at
n = 1600 (0.199 against 0.208 at n = 1000, one thread).

Measured (``benchmarks/bench_integrator.py``, tanh, n = 10, width 200, cond(K0) = 4014, rtol
1e-6): 260 to 670 model evaluations where RK45 needs 84,000 to 89,000 at the same final loss.
Against the integrator before issue 9 (``bench_integrator old-new``, ``wide_tanh.toml``, loaded
2-core machine): n = 100, 412 -> 233 steps, 8633 -> 4378 products, 1.7x faster; n = 400,
2469 -> 315 steps, 61,706 -> 4915 products, 788 s -> 40 s (19.9x). The cost-aware rebuilds,
the amortized drift and probe against commit 81571fe (one BLAS thread, machine shared, load
1-2; counts are exact, times are not): n = 400, 333 -> 320 steps, 24 -> 14 rejected, 41 -> 26
kernels, 5190 -> 4081 products, 1.37x faster side by side; n = 800, 371 -> 390 steps,
53 -> 42 rejected, 121 -> 82 kernels, 6324 -> 5514 products; n = 1600 (``simulate`` alone),
544 -> 535 steps, 20 -> 18 rejected, 357 -> 317 kernels, 10,874 -> 9567 products. Dense
output against commit dbb9e81 (load 3.4-4.9): n = 100, 232 -> 75 steps (7 -> 3 rejected),
4160 -> 1518 products, 233 -> 75 kernels, integrator 1.83x faster; n = 400, 320 -> 156 steps
(14 -> 9 rejected), 4081 -> 2351 products, 26 -> 20 kernels, 1.41x; n = 200 (simulate
alone, load 1-2), 290 -> 97 steps, 14 -> 24 rejected, 18 -> 25 kernels, 3612 -> 1579
products, 8.9 s -> 6.6 s; n = 1600 (simulate alone, new only, against the figures above):
535 -> 379 steps, 18 -> 8 rejected, 317 -> 275 kernels, 9567 -> 7554 products. ``verify``
(one BLAS thread, interleaved with main at d78ed6c, load 0.8-1.0): 4.8-5.8 s -> 4.0-4.1 s at
n = 100, 21.2-21.7 s -> 18.4-19.3 s at n = 400, where the recorder's sigma's and
||J_w - J0|| at the 200 output times (4.7 s under cProfile) and the model evaluations there
(1.8 s) now take more than the steps (5.7 s).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from lazycheck.models.base import Linearization
from lazycheck.numerics.flow.rounding import _EPS, _NOISE, _floor, _probe, probe_signs
from lazycheck.numerics.flow.stats import FlowStats, Progress, Recorder
from lazycheck.numerics.flow.steps import (
    _HELD_COST,
    _HELD_STEPS,
    _STALE_SHARE,
    _Basis,
    _Interp,
    _Point,
    _Steps,
)
from lazycheck.numerics.linear_flow import phi_table

__all__ = ["EXP_MAX_STEPS", "EXP_METHOD", "KERNEL_REUSE_MIN_N", "exp_flow"]

Array = np.ndarray
EXP_METHOD = "exp"
#: step budget of the exponential integrator (a smooth problem needs a few thousand at most;
#: a non-smooth model whose flow slides along a kink would otherwise crawl for hours)
EXP_MAX_STEPS = 50_000
#: the exponential integrator keeps the kernel's eigenbasis across steps from this n on (below,
#: a kernel and its eigendecomposition cost less than the extra products and steps reuse takes)
KERNEL_REUSE_MIN_N = 128

_SAFETY = 0.9
_FAC_MIN = 0.2
_FAC_MAX = 2.0
_MAX_REJECTS = 60
#: the kernel's eigenbasis is rebuilt when h ||L_k - L_b|| exceeds this times (1 + R), R the
#: cost of a rebuild in accepted steps (:func:`_rebuild_cost`): the part of the linear term it
#: misses is integrated explicitly, which needs it small over a step (1/4 before round 13)
_DRIFT_MAX = 1.0
#: the drift limit never exceeds this, whatever a rebuild costs (2 before round 13, 1/2
#: before round 11)
_DRIFT_LIMIT_MAX = 8.0
#: the cost model of a rebuild (module docstring, "Kernel reuse"), in JVP/VJP products: the
#: kernel about n / _KERNEL_N products, its eigendecomposition _EIG_N2_P n^2 / p, an accepted
#: step _STEP_PRODUCTS (one model evaluation and the products of a step)
_KERNEL_N = 80.0
_EIG_N2_P = 0.5
_STEP_PRODUCTS = 14.0
#: the residual_floor probe (one JVP) is computed at every this many-th model evaluation and
#: carried between (it moves with J_w and w, which change little over a few steps)
_PROBE_EVERY = 8
#: a-priori rejections at a point retried at the same order, the step shrunk, before the
#: integrator restarts at order 1 (round 14; before, none on the point's own basis)
_SAME_ORDER_RETRIES = 1


def exp_flow(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    tau: Array,
    record: Recorder,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
    max_history: int = 3,
    max_steps: int | None = None,
    kernel_reuse: bool | None = None,
    eig0: tuple[Array, Array] | None = None,
) -> FlowStats:
    """The exponential Adams integrator of the module docstring, of order max_history + 1
    (``max_history`` past points interpolated; 0 gives exponential Euler). ``max_steps``: the
    step budget (None: :data:`EXP_MAX_STEPS`). ``kernel_reuse``:
    keep the kernel's eigenbasis across steps (module docstring); False rebuilds it at every
    point (the integrator before issue 9); None: reuse when n >= :data:`KERNEL_REUSE_MIN_N`.
    ``eig0``: (lam, Q) with K0 = Q diag(lam) Q^T, the kernel of ``lin0`` (symmetrized, as
    :func:`lazycheck.numerics.linear_flow.linear_flow` has it): the first basis, not computed
    again."""
    if not 0 <= max_history <= 6:
        raise ValueError(f"max_history must lie in 0..6, got {max_history}")
    if max_steps is None:
        max_steps = EXP_MAX_STEPS
    if kernel_reuse is None:
        kernel_reuse = np.asarray(y).shape[0] >= KERNEL_REUSE_MIN_N
    if eig0 is not None and lin0 is None:
        raise ValueError("eig0 is the eigendecomposition of lin0's kernel: give lin0 too")
    integrator = _ExpAdams(
        linearize, w0, y, alpha, tau, record, rtol, atol, lin0, progress, max_history,
        max_steps, kernel_reuse, eig0,
    )  # fmt: skip
    return integrator.run()


class _ExpAdams(_Steps):
    """The variable-step exponential Adams integrator (see the module docstring).

    ``kernel_reuse``: keep the linear part's eigenbasis from an earlier point and rebuild it
    where it drifted (module docstring, "When to rebuild"); False rebuilds it at every
    accepted point (the integrator before issue 9, kept for the benchmark).
    """

    def __init__(
        self,
        linearize: Callable[[Array], Linearization],
        w0: Array,
        y: Array,
        alpha: float,
        tau: Array,
        record: Recorder,
        rtol: float,
        atol: float,
        lin0: Linearization | None,
        progress: Progress | None,
        max_history: int = 3,
        max_steps: int = EXP_MAX_STEPS,
        kernel_reuse: bool = True,
        eig0: tuple[Array, Array] | None = None,
    ) -> None:
        self.linearize = linearize
        self.w0 = np.array(w0, dtype=np.float64, copy=True)
        self.y = np.asarray(y, dtype=np.float64)
        self.alpha = float(alpha)
        self.tau = np.asarray(tau, dtype=np.float64)
        self.record, self.progress = record, progress
        self.rtol, self.atol = float(rtol), float(atol)
        self.lin0 = lin0
        self.max_history, self.max_steps = max_history, max_steps
        self.kernel_reuse = kernel_reuse
        self.eig0 = eig0
        self.nfev = self.n_products = self.n_steps = self.n_rejected = self.n_kernels = 0
        self.n_dense = self._serial = 0
        self.i_next = 1  # the next output time to record
        self.max_error = 0.0
        self._signs = probe_signs(self.w0.shape[0])
        self.basis: _Basis | None = None
        self._drift_vec: Array | None = None
        self._drift_at: tuple[int, float, float] | None = None
        #: a rebuild's cost in accepted steps, and the drift limit (module docstring)
        self.rebuild_cost = _rebuild_cost(self.y.shape[0], self.w0.shape[0])
        self.drift_limit = min(_DRIFT_MAX * (1.0 + self.rebuild_cost), _DRIFT_LIMIT_MAX)
        self._drift_skipped = 0
        self._drift_rate = 0.0
        #: the step sizes over the stagnation rule's window, max(8, 4 (1 + R)) steps back
        window = max(_HELD_STEPS, math.ceil(_HELD_COST * (1.0 + self.rebuild_cost)))
        self._h_seen: deque[float] = deque(maxlen=window + 1)
        self._probe = 0.0  # the residual floor's probe term, computed every _PROBE_EVERY

    def _point(self, tau: float, d: Array, lin: Linearization | None = None) -> _Point:
        # The state is d = w - w0, not w: adding tiny steps to w (|w_i| ~ 1) would round every
        # step and the rounding would accumulate; w0 + d is rounded once per evaluation.
        w = self.w0 + d
        if lin is None:
            lin = self.linearize(w)
            self.nfev += 1
        r = self.alpha * lin.f - self.y
        F = -lin.vjp(r) / self.alpha
        if (self.nfev - 1) % _PROBE_EVERY == 0 or lin is self.lin0:
            self._probe = _probe(lin, w, self.alpha, self._signs)
            self.n_products += 1
        noise_r = _floor(self._probe, lin, self.alpha, self.y)
        self.n_products += 1
        noise_w = _NOISE * _EPS * float(np.linalg.norm(w))
        return _Point(tau, d, w, lin, r, F, noise_r, noise_w)

    def _stats(self, success: bool, message: str, n_recorded: int, start: float) -> FlowStats:
        return FlowStats(
            method=EXP_METHOD,
            success=success,
            status=0 if success else -1,
            message=message,
            nfev=self.nfev,
            nfev_output=self.n_dense,
            n_products=self.n_products,
            n_steps=self.n_steps,
            n_rejected=self.n_rejected,
            n_recorded=n_recorded,
            max_error=self.max_error,
            wall_time=time.perf_counter() - start,
            n_kernels=self.n_kernels,
            n_dense=self.n_dense,
        )

    def _emit(self, i: int, cur: _Point) -> None:
        """Record output time i; the kernel's eigenvalues go along when the basis is there."""
        b = self.basis
        self.record(i, cur.w, cur.lin, b.lam if b is not None and b.lin is cur.lin else None)
        if self.progress is not None:
            self.progress(i)

    def run(self) -> FlowStats:
        start = time.perf_counter()
        cur = self._point(0.0, np.zeros_like(self.w0), self.lin0)
        self._rebase(cur, self.eig0 if cur.lin is self.lin0 else None)
        self._emit(0, cur)
        history: list[_Point] = []
        n_out = self.tau.shape[0]
        h = float(self.tau[1]) if n_out > 1 else 0.0
        end = float(self.tau[-1])
        while self.i_next < n_out:
            out = self._advance(cur, history, end, h)
            if isinstance(out, str):
                return self._stats(False, out, self.i_next, start)
            new, history, h, interp = out
            self.n_steps += 1
            if self.n_steps + self.n_rejected > self.max_steps:
                return self._stats(
                    False,
                    f"exp: step budget of {self.max_steps} steps spent at tau = {new.tau:.6g} "
                    f"(t = {new.tau / self.alpha**2:.6g}), step size {h:.3g}",
                    self.i_next,
                    start,
                )
            self._dense(cur, interp, new.tau)  # on the step's basis, before any rebuild
            history = [cur, *history][: self.max_history]
            cur = new
            if not self.kernel_reuse or self._rebuild_due(cur, h):
                self._rebase(cur)
            else:
                self._reanchor(cur, history)
            while self.i_next < n_out and self.tau[self.i_next] <= cur.tau:
                self._emit(self.i_next, cur)
                self.i_next += 1
        return self._stats(
            True,
            f"exp: reached tau = {cur.tau:.6g} in {self.n_steps} steps "
            f"({self.n_rejected} rejected, {self.n_kernels} kernels, {self.n_dense} output "
            "times from dense output)",
            n_out,
            start,
        )

    def _dense(self, cur: _Point, interp: _Interp, tau_new: float) -> None:
        """Record the output times strictly inside the accepted step (cur.tau, tau_new) from
        the step's continuous extension (module docstring, "Dense output"): the same
        polynomial integrated over [0, s], one VJP and one model evaluation (for the
        recorder) each; the recorder computes the kernel's eigenvalues itself."""
        b = self.basis
        assert b is not None
        C = np.vstack([cur.F[None, :], interp.C])
        C_hat = np.vstack([cur.hatF[None, :], interp.C_hat])
        while self.i_next < self.tau.shape[0] and self.tau[self.i_next] < tau_new:
            s = float(self.tau[self.i_next]) - cur.tau
            tab = phi_table(max(interp.q + 2, 3), s * b.lam)
            x, _ = self._integrate_poly(C, C_hat, s, tab, 0)
            w = self.w0 + (cur.d + x)
            lin = self.linearize(w)
            self.nfev += 1
            self.n_dense += 1
            self.record(self.i_next, w, lin, None)
            if self.progress is not None:
                self.progress(self.i_next)
            self.i_next += 1

    def _advance(
        self, cur: _Point, history: list[_Point], end: float, h: float
    ) -> tuple[_Point, list[_Point], float, _Interp] | str:
        """One accepted step towards ``end`` (rejecting and retrying as the error control
        says): (new point, history to keep, next step size, the interpolant the step used),
        or the failure message. The step is h, the controller's size, except near ``end``:
        it lands there, in one step or in two equal ones (no sliver of a last step); output
        times inside a step come from dense output (:meth:`_dense`). A step is accepted when
        its scaled error is <= 1; the next step size follows the error with the rounding
        floor amplified as the estimate amplifies rounding (:meth:`_scaled`), so that
        rounding noise does not shrink the steps."""
        dist = end - cur.tau
        interp = self._interpolant(cur, history)
        rejects = 0
        rebuilt = False  # the basis was rebuilt here after a rejection on an earlier one
        held: tuple[list[_Point], float, int] | None = None  # history set aside meanwhile
        while True:
            pieces = math.ceil(dist / h - 1e-12)
            step = dist / pieces if pieces <= 2 else h
            land = pieces <= 1
            new, err, err_sel = self._attempt(cur, interp, step, end if land else cur.tau + step)
            if new is not None and err <= 1.0:
                break
            self.n_rejected += 1
            rejects += 1
            if rejects > _MAX_REJECTS or step < 1e-13 * max(cur.tau, float(self.tau[1])):
                return (
                    f"exp: step size collapsed at tau = {cur.tau:.6g} "
                    f"(t = {cur.tau / self.alpha**2:.6g}) after {rejects} rejections"
                )
            stale = self.basis is not None and self.basis.lin is not cur.lin
            if stale and step * self._drift_rate >= _STALE_SHARE * self.drift_limit:
                # a basis from an earlier point that drifted: rebuild it here and retry the same
                # step at order 1, the history set aside (module docstring, "Kernel reuse")
                self._rebase(cur)
                held, history, rebuilt = (history, err, interp.q), [], True
                interp = self._interpolant(cur, history)
                continue
            if stale and rejects == 1 and interp.q > 0:
                # an earlier point's basis, but the drift over the step is small: the basis is
                # not to blame, and exponential Euler on it would integrate the drift at first
                # order only; the same order, the step shrunk (module docstring)
                h = step * min(_factor(err, interp.q), 0.9)
                continue
            if held is not None:  # that failed too: back to the history, the step shrunk
                history, err_held, q_held = held
                held = None
                interp = self._interpolant(cur, history)
                h = step * min(_factor(err_held, q_held), 0.9)
                continue
            h = step * min(_factor(err, interp.q), 0.9)
            if new is None and not rebuilt and rejects <= _SAME_ORDER_RETRIES:
                # the a-priori estimate alone rejected the step: the history extrapolates, the
                # step was too long; retry it shorter at the same order (module docstring)
                continue
            if interp.q > 0 and (not rebuilt or new is not None or rejects > 3):
                # restart at order 1 (module docstring): the past may not extrapolate (a kink
                # of a non-smooth model, a sudden change of the flow)
                history = []
                interp = self._interpolant(cur, history)
        self.max_error = max(self.max_error, err)
        h_next = step * _factor(err_sel, interp.q)
        if step < h:  # a step shortened to land: keep the controller's size
            h_next = max(h_next, h)
        return new, history, h_next, interp

    def _attempt(
        self, cur: _Point, interp: _Interp, step: float, tau_new: float
    ) -> tuple[_Point | None, float, float]:
        """The trial step, its a-priori error and, when that passes, the new point and the
        a-posteriori error: (new point or None, scaled error (the larger of the two), the
        same with the amplified rounding floor for the step-size choice)."""
        err, sel, trial, tab = self._trial(cur, interp, step)
        if err > 1.0:
            return None, err, sel
        d_new = cur.d + trial
        if not np.all(np.isfinite(d_new)):
            return None, math.inf, math.inf
        new = self._point(tau_new, d_new)
        err_post, sel_post = self._posterior(cur, interp, step, new, tab)
        return new, max(err, err_post), max(sel, sel_post)


def _rebuild_cost(n: int, p: int) -> float:
    """What a kernel and its eigendecomposition cost, in accepted steps (module docstring,
    "Kernel reuse"): (n / _KERNEL_N + _EIG_N2_P n^2 / p) products over _STEP_PRODUCTS."""
    return (n / _KERNEL_N + _EIG_N2_P * n * n / max(p, 1)) / _STEP_PRODUCTS


def _factor(err: float, q: int) -> float:
    """Step-size factor for a scaled error ``err`` of an estimate O(h^(q+1))."""
    if not math.isfinite(err):
        return _FAC_MIN
    if err <= 0:
        return _FAC_MAX
    return min(_FAC_MAX, max(_FAC_MIN, _SAFETY * err ** (-1.0 / (max(q, 1) + 1))))
