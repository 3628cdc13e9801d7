"""Benchmark: ``verify`` on the small samples, each product route side by side in one process.

Two routes are timed on each sample, interleaved (three rounds, the best of each):

* the built-in MLP's JVPs and VJPs by the formed J (``lazycheck.models.mlp.SMALL_JACOBIAN``, n p
  up to 2^14) against layer by layer (the threshold set to 0): ``narrow_plateau``,
  ``wrong_beta``, ``p_le_n``, ``uncentered``, ``two_layer_tanh``;
* the PyTorch CNN (``torch_cnn``, when torch is installed) with J held once a point for its
  products and its kernels' rows, against each kernel making its own pass of per-sample
  gradients (``_TorchLinearization._hold_jacobian`` made a no-op: the adapter before round 10).

Each pair prints both times, the ratio, and whether the two reports agree in every check's
status and ``held`` (their numbers differ at rounding level: a product summed in another order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MLP_SAMPLES = ("narrow_plateau", "wrong_beta", "p_le_n", "uncentered", "two_layer_tanh")
ROUNDS = 3


def main() -> None:
    import lazycheck.models.mlp as mlp

    print("bench_small: verify on the small samples, two product routes side by side")
    print(f"  {'sample':16s} {'route':22s} {'baseline':>9s} {'new':>9s} {'speed-up':>9s}  reports")
    threshold = mlp.SMALL_JACOBIAN

    def use_j(on: bool) -> None:
        mlp.SMALL_JACOBIAN = threshold if on else 0

    try:
        for name in MLP_SAMPLES:
            _pair(name, "MLP products by J", use_j)
    finally:
        mlp.SMALL_JACOBIAN = threshold
    try:
        from lazycheck.models import torch_adapter
    except ImportError as exc:  # pragma: no cover - torch is an optional extra
        print(f"  torch_cnn        skipped ({exc})")
        return
    hold = torch_adapter._TorchLinearization._hold_jacobian

    def use_hold(on: bool) -> None:
        torch_adapter._TorchLinearization._hold_jacobian = hold if on else _no_hold  # type: ignore[method-assign]

    try:
        _pair("torch_cnn", "torch: J held a point", use_hold)
    finally:
        torch_adapter._TorchLinearization._hold_jacobian = hold  # type: ignore[method-assign]


def _no_hold(self: Any) -> None:
    """The adapter before round 10: a kernel does not compute and hold J."""


def _pair(name: str, route: str, switch: Callable[[bool], None]) -> None:
    """verify on samples/NAME.toml with the route off (baseline) and on, interleaved."""
    import lazycheck
    from lazycheck.commands.verify import run_verify

    problem = lazycheck.load_problem(REPO / "samples" / f"{name}.toml")
    run_verify(problem)  # warm-up: imports, first-call costs
    best = {False: float("inf"), True: float("inf")}
    reports: dict[bool, Any] = {}
    for _ in range(ROUNDS):
        for on in (False, True):
            switch(on)
            t0 = time.perf_counter()
            reports[on] = run_verify(problem)
            best[on] = min(best[on], time.perf_counter() - t0)
    same = (
        all(
            a.status == b.status and a.held == b.held
            for a, b in zip(reports[False].checks, reports[True].checks, strict=True)
        )
        and reports[False].status == reports[True].status
    )
    print(
        f"  {name:16s} {route:22s} {best[False]:8.2f}s {best[True]:8.2f}s "
        f"{best[False] / best[True]:8.2f}x  {'same statuses' if same else 'STATUSES DIFFER'}"
    )
