"""beta: the Lipschitz constant of w -> J_w, anchored at w0 on a ball of radius R.

The proof of Theorem 2 only uses ``||J_w - J_0|| <= beta ||w - w0||`` for ``||w - w0|| <= B``
with ``B = sigma_min / (2 beta)`` (docs/theory.md, item 2), so lazycheck estimates the anchored
constant ``beta(R) = sup_{0 < ||w - w0|| <= R} ||J_w - J_0|| / ||w - w0||`` and keeps R
consistent with B: a beta measured on radius R is valid for the theorem only if R >= B.

Three kinds of number, one module each:

* **certified upper bound** (:mod:`lazycheck.beta.certified`);
* **sampled lower bound** (:mod:`lazycheck.beta.sampled`; with one hidden layer it searches
  unit by unit, :mod:`lazycheck.beta.unit_search`, on the split of :mod:`lazycheck.beta.units`);
* **given**: a number from the spec or ``--beta``.

For a non-smooth activation (relu) beta is infinite, whatever sampling says.
"""

from __future__ import annotations

from lazycheck.beta.certified import certified_beta, certified_beta_auto
from lazycheck.beta.estimate import BetaEstimate
from lazycheck.beta.sampled import critical_radius, jacobian_change, sampled_beta

__all__ = [
    "BetaEstimate",
    "certified_beta",
    "certified_beta_auto",
    "critical_radius",
    "jacobian_change",
    "sampled_beta",
]
