"""Run the benchmarks: ``python -m benchmarks [NAME ...]``.

Every module ``benchmarks/bench_*.py`` is imported in sorted order and its ``main()`` called.
Names select a subset: ``python -m benchmarks kernel`` runs ``bench_kernel`` only (the
``bench_`` prefix may be given or left out).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def available() -> list[str]:
    """The benchmark names (module names without the ``bench_`` prefix), sorted."""
    here = Path(__file__).resolve().parent
    return sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))


def run(names: list[str]) -> int:
    """Run the named benchmarks (all when ``names`` is empty); return an exit code."""
    known = available()
    wanted = [n.removeprefix("bench_").removesuffix(".py") for n in names] or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(
            f"benchmarks: no benchmark named {', '.join(unknown)}; available: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    for name in sorted(set(wanted)):
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
