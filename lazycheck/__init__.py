"""lazycheck: a theorem checker for the lazy-training theorem.

The Python API mirrors the command line::

    import lazycheck

    prob = lazycheck.load_problem("samples/two_layer_tanh.toml", alpha=1000.0)
    prob = lazycheck.Problem.from_arrays(X, y, model, alpha=1000.0)   # no spec file
    report = lazycheck.compute_bound(prob)        # lazycheck bound
    run = lazycheck.simulate(prob)       # lazycheck simulate
    checks = lazycheck.run_verify(prob)           # lazycheck verify
    sweep = lazycheck.run_sweep("samples/two_layer_tanh.toml", alpha=[1, 10, 100])  # sweep

Attributes are imported on first use, so ``import lazycheck`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from lazycheck._version import __version__

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "BoundReport",
    "CenteredModel",
    "Dataset",
    "JaxModel",
    "LazycheckError",
    "Linearization",
    "Model",
    "NumpyModel",
    "Problem",
    "SimulationResult",
    "Spec",
    "Spectrum",
    "SweepResult",
    "SymmetricModel",
    "TorchModel",
    "VerifyReport",
    "__version__",
    "as_model",
    "compare_kernels",
    "compute_bound",
    "jacobian_spectrum",
    "load_data",
    "load_problem",
    "load_spec",
    "make_problem",
    "run_sweep",
    "run_verify",
    "simulate",
    "solve_alpha",
]

_WHERE = {
    "MLP": "lazycheck.models.mlp",
    "ACTIVATIONS": "lazycheck.models.activations",
    "BoundReport": "lazycheck.commands.bound",
    "compute_bound": "lazycheck.commands.bound",
    "CenteredModel": "lazycheck.models.wrappers",
    "SymmetricModel": "lazycheck.models.wrappers",
    "Model": "lazycheck.models.base",
    "Linearization": "lazycheck.models.base",
    "NumpyModel": "lazycheck.models.protocol",
    "JaxModel": "lazycheck.models.jax_adapter",
    "TorchModel": "lazycheck.models.torch_adapter",
    "as_model": "lazycheck.models.entry",
    "Dataset": "lazycheck.data",
    "load_data": "lazycheck.data",
    "LazycheckError": "lazycheck.errors",
    "Problem": "lazycheck.problem",
    "load_problem": "lazycheck.problem",
    "make_problem": "lazycheck.problem",
    "Spec": "lazycheck.spec",
    "load_spec": "lazycheck.spec",
    "Spectrum": "lazycheck.numerics.spectrum",
    "jacobian_spectrum": "lazycheck.numerics.spectrum",
    "SimulationResult": "lazycheck.commands.simulate",
    "simulate": "lazycheck.commands.simulate",
    "VerifyReport": "lazycheck.commands.verify",
    "run_verify": "lazycheck.commands.verify",
    "solve_alpha": "lazycheck.hypothesis",
    "compare_kernels": "lazycheck.commands.kernel_report",
    "SweepResult": "lazycheck.sweep",
    "run_sweep": "lazycheck.sweep",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lazycheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
