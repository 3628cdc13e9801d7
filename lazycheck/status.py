"""The one status type of every lazycheck result.

Every result carries its status as one of the strings of :data:`Status` (a ``Literal``, so
the values stay plain strings in JSON and compare with ``==``). Which values a result can take:

* a check (:class:`lazycheck.commands.checks.Check`): :data:`CHECK_STATUSES`;
* ``verify`` (:class:`lazycheck.commands.verify.VerifyReport`): :data:`VERIFY_STATUSES`;
* ``bound`` (:class:`lazycheck.commands.bound.BoundReport`): :data:`BOUND_STATUSES`;
* ``simulate`` (:attr:`lazycheck.commands.simulate.SimulationResult.outcome`):
  :data:`SIMULATION_STATUSES` (its integer ``status`` follows scipy's ``OdeResult``).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "BOUND_STATUSES",
    "CHECK_STATUSES",
    "SIMULATION_STATUSES",
    "STATUSES",
    "VERIFY_STATUSES",
    "BoundStatus",
    "CheckStatus",
    "SimulationStatus",
    "Status",
    "VerifyStatus",
]

CheckStatus = Literal["pass", "fail", "unguaranteed", "skipped", "unmet"]
VerifyStatus = Literal["pass", "fail", "unguaranteed", "error"]
BoundStatus = Literal[
    "applies",
    "alpha_too_small",
    "alpha_outside",
    "infeasible",
    "assumption_fails",
    "not_computable",
]
SimulationStatus = Literal["success", "error"]
Status = CheckStatus | VerifyStatus | BoundStatus | SimulationStatus

CHECK_STATUSES: tuple[str, ...] = get_args(CheckStatus)
VERIFY_STATUSES: tuple[str, ...] = get_args(VerifyStatus)
BOUND_STATUSES: tuple[str, ...] = get_args(BoundStatus)
SIMULATION_STATUSES: tuple[str, ...] = get_args(SimulationStatus)
STATUSES: tuple[str, ...] = tuple(
    dict.fromkeys(CHECK_STATUSES + VERIFY_STATUSES + BOUND_STATUSES + SIMULATION_STATUSES)
)
"""Every status, once."""
