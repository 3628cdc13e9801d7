"""Integrators for the nonlinear gradient flow w' = -alpha J_w^T (alpha f(w) - y).

Everything runs in the rescaled time tau = alpha^2 t, where the flow reads

    dw/dtau = F(w) = -(1/alpha) J_w^T r(w),   r(w) = alpha f(w) - y,   dr/dtau = -K(w) r,

with the tangent kernel K(w) = J_w J_w^T. The flow is stiff: its stiffness ratio is cond(K),
often 1e3 to 1e6, so an explicit Runge-Kutta method needs steps below about 3 / lambda_max(K)
for stability while the solution evolves on the time scale 1 / lambda_min(K).

Default method ``"exp"``: a variable-step exponential Adams integrator
-------------------------------------------------------------------------
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

Reference methods: scipy's ODE solvers (RK45, DOP853, LSODA, Radau, BDF, the classes behind
``solve_ivp``) in tau-time on the state (w - w0, rho), where rho' = -K(w) r(w),
rho(0) = r(w0), is the residual carried as a quadrature. It costs one extra JVP per call and
makes the solver's step-size control measure errors in residual space as well: without it an
explicit method lets the stiff residual components hover at rtol ||w - w0|| and the loss is
wrong once it is small. The implicit methods get the Gauss-Newton Jacobian. The recorded loss
always comes from the model at w (dense output of the solver), never from rho.

Gradient descent (``"gd"``): w <- w - lr alpha J_w^T (alpha f(w) - y) in unscaled time; iterate
k is time t = k lr. On the linear model it is stable only for lr <= 2 / (alpha^2 lambda_max(K0))
(a nonlinear model may survive a slightly larger lr by moving to where lambda_max(K) is smaller,
but lazycheck refuses it: the comparison with the flow is the point). Its error against the
flow is first order in lr.

Counting: one ``linearize`` (a forward and a backward pass) is one model evaluation (nfev);
JVPs and VJPs on a linearization already computed are counted apart (n_products). The
evaluations spent only to record output are counted in nfev too and apart in nfev_output: the
scipy methods' at every output time, ``exp``'s at the output times inside a step (n_dense).
Kernels (n_kernels) are those the integrator builds and eigendecomposes; the basis at w0 is
not among them when the caller passes K0's eigendecomposition (``eig0``, as simulate does
from the linear flow's).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import Linearization
from lazycheck.numerics.linear_flow import phi_table
from lazycheck.numerics.spectrum import sym_eig

__all__ = [
    "EXP_METHOD",
    "SCIPY_METHODS",
    "FlowStats",
    "check_lr",
    "exp_flow",
    "gd_flow",
    "gd_grid",
    "gd_stability_limit",
    "integrate",
    "probe_signs",
    "residual_floor",
    "scipy_flow",
]

Array = np.ndarray
#: record(i, w, lin, lam): called at output time i with the weights, their linearization and,
#: when the integrator has them, the kernel eigenvalues (else None).
Recorder = Callable[[int, Array, Linearization, Array | None], None]
#: progress(i): output time i has been reached.
Progress = Callable[[int], None]

EXP_METHOD = "exp"
SCIPY_METHODS = ("RK45", "DOP853", "LSODA", "Radau", "BDF")
IMPLICIT_METHODS = ("LSODA", "Radau", "BDF")
#: GD refuses runs that need more iterations than this (a too-small lr).
GD_MAX_ITERATIONS = 5_000_000
#: implicit scipy methods form a dense (p + n) x (p + n) Jacobian; beyond this p they refuse.
DENSE_JACOBIAN_MAX_P = 6000
#: step budget of the exponential integrator (a smooth problem needs a few thousand at most;
#: a non-smooth model whose flow slides along a kink would otherwise crawl for hours)
EXP_MAX_STEPS = 50_000
#: the exponential integrator keeps the kernel's eigenbasis across steps from this n on (below,
#: a kernel and its eigendecomposition cost less than the extra products and steps reuse takes)
KERNEL_REUSE_MIN_N = 128
#: evaluation budget of the scipy methods
SCIPY_MAX_NFEV = 3_000_000

_SAFETY = 0.9
_FAC_MIN = 0.2
_FAC_MAX = 2.0
_MAX_REJECTS = 60
_EPS = float(np.finfo(np.float64).eps)
_NOISE = 16.0  # rounding floor, in units of the estimated rounding of r and w
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
#: the drift ||L_k - L_b|| is measured (four products) at every _DRIFT_EVERY-th accepted point,
#: and wherever its prediction exceeds _DRIFT_PRED_SHARE of the limit; predicted between
_DRIFT_EVERY = 4
_DRIFT_PRED_SHARE = 0.25
#: the cached products L_b (d_j - d_ref) are taken again from the current point (the reference
#: moves there) when ||d_k - d_ref|| exceeds this times the history's span ||d_k - d_oldest||
_REANCHOR = 8.0
#: a step rejected on an earlier point's basis rebuilds it only when the drift over the step,
#: h ||L_k - L_b||, is at least this share of the drift limit (round 13; before, always)
_STALE_SHARE = 0.1
#: the basis is rebuilt at an accepted point where the steps grew by less than _HELD_GROWTH
#: over the last max(_HELD_STEPS, _HELD_COST (1 + R)) on it while the drift over a step is at
#: least _STALE_SHARE of the limit (the drift holds them)
_HELD_STEPS = 8
_HELD_GROWTH = 1.25
_HELD_COST = 4.0
#: a-priori rejections at a point retried at the same order, the step shrunk, before the
#: integrator restarts at order 1 (round 14; before, none on the point's own basis)
_SAME_ORDER_RETRIES = 1


@dataclass(frozen=True)
class FlowStats:
    """What an integrator did.

    Attributes:
        method: the method name.
        success, status, message: like scipy's OdeResult (status 0: reached the end,
            -1: failed; ``n_recorded`` output times were recorded before the failure).
        nfev: model evaluations (one forward + backward pass each) by the integrator,
            including those at output times.
        nfev_output: of these, evaluations spent only to record output (scipy methods
            evaluate the model at every output time from their dense output; ``exp`` at the
            output times inside a step, ``n_dense``; gd records its iterates, so 0).
        n_products: JVP/VJP products on already computed linearizations (cheap).
        n_steps, n_rejected: accepted and rejected steps (for gd: iterations, 0).
        n_recorded: output times recorded.
        max_error: largest accepted scaled error estimate (<= 1), nan when not tracked.
        wall_time: seconds.
        n_kernels: kernels built and eigendecomposed by the integrator (exp only; the one at
            w0 is not counted when the caller passed its eigendecomposition, ``eig0``).
        n_dense: output times recorded from the continuous extension of a step (exp only).
    """

    method: str
    success: bool
    status: int
    message: str
    nfev: int
    nfev_output: int
    n_products: int
    n_steps: int
    n_rejected: int
    n_recorded: int
    max_error: float
    wall_time: float
    n_kernels: int = 0
    n_dense: int = 0


def integrate(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    tau: Array,
    record: Recorder,
    *,
    method: str = EXP_METHOD,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
    budget: int | None = None,
    eig0: tuple[Array, Array] | None = None,
) -> FlowStats:
    """Integrate the flow from w0 over the output times ``tau`` (tau-time, tau[0] = 0,
    increasing), calling ``record`` at each. ``method``: ``"exp"`` or a scipy method.
    ``budget``: the step budget of ``exp`` or the evaluation budget of a scipy method (the
    run stops with success False when it is spent). ``eig0``: (lam, Q) of the kernel at w0
    when the caller has it (``lin0`` must then be given; ``exp`` starts from it)."""
    common = {"rtol": rtol, "atol": atol, "lin0": lin0, "progress": progress}
    if method == EXP_METHOD:
        return exp_flow(
            linearize, w0, y, alpha, tau, record, max_steps=budget or EXP_MAX_STEPS,
            eig0=eig0, **common,
        )  # fmt: skip
    if method in SCIPY_METHODS:
        return scipy_flow(
            linearize,
            w0,
            y,
            alpha,
            tau,
            record,
            method=method,
            max_nfev=budget or SCIPY_MAX_NFEV,
            **common,
        )
    raise LazycheckError(
        f"unknown flow method {method!r}; use {EXP_METHOD}, {', '.join(SCIPY_METHODS)} or gd"
    )


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
    max_steps: int = EXP_MAX_STEPS,
    kernel_reuse: bool | None = None,
    eig0: tuple[Array, Array] | None = None,
) -> FlowStats:
    """The exponential Adams integrator of the module docstring, of order max_history + 1
    (``max_history`` past points interpolated; 0 gives exponential Euler). ``kernel_reuse``:
    keep the kernel's eigenbasis across steps (module docstring); False rebuilds it at every
    point (the integrator before issue 9); None: reuse when n >= :data:`KERNEL_REUSE_MIN_N`.
    ``eig0``: (lam, Q) with K0 = Q diag(lam) Q^T, the kernel of ``lin0`` (symmetrized, as
    :func:`lazycheck.numerics.linear_flow.linear_flow` has it): the first basis, not computed
    again."""
    if not 0 <= max_history <= 6:
        raise ValueError(f"max_history must lie in 0..6, got {max_history}")
    if kernel_reuse is None:
        kernel_reuse = np.asarray(y).shape[0] >= KERNEL_REUSE_MIN_N
    if eig0 is not None and lin0 is None:
        raise ValueError("eig0 is the eigendecomposition of lin0's kernel: give lin0 too")
    integrator = _ExpAdams(
        linearize, w0, y, alpha, tau, record, rtol, atol, lin0, progress, max_history,
        max_steps, kernel_reuse, eig0,
    )  # fmt: skip
    return integrator.run()


def scipy_flow(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    tau: Array,
    record: Recorder,
    *,
    method: str = "DOP853",
    rtol: float = 1e-6,
    atol: float = 1e-12,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
    max_nfev: int = SCIPY_MAX_NFEV,
) -> FlowStats:
    """A scipy ODE solver (the ``OdeSolver`` classes behind ``solve_ivp``, stepped here so
    that steps can be counted and output recorded on the way) on the state (w - w0, rho) in
    tau-time (module docstring). Output times come from the solver's dense output; the model
    is evaluated again there to record them (``nfev_output``)."""
    start = time.perf_counter()
    w0 = np.asarray(w0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p, n = w0.shape[0], y.shape[0]
    if method in IMPLICIT_METHODS and p > DENSE_JACOBIAN_MAX_P:
        raise LazycheckError(
            f"--method {method}: an implicit method needs a dense {p + n} x {p + n} Jacobian "
            f"(p = {p} > {DENSE_JACOBIAN_MAX_P}); use --method exp or an explicit method"
        )
    counts = {"fev": 0, "jev": 0, "prod": 0, "out": 0, "steps": 0}
    tau = np.asarray(tau, dtype=np.float64)
    fun, jac = _scipy_rhs(linearize, w0, y, alpha, counts)
    if lin0 is None:
        lin0 = linearize(w0)
        counts["fev"] += 1
    s0 = np.concatenate([np.zeros(p), alpha * lin0.f - y])
    kwargs: dict[str, object] = {"jac": jac} if method in IMPLICIT_METHODS else {}
    solver_cls = _scipy_solver(method)
    solver = solver_cls(fun, 0.0, s0, float(tau[-1]), rtol=rtol, atol=atol, **kwargs)
    record(0, w0.copy(), lin0, None)
    if progress is not None:
        progress(0)
    i_next, message = _scipy_steps(solver, linearize, w0, tau, record, progress, counts, max_nfev)
    success = i_next == tau.shape[0]
    if success:
        message = f"{method}: reached tau = {tau[-1]:.6g} in {counts['steps']} steps"
    else:
        message = f"{method} failed at tau = {solver.t:.6g}: {message or 'no progress'}"
    return FlowStats(
        method=method,
        success=success,
        status=0 if success else -1,
        message=message,
        nfev=counts["fev"] + counts["jev"] + counts["out"],
        nfev_output=counts["out"],
        n_products=counts["prod"],
        n_steps=counts["steps"],
        n_rejected=-1,
        n_recorded=i_next,
        max_error=math.nan,
        wall_time=time.perf_counter() - start,
    )


def gd_stability_limit(lam_max: float, alpha: float) -> float:
    """The largest stable learning rate of GD on the linear model: 2 / (alpha^2 lambda_max)."""
    if lam_max <= 0:
        return math.inf
    return 2.0 / (alpha**2 * lam_max)


def check_lr(lr: float | None, alpha: float, lam_max: float) -> float:
    """Validate the GD learning rate against the stability limit; return the limit."""
    limit = gd_stability_limit(lam_max, alpha)
    if lr is None:
        raise LazycheckError(
            f"--method gd needs a learning rate: give --lr or [flow].lr (stable below "
            f"2/(alpha^2 lambda_max(K0)) = {limit:.6g})"
        )
    if not (lr > 0 and math.isfinite(lr)):
        raise LazycheckError(f"--lr / [flow].lr must be a finite number > 0, got {lr!r}")
    if lr > limit:
        raise LazycheckError(
            f"--lr / [flow].lr = {lr:.6g} exceeds the gradient-descent stability limit "
            f"2/(alpha^2 lambda_max(K0)) = {limit:.6g} at alpha = {alpha:.6g}; GD would diverge"
        )
    return limit


def gd_grid(t: Array, lr: float) -> tuple[Array, Array]:
    """Snap output times to GD iterates: (iteration indices k, times k lr), strictly
    increasing, always keeping k = 0 and the last time (rounded up to a whole iterate)."""
    t = np.asarray(t, dtype=np.float64)
    k = np.rint(t / lr).astype(np.int64)
    k[-1] = max(math.ceil(t[-1] / lr - 1e-9), 1)
    k = np.unique(np.concatenate([[0], k]))
    if k[-1] > GD_MAX_ITERATIONS:
        raise LazycheckError(
            f"--lr / [flow].lr = {lr:.6g} needs {int(k[-1])} gradient-descent iterations to "
            f"reach t = {t[-1]:.6g} (at most {GD_MAX_ITERATIONS}); raise --lr or shorten "
            "--horizon"
        )
    return k, k * lr


def gd_flow(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    lr: float,
    iterations: Array,
    record: Recorder,
    *,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
) -> FlowStats:
    """Gradient descent w <- w - lr alpha J_w^T (alpha f(w) - y), recording at the given
    (increasing, starting at 0) iteration indices."""
    start = time.perf_counter()
    w0 = np.asarray(w0, dtype=np.float64)
    d = np.zeros_like(w0)  # the iterate is w0 + d (see _ExpAdams._point on rounding)
    w = w0.copy()
    y = np.asarray(y, dtype=np.float64)
    iterations = np.asarray(iterations, dtype=np.int64)
    nfev = 0
    lin = lin0
    if lin is None:
        lin = linearize(w)
        nfev += 1
    r = alpha * lin.f - y
    L0 = 0.5 * float(r @ r)
    j = 0
    k = 0
    last = int(iterations[-1])
    success, message = True, f"gd: {last} iterations at lr = {lr:.6g}"
    while True:
        if k == iterations[j]:
            record(j, w, lin, None)
            if progress is not None:
                progress(j)
            j += 1
            if j == iterations.shape[0]:
                break
        loss = 0.5 * float(r @ r)
        if not math.isfinite(loss) or loss > 1e12 * max(L0, 1e-300):
            success = False
            message = f"gd diverged at iteration {k} (t = {k * lr:.6g}): loss {loss:.3g}"
            break
        d -= (lr * alpha) * lin.vjp(r)
        w = w0 + d
        k += 1
        lin = linearize(w)
        nfev += 1
        r = alpha * lin.f - y
    return FlowStats(
        method="gd",
        success=success,
        status=0 if success else -1,
        message=message,
        nfev=nfev,
        nfev_output=0,
        n_products=k,
        n_steps=k,
        n_rejected=0,
        n_recorded=j,
        max_error=math.nan,
        wall_time=time.perf_counter() - start,
    )


def probe_signs(p: int) -> Array:
    """A fixed (seeded) vector of p random signs for :func:`residual_floor`."""
    return np.random.default_rng(12345).choice([-1.0, 1.0], size=p)


def residual_floor(
    lin: Linearization, w: Array, alpha: float, y: Array, signs: Array | None = None
) -> float:
    """The residual's rounding floor: how far below it r = alpha f(w) - y cannot be resolved.

    Storing w rounds each w_i by up to eps |w_i|, and a forward pass rounds its sums by about
    eps sum_i |w_i df/dw_i|; both move alpha f by about alpha eps ||J_w (w o s)|| for random
    signs s (one JVP); forming alpha f - y adds eps (alpha ||f|| + ||y||). The integrators work
    to ``16`` times this (their error estimates are themselves computed from rounded
    residuals), so losses below (1/2) floor^2 are rounding noise.
    """
    s = probe_signs(w.shape[0]) if signs is None else signs
    return _floor(_probe(lin, w, alpha, s), lin, alpha, y)


def _probe(lin: Linearization, w: Array, alpha: float, signs: Array) -> float:
    """alpha ||J_w (w o s)||, the forward pass's rounding term of :func:`residual_floor`."""
    return alpha * float(np.linalg.norm(lin.jvp(w * signs)))


def _floor(probe: float, lin: Linearization, alpha: float, y: Array) -> float:
    """:func:`residual_floor` from its probe term."""
    return _NOISE * _EPS * (probe + alpha * float(np.linalg.norm(lin.f)) + float(np.linalg.norm(y)))


# ----------------------------------------------------------------------------- helpers


def _scipy_rhs(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    counts: dict[str, int],
) -> tuple[Callable[[float, Array], Array], Callable[[float, Array], Array]]:
    """The right-hand side of (w - w0, rho) in tau-time and its Gauss-Newton Jacobian
    (:func:`scipy_flow`), counting evaluations and products in ``counts``."""
    p, n = w0.shape[0], y.shape[0]

    def fun(_t: float, s: Array) -> Array:
        counts["fev"] += 1
        lin = linearize(w0 + s[:p])
        r = alpha * lin.f - y
        g = lin.vjp(r)
        counts["prod"] += 2
        out = np.empty(p + n)
        out[:p] = -g / alpha
        out[p:] = -lin.jvp(g)
        return out

    def jac(_t: float, s: Array) -> Array:
        counts["jev"] += 1
        lin = linearize(w0 + s[:p])
        J = lin.jacobian()
        M = np.zeros((p + n, p + n))
        M[:p, :p] = -(J.T @ J)
        M[p:, :p] = -alpha * (lin.kernel() @ J)
        return M

    return fun, jac


def _scipy_steps(
    solver: Any,
    linearize: Callable[[Array], Linearization],
    w0: Array,
    tau: Array,
    record: Recorder,
    progress: Progress | None,
    counts: dict[str, int],
    max_nfev: int,
) -> tuple[int, str]:
    """Step a scipy solver to tau[-1], recording the output times it passes from its dense
    output (one model evaluation each, ``counts["out"]``): (output times recorded, message)."""
    p = w0.shape[0]
    i_next, message = 1, ""
    with np.errstate(over="ignore", invalid="ignore"):
        while i_next < tau.shape[0]:
            if counts["fev"] + counts["jev"] > max_nfev:
                return i_next, f"evaluation budget of {max_nfev} spent"
            message = solver.step() or ""
            if solver.status == "failed":
                break
            counts["steps"] += 1
            if not np.all(np.isfinite(solver.y)):
                return i_next, "the solution became non-finite"
            finished = solver.status == "finished"
            t_new = float(tau[-1]) if finished else solver.t
            sol = None
            while i_next < tau.shape[0] and tau[i_next] <= t_new:
                if i_next == tau.shape[0] - 1 and finished:
                    s = solver.y
                else:
                    if sol is None:
                        sol = solver.dense_output()
                    s = sol(tau[i_next])
                w = w0 + s[:p]
                lin = linearize(w)
                counts["out"] += 1
                record(i_next, w, lin, None)
                if progress is not None:
                    progress(i_next)
                i_next += 1
            if finished:
                break
    return i_next, message


def _scipy_solver(method: str) -> type:
    import scipy.integrate as si

    return getattr(si, method)


@dataclass
class _Point:
    """An accepted point of the exponential integrator, with its products with the current
    basis b (cached: they serve every step whose history holds the point)."""

    tau: float
    d: Array  # displacement w - w0, the integrated state (kept apart from w0: see _point)
    w: Array  # w0 + d, rounded
    lin: Linearization
    r: Array  # residual alpha f(w) - y
    F: Array  # dw/dtau = -(1/alpha) J^T r
    noise_r: float  # rounding floor of residual errors
    noise_w: float  # rounding floor of weight errors
    key: int = -1  # serial of the basis hatF belongs to (-1: none yet)
    ref: int = -1  # serial of the reference point Ld and hatLd belong to (-1: none yet)
    hatF: Array | None = None  # Q^T J_b F
    Ld: Array | None = None  # L_b e = -J_b^T J_b e, e = d - d_ref (from the reference point)
    hatLd: Array | None = None  # Q^T J_b L_b e = -lam o Q^T J_b e


@dataclass(frozen=True)
class _Basis:
    """The linear part L = -J_b^T J_b of the splitting, from the kernel at a point b:
    K_b = Q diag(lam) Q^T (lam clipped at 0). ``serial`` tells bases apart."""

    tau: float
    lin: Linearization
    lam: Array
    Q: Array
    serial: int
    d: Array  # the displacement at b (the drift is predicted from the distance to it)


@dataclass(frozen=True)
class _Interp:
    """p(s) = sum_m C[m-1] s^m through N at the history points, and the difference D between
    it and the interpolant through one point fewer (the error estimate). C_hat, D_hat:
    Q^T J_b of each row. ``Vinv``, ``V1inv``, ``scale``: the (scaled) inverse Vandermonde
    matrices through q and q - 1 points, for :meth:`gains`."""

    q: int  # number of history points used; the step has order q + 1
    C: Array  # (q, p)
    C_hat: Array  # (q, n)
    D: Array  # (q, p)
    D_hat: Array  # (q, n)
    Vinv: Array  # (q, q)
    V1inv: Array  # (q - 1, q - 1)
    scale: float

    def gains(self, h: float) -> tuple[float, float]:
        """How much the a-priori and the a-posteriori error estimates of a step of size h
        amplify the rounding of the values they combine: the sums of the absolute weights
        with which F at the new, the current and the history points enter them. Rounding in
        F_j of size e makes an estimate of size up to gain * e whatever h is, so the step-size
        controller must not read it as truncation error (:meth:`_ExpAdams._scaled`)."""
        if self.q == 0:
            return 1.0, 2.0  # exponential Euler: F_new - F_k
        z = (h / self.scale) ** np.arange(1, self.q + 1)
        ell = z @ self.Vinv  # p(h) = sum_j ell_j N_j, N_j = F_j - F_k - L (d_j - d_k)
        mu = ell.copy()
        if self.q > 1:
            mu[: self.q - 1] -= z[: self.q - 1] @ self.V1inv
        post = 1.0 + float(np.abs(ell).sum()) + abs(1.0 - float(ell.sum()))
        prior = float(np.abs(mu).sum()) + abs(float(mu.sum()))
        return max(prior, 1.0), post


class _Steps:
    """The mathematics of one step of the exponential Adams integrator (module docstring): the
    basis and the products cached with it, the interpolant, the trial step and both error
    estimates. :class:`_ExpAdams` drives it; the attributes are set by its constructor."""

    alpha: float
    rtol: float
    atol: float
    w0: Array
    basis: _Basis | None
    n_products: int
    n_kernels: int
    _serial: int  # the next basis's serial
    _drift_vec: Array | None
    _drift_at: tuple[int, float, float] | None  # (basis serial, ||L_k - L_b||, ||d_k - d_b||)
    _drift_skipped: int  # accepted points since the drift was last measured
    _drift_rate: float  # ||L_k - L_b|| at the current point, as last measured or predicted
    _h_seen: deque[float]  # the last step sizes the controller chose on this basis
    _ref: tuple[int, Array]  # (serial, displacement) of the cached products' reference point

    def _rebase(self, cur: _Point, eig: tuple[Array, Array] | None = None) -> _Basis:
        """The eigenbasis of the kernel at ``cur``: one kernel and one eigendecomposition, or
        ``eig`` = (lam, Q) when the caller has it already (K = Q diag(lam) Q^T, symmetrized,
        as :func:`lazycheck.numerics.linear_flow.linear_flow` computes it; no kernel counted)."""
        if self.basis is None or self.basis.lin is not cur.lin:
            if eig is None:
                K = cur.lin.kernel()
                lam, Q = sym_eig(0.5 * (K + K.T))
                self.n_kernels += 1
            else:
                lam, Q = eig
            self.basis = _Basis(cur.tau, cur.lin, np.maximum(lam, 0.0), Q, self._serial, cur.d)
            self._ref = (self._serial, cur.d)
            self._serial += 1
            self._drift_rate = 0.0
            self._h_seen.clear()
        return self.basis

    def _reanchor(self, cur: _Point, history: list[_Point]) -> None:
        """Take the cached products L_b (d_j - d_ref) from ``cur`` from now on when the
        reference point lies far behind the history (:data:`_REANCHOR`): their rounding
        scales with ||d_j - d_ref||, while the steps use only their differences, of the size
        of the history's span. The history's points then take their products again (two
        each, in :meth:`_prep`); ``cur``'s are zero."""
        if not history or self.basis is None:
            return
        span = float(np.linalg.norm(cur.d - history[-1].d))
        if float(np.linalg.norm(cur.d - self._ref[1])) > _REANCHOR * span:
            self._ref = (self._serial, cur.d)
            self._serial += 1

    def _prep(self, pt: _Point) -> None:
        """The point's products with the current basis (up to three products, none when
        they are cached): Q^T J_b F (kept while the basis is), and L_b e and Q^T J_b L_b e
        with e = d - d_ref, the displacement from the reference point (kept while the
        reference is; none at the reference itself, see :meth:`_reanchor`). Each N_j and its
        image under Q^T J_b then costs no product: L_b (d_j - d_k) = L_b e_j - L_b e_k, whose
        rounding scales with ||d_j - d_ref||, not with ||d_j|| (module docstring, "Kernel
        reuse")."""
        b = self.basis
        assert b is not None
        if pt.key != b.serial:
            if b.lin is pt.lin:  # J_b F = -K_b r / alpha
                pt.hatF = -(b.lam * (b.Q.T @ pt.r)) / self.alpha
            else:
                pt.hatF = b.Q.T @ b.lin.jvp(pt.F)
                self.n_products += 1
            pt.key = b.serial
        serial, d_ref = self._ref
        if pt.ref != serial:
            e = pt.d - d_ref
            if np.any(e):
                Jd = b.lin.jvp(e)
                pt.Ld = -b.lin.vjp(Jd)
                pt.hatLd = -b.lam * (b.Q.T @ Jd)
                self.n_products += 2
            else:
                pt.Ld, pt.hatLd = np.zeros_like(pt.d), np.zeros_like(b.lam)
            pt.ref = serial

    def _drift(self, cur: _Point, h: float, limit: float) -> float:
        """h ||L_k - L_b||: how stiff, over the next step, the part of the linear term the
        basis misses is (it is integrated explicitly). The norm by one power-iteration step,
        warm-started from the last one (four products): an estimate from below that tightens
        as the run goes on. It is taken at the first accepted point of a basis, at every
        :data:`_DRIFT_EVERY`-th point and wherever the prediction :meth:`_drift_pred` (no
        product) exceeds :data:`_DRIFT_PRED_SHARE` of ``limit``; elsewhere the prediction is
        returned."""
        b = self.basis
        if b is None or b.lin is cur.lin:
            self._drift_rate = 0.0
            return 0.0
        pred = self._drift_pred(cur)
        self._drift_skipped += 1
        if h * pred <= _DRIFT_PRED_SHARE * limit and self._drift_skipped < _DRIFT_EVERY:
            self._drift_rate = pred
            return h * pred
        self._drift_skipped = 0
        v = self._drift_vec
        if v is None:
            v = probe_signs(self.w0.shape[0]) / math.sqrt(self.w0.shape[0])
        u = self._L(v) - (-cur.lin.vjp(cur.lin.jvp(v)))
        self.n_products += 2
        nu = float(np.linalg.norm(u))
        self._drift_rate = nu
        self._drift_vec = u / nu if nu > 0 else None
        self._drift_at = (b.serial, nu, float(np.linalg.norm(cur.d - b.d)))
        return h * nu

    def _rebuild_due(self, cur: _Point, h: float) -> bool:
        """Whether to rebuild the basis at the accepted point ``cur``, h the next step: when the
        drift over the step, h ||L_k - L_b||, exceeds the limit, or when it is at least
        :data:`_STALE_SHARE` of it and the steps grew by less than :data:`_HELD_GROWTH` over
        the last max(:data:`_HELD_STEPS`, :data:`_HELD_COST` (1 + R)) on this basis: the drift
        holds them there (module docstring, "When to rebuild")."""
        drift = self._drift(cur, h, self.drift_limit)
        seen = self._h_seen
        seen.append(h)
        if drift > self.drift_limit:
            return True
        if drift < _STALE_SHARE * self.drift_limit or len(seen) < seen.maxlen:
            return False
        return h < _HELD_GROWTH * seen[0]

    def _drift_pred(self, cur: _Point) -> float:
        """||L_k - L_b|| predicted from its last measurement with this basis, scaled with the
        distance ||d_k - d_b|| (L_w - L_b is linear in w - w_b to first order); inf when
        there is none."""
        b = self.basis
        at = self._drift_at
        if b is None or at is None or at[0] != b.serial or at[2] <= 0.0:
            return math.inf
        return at[1] * float(np.linalg.norm(cur.d - b.d)) / at[2]

    def _L(self, v: Array) -> Array:
        """L v = -J_b^T J_b v (two products)."""
        b = self.basis
        assert b is not None
        self.n_products += 2
        return -b.lin.vjp(b.lin.jvp(v))

    def _interpolant(self, cur: _Point, history: list[_Point]) -> _Interp:
        """p(s) = sum_m c_m s^m with p(0) = 0 through N(w_j) = F_j - F_k - L (w_j - w_k) at
        s_j = tau_j - tau_k (no products beyond those :meth:`_prep` caches)."""
        q = len(history)
        p, n = cur.w.shape[0], cur.r.shape[0]
        if q == 0:
            z = np.zeros((0, p))
            zn, e = np.zeros((0, n)), np.zeros((0, 0))
            return _Interp(0, z, zn, z, zn, e, e, 1.0)
        for pt in (cur, *history):
            self._prep(pt)
        N = np.array([old.F - cur.F - (old.Ld - cur.Ld) for old in history])
        JN_hat = np.array([old.hatF - cur.hatF - (old.hatLd - cur.hatLd) for old in history])
        Vinv, V1inv, scale = _vandermonde(np.array([old.tau - cur.tau for old in history]))
        powers = scale ** -np.arange(1, q + 1)
        C = powers[:, None] * (Vinv @ N)
        C_hat = powers[:, None] * (Vinv @ JN_hat)
        D, D_hat = C.copy(), C_hat.copy()
        if q > 1:
            D[: q - 1] -= powers[: q - 1, None] * (V1inv @ N[: q - 1])
            D_hat[: q - 1] -= powers[: q - 1, None] * (V1inv @ JN_hat[: q - 1])
        return _Interp(q, C, C_hat, D, D_hat, Vinv, V1inv, scale)

    def _integrate_poly(
        self, C: Array, C_hat: Array, h: float, tab: Array, m0: int
    ) -> tuple[Array, Array]:
        """int_0^h e^{(h-s)L} sum_m C_m s^m ds = sum_m m! h^(m+1) phi_{m+1}(hL) C_m, m from m0,
        with m! h^(m+1) phi_{m+1}(hL) v = h^(m+1)/(m+1) v - m! h^(m+2) J^T Q phi_{m+2} Q^T J v:
        one VJP for all terms. Returns it and its image J_b x = Q (sum_m h^(m+1)/(m+1)
        C_hat_m + lam o g) (no product)."""
        b = self.basis
        assert b is not None
        free = np.zeros(C.shape[1])
        free_hat = np.zeros(b.lam.shape[0])
        g = np.zeros(b.lam.shape[0])
        for i in range(C.shape[0]):
            m = i + m0
            free += h ** (m + 1) / (m + 1) * C[i]
            free_hat += h ** (m + 1) / (m + 1) * C_hat[i]
            g -= math.factorial(m) * h ** (m + 2) * tab[m + 2] * C_hat[i]
        self.n_products += 1
        return free + b.lin.vjp(b.Q @ g), b.Q @ (free_hat + b.lam * g)

    def _jvp_cur(self, cur: _Point, x: Array, jb_x: Array) -> Array:
        """J_k x: from the basis when it is cur's own (J_b x given), else one JVP."""
        b = self.basis
        assert b is not None
        if b.lin is cur.lin:
            return jb_x
        self.n_products += 1
        return cur.lin.jvp(x)

    def _trial(self, cur: _Point, c: _Interp, h: float) -> tuple[float, float, Array, Array]:
        """The step of size h from ``cur``, its a-priori scaled error (0 when q = 0) for the
        acceptance test and for the step-size choice (:meth:`_scaled`), and the table of
        phi_j(-h lambda)."""
        b = self.basis
        assert b is not None
        self._prep(cur)
        tab = phi_table(max(c.q + 2, 3), h * b.lam)
        C = np.vstack([cur.F[None, :], c.C])  # exponential Euler's h phi1(hL) F_k is m = 0
        C_hat = np.vstack([cur.hatF[None, :], c.C_hat])
        step, jb_step = self._integrate_poly(C, C_hat, h, tab, 0)
        if c.q == 0:
            return 0.0, 0.0, step, tab
        est, jb_est = self._integrate_poly(c.D, c.D_hat, h, tab, 1)
        r_pred = float(np.linalg.norm(cur.r + self.alpha * self._jvp_cur(cur, step, jb_step)))
        est_r = self.alpha * float(np.linalg.norm(self._jvp_cur(cur, est, jb_est)))
        err_w = float(np.linalg.norm(est))
        return (*self._scaled(err_w, est_r, cur, step, r_pred, c.gains(h)[0]), step, tab)

    def _posterior(
        self, cur: _Point, c: _Interp, h: float, new: _Point, tab: Array
    ) -> tuple[float, float]:
        """Scaled size of the interpolation error seen at the new point (module docstring),
        for the acceptance test and for the step-size choice."""
        self._prep(new)
        N_new = new.F - cur.F - (new.Ld - cur.Ld)
        hat_new = new.hatF - cur.hatF - (new.hatLd - cur.hatLd)
        # The interpolation error e(s) grows on [0, h] no faster than (s/h) e(h), and e^{(h-s)L}
        # has positive weights in each eigendirection of L = -J^T J, so the error it causes
        # is bounded by int_0^h e^{(h-s)L} (s/h) ds e(h) = h phi2(hL) e(h), e(h) = N(h) - p(h).
        # (For q = 0 this is exponential Euler's leading error term.)
        hm = h ** np.arange(1, c.q + 1)
        e_h, e_hat = N_new - c.C.T @ hm, hat_new - c.C_hat.T @ hm
        delta, jb_delta = self._integrate_poly(e_h[None, :] / h, e_hat[None, :] / h, h, tab, 1)
        delta_r = self.alpha * float(np.linalg.norm(self._jvp_cur(cur, delta, jb_delta)))
        r_new = float(np.linalg.norm(new.r))
        dw = new.d - cur.d
        return self._scaled(float(np.linalg.norm(delta)), delta_r, cur, dw, r_new, c.gains(h)[1])

    def _scaled(
        self, err_w: float, err_r: float, cur: _Point, step: Array, r_new_norm: float, gain: float
    ) -> tuple[float, float]:
        """(err, err_sel): the scaled error for the acceptance test (tolerance plus rounding
        floor) and for the step-size choice, whose rounding floor is raised to twice the
        estimate's own rounding (its gain, :meth:`_Interp.gains`, times the rounding of r and
        w) where that is larger: an estimate at that level may be rounding alone, which a
        smaller step does not reduce, so it must not shrink the steps."""
        d_old = float(np.linalg.norm(cur.d))
        d_new = float(np.linalg.norm(cur.d + step))
        tol_w = self.atol + self.rtol * max(d_old, d_new)
        tol_r = self.atol + self.rtol * r_new_norm
        err = max(err_w / (tol_w + cur.noise_w), err_r / (tol_r + cur.noise_r))
        # the floors are _NOISE times the rounding of r and w; the estimate's own rounding is
        # up to gain times theirs: twice that is the level below which it may be noise alone
        g = max(1.0, 2.0 * gain / _NOISE)
        sel = max(err_w / (tol_w + g * cur.noise_w), err_r / (tol_r + g * cur.noise_r))
        return err, sel


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


def _vandermonde(s: Array) -> tuple[Array, Array, float]:
    """For the nodes s_j < 0 (j = 1..q) of p(s) = sum_m c_m s^m, p(0) = 0: the inverse of
    V_jm = (s_j / scale)^m through all q nodes and through the first q - 1, and scale = -s_1
    (the scaled variable keeps V well conditioned)."""
    q = s.shape[0]
    scale = float(-s[0])
    V = (s[:, None] / scale) ** np.arange(1, q + 1)[None, :]
    V1inv = np.linalg.inv(V[: q - 1, : q - 1]) if q > 1 else np.zeros((0, 0))
    return np.linalg.inv(V), V1inv, scale


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
