"""Benchmark: lazycheck's tangent kernel against neural-tangents' (issue 9's anchor).

The peer: ``neural_tangents.empirical_ntk_fn(f, implementation=3)`` (structured derivatives,
the fastest of its empirical kernels), jitted, float64 (``jax_enable_x64``), on the same
network, weights and data as lazycheck's :class:`lazycheck.models.mlp.MLP`: tanh, NTK
parameterization, no biases, built with ``stax.Dense(width, parameterization="ntk")`` and the
weights copied over (lazycheck's W^l is stax's kernel transposed). The two kernels must agree
(the largest entry difference over the largest entry is printed; a second, independent
implementation of the same kernel).

Cases (``benchmarks/bench_kernel.py``'s, built by its ``_setup``): A, n = 512 points in R^64,
two hidden layers of width 1024; B, n = 2000 points in R^784, two hidden layers of width 4096
(p = 20M).

neural-tangents needs jax, which lazycheck never imports: the peer runs in a Python of its own,
given by ``--nt-python`` or ``LAZYCHECK_NT_PYTHON``, made once in a scratch environment
(neural-tangents 0.6.5, the newest, imports parts of jax that later releases removed)::

    python -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install neural-tangents "jax==0.4.23" "jaxlib==0.4.23" "tf2jax==0.3.6"
    python -m benchmarks.bench_peer --nt-python /tmp/ntvenv/bin/python

Without it the benchmark says so and does nothing. Both sides are timed best of ``--repeat``
calls after a warm-up call (for jax: the compilation, printed apart), wall and CPU time, on one
thread (lazycheck ``set_threads(1)``; XLA with ``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``) and on every core (lazycheck ``set_threads(None)``, XLA's
default). lazycheck is timed before and after the peer (the best of both kept), so a change in
the machine's load between them shows as a spread; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_kernel import _setup  # the same cases, network, weights and data

_ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def main(argv: list[str] | None = None) -> None:
    """Time both kernels on every case and thread setting; print a table and a JSON line."""
    args = _parse(argv)
    if not args.nt_python:
        print(
            "bench_peer: skipped (no neural-tangents Python: pass --nt-python or set "
            "LAZYCHECK_NT_PYTHON; see the module docstring)",
            file=sys.stderr,
        )
        return
    rows = []
    for case in args.cases:
        for threads in (1, None):
            rows.append(compare(case, threads, args.nt_python, args.repeat))
            _print_row(rows[-1])
    print(json.dumps(rows))


def compare(case: str, threads: int | None, nt_python: str, repeat: int) -> dict[str, Any]:
    """One case under one thread setting: lazycheck, the peer, lazycheck again."""
    from lazycheck.threads import set_threads

    set_threads(threads)
    model, X, w = _setup(case)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        layers = [W for W, _ in model.unpack(w)]
        np.savez(inputs, X=X, **{f"W{i}": W for i, W in enumerate(layers)})
        first = _time_lazycheck(model, X, w, repeat)
        peer = _run_peer(nt_python, inputs, threads, repeat)
        second = _time_lazycheck(model, X, w, repeat)
        K_peer = np.load(Path(tmp) / "kernel.npy")
    K = model.linearize(w, X).kernel()
    wall = min(first["wall"], second["wall"])
    cpu = min(first["cpu"], second["cpu"])
    return {
        "case": case,
        "threads": threads or os.cpu_count(),
        "n": X.shape[0],
        "p": model.n_params,
        "lazycheck_wall": wall,
        "lazycheck_cpu": cpu,
        "lazycheck_spread": max(first["wall"], second["wall"]) / wall,
        "nt_wall": peer["wall"],
        "nt_cpu": peer["cpu"],
        "nt_compile": peer["compile"],
        "speedup_wall": peer["wall"] / wall,
        "speedup_cpu": peer["cpu"] / cpu,
        "agreement": float(np.abs(K - K_peer).max() / np.abs(K).max()),
        "load": os.getloadavg()[0],
    }


# ----------------------------------------------------------------------------- helpers


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_peer")
    parser.add_argument("--nt-python", default=os.environ.get("LAZYCHECK_NT_PYTHON", ""))
    parser.add_argument("--cases", default="A,B", type=lambda s: s.split(","))
    parser.add_argument("--repeat", default=5, type=int)
    return parser.parse_args([] if argv is None else argv)


def _time_lazycheck(model, X, w, repeat: int) -> dict[str, float]:
    model.linearize(w, X).kernel()  # warm-up
    best_wall, best_cpu = np.inf, np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        model.linearize(w, X).kernel()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return {"wall": best_wall, "cpu": best_cpu}


def _run_peer(nt_python: str, inputs: Path, threads: int | None, repeat: int) -> dict[str, float]:
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = _ONE_THREAD_XLA
    out = subprocess.run(
        [nt_python, "-c", _PEER, str(inputs), str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"bench_peer: the neural-tangents run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_row(r: dict[str, Any]) -> None:
    print(
        f"case {r['case']} (n = {r['n']}, p = {r['p']:,}), {r['threads']} thread(s): "
        f"lazycheck {r['lazycheck_wall']:.3f} s ({r['lazycheck_cpu']:.3f} CPU-s, spread "
        f"{r['lazycheck_spread']:.2f}), neural-tangents {r['nt_wall']:.3f} s "
        f"({r['nt_cpu']:.3f} CPU-s; compile {r['nt_compile']:.2f} s): "
        f"{r['speedup_wall']:.2f}x wall, {r['speedup_cpu']:.2f}x CPU; "
        f"kernels agree to {r['agreement']:.1e}; load {r['load']:.1f}",
        flush=True,
    )


#: run by the peer's Python: argv = inputs.npz, repeat; prints a JSON line, saves kernel.npy
_PEER = r"""
import json, sys, time
from pathlib import Path
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import neural_tangents as nt
from neural_tangents import stax

inputs, repeat = Path(sys.argv[1]), int(sys.argv[2])
data = np.load(inputs)
X = jnp.asarray(data["X"])
Ws = [data[f"W{i}"] for i in range(len(data.files) - 1)]
layers = []
for W in Ws[:-1]:
    dense = stax.Dense(W.shape[0], W_std=1.0, b_std=None, parameterization="ntk")
    layers += [dense, stax.Elementwise(fn=jnp.tanh)]
layers.append(stax.Dense(1, W_std=1.0, b_std=None, parameterization="ntk"))
_, apply_fn, _ = stax.serial(*layers)
params = []
for W in Ws[:-1]:
    params += [(jnp.asarray(W.T), None), ()]
params.append((jnp.asarray(Ws[-1].T), None))
kernel_fn = jax.jit(
    nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=3)
)
t0 = time.perf_counter()
K = np.asarray(kernel_fn(X, None, params)).reshape(X.shape[0], X.shape[0])
compile_s = time.perf_counter() - t0
best_wall = best_cpu = float("inf")
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    kernel_fn(X, None, params).block_until_ready()
    best_wall = min(best_wall, time.perf_counter() - t0)
    best_cpu = min(best_cpu, time.process_time() - c0)
np.save(inputs.parent / "kernel.npy", K)
print(json.dumps({"wall": best_wall, "cpu": best_cpu, "compile": compile_s}))
"""


if __name__ == "__main__":
    main(sys.argv[1:])
