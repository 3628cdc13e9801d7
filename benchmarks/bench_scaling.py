"""Benchmark: ``bound`` and ``verify`` against one kernel-plus-eigendecomposition, as n and the
width grow (issue 9).

Problem: ``benchmarks/specs/wide_tanh.toml`` (one hidden tanh layer, d = 10, centered). Each
case runs in a fresh subprocess (so its peak RSS, VmHWM, is its own) that times, side by side:

* ``K0+eig``: one forward/backward pass at w0, the kernel K0 and its eigenvalues (the
  baseline: the least any check of Assumption 1 costs);
* ``bound``: :func:`lazycheck.commands.bound.compute_bound`;
* ``verify``: :func:`lazycheck.commands.verify.run_verify` (bound, both flows, the ball's spectra).

It prints each time, its ratio to the baseline, verify / bound, the peak RSS, and the growth
exponents fitted on log-log axes. Goals (issue 9): bound within 20x of the baseline at every
size, bound at n = 1600 under 60 s and at n = 6400 under 10 minutes, verify within 3x of bound.
The machine is shared, so the load average is printed with every case and the ratios (taken
in the same process, seconds apart) are the figures to compare.

``python -m benchmarks scaling`` runs n = 100, 400, 1600 (width 2000) and widths 1e3, 1e4
(n = 50), verify up to n = 400. ``python -m benchmarks.bench_scaling --large`` adds n = 6400 and
width 1e5 and verify at every size (long: tens of minutes). Cases can be chosen:
``--n 1600,6400 --widths '' --verify-max-n 1600``.

``--breakdown`` also times, in the same processes, what the goals not met are made of (README,
"Benchmarks"; ``docs/benchmarks.md``): ``bound`` by stage (the spectrum; the sampled beta's
search, unit by unit on this one-hidden-layer network, else its search for the worst direction
and, where it runs, its power iteration, and the ascent; the certified beta; r*) in units of
one warm K0+eig (the best of three, after the cold one; the stages are those of the one
``bound`` run timed above, the first in its process), and ``verify`` by part against ``bound``:
its own ``bound`` (the second in the process), the flow's steps, the recording of the output
times (the model and the sigma's at each, inside steps and at their ends), the rest (the ball's
spectra and the checks), and two floors, model evaluations alone, each at the cost of one
linearization at w0 (no product, no kernel, no sigma), plus bound: the record's, one at every
output time (the loss and the sigma's there need the model and its Jacobian, whatever the
integrator), and the run's, every evaluation this run made. Where a floor exceeds 3, the goal
verify <= 3 bound cannot be met by making anything else cheaper: not by any integrator (the
record's), not by this one's steps (the run's). The stages are timed by wrapping their
functions, which adds a few microseconds a call.

``--set key=value`` (repeatable) passes a setting to every case's spec, as ``lazycheck --set``
does: ``--set flow.rtol=1e-3 --set flow.n_times=20`` times verify with a loose tolerance and a
short output grid.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "benchmarks" / "specs" / "wide_tanh.toml"
#: the functions --breakdown times: (owner, attribute, stage, a stage inside which it is not
#: counted); the owner a module, or ``module:Class``
STAGES: list[tuple[str, str, str, str]] = [
    ("lazycheck.commands.bound", "jacobian_spectrum", "spectrum", ""),
    ("lazycheck.beta.sampled", "_by_unit", "unit search", ""),
    ("lazycheck.beta.sampled:_BetaSearch", "worst_direction", "worst direction", ""),
    ("lazycheck.beta.sampled:_BetaSearch", "_power", "power iteration", ""),
    ("lazycheck.beta.sampled:_BetaSearch", "ascend", "ascent", ""),
    ("lazycheck.commands.bound", "certified_beta_auto", "certified beta", ""),
    ("lazycheck.commands.bound", "_r_star", "r*", ""),
    ("lazycheck.commands.verify", "compute_bound", "verify's bound", ""),
    ("lazycheck.commands.simulate", "simulate", "simulate", ""),
    ("lazycheck.numerics.flow.exponential:_ExpAdams", "_dense", "dense output", ""),
    ("lazycheck.commands.simulate:_Recorder", "__call__", "recorder", "dense output"),
]


def _child(
    n: int,
    width: int,
    run_verify: bool,
    threads: int | None,
    breakdown: bool = False,
    settings: dict[str, Any] | None = None,
) -> None:
    """Subprocess entry point: time baseline, bound and verify; print a JSON line.
    ``settings``: more spec settings (``--set``)."""
    import lazycheck
    from lazycheck.commands.bound import compute_bound
    from lazycheck.commands.verify import run_verify as verify
    from lazycheck.numerics.spectrum import sym_eigvals
    from lazycheck.threads import set_threads

    set_threads(threads)
    timers = _stage_timers() if breakdown else None
    prob = lazycheck.load_problem(
        SPEC, settings={**(settings or {}), "data.n": n, "model.widths": [width]}
    )
    out: dict[str, Any] = {"n": n, "width": width, "p": prob.p}
    t0 = time.perf_counter()
    sym_eigvals(prob.linearize(prob.w0).kernel())
    out["baseline"] = time.perf_counter() - t0
    if timers is not None:
        out["baseline_warm"] = min(
            _timed(lambda: sym_eigvals(prob.linearize(prob.w0).kernel())) for _ in range(3)
        )
        timers.clear()
    t0 = time.perf_counter()
    rep = compute_bound(prob)
    out["bound"] = time.perf_counter() - t0
    out["spectrum_method"] = rep.spectrum.method
    out["beta"] = {k: b.value for k, b in rep.betas.items()}
    if timers is not None:
        out["stages"] = dict(timers)
        timers.clear()
    if run_verify:
        t0 = time.perf_counter()
        ver = verify(prob)
        out["verify"] = time.perf_counter() - t0
        out["verify_status"] = ver.status
        if timers is not None:
            out["recording"] = timers.get("dense output", 0.0) + timers.get("recorder", 0.0)
            out["simulate"] = timers.get("simulate", 0.0)
            out["verify_bound"] = timers.get("verify's bound", 0.0)
            sim = ver.simulation
            if sim is not None:
                out["steps"], out["nfev"] = sim.n_steps, sim.nfev
                out["times"] = int(sim.t.shape[0])
                out["linearize"] = min(_timed(lambda: prob.linearize(prob.w0)) for _ in range(3))
    out["rss_peak"] = _peak_rss()
    out["load"] = os.getloadavg()[0]
    print(json.dumps(out))


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _stage_timers() -> dict[str, float]:
    """Wrap the stage functions of bound and the recording of verify with timers; returns the
    dict they add their seconds to (the recorder's time inside dense output counts once)."""
    acc: dict[str, float] = {}
    running: set[str] = set()

    def wrap(owner: Any, name: str, key: str, unless: str = "") -> None:
        """Time owner.name into acc[key], except while the stage ``unless`` runs."""
        fn = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if unless in running:
                return fn(*args, **kwargs)
            running.add(key)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
                running.discard(key)

        setattr(owner, name, timed)

    for owner, name, key, unless in STAGES:
        wrap(_resolve(owner), name, key, unless)
    return acc


def _resolve(owner: str) -> Any:
    """The module or class ``owner`` names (``"package.module"`` or ``"package.module:Class"``)."""
    import importlib

    module, _, cls = owner.partition(":")
    out = importlib.import_module(module)
    return getattr(out, cls) if cls else out


def _peak_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) * 1024.0
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024.0


def _run(*args: Any) -> dict[str, Any]:
    """One case in a fresh subprocess: :func:`_child` with ``args``; its JSON line."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.bench_scaling import "
        f"_child; _child(*{args!r})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return math.nan
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def _table(title: str, key: str, rows: list[dict[str, Any]]) -> None:
    print(title)
    print(
        f"  {key:>7} {'p':>9} {'K0+eig':>9} {'bound':>9} {'ratio':>7} {'verify':>9} "
        f"{'v/b':>6} {'peak RSS':>10} {'load':>5}  spectrum"
    )
    for r in rows:
        ver = r.get("verify")
        vtxt = f"{ver:8.2f}s {ver / r['bound']:6.2f}" if ver else f"{'-':>9} {'-':>6}"
        print(
            f"  {r[key]:>7} {r['p']:>9} {r['baseline']:8.3f}s {r['bound']:8.2f}s "
            f"{r['bound'] / r['baseline']:7.1f} {vtxt} {r['rss_peak'] / 2**20:8.0f} MB "
            f"{r['load']:5.1f}  {r['spectrum_method']}"
        )
    xs = [float(r[key]) for r in rows]
    fits = {name: _slope(xs, [r[name] for r in rows]) for name in ("baseline", "bound", "rss_peak")}
    have_v = [r for r in rows if r.get("verify")]
    if len(have_v) >= 2:
        fits["verify"] = _slope([float(r[key]) for r in have_v], [r["verify"] for r in have_v])
    print(
        "  growth exponents in " + key + ": " + ", ".join(f"{k} {v:.2f}" for k, v in fits.items())
    )


def main(
    large: bool = False,
    threads: int | None = None,
    ns: list[int] | None = None,
    widths: list[int] | None = None,
    verify_max_n: int | None = None,
    breakdown: bool = False,
    settings: dict[str, Any] | None = None,
) -> None:
    """Run the cases: ``ns`` (width 2000) and ``widths`` (n = 50) default to the issue's set
    (6400 and 1e5 only with ``large``); verify runs up to ``verify_max_n`` points (default 400,
    every size with ``large``); ``breakdown`` times the stages too (module docstring);
    ``settings``: spec settings for every case (``--set``)."""
    print("== bench_scaling: bound and verify against one kernel + eigendecomposition")
    print(f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}; threads {threads}")
    if settings:
        print("settings: " + ", ".join(f"{k} = {v!r}" for k, v in settings.items()))
    ns = ns if ns is not None else [100, 400, 1600, *([6400] if large else [])]
    widths = widths if widths is not None else [1000, 10_000, *([100_000] if large else [])]
    vmax = verify_max_n if verify_max_n is not None else (10**9 if large else 400)
    rows_n = [_run(n, 2000, n <= vmax, threads, breakdown, settings) for n in ns]
    if rows_n:
        _table("width 2000, d = 10:", "n", rows_n)
    rows_w = [_run(50, w, vmax >= 50, threads, breakdown, settings) for w in widths]
    if rows_w:
        _table("n = 50, d = 10:", "width", rows_w)
    _goals(rows_n, rows_w)
    if breakdown:
        _breakdown(rows_n, rows_w)


_STAGES = (
    "spectrum",
    "unit search",
    "worst direction",
    "power iteration",
    "ascent",
    "certified beta",
    "r*",
)


def _breakdown(rows_n: list[dict[str, Any]], rows_w: list[dict[str, Any]]) -> None:
    """The stage tables of ``--breakdown`` (module docstring)."""
    cases = [(f"n = {r['n']}", r) for r in rows_n] + [(f"width {r['width']}", r) for r in rows_w]
    print("bound by stage, in units of one warm K0+eig (power iteration: part of worst direction)")
    print(
        f"  {'case':>12} {'warm K0+eig':>12} {'bound':>7} " + " ".join(f"{s:>15}" for s in _STAGES)
    )
    for name, r in cases:
        unit = r["baseline_warm"]
        cells = " ".join(f"{r['stages'].get(s, 0.0) / unit:15.1f}" for s in _STAGES)
        print(f"  {name:>12} {unit * 1e3:10.2f}ms {r['bound'] / unit:7.1f} {cells}")
    rec = [(name, r) for name, r in cases if "recording" in r]
    if rec:
        _verify_parts(rec)


def _verify_parts(rec: list[tuple[str, dict[str, Any]]]) -> None:
    """verify's parts against bound: its own bound (a second call in the process), the flow's
    steps, the recording of the output times (the model and the sigma's at each), the rest (the
    ball's spectra, the checks), and two floors, each model evaluation at the cost of one
    linearization at w0 (the best of three), with no product, kernel or sigma: the record's (one
    at every output time, for the loss and the sigma's there, whatever the integrator) and the
    run's (its evaluations: every accepted step, every output time inside a step, rejected
    steps' ends). Module docstring."""
    print("verify by part, in units of bound (floors: model evaluations alone, + bound)")
    print(
        f"  {'case':>12} {'bound':>9} {'steps':>6} {'evals':>6} {'its bound':>10} "
        f"{'flow steps':>11} {'recording':>10} {'rest':>6} {'verify':>7} {'record floor':>13} "
        f"{'run floor':>10}"
    )
    for name, r in rec:
        b = r["bound"]
        steps = r["simulate"] - r["recording"]
        rest = r["verify"] - r["verify_bound"] - r["simulate"]
        record = 1.0 + r["times"] * r["linearize"] / b
        run = 1.0 + r["nfev"] * r["linearize"] / b
        print(
            f"  {name:>12} {b:8.2f}s {r['steps']:>6} {r['nfev']:>6} "
            f"{r['verify_bound'] / b:10.2f} {steps / b:11.2f} "
            f"{r['recording'] / b:10.2f} {rest / b:6.2f} {r['verify'] / b:7.2f} {record:13.2f} "
            f"{run:10.2f}"
        )


def _goals(rows_n: list[dict[str, Any]], rows_w: list[dict[str, Any]]) -> None:
    for r in rows_n:
        if r["n"] in (1600, 6400):
            goal = 60.0 if r["n"] == 1600 else 600.0
            ok = "met" if r["bound"] < goal else "MISSED"
            print(f"  goal: bound at n = {r['n']} under {goal:.0f} s: {r['bound']:.1f} s, {ok}")
    if rows_n or rows_w:
        worst = max(r["bound"] / r["baseline"] for r in rows_n + rows_w)
        print(f"  goal: bound within 20x of K0+eig at every size: worst {worst:.1f}x")
    vb = [r["verify"] / r["bound"] for r in rows_n + rows_w if r.get("verify")]
    if vb:
        print(f"  goal: verify within 3x of bound: worst {max(vb):.2f}x")


def _settings(argv: list[str]) -> dict[str, Any]:
    """The ``--set key=value`` pairs, parsed as ``lazycheck --set`` parses them."""
    from lazycheck.spec import parse_setting

    return dict(parse_setting(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == "--set")


def _ints(flag: str, argv: list[str]) -> list[int] | None:
    if flag not in argv:
        return None
    text = argv[argv.index(flag) + 1]
    return [int(float(x)) for x in text.split(",") if x]


if __name__ == "__main__":
    args = sys.argv[1:]
    vmax = _ints("--verify-max-n", args)
    main(
        large="--large" in args,
        ns=_ints("--n", args),
        widths=_ints("--widths", args),
        verify_max_n=vmax[0] if vmax else None,
        breakdown="--breakdown" in args,
        settings=_settings(args),
    )
