"""The benchmarks' own plumbing, which no benchmark run in the suite exercises (they are not
timed tests): ``bench_scaling --breakdown`` wraps functions by name, and ``bench_integrator
--baseline`` loads an earlier commit's integrator; a module moved under them breaks them only
when they run (round 14's split of the integrators did, until this test)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_integrator, bench_scaling

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stage", bench_scaling.STAGES, ids=lambda s: s[2])
def test_every_breakdown_stage_names_a_function(stage: tuple[str, str, str, str]) -> None:
    owner, name, _key, unless = stage
    assert callable(getattr(bench_scaling._resolve(owner), name)), (owner, name)
    assert unless in {"", *(s[2] for s in bench_scaling.STAGES)}, unless


def test_the_integrator_baseline_loads_from_git(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True
        )
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    module, path = bench_integrator._baseline_flow("HEAD")
    import lazycheck.numerics.flow as today

    assert path in ("lazycheck/numerics/flow", "lazycheck/numerics/flow.py")
    assert callable(module.integrate) and module.integrate is not today.integrate
