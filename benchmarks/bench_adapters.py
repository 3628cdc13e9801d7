"""Benchmark: the tangent kernel through the JAX and PyTorch adapters against the built-in
layerwise kernel, side by side in one process; and ``bound`` on the PyTorch CNN sample.

Case A: a 3-layer tanh MLP (n = 512 points on the sphere in R^64, hidden widths 1024, 1024,
NTK parameterization, no biases; p = 1,115,136), the same weights in all three. Each route
includes its forward/backward pass (``linearize``) and the kernel; JAX is timed after a
warm-up call (jit compilation reported separately). Goal: each adapter within 5x of the
built-in. The kernels must agree (max relative difference printed).

Case B: ``compute_bound`` on ``samples/torch_cnn.toml`` (sampled beta). Goal: under a minute.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
N, D, WIDTHS = 512, 64, (1024, 1024)


def main() -> None:
    # default threads, as a user gets them: BLAS and XLA their own choice, torch one thread
    print("bench_adapters: tangent kernel, 3-layer tanh MLP, n = 512, d = 64, widths 1024, 1024")
    _kernels()
    print("bench_adapters: bound on samples/torch_cnn.toml (sampled beta)")
    _cnn_bound()


def _kernels() -> None:
    from lazycheck.models.mlp import MLP

    rng = np.random.default_rng(0)
    mlp = MLP(D, WIDTHS, "tanh")
    w0 = mlp.init(rng)
    X = rng.standard_normal((N, D))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    print(f"  p = {mlp.n_params}")
    t_ref, K_ref = _timed(lambda: mlp.linearize(w0, X).kernel(), repeat=3)
    print(f"  built-in layerwise   {t_ref:8.3f} s")
    for name, build in (("PyTorch adapter", _torch_model), ("JAX adapter", _jax_model)):
        try:
            model = build(mlp, w0)
        except ImportError as exc:
            print(f"  {name:20s} skipped ({exc})")
            continue
        t0 = time.perf_counter()
        model.linearize(w0, X).kernel()  # warm-up: jit compilation, smoothness trace
        warm = time.perf_counter() - t0
        t, K = _timed(lambda m=model: m.linearize(w0, X).kernel(), repeat=1)
        err = float(np.abs(K - K_ref).max() / np.abs(K_ref).max())
        print(
            f"  {name:20s} {t:8.3f} s   ratio {t / t_ref:7.1f}x built-in   "
            f"(first call {warm:.2f} s; max rel. diff {err:.1e})"
        )


def _cnn_bound() -> None:
    import lazycheck

    t0 = time.perf_counter()
    prob = lazycheck.load_problem(REPO / "samples" / "torch_cnn.toml", beta="sampled")
    report = lazycheck.compute_bound(prob)
    t = time.perf_counter() - t0
    beta = report.betas["sampled"]
    print(
        f"  n = {prob.n}, p = {prob.p}: {t:.1f} s (goal < 60 s); beta[sampled] = "
        f"{beta.value:.4g} over {beta.samples or '?'} points; status {report.status}"
    )


def _timed(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _torch_model(mlp: Any, w0: np.ndarray) -> Any:
    import torch

    from lazycheck.models.torch_adapter import TorchModel

    dims = (D, *WIDTHS, 1)
    layers = [torch.nn.Linear(a, b, bias=False).double() for a, b in itertools.pairwise(dims)]

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)

        def forward(self, x: Any) -> Any:
            for i, layer in enumerate(self.layers):
                x = layer(x / math.sqrt(layer.in_features))
                if i < len(self.layers) - 1:
                    x = torch.tanh(x)
            return x[:, 0]

    with torch.no_grad():
        for layer, (W, _) in zip(layers, mlp.unpack(w0), strict=False):
            layer.weight.copy_(torch.from_numpy(W))
    return TorchModel(Net())


def _jax_model(mlp: Any, w0: np.ndarray) -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from lazycheck.models.jax_adapter import JaxModel

    def apply(params: list, X: Any) -> Any:
        h = X
        for i, W in enumerate(params):
            h = h @ W.T / math.sqrt(W.shape[1])
            if i < len(params) - 1:
                h = jnp.tanh(h)
        return h[:, 0]

    return JaxModel(apply, [jnp.asarray(W) for W, _ in mlp.unpack(w0)])
