"""A problem: data, model and initial weights, built from a spec.

:func:`load_problem` is the entry point of the Python API::

    import lazycheck
    prob = lazycheck.load_problem("samples/two_layer_tanh.toml", alpha=100.0)
    prob.X, prob.y, prob.w0
    prob.f(prob.w0); prob.jacobian(prob.w0); prob.kernel(prob.w0)

Random streams: every draw derives from the spec's ``seed`` through named child streams
(``data``, ``init``, ``beta``, ``ball``), so changing one part of a spec does not shift the
random numbers of another. The ``data`` stream takes ``[data].seed`` instead when it is given
(``--data-seed``), so initializations can be averaged over on fixed data.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lazycheck.data import Dataset, load_data
from lazycheck.errors import LazycheckError
from lazycheck.models.base import Linearization, Model
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel
from lazycheck.spec import ModelSpec, Spec, load_spec, parse_spec

__all__ = ["Problem", "build_model", "load_problem", "make_problem", "rng_for"]

#: in-memory problems: the spec's [data] table stands for arrays given directly
_ARRAYS = "arrays given in memory"


@dataclass(frozen=True)
class Problem:
    """Data X (n, d), targets y (n,), a model and its initial weights w0 (p,)."""

    spec: Spec
    X: np.ndarray
    y: np.ndarray
    model: Model
    w0: np.ndarray
    data_source: str = ""

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        return int(self.model.n_params)

    @property
    def alpha(self) -> float:
        """The spec's alpha (``[flow].alpha`` or ``--alpha``)."""
        return self.spec.flow.alpha

    @property
    def seed(self) -> int:
        return self.spec.seed

    def linearize(self, w: np.ndarray) -> Linearization:
        """One forward/backward pass at w on X (a :class:`~lazycheck.models.base.Linearization`)."""
        return self.model.linearize(w, self.X)

    def f(self, w: np.ndarray) -> np.ndarray:
        """Model outputs f(w) on the n training points."""
        return self.model.forward(w, self.X)

    def jacobian(self, w: np.ndarray) -> np.ndarray:
        """J_w, shape (n, p)."""
        return self.model.jacobian(w, self.X)

    def kernel(self, w: np.ndarray) -> np.ndarray:
        """Tangent kernel K(w) = J_w J_w^T, shape (n, n)."""
        return self.model.kernel(w, self.X)

    def cross_kernel(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        """J_w J_v^T."""
        return self.model.cross_kernel(w, v, self.X)

    def loss(self, w: np.ndarray, alpha: float | None = None) -> float:
        """L(alpha f(w)) = ||alpha f(w) - y||^2 / 2."""
        a = self.alpha if alpha is None else alpha
        r = a * self.f(w) - self.y
        return 0.5 * float(r @ r)

    def rng(self, stream: str) -> np.random.Generator:
        """The named random stream of this problem's seed."""
        return rng_for(self.spec.seed, stream)

    @property
    def smoothness(self) -> str:
        """Why the model is (not) smooth, for reports: detected or declared for a Python model,
        from the activation for the built-in MLP."""
        reason = _smooth_reason(self.model)
        if reason:
            return reason
        act = self.spec.model.activation
        return (
            f"{act} is smooth"
            if self.model.smooth
            else f"{act} is not smooth (its derivative jumps)"
        )

    @classmethod
    def from_arrays(
        cls,
        X: Any,
        y: Any,
        model: Any,
        w0: Any = None,
        *,
        alpha: float = 1.0,
        seed: int = 0,
        smooth: bool | None = None,
        center: bool = False,
        settings: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> Problem:
        """A problem from arrays and a model object, without a spec file (for notebooks).

        ``model``: a :class:`~lazycheck.models.base.Model`, a JAX ``(apply, params)`` pair (or
        :class:`~lazycheck.models.jax_adapter.JaxModel`) or a ``torch.nn.Module``. ``w0``: the
        initial weights (p,); by default the model's own (``model.init`` on the ``init``
        stream of ``seed``; the params a JAX or PyTorch model holds). ``smooth`` declares
        smoothness where it cannot be detected; ``center`` subtracts f(w0) so f(w0) = 0.
        ``settings`` sets any other spec key by dotted path (``{"check.beta": "sampled"}``).
        """
        from lazycheck.data import _validate
        from lazycheck.models.entry import as_model

        Xa, ya = _validate(np.asarray(X), np.asarray(y), "from_arrays")
        raw: dict[str, Any] = {
            "seed": seed,
            "data": {"source": "synthetic", "n": int(Xa.shape[0]), "dim": int(Xa.shape[1])},
            "model": {"kind": "python", "center": center},
            "flow": {"alpha": alpha},
        }
        if name:
            raw["name"] = name
        if smooth is not None:
            raw["model"]["smooth"] = smooth
        spec = parse_spec(raw).with_settings(settings or {})
        m = as_model(model, smooth=smooth, X=Xa, who=name or "from_arrays model")
        w = m.init(rng_for(seed, "init")) if w0 is None else np.asarray(w0, dtype=np.float64)
        if w.shape != (m.n_params,):
            raise LazycheckError(f"from_arrays: w0 has shape {w.shape}; expected ({m.n_params},)")
        if spec.model.center:
            m = CenteredModel(m, w)
        return cls(spec, Xa, ya, m, w, _ARRAYS)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """A generator for (seed, stream name), stable across runs and platforms."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def build_model(
    spec: ModelSpec, input_dim: int, X: np.ndarray, rng: np.random.Generator
) -> tuple[Model, np.ndarray]:
    """The model a spec describes and its initial weights."""
    if spec.kind == "python":
        return _build_python(spec, X, rng)
    widths = spec.widths
    if spec.init == "symmetric":
        widths = tuple(m // 2 for m in widths)
    base: Model = MLP(
        input_dim,
        widths,
        spec.activation,
        spec.parameterization,
        spec.bias,
        spec.sigma_w,
        spec.sigma_b,
    )
    return _wrapped(base, spec, rng)


def make_problem(spec: Spec) -> Problem:
    """Build the problem of an already-loaded spec."""
    origin = str(spec.path) if spec.path else None
    data: Dataset = load_data(spec.data, rng_for(spec.data_seed, "data"), origin)
    _require_model_memory(spec.model, data.n, data.dim, origin)
    model, w0 = build_model(spec.model, data.dim, data.X, rng_for(spec.seed, "init"))
    _require_finite(model, w0, data.X, spec.model, origin)
    return Problem(spec, data.X, data.y, model, w0, data.source)


def load_problem(
    spec: str | Path | Spec,
    *,
    alpha: float | None = None,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    **shorthands: Any,
) -> Problem:
    """Load a spec file (or take a :class:`Spec`), apply overrides, build the problem.

    ``settings`` (or its synonym ``overrides``) sets any spec key by its dotted path
    (``{"model.widths": [64, 64]}``), as ``--set`` does; ``alpha``, ``seed`` and the other
    keyword shorthands (:data:`lazycheck.spec.SHORTHANDS`) as their options do.
    """
    s = spec if isinstance(spec, Spec) else load_spec(spec)
    s = s.with_settings({**(settings or {}), **(overrides or {})})
    s = s.with_overrides(alpha=alpha, seed=seed, **shorthands)
    return make_problem(s)


# ----------------------------------------------------------------------------- helpers


#: inputs on which :func:`_require_finite` evaluates the network
_PROBE_ROWS = 64


def _require_model_memory(spec: ModelSpec, n: int, dim: int, origin: str | None) -> None:
    """Refuse a network whose weights or one forward/backward pass would not fit."""
    if spec.kind != "mlp":
        return
    from lazycheck.resources import FLOAT_BYTES, require

    table = f"{origin}: [model]" if origin else "[model]"
    dims = (dim, *spec.widths, 1)
    p = sum(b * (a + int(spec.bias)) for a, b in itertools.pairwise(dims))
    require(
        3 * FLOAT_BYTES * p,
        f"{table}: the weights (p = {p} parameters)",
        "reduce [model].widths",
    )
    require(
        4 * FLOAT_BYTES * n * sum(dims),
        f"{table}: one forward and backward pass (n = {n} points through widths "
        f"{'x'.join(map(str, spec.widths))})",
        "reduce [model].widths or [data].n",
    )


def _require_finite(
    model: Model, w0: np.ndarray, X: np.ndarray, spec: ModelSpec, origin: str | None
) -> None:
    """Refuse a model whose outputs or Jacobian at w0 overflow float64: every later number
    (sigma, beta, L0, the flows) would be inf or NaN and the linear algebra would fail.

    Probed on the :data:`_PROBE_ROWS` inputs of largest norm, where pre-activations are
    largest (a cheap pass however large n is); the centering offset is left out (it is
    f(w0) itself, and the base model's f(w0) is what would overflow)."""
    if X.shape[0] > _PROBE_ROWS:
        X = X[np.argsort(np.einsum("ij,ij->i", X, X))[-_PROBE_ROWS:]]
    if isinstance(model, CenteredModel):
        model = model.base
    with np.errstate(all="ignore"):
        lin = model.linearize(w0, X)
        g = lin.vjp(np.ones(X.shape[0]))
        ok = bool(np.all(np.isfinite(lin.f))) and np.isfinite(float(g @ g))
    if not ok:
        table = f"{origin}: [model]" if origin else "[model]"
        raise LazycheckError(
            f"{table}: the network overflows float64 at w0 (f(w0) or J0 J0^T is not finite); "
            f"reduce sigma_w (now {spec.sigma_w:g}), sigma_b (now {spec.sigma_b:g}) or the "
            "scale of the data"
        )


def _build_python(
    spec: ModelSpec, X: np.ndarray, rng: np.random.Generator
) -> tuple[Model, np.ndarray]:
    from lazycheck.models.entry import build_python_model

    if spec.entry is None:
        raise LazycheckError("[model].entry: missing; name the factory ('model.py:make_model')")
    base = build_python_model(spec.entry, spec.options, spec.smooth, X, rng, spec.base_dir)
    return _wrapped(base, spec, rng)


def _wrapped(base: Model, spec: ModelSpec, rng: np.random.Generator) -> tuple[Model, np.ndarray]:
    """The model the spec's init and center ask for around ``base``, and its w0."""
    model: Model = SymmetricModel(base) if spec.init == "symmetric" else base
    w0 = model.init(rng)
    if spec.center:
        model = CenteredModel(model, w0)
    return model, w0


def _smooth_reason(model: Model) -> str:
    m: Any = model
    while m is not None:
        reason = getattr(m, "smooth_reason", "")
        if reason:
            return str(reason)
        m = getattr(m, "base", None) or getattr(m, "inner", None)
    return ""
