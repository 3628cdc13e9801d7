"""Benchmark: the layerwise tangent kernel against forming J and multiplying J J^T.

Case A (side by side, one process): n = 512 points in R^64, two tanh hidden layers of width
1024 (p = 1,115,136, so J alone is 4.57 GB). Both routes include the forward/backward pass.
Targets: layerwise >= 100x faster and >= 50x less peak memory; the kernels must agree.

Case B (layerwise only): n = 2000 points in R^784, two hidden layers of width 4096
(p = 19,992,576; J would be 320 GB). Targets: < 15 s and < 1.5 GB.

The floor (case A's shapes): the kernel against its unavoidable BLAS work alone (the forward
and backward GEMMs and one ``dsyrk`` per Gram factor, plain calls of the same shapes; see
:func:`blas_floor`), both timed under the same thread setting, in turn within each round
(best of 11 after a warm-up): one thread (the CLI default, ``set_threads(1)``), ``--threads
2`` as shipped (GEMMs on one thread for bits independent of the count, a syrk on two from
``lazycheck.threads.PARALLEL_FLOPS``, which case A's are below), and ``--threads 2`` with
every syrk on two. Each row prints the kernel's breakdown: linearize (GEMMs + the rest, of
which phi and phi' alone) and kernel() (syrk + Hadamard products, sum and mirror). Goal: the
kernel within 1.3x of its floor. Cases A and B themselves run as the Python API does without
``set_threads`` (OpenBLAS's own thread count for the GEMMs).

Last, ``Activation.sup_abs_d1_d2`` (the certified beta's inner loop) on 400 x 2000 tanh
intervals, in cache-sized blocks against the whole arrays at once and against the two
separate calls it equals bit for bit. Then the built-in MLP's products J v and J^T r at n = 400
and 1600 (width 2000, d = 10, one thread), the first layer's GEMM with its short side leading,
against the orientation before round 12, with their largest difference
(:func:`case_products`).

Memory is measured two ways and both are printed:

* ``traced``: the tracemalloc peak of the allocations made by the computation itself (numpy
  reports its array buffers to tracemalloc); the inputs w and X exist before tracing starts
  and are not counted. This is what the targets compare.
* ``RSS``: the peak resident set size (VmHWM on Linux) of a fresh subprocess that builds the
  inputs and runs one route only: the whole-process high-water mark, including the
  interpreter, numpy, w and X.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MB = 1e6
CASES: dict[str, dict[str, Any]] = {
    "A": {"n": 512, "dim": 64, "widths": (1024, 1024)},
    "B": {"n": 2000, "dim": 784, "widths": (4096, 4096)},
}


def _setup(case: str):
    from lazycheck.models.mlp import MLP

    c = CASES[case]
    model = MLP(c["dim"], c["widths"], "tanh", "ntk", bias=False)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((c["n"], c["dim"])) / np.sqrt(c["dim"])
    w = model.init(rng)
    return model, X, w


def _layerwise(model, X, w) -> np.ndarray:
    return model.linearize(w, X).kernel()


def _via_jacobian(model, X, w) -> np.ndarray:
    J = model.linearize(w, X).jacobian()
    return J @ J.T


ROUTES: dict[str, Callable[..., np.ndarray]] = {"layerwise": _layerwise, "jacobian": _via_jacobian}


def _best_time(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _traced_peak(fn: Callable[[], np.ndarray]) -> float:
    """Peak bytes allocated while ``fn`` runs (tracemalloc; numpy buffers included)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def _proc_status(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> float:
    """This process's peak resident set size.

    Linux: VmHWM from /proc/self/status, the high-water mark of this process's own address
    space. (ru_maxrss is not used there: Linux carries it over from the parent across
    fork/exec, so a child of a large parent reports the parent's peak.)
    """
    hwm = _proc_status("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss) * (1.0 if sys.platform == "darwin" else 1024.0)


def _child(case: str, route: str) -> None:
    """Subprocess entry point: build the inputs, run one route, print peak RSS as JSON."""
    model, X, w = _setup(case)
    before = _proc_status("VmRSS") or _peak_rss_bytes()
    t0 = time.perf_counter()
    ROUTES[route](model, X, w)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"rss_before": before, "rss_peak": _peak_rss_bytes(), "seconds": elapsed}))


def _rss_in_subprocess(case: str, route: str) -> dict[str, float]:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        f"from benchmarks.bench_kernel import _child; _child({case!r}, {route!r})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def blas_description() -> str:
    """Which BLAS library and kernel numpy runs, and with how many threads."""
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    env_text = (
        ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "no OPENBLAS_* variables set"
    )
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            i = infos[0]
            return (
                f"{i.get('internal_api')} {i.get('version')}, kernel {i.get('architecture')}, "
                f"{i.get('num_threads')} threads (threadpoolctl); {env_text}"
            )
    except ImportError:
        pass
    libdir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(glob.glob(str(libdir / "*openblas*"))):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            try:
                config = getattr(lib, f"{prefix}_get_config{suffix}")
                core = getattr(lib, f"{prefix}_get_corename{suffix}")
                threads = getattr(lib, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            config.restype = core.restype = ctypes.c_char_p
            threads.restype = ctypes.c_int
            return (
                f"{config().decode().strip()}; kernel {core().decode()}, {threads()} threads "
                f"(queried from {Path(path).name}); {env_text}"
            )
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return f"{blas.get('name', 'unknown BLAS')} {blas.get('version', '')}; {env_text}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def case_a() -> dict[str, float]:
    model, X, w = _setup("A")
    c = CASES["A"]
    j_bytes = c["n"] * model.n_params * 8
    print(
        f"case A: n = {c['n']}, d = {c['dim']}, hidden {c['widths'][0]} x {c['widths'][1]}, tanh, "
        f"ntk; p = {model.n_params:,}; J alone is {j_bytes / 1e9:.2f} GB"
    )
    _layerwise(*_setup_small_warmup())  # load BLAS and page in the code paths
    t_l, K_l = _best_time(lambda: _layerwise(model, X, w), repeat=5)
    t_j, K_j = _best_time(lambda: _via_jacobian(model, X, w), repeat=1)
    m_l = _traced_peak(lambda: _layerwise(model, X, w))
    m_j = _traced_peak(lambda: _via_jacobian(model, X, w))
    rss_l = _rss_in_subprocess("A", "layerwise")["rss_peak"]
    rss_j = _rss_in_subprocess("A", "jacobian")["rss_peak"]
    err = float(np.max(np.abs(K_l - K_j)) / np.max(np.abs(K_j)))
    print(f"  {'route':<24}{'time':>10}{'traced peak':>16}{'process peak RSS':>20}")
    print(f"  {'layerwise K':<24}{t_l:>9.3f}s{m_l / MB:>13.1f} MB{rss_l / MB:>17.1f} MB")
    print(f"  {'J, then J @ J.T':<24}{t_j:>9.3f}s{m_j / MB:>13.1f} MB{rss_j / MB:>17.1f} MB")
    speed, mem = t_j / t_l, m_j / m_l
    print(f"  time ratio:          {speed:8.1f}x  (target >= 100x: {_verdict(speed >= 100)})")
    print(f"  traced memory ratio: {mem:8.1f}x  (target >= 50x: {_verdict(mem >= 50)})")
    print(f"  process RSS ratio:   {rss_j / rss_l:8.1f}x  (whole processes, for reference)")
    print(
        f"  agreement: max|K_layerwise - K_J| / max|K_J| = {err:.2e} "
        f"({_verdict(err < 1e-12)}: < 1e-12)"
    )
    return {"time_ratio": speed, "memory_ratio": mem, "max_rel_diff": err}


def _setup_small_warmup():
    from lazycheck.models.mlp import MLP

    model = MLP(8, (16, 16), "tanh", "ntk")
    rng = np.random.default_rng(1)
    return model, rng.standard_normal((10, 8)), model.init(rng)


def case_b() -> dict[str, float]:
    model, X, w = _setup("B")
    c = CASES["B"]
    print(
        f"case B: n = {c['n']}, d = {c['dim']}, hidden {c['widths'][0]} x {c['widths'][1]}, tanh, "
        f"ntk; p = {model.n_params:,}; J would be {c['n'] * model.n_params * 8 / 1e9:.0f} GB"
    )
    t_lin, lin = _best_time_linearize(model, X, w)
    t0 = time.perf_counter()
    lin.kernel()
    t_ker = time.perf_counter() - t0
    del lin
    t_total, _ = _best_time(lambda: _layerwise(model, X, w), repeat=2)
    m = _traced_peak(lambda: _layerwise(model, X, w))
    child = _rss_in_subprocess("B", "layerwise")
    inputs = (w.nbytes + X.nbytes) / MB
    print(
        f"  layerwise K: {t_total:.2f} s (forward/backward {t_lin:.2f} s, Gram products "
        f"{t_ker:.2f} s); target < 15 s: {_verdict(t_total < 15)}"
    )
    print(
        f"  traced peak: {m / MB:.0f} MB beyond the inputs (w and X: {inputs:.0f} MB); "
        f"target < 1.5 GB: {_verdict(m < 1.5e9)}"
    )
    print(
        f"  process peak RSS (fresh subprocess, everything included): "
        f"{child['rss_peak'] / MB:.0f} MB ({child['rss_before'] / MB:.0f} MB resident before it; "
        f"{child['seconds']:.2f} s there); under 1.5 GB: {_verdict(child['rss_peak'] < 1.5e9)}"
    )
    return {"seconds": t_total, "traced_peak": m, "rss_peak": child["rss_peak"]}


def _best_time_linearize(model, X, w):
    gc.collect()
    t0 = time.perf_counter()
    lin = model.linearize(w, X)
    return time.perf_counter() - t0, lin


#: the thread settings the kernel and its floor are timed under, side by side: (label, the
#: ``--threads`` cap, the size from which a Gram product runs on the cap, None = as shipped)
THREAD_SETTINGS: tuple[tuple[str, int, float | None], ...] = (
    ("1 thread (the CLI default)", 1, None),
    ("--threads 2 (as shipped)", 2, None),
    ("--threads 2, every syrk on 2", 2, 0.0),
)


def blas_floor(model, X, w) -> dict[str, Callable[[], object]]:
    """The unavoidable BLAS work of the kernel, as callables to time: the forward GEMMs
    (z^l = a^(l-1) W^lT, every layer), the backward GEMMs (delta^(l+1) W^(l+1) for each hidden
    layer whose delta^(l+1) has more than one column: with one, it is the row W^(l+1)
    repeated, which the kernel writes by broadcasting) and one symmetric rank-k update per Gram
    factor (A^(l-1) A^(l-1)T every layer, D^l D^lT where D^l has more than one column), each
    syrk under the kernel's own thread rule (``blas_threads`` of its flops), every GEMM on one
    thread as the kernel's (their last bits depend on the thread count)."""
    from scipy.linalg.blas import dsyrk

    from lazycheck.threads import blas_threads

    lin = model.linearize(w, X)
    Ws = [W for W, _ in model.unpack(w)]
    grams = [*lin.inputs, *(D for D in lin.deltas if D.shape[1] > 1)]
    back = [(D, W) for D, W in zip(lin.deltas[1:], Ws[1:], strict=True) if D.shape[1] > 1]

    def forward() -> None:
        for A, W in zip(lin.inputs, Ws, strict=True):
            A @ W.T

    def backward() -> None:
        for D, W in back:
            D @ W

    def gram() -> None:
        for M in grams:
            with blas_threads(float(M.shape[0]) ** 2 * M.shape[1]):
                dsyrk(1.0, np.ascontiguousarray(M).T, trans=1)

    def total() -> None:
        forward()
        backward()
        gram()

    return {"floor": total, "forward": forward, "backward": backward, "gram": gram}


def kernel_parts(model, X, w) -> dict[str, Callable[[], object]]:
    """The kernel (linearize, then kernel()) and its stages as callables to time: linearize
    alone, kernel() alone, and phi and phi' alone (``Activation.fn_d1`` in place on copies
    of arrays of each hidden layer's shape, holding phi(z^l): the same cost; the copies are
    timed alone too, to be subtracted)."""
    lin = model.linearize(w, X)
    zs = [lin.inputs[i + 1] for i in range(model.depth)]

    def elementwise() -> None:
        for z in zs:
            zc = z.copy()
            model.activation.fn_d1(zc, out=zc)

    return {
        "kernel": lambda: _layerwise(model, X, w),
        "linearize": lambda: model.linearize(w, X),
        "kernel()": lin.kernel,
        "elementwise": elementwise,
        "copies": lambda: [z.copy() for z in zs],
    }


def best_interleaved(parts: dict[str, Callable[[], object]], repeat: int = 11) -> dict[str, float]:
    """Best of ``repeat`` wall times of each callable after one warm-up call each, the
    callables run in turn within each round, so that a change of machine load hits all."""
    for fn in parts.values():
        fn()
    best = dict.fromkeys(parts, np.inf)
    for _ in range(repeat):
        for name, fn in parts.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def case_floor() -> list[dict[str, float]]:
    """The kernel against its BLAS floor, case A's shapes (goal <= 1.3x), under each thread
    setting of :data:`THREAD_SETTINGS`, both timed under the same one."""
    from lazycheck import threads

    model, X, w = _setup("A")
    print(
        "case A, the kernel against its BLAS floor (the same GEMMs and rank-k updates alone, "
        "same thread setting; GEMMs on 1 thread in both, as lazycheck runs them for bits "
        "independent of the thread count; each figure its own best of 11, so under load the "
        "parts of a breakdown need not add up):"
    )
    out = []
    shipped = threads.PARALLEL_FLOPS
    try:
        for label, cap, threshold in THREAD_SETTINGS:
            threads.set_threads(cap)
            threads.PARALLEL_FLOPS = shipped if threshold is None else threshold
            t = best_interleaved({**blas_floor(model, X, w), **kernel_parts(model, X, w)})
            out.append(_print_floor_row(label, t))
    finally:
        threads.PARALLEL_FLOPS = shipped
        threads.set_threads(None)
    return out


def _print_floor_row(label: str, t: dict[str, float]) -> dict[str, float]:
    ratio = t["kernel"] / t["floor"]
    gemms = t["forward"] + t["backward"]
    print(
        f"  {label}: kernel {t['kernel']:.3f} s, floor {t['floor']:.3f} s, ratio {ratio:.2f}x "
        f"(goal <= 1.3x: {_verdict(ratio <= 1.3)})"
    )
    print(
        f"    floor: forward GEMMs {t['forward']:.3f} s, backward GEMMs {t['backward']:.3f} s, "
        f"syrk {t['gram']:.3f} s"
    )
    print(
        f"    kernel: linearize {t['linearize']:.3f} s = GEMMs {gemms:.3f} + the rest "
        f"{t['linearize'] - gemms:.3f} (phi and phi' alone {t['elementwise'] - t['copies']:.3f}); "
        f"kernel() {t['kernel()']:.3f} s = syrk {t['gram']:.3f} + Hadamard, sum, mirror "
        f"{t['kernel()'] - t['gram']:.3f}"
    )
    return {"kernel": t["kernel"], "floor": t["floor"], "ratio": ratio}


def case_sup(shape: tuple[int, int] = (400, 2000)) -> dict[str, float]:
    """``Activation.sup_abs_d1_d2`` (the certified beta's inner loop, one call per radius) on
    400 x 2000 tanh intervals: in blocks (as shipped) against the same code on the whole
    arrays at once (the block size set above the size: the previous code path) and against
    the two separate calls it must equal bit for bit, timed in turn (best of 5)."""
    from lazycheck.models import activations

    act = activations.get_activation("tanh")
    rng = np.random.default_rng(0)
    z0 = 2.0 * rng.standard_normal(shape)
    spread = 0.3 * np.abs(rng.standard_normal(shape))
    lo, hi = z0 - spread, z0 + spread
    shipped = activations._SUP_BLOCK

    def whole() -> object:
        activations._SUP_BLOCK = lo.size
        try:
            return act.sup_abs_d1_d2(lo, hi)
        finally:
            activations._SUP_BLOCK = shipped

    parts = {
        "blocks": lambda: act.sup_abs_d1_d2(lo, hi),
        "whole": whole,
        "separate": lambda: (act.sup_abs_d1(lo, hi), act.sup_abs_d2(lo, hi)),
    }
    t = best_interleaved(parts, repeat=5)
    same = all(
        np.array_equal(a, b) for a, b in zip(parts["blocks"](), parts["separate"](), strict=True)
    )
    per = 1e9 / lo.size
    print(
        f"sup_abs_d1_d2, tanh, {shape[0]} x {shape[1]} intervals: in blocks of "
        f"{shipped} {t['blocks'] * 1e3:.1f} ms ({t['blocks'] * per:.0f} ns per interval); "
        f"whole arrays {t['whole'] * 1e3:.1f} ms ({t['whole'] / t['blocks']:.2f}x); the two "
        f"separate calls {t['separate'] * 1e3:.1f} ms ({t['separate'] / t['blocks']:.2f}x); "
        f"bit for bit the separate calls: {_verdict(same)}"
    )
    return dict(t)


def case_products(sizes: tuple[int, ...] = (400, 1600)) -> list[dict[str, float]]:
    """J v and J^T r of the built-in MLP (``benchmarks/specs/wide_tanh.toml``: width 2000,
    d = 10, one thread as the CLI runs products) as shipped, the first layer's GEMM with its
    short side leading and the bias riding along (``_narrow_jvp``, ``_narrow_vjp``),
    against the orientation before round 12 (D V then D vb; D^T (A r) then D^T r), timed in
    turn (best of 21), and the largest difference between the two relative to the result. It
    sets the CLI's thread policy for the rest of the process, so :func:`main` runs it last."""
    import lazycheck
    from lazycheck.threads import set_threads

    set_threads(1)
    rows = []
    for n in sizes:
        prob = lazycheck.load_problem(
            REPO / "benchmarks" / "specs" / "wide_tanh.toml", settings={"data.n": n}
        )
        lin = prob.linearize(prob.w0)
        rng = np.random.default_rng(0)
        v, r = rng.standard_normal(prob.p), rng.standard_normal(n)
        parts = {
            "J v": lambda lin=lin, v=v: lin.jvp(v),
            "J v before": lambda lin=lin, v=v: _before(lambda: lin.jvp(v)),
            "J^T r": lambda lin=lin, r=r: lin.vjp(r),
            "J^T r before": lambda lin=lin, r=r: _before(lambda: lin.vjp(r)),
        }
        t = best_interleaved(parts, repeat=21)
        dev = max(
            float(np.abs(parts[k]() - parts[f"{k} before"]()).max() / np.abs(parts[k]()).max())
            for k in ("J v", "J^T r")
        )
        print(
            f"products, n = {n}, p = {prob.p}: J v {t['J v'] * 1e3:.2f} ms (before "
            f"{t['J v before'] * 1e3:.2f} ms, {t['J v before'] / t['J v']:.2f}x), J^T r "
            f"{t['J^T r'] * 1e3:.2f} ms (before {t['J^T r before'] * 1e3:.2f} ms, "
            f"{t['J^T r before'] / t['J^T r']:.2f}x); largest relative difference {dev:.1e}"
        )
        rows.append({"n": n, **t, "dev": dev})
    return rows


def _before(fn: Callable[[], np.ndarray]) -> np.ndarray:
    """``fn`` with the first layer's GEMM the way round it ran before round 12: the shipped
    code still takes it so below ``SHORT_SIDE_MIN_N`` rows, so the threshold is raised."""
    from lazycheck.models import mlp

    shipped = mlp.SHORT_SIDE_MIN_N
    mlp.SHORT_SIDE_MIN_N = 1 << 62
    try:
        return fn()
    finally:
        mlp.SHORT_SIDE_MIN_N = shipped


def main() -> None:
    print("== bench_kernel: layerwise tangent kernel vs J J^T")
    print(f"numpy {np.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"BLAS: {blas_description()}")
    print(
        "memory: 'traced' = tracemalloc peak of the computation's own allocations (inputs "
        "excluded); 'RSS' = peak RSS (VmHWM) of a fresh subprocess running one route"
    )
    print(f"load average at the start: {_load()}")
    case_a()
    case_floor()
    case_b()
    case_sup()
    case_products()
    print(f"load average at the end: {_load()}")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages (other processes compete for the 2 cores)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
