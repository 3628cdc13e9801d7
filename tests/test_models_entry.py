"""``[model] kind = "python"``: factories loaded from a file, errors from user code as one line
through the command line, --set of the factory's options, and Problem.from_arrays."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import lazycheck
from lazycheck.errors import LazycheckError

SPEC = """
seed = 0
[data]
source = "synthetic"
n = 6
dim = 2
[model]
kind = "python"
entry = "{entry}"
{extra}
[flow]
alpha = 10.0
[check]
beta = "sampled"
beta_samples = 2
beta_iterations = 2
"""

MODELS = """
import numpy as np
import lazycheck


class Lin(lazycheck.NumpyModel):
    smooth = True

    def __init__(self, d, width=3):
        self.d, self.width = d, width
        self.n_params = d * width

    def init(self, rng):
        return rng.standard_normal(self.n_params)

    def f(self, w, X):
        return np.tanh(X @ w.reshape(self.d, self.width)).sum(axis=1)

    def vjp(self, w, X, r):
        W = w.reshape(self.d, self.width)
        s = 1 - np.tanh(X @ W) ** 2
        return (X.T @ (s * r[:, None])).ravel()


def good(d, rng, width=3):
    return Lin(d, width)


def raises(d, rng):
    raise ValueError("width must be even")


def wrong_type(d, rng):
    return {"not": "a model"}


class Wide(Lin):
    def f(self, w, X):
        return np.tanh(X @ w.reshape(self.d, self.width))


def wide(d, rng):
    return Wide(d)


class Bad(Lin):
    def vjp(self, w, X, r):
        raise RuntimeError("boom in vjp")


def bad_vjp(d, rng):
    return Bad(d)
"""

TORCH_MODELS = """
import torch


class F32(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)

    def forward(self, x):
        return self.lin(x.float()).float()[:, 0] if False else (self.lin.float()(x.float()))[:, 0]


def float32(d, rng):
    return F32(d)
"""


@pytest.fixture
def spec(write_file: Callable[[str, str], Path]) -> Callable[..., Path]:
    write_file("models.py", MODELS)

    def make(entry: str, extra: str = "") -> Path:
        return write_file("spec.toml", SPEC.format(entry=entry, extra=extra))

    return make


def test_factory_from_a_file_runs_bound(spec: Callable[..., Path], run_cli: Callable) -> None:
    result = run_cli(["bound", spec("models.py:good"), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    assert '"p": 6' in result.stdout
    prob = lazycheck.load_problem(spec("models.py:good"), settings={"model.options.width": 5})
    assert prob.p == 10 and "Lin" in prob.model.describe()


@pytest.mark.parametrize(
    ("entry", "fragments"),
    [
        ("models.py:raises", ["models.py:raises", "ValueError: width must be even"]),
        (
            "models.py:wrong_type",
            ["returned dict", "expected a lazycheck.Model", "torch.nn.Module"],
        ),
        ("models.py:wide", ["has shape (6, 3); expected (6,)"]),
        ("models.py:bad_vjp", ["models.py:bad_vjp", "raised RuntimeError: boom in vjp"]),
        ("models.py:missing", ["has no attribute 'missing'"]),
        ("nowhere.py:make", ["[model].entry", "does not exist"]),
        ("no_such_package.mod:make", ["no module named 'no_such_package.mod'"]),
        ("models.py", ["is not 'path/to/file.py:function'"]),
    ],
)
def test_user_code_errors_are_one_line(
    spec: Callable[..., Path],
    run_cli: Callable,
    one_line_error: Callable,
    entry: str,
    fragments: list[str],
) -> None:
    one_line_error(run_cli(["bound", spec(entry)]), *fragments)


def test_options_must_match_the_factory(
    spec: Callable[..., Path], run_cli: Callable, one_line_error: Callable
) -> None:
    result = run_cli(["bound", spec("models.py:good"), "--set", "model.options.depth=2"])
    one_line_error(result, "unexpected keyword argument 'depth'")
    result = run_cli(["bound", spec("models.py:good"), "--set", "model.widths=[4]"])
    one_line_error(result, "unknown key 'widths'")


def test_float32_torch_model_is_refused(
    write_file: Callable[[str, str], Path],
    spec: Callable[..., Path],
    run_cli: Callable,
    one_line_error: Callable,
) -> None:
    pytest.importorskip("torch")
    write_file("tmodels.py", TORCH_MODELS)
    one_line_error(run_cli(["bound", spec("tmodels.py:float32")]), "float32", "float64")


def test_undeclared_smoothness_must_be_declared(write_file: Callable[[str, str], Path]) -> None:
    class Plain(lazycheck.NumpyModel):
        n_params = 2

        def init(self, rng: np.random.Generator) -> np.ndarray:
            return np.ones(2)

        def f(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
            return np.sin(X @ w)

        def jacobian(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
            return np.cos(X @ w)[:, None] * X

    X, y = np.eye(2), np.zeros(2)
    with pytest.raises(LazycheckError, match="declare it"):
        lazycheck.Problem.from_arrays(X, y, Plain())
    prob = lazycheck.Problem.from_arrays(X, y, Plain(), smooth=True, alpha=3.0)
    assert prob.model.smooth and "declared" in prob.smoothness and prob.alpha == 3.0
    assert np.allclose(prob.f(prob.w0), np.sin(1.0))


def test_from_arrays_matches_the_spec_problem() -> None:
    ref = lazycheck.load_problem(
        Path(__file__).resolve().parent.parent / "samples" / "two_layer_tanh.toml"
    )
    base = ref.model.base
    prob = lazycheck.Problem.from_arrays(
        ref.X, ref.y, base, w0=ref.w0, alpha=ref.alpha, center=True
    )
    assert np.array_equal(prob.kernel(prob.w0), ref.kernel(ref.w0))
    assert np.array_equal(prob.f(prob.w0), ref.f(ref.w0))
    with pytest.raises(LazycheckError, match="w0 has shape"):
        lazycheck.Problem.from_arrays(ref.X, ref.y, base, w0=np.zeros(3))


JAX_MODELS = """
import jax.numpy as jnp


def float32(d, rng):
    def apply(p, X):
        return (X.astype(jnp.float32) @ p["w"].astype(jnp.float32))
    return apply, {"w": jnp.asarray(rng.standard_normal(d))}


def matrix_out(d, rng):
    return (lambda p, X: X @ p["w"]), {"w": jnp.asarray(rng.standard_normal((d, 4)))}
"""


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [("jmodels.py:float32", "is float32"), ("jmodels.py:matrix_out", "has shape (6, 4)")],
)
def test_jax_model_errors_are_one_line(
    write_file: Callable[[str, str], Path],
    spec: Callable[..., Path],
    run_cli: Callable,
    one_line_error: Callable,
    entry: str,
    fragment: str,
) -> None:
    pytest.importorskip("jax")
    write_file("jmodels.py", JAX_MODELS)
    one_line_error(run_cli(["bound", spec(entry)]), "jmodels.py", fragment)


def test_symmetric_init_of_a_python_model(spec: Callable[..., Path]) -> None:
    one = lazycheck.load_problem(spec("models.py:good"))
    pair = lazycheck.load_problem(spec("models.py:good", 'init = "symmetric"'))
    assert pair.p == 2 * one.p
    assert np.array_equal(pair.f(pair.w0), np.zeros(pair.n))
    assert np.allclose(pair.kernel(pair.w0), one.model.kernel(pair.w0[: one.p], one.X))


def test_the_core_imports_no_framework() -> None:
    import subprocess

    code = (
        "import sys, lazycheck; lazycheck.load_problem('samples/numpy_model.toml'); "
        "lazycheck.compute_bound; "
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'framework imported'"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_numpy_sample_verifies_end_to_end(run_cli: Callable) -> None:
    """bound + simulate + verify on the hand-written sample: its certified beta carries the
    verdict, and every guaranteed check passes."""
    root = Path(__file__).resolve().parent.parent
    result = run_cli(["verify", root / "samples" / "numpy_model.toml"])
    assert result.exit_code == 0, result.output
    assert "certified" in result.stdout or "every guaranteed check passes" in result.stdout


def test_from_arrays_keeps_the_certified_beta_of_a_builtin_mlp() -> None:
    from lazycheck.beta import certified_beta

    ref = lazycheck.load_problem(
        Path(__file__).resolve().parent.parent / "samples" / "two_layer_tanh.toml"
    )
    prob = lazycheck.Problem.from_arrays(ref.X, ref.y, ref.model.base, w0=ref.w0, center=True)
    ours = certified_beta(prob.model, prob.X, prob.w0, 0.1)
    assert ours is not None and ours == certified_beta(ref.model, ref.X, ref.w0, 0.1)
