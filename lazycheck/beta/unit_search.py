"""The sampled beta of a one-hidden-layer MLP, searched one unit at a time.

With one hidden layer, some unit's part of any move does at least as well as the move
(:mod:`lazycheck.beta.units`), so the sup of ||J_w - J_0|| / ||w - w0|| over a ball is the
largest, over the units j, of the sup over moves of unit j alone: k + 1 parameters (input
weights and bias theta_j, output weight v_j). For such a move d_j, row i of J_{w0+d} - J_0
is (:mod:`lazycheck.beta.units`)

    D_j(d_j)_i = c2 [B_ij g_i, A_ij],   A_ij = phi(z'_ij) - phi(z_ij),
                                        B_ij = (v_j + dv_j) phi'(z'_ij) - v_j phi'(z_ij),

an n x (k + 1) matrix, and its derivative at d_j = 0 in the direction h is row by row
H_ij h with the unit's Hessian of f(x_i, .),

    H_ij = c2 [[v_j phi''(z_ij) g_i g_i^T, phi'(z_ij) g_i], [phi'(z_ij) g_i^T, 0]].

The search runs the whole-network search's steps (:mod:`lazycheck.beta.sampled`) unit by unit,
on every unit at once, where the whole-network search ends in one unit's local maximum:

1. **Scores** (:func:`_scores`, every unit, by blocks of units): :data:`POWER_STEPS` power
   steps on S_j = sum_i H_ij^2 (the k + 1 directions h of largest ||dD_j[h]||_F) from a random
   start give a direction h; the score ||(h^T H_ij h)_i|| is a lower bound on the unit's
   ||dD_j||, a rough guide to the units worth the next steps (O(n (k + 1)^2) a unit).
2. **Candidates** (:func:`_alternate`): the :data:`CANDIDATES` best-scored units
   (:data:`EVERY_UNIT_MAX` where n x width is small). Their worst direction by the alternation of
   the whole-network search in k + 1 dimensions (a <- the top left singular vector of
   dD_j[h]; h <- the eigenvector of largest magnitude of sum_i a_i H_ij; each by
   :data:`POWER_INNER` warm-started power steps), from the score's
   direction and the top :data:`EIGEN_STARTS` eigenvectors of S_j; the best end is kept. One
   start was not enough: on ``samples/two_layer_tanh.toml`` the best unit has two local maxima,
   0.10245 and 0.10413, and the score's direction leads to the lower. After
   :data:`PRUNE_AFTER` steps only the runs within :data:`ALTERNATION_MARGIN` of the best go on.
3. **Ascent** (:meth:`UnitSearch.best_move`): projected gradient ascent on each candidate's
   ratio ||D_j(d_j)|| / ||d_j|| in the ball of radius R, from +R h_j and -R h_j (and, in a
   small layer, from :data:`RANDOM_STARTS` random directions at each of the radii
   :data:`RANDOM_RADII`), with exact
   gradients (the top singular pair of the n x (k + 1) matrix by the eigenpair of its Gram
   matrix) and a step size per problem; after :data:`PRUNE_AFTER` steps only the problems
   within :data:`PRUNE_MARGIN` of the best go on.

The caller records the best move at its ratio computed as every other point's, by the
difference kernel or Lanczos on the whole network, so the value is attained as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lazycheck.beta.units import UnitSplit, unit_blocks

__all__ = ["CANDIDATES", "UnitSearch", "change_along"]

Array = np.ndarray
#: units whose worst direction is found and whose ratio is ascended: the best-scored
#: CANDIDATES, or EVERY_UNIT_MAX (every unit of a layer that has no more) where n x width is at
#: most SMALL_LAYER (milliseconds either way). The scores are a rough guide: on the samples and
#: the scaling benchmark's cases the unit ending best was ranked 0th to 4th by its score, and
#: 20th of 50 on ``samples/uncentered.toml``; on 60 random small networks (7 activations, n 3
#: to 39, width 5 to 300) 16 candidates left the search below the whole-network search's value
#: on 5 of them (by up to 16%; 3 with 32 candidates, none with 64)
CANDIDATES = 16
EVERY_UNIT_MAX = 64
SMALL_LAYER = 20_000
#: besides +-R h_j from each candidate's worst direction, the ascent in a layer with n x width
#: at most SMALL_LAYER starts from RANDOM_STARTS random directions of the unit at each fraction
#: RANDOM_RADII of R: a unit's ratio has several local maxima on a ball of finite radius, some
#: inside it (on those small random networks, without them the search ended below the
#: whole-network search on 9 of 60 instead of 5; on 24 larger ones they changed nothing of
#: that, 6 below either way, and cost up to 14 ms, a fifth of ``bound`` at width 1e3, n = 50)
RANDOM_STARTS = 4
RANDOM_RADII = np.array([1.0, 0.3])
#: power steps on S_j for the scores' directions, on every unit
POWER_STEPS = 8
#: starts of the alternation besides the score's direction: the top eigenvectors of
#: sum_i H_ij^2 (measured: without them ``samples/two_layer_tanh.toml`` ends 1.6% lower; with
#: one, every sample and benchmark case ends at the value it has with three)
EIGEN_STARTS = 2
#: the most alternation steps (its direction only starts the ascent); it stops earlier when
#: every value changes by less than ALTERNATION_TOL (relative)
ALTERNATION_STEPS = 10
ALTERNATION_TOL = 1e-6
#: power steps, warm-started, for each of the alternation's two eigenvector problems (the
#: first step's singular pair is exact): measured on the samples and the scaling benchmark's
#: cases, the same values as exact eigenvectors at every step, in 0.5-0.8x the time
POWER_INNER = 3
#: after PRUNE_AFTER alternation steps, only the runs within ALTERNATION_MARGIN (relative) of
#: the best go on (measured with every unit a candidate: the unit with the best ratio at the
#: end was within 3.4% of the best derivative; pruning after 3 steps lost the better of two
#: maxima on ``samples/two_layer_tanh.toml``)
ALTERNATION_MARGIN = 0.1
#: the ascent stops for a problem when a step raises its ratio by less than ASCENT_TOL
#: (relative); measured on the samples and the scaling benchmark's cases, 1e-7 took up to 175
#: steps (width 1e3) against 24 and raised no value by more than 2.5e-4 (width 1e4; 1.6e-5 on
#: the samples). At most ASCENT_STEPS steps.
ASCENT_TOL = 1e-5
ASCENT_STEPS = 200
#: after PRUNE_AFTER ascent steps, the problems more than PRUNE_MARGIN (relative) below the
#: best stop (measured on every sample and the scaling benchmark's cases: the problem ahead
#: after 5 steps was the one ahead at the end every time)
PRUNE_AFTER = 5
PRUNE_MARGIN = 0.01


@dataclass(frozen=True)
class UnitMove:
    """A move of one unit: the unit, its k + 1 parameters' change, and the ratio
    ||D_j(part)|| / ||part|| computed unit-wise."""

    unit: int
    part: Array
    ratio: float


class UnitSearch:
    """The per-unit search of a one-hidden-layer MLP (module docstring). Construction runs
    steps 1 and 2 (the worst directions); :meth:`best_move` runs step 3 for a radius."""

    def __init__(self, split: UnitSplit, rng: np.random.Generator, iterations: int = 30) -> None:
        self.split = split
        scores, directions = _scores(split, rng)
        small = split.G.shape[0] * scores.size <= SMALL_LAYER
        count = EVERY_UNIT_MAX if small else CANDIDATES
        self.random_starts = RANDOM_STARTS if small else 0
        self.units = np.argsort(-scores, kind="stable")[:count]
        self._at = _AtW0(split, self.units)
        shape = (RANDOM_RADII.size * self.random_starts, self.units.size, split.index.shape[1])
        self._random = rng.standard_normal(shape)  # unit directions: the ascent's other starts
        self._random /= np.linalg.norm(self._random, axis=2)[:, :, None]
        self.directions, self.values, self.steps = _alternate(
            self._at, directions[self.units], min(iterations, ALTERNATION_STEPS)
        )

    def worst_direction(self) -> tuple[Array, float]:
        """The candidates' best unit direction h (a unit vector of the whole network's
        parameters) and its ||dD_j[h]||."""
        i = int(np.argmax(self.values))
        return self.split.embed(int(self.units[i]), self.directions[i]), float(self.values[i])

    def best_move(self, radius: float, steps: int = ASCENT_STEPS) -> tuple[UnitMove, int, bool]:
        """The best move found in the ball of radius R (step 3), the ascent's steps, and
        whether every problem stopped by :data:`ASCENT_TOL`."""
        C = self.units.size
        fractions = np.repeat(RANDOM_RADII, self.random_starts)[:, None, None]
        random = (radius * fractions * self._random).reshape(-1, self._random.shape[2])
        starts = np.vstack([radius * self.directions, -radius * self.directions, random])
        index = np.tile(np.arange(C), 2 + RANDOM_RADII.size * self.random_starts)
        moves, ratios, used, done = _ascend(self._at, index, starts, radius, steps)
        i = int(np.argmax(ratios))
        unit = int(self.units[index[i]])
        return UnitMove(unit, moves[i], float(ratios[i])), used, done


def change_along(split: UnitSplit, unit: int, part: Array) -> Callable[[float], float]:
    """s -> ||J_{w0 + s d} - J_0|| for the move d of ``unit`` alone by ``part``: ||D_j(s part)||,
    the top singular value of an n x (k + 1) matrix (the critical radius's norm along a
    one-unit direction; the unit's values at w0 computed once)."""
    at, cols = _AtW0(split, np.array([unit])), np.zeros(1, dtype=int)
    return lambda s: float(_changes(at, cols, s * part[None, :])[0][0])


# ----------------------------------------------------------------------------- helpers


class _AtW0:
    """The candidates' pre-activations z (n x units), phi and phi' there, and their Hessians'
    coefficients a and b (:func:`_coefficients`)."""

    def __init__(self, split: UnitSplit, units: Array) -> None:
        self.split, self.units = split, units
        self.z = split.G @ split.theta[units].T
        self.phi, self.d1 = split.act.fn_d1(self.z)
        self.v = split.v[units]
        self.a, self.b = _coefficients(split, units, self.d1, split.act.d2(self.z))


def _coefficients(
    split: UnitSplit, units: Array | slice, d1: Array, d2: Array
) -> tuple[Array, Array]:
    """a = c2 v phi''(z) and b = c2 phi'(z) (n x units): unit j's Hessian of f(x_i, .) is
    H_ij = [[a_ij g_i g_i^T, b_ij g_i], [b_ij g_i^T, 0]]."""
    return split.c2 * split.v[units] * d2, split.c2 * d1


def _scores(split: UnitSplit, rng: np.random.Generator) -> tuple[Array, Array]:
    """Every unit's score and direction (step 1), by blocks of units: :data:`POWER_STEPS`
    power steps on S_j = sum_i H_ij^2 from a random start give h; the score is
    ||(h^T H_ij h)_i||."""
    G = split.G
    n, k = G.shape
    m = split.theta.shape[0]
    H = rng.standard_normal((m, k + 1))
    H /= np.linalg.norm(H, axis=1)[:, None]
    scores = np.empty(m)
    for s, e in unit_blocks(n, m):
        a, b = _coefficients(split, slice(s, e), *split.act.d1_d2(G @ split.theta[s:e].T))
        S = _squares(split, a, b)
        h = H[s:e]
        for _ in range(POWER_STEPS):
            h = _normalized(np.einsum("jab,jb->ja", S, h), h)
        t = G @ h[:, :k].T  # g_i . h_theta
        q = t * (a * t + (2.0 * h[:, k]) * b)  # h^T H_ij h
        scores[s:e], H[s:e] = np.sqrt(np.einsum("ij,ij->j", q, q)), h
    return scores, H


def _normalized(new: Array, old: Array) -> Array:
    """The rows of ``new`` scaled to unit length; ``old``'s rows where a row of ``new`` is 0
    (a unit whose every derivative underflows, as a saturated one's does)."""
    norm = np.linalg.norm(new, axis=1)
    return np.where((norm > 0)[:, None], new / _safe(norm)[:, None], old)


def _safe(x: Array) -> Array:
    return np.where(x > 0, x, 1.0)


def _squares(split: UnitSplit, a: Array, b: Array) -> Array:
    """S_j = sum_i H_ij^2 for the columns of the coefficients a, b (:func:`_coefficients`):
    S_j = [[sum (a^2 |g|^2 + b^2) g g^T, sum a b |g|^2 g], [., sum b^2 |g|^2]]."""
    G = split.G
    k, u = G.shape[1], a.shape[1]
    g2 = np.einsum("ij,ij->i", G, G)[:, None]
    bb = b * b
    S = np.empty((u, k + 1, k + 1))
    S[:, :k, :k] = ((a * a * g2 + bb).T @ split.gg).reshape(u, k, k)
    S[:, :k, k] = (a * b * g2).T @ G
    S[:, k, :k] = S[:, :k, k]
    S[:, k, k] = g2[:, 0] @ bb
    return S


def _hessian_rows(at: _AtW0, cols: Array, h: Array) -> tuple[Array, Array]:
    """alpha, beta with dD_j[h]_i = [alpha_ij g_i, beta_ij] (n x problems); ``cols``: each
    problem's candidate column."""
    G = at.split.G
    t = G @ h[:, : G.shape[1]].T
    b = at.b[:, cols]
    return at.a[:, cols] * t + b * h[:, -1], b * t


def _eigen_starts(at: _AtW0) -> list[Array]:
    """The top :data:`EIGEN_STARTS` eigenvectors of S_j = sum_i H_ij^2 for every candidate."""
    _lam, vec = np.linalg.eigh(_squares(at.split, at.a, at.b))
    return [vec[:, :, -1 - i] for i in range(min(EIGEN_STARTS, vec.shape[2]))]


def _alternate(at: _AtW0, scored: Array, iterations: int) -> tuple[Array, Array, int]:
    """Step 2: each candidate's worst direction and its ||dD_j[h]||, the best end of the
    alternation from every start; with the steps taken."""
    G, k, C = at.split.G, at.split.G.shape[1], at.units.size
    starts = [scored, *_eigen_starts(at)]
    h = np.vstack(starts)
    cols = np.tile(np.arange(C), len(starts))
    value = np.zeros(cols.size)
    measured = h.copy()  # the direction each value was measured at
    right = np.zeros((cols.size, k + 1))  # each run's right singular vector, warm
    active = np.arange(cols.size)
    step = 0
    for step in range(1, iterations + 1):
        c, hc = cols[active], h[active]
        alpha, beta = _hessian_rows(at, c, hc)
        N = at.split.row_grams(alpha, beta)
        b = np.linalg.eigh(N)[1][:, :, -1] if step == 1 else _power(N, right[active])
        right[active] = b
        sigma = np.sqrt(np.maximum(np.einsum("ja,jab,jb->j", b, N, b), 0.0))
        a = (alpha * (G @ b[:, :k].T) + beta * b[:, k]) / _safe(sigma)
        moved = np.abs(sigma - value[active]) > ALTERNATION_TOL * sigma
        value[active], measured[active] = sigma, hc
        if step == PRUNE_AFTER:
            moved &= _kept(value)[active]
        active = active[moved]
        if active.size == 0:
            break
        Hm = _hessian_sums(at, c[moved], a[:, moved])
        h[active] = _power(np.einsum("jab,jbc->jac", Hm, Hm), hc[moved])
    best = np.argmax(value.reshape(len(starts), C), axis=0)
    rows = best * C + np.arange(C)
    return measured[rows], value[rows], step


def _power(M: Array, x: Array) -> Array:
    """:data:`POWER_INNER` power steps on each symmetric positive semidefinite M_j from x_j
    (M = H^2 for the eigenvector of H of largest magnitude)."""
    for _ in range(POWER_INNER):
        x = _normalized(np.einsum("jab,jb->ja", M, x), x)
    return x


def _hessian_sums(at: _AtW0, cols: Array, a: Array) -> Array:
    """sum_i a_ij H_ij for each problem (``cols``: its candidate column; a: n x problems)."""
    split = at.split
    G, k = split.G, split.G.shape[1]
    H = np.zeros((cols.size, k + 1, k + 1))
    H[:, :k, :k] = ((a * at.a[:, cols]).T @ split.gg).reshape(-1, k, k)
    H[:, :k, k] = (a * at.b[:, cols]).T @ G
    H[:, k, :k] = H[:, :k, k]
    return H


def _kept(value: Array) -> Array:
    """The problems of the alternation that go on after :data:`PRUNE_AFTER` steps: those
    within :data:`ALTERNATION_MARGIN` of the best. (Keeping only each unit's best start lost
    the better of two maxima of a unit on ``samples/two_layer_tanh.toml``: the start behind
    after five steps ended ahead, 0.10413 against 0.10245.)"""
    return value >= (1.0 - ALTERNATION_MARGIN) * value.max()


def _changes(at: _AtW0, cols: Array, moves: Array) -> tuple[Array, ...]:
    """Each problem's ||D_j(d_j)||, with the top eigenvector b of its Gram matrix, the columns
    A = c2 (phi(z') - phi(z)) and B = c2 ((v + dv) phi'(z') - v phi'(z)), z' and phi'(z')."""
    split = at.split
    G, c2 = split.G, split.c2
    k = G.shape[1]
    z_new = at.z[:, cols] + G @ moves[:, :k].T
    phi_new, d1_new = split.act.fn_d1(z_new)
    v = at.v[cols]
    A = c2 * (phi_new - at.phi[:, cols])
    B = c2 * ((v + moves[:, k]) * d1_new - v * at.d1[:, cols])
    lam, vec = np.linalg.eigh(split.row_grams(B, A))
    return np.sqrt(np.maximum(lam[:, -1], 0.0)), vec[:, :, -1], A, B, z_new, d1_new


def _ratio(
    at: _AtW0, cols: Array, moves: Array, gradient: bool = True
) -> tuple[Array, Array | None]:
    """Each problem's ratio ||D_j(d_j)|| / ||d_j|| and its gradient in d_j."""
    split = at.split
    G, c2, act = split.G, split.c2, split.act
    k = G.shape[1]
    sigma, b, A, B, z_new, d1_new = _changes(at, cols, moves)
    norm = np.linalg.norm(moves, axis=1)
    ratio = sigma / norm
    if not gradient:
        return ratio, None
    v = at.v[cols]
    gb = G @ b[:, :k].T
    a = (B * gb + A * b[:, k]) / _safe(sigma)  # D b / sigma
    w = (v + moves[:, k]) * act.d2(z_new) * gb + d1_new * b[:, k]
    grad_sigma = c2 * np.hstack([(a * w).T @ G, np.einsum("ij,ij->j", a, d1_new * gb)[:, None]])
    grad = grad_sigma / norm[:, None] - (sigma / norm**3)[:, None] * moves
    return ratio, grad


def _ascend(
    at: _AtW0, cols: Array, moves: Array, radius: float, steps: int
) -> tuple[Array, Array, int, bool]:
    """Projected gradient ascent of every problem at once, a step size each; a problem stops
    when a step gains less than :data:`ASCENT_TOL` or its step falls below 1e-8 R. After
    :data:`PRUNE_AFTER` steps the problems more than :data:`PRUNE_MARGIN` below the best stop
    too."""
    moves = moves.copy()
    ratio, grad = _ratio(at, cols, moves)
    assert grad is not None
    size = np.full(cols.size, 0.25 * radius)
    active = np.ones(cols.size, dtype=bool)
    used = 0
    for used in range(1, steps + 1):
        if used == PRUNE_AFTER:
            active &= ratio >= (1.0 - PRUNE_MARGIN) * ratio.max()
        idx = np.flatnonzero(active)
        g = grad[idx]
        gn = np.linalg.norm(g, axis=1)
        trial = moves[idx] + (size[idx] / _safe(gn))[:, None] * g
        tn = np.linalg.norm(trial, axis=1)
        trial *= np.minimum(1.0, radius / tn)[:, None]
        rt, gt = _ratio(at, cols[idx], trial)
        assert gt is not None
        up = rt > ratio[idx] * (1 + 1e-9)
        stop = (up & (rt - ratio[idx] <= ASCENT_TOL * ratio[idx])) | (gn == 0)
        won = idx[up]
        moves[won], ratio[won], grad[won] = trial[up], rt[up], gt[up]
        size[idx] = np.where(up, 1.5 * size[idx], 0.5 * size[idx])
        stop |= size[idx] <= 1e-8 * radius
        active[idx[stop]] = False
        if not active.any():
            return moves, ratio, used, True
    return moves, ratio, used, False
