"""PyTorch models: a ``torch.nn.Module`` mapping an (n, d) tensor to (n,), as a :class:`Model`.

Install with ``pip install 'lazycheck[torch]'``. This module is imported only when a PyTorch
model is used. The module is converted to float64 **in place** (``module.double()``) and put
in eval mode (``module.eval()``: dropout off, batch norm on its running statistics); a model
whose output is still float32 (it casts internally) is refused. Torch runs on one thread
unless ``--threads`` says otherwise (its spinning thread pool is slow on a busy 2-core box).

Weights: the parameters that require grad, in ``named_parameters()`` order, each flattened
row-major; buffers are constants. ``f``, JVP and VJP come from ``torch.func.functional_call``
with ``torch.func.jvp`` / ``torch.func.vjp``; rows of J are per-sample gradients
(``torch.func.vmap(torch.func.grad(...))``, the torch.func NTK recipe) when the module treats
rows independently (checked once on two rows), else VJPs of the basis vectors; kernels are built
from blocks of rows by :func:`lazycheck.models.rows.gram`, except that the blocks of
``nn.Linear`` layers applied once to (batch, features) inputs come from the layerwise identity
``K_layer = (D D^T) o (A A^T + 1)`` (D: gradients at the layer's output, A: its inputs; see
:func:`_linear_gram`), which costs O(n^2 width) instead of O(n^2 p) as for the built-in MLP.
Where J fits in a quarter of the memory limit it is computed once a point, by the first product
or the first kernel that needs rows, and serves both (on ``samples/torch_cnn.toml`` the kernels
and products along ``verify``'s flow had made 930 passes of per-sample gradients for 377
kernels; ``verify`` took 4.8-6.4 s, now 2.7-4.1 s, the report the same to the last bit).

Smoothness: one forward pass is traced with a ``TorchDispatchMode`` and its ATen operators are
searched for ones whose derivative jumps (``relu``, ``max_pool2d``, ``abs``, ``clamp``,
``hardtanh``, comparisons, ``where``...). One found makes the model non-smooth (beta = inf), the
report naming it; none makes it smooth. A declared ``smooth`` overrides the search, and the
report says it was declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lazycheck import resources
from lazycheck.errors import LazycheckError
from lazycheck.models.base import Model
from lazycheck.models.rows import _SHARE, RowLinearization, check_output

__all__ = ["NONSMOOTH_OPS", "TorchModel", "nonsmooth_ops"]

Array = np.ndarray

#: ATen operators whose derivative is discontinuous
NONSMOOTH_OPS = frozenset(
    {
        "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "_prelu_kernel",
        "rrelu", "rrelu_with_noise", "hardtanh", "hardtanh_", "hardswish", "hardsigmoid",
        "hardshrink", "softshrink", "threshold", "threshold_", "abs", "abs_", "sign", "sgn",
        "clamp", "clamp_", "clamp_min", "clamp_max", "clip", "maximum", "minimum", "max",
        "min", "amax", "amin", "fmax", "fmin", "max_pool1d", "max_pool2d", "max_pool3d",
        "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool1d",
        "adaptive_max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d", "where",
        "gt", "ge", "lt", "le", "eq", "ne", "floor", "ceil", "round", "trunc", "frac",
        "sort", "topk", "argmax", "argmin", "heaviside", "masked_fill", "masked_fill_",
        "remainder", "fmod",
    }
)  # fmt: skip


class TorchModel(Model):
    """A ``torch.nn.Module`` (converted to float64 in place, eval mode).

    ``smooth``: declared smoothness (None: detected from the ATen trace at the first use).
    ``beta_bound``: optional ``(X, w0, radius) -> float``, a certified bound on beta(radius).
    """

    def __init__(
        self,
        module: Any,
        *,
        smooth: bool | None = None,
        beta_bound: Callable[[Array, Array, float], float | None] | None = None,
        who: str = "PyTorch model",
    ) -> None:
        import torch

        from lazycheck.threads import threads

        # torch's OpenMP pool spins: on a small, shared machine one thread is much faster
        # for models of this size; --threads sets the count
        torch.set_num_threads(threads() or 1)
        self.who = who
        self.module = module.double().eval()
        named = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise LazycheckError(f"{who}: the module has no parameter that requires grad")
        for k, p in named:
            if p.dtype != torch.float64:
                raise LazycheckError(
                    f"{who}: parameter {k} stays {p.dtype} after module.double(); lazycheck "
                    "computes in float64 throughout (float32-only models are refused)"
                )
        self.names = [k for k, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [int(p.numel()) for _, p in named]
        self.buffers = {k: b for k, b in module.named_buffers()}
        frozen = {k: p.detach() for k, p in module.named_parameters() if not p.requires_grad}
        self.buffers.update(frozen)
        with torch.no_grad():
            self._w0 = torch.cat([p.detach().reshape(-1) for _, p in named]).numpy().copy()
        self.n_params = int(self._w0.size)
        self.smooth = smooth  # type: ignore[assignment]
        self.smooth_reason = (
            "" if smooth is None else f"smoothness declared (smooth = {str(smooth).lower()})"
        )
        self._beta_bound = beta_bound
        self.per_sample: bool | None = None
        self.linear_blocks: list[tuple[str, int, int, bool]] = []

    def init(self, rng: np.random.Generator) -> Array:
        """The module's parameters, flattened (the factory drew them from its rng)."""
        return self._w0.copy()

    def params(self, w: Any) -> dict[str, Any]:
        """The flat weights as a name -> tensor dict (views), buffers included."""
        out = dict(self.buffers)
        off = 0
        for k, shape, size in zip(self.names, self.shapes, self.sizes, strict=True):
            out[k] = w[off : off + size].view(shape)
            off += size
        return out

    def f_tensor(self, w: Any, X: Any) -> Any:
        """f(w) on X as a tensor of shape (n,)."""
        import torch

        out = torch.func.functional_call(self.module, self.params(w), (X,))
        n = X.shape[0]
        if out.dtype != torch.float64:
            name = str(out.dtype).replace("torch.", "")
            raise LazycheckError(
                f"{self.who}: f(w, X) is {name}; lazycheck computes in float64 throughout, so "
                "the model must compute in float64 (float32-only models are refused)"
            )
        if tuple(out.shape) not in ((n,), (n, 1)):
            check_output(np.zeros(tuple(out.shape)), n, self.who)
        return out.reshape(n)

    def settle_smoothness(self, X: Array) -> None:
        """Detect smoothness from the ATen trace on X (unless declared); check that rows are
        treated independently; find the Linear layers whose kernel blocks are layerwise."""
        import torch

        X2 = torch.as_tensor(np.asarray(X, dtype=np.float64)[:2])
        w = torch.from_numpy(self._w0)
        with torch.no_grad():
            if self.per_sample is None:
                both = self.f_tensor(w, X2)
                one = self.f_tensor(w, X2[:1])
                self.per_sample = bool(torch.allclose(both[:1], one, rtol=1e-12, atol=0.0))
            ops = nonsmooth_ops(lambda: self.f_tensor(w, X2))
        self.linear_blocks = _linear_layers(self, w, X2) if self.per_sample else []
        if self.smooth is not None:
            return
        self.smooth = not ops
        self.smooth_reason = (
            f"not smooth: the forward pass calls {', '.join(sorted(ops))} (declare smooth = "
            "true if they do not make the derivative jump)"
            if ops
            else "smooth: no non-smooth operator in the forward pass"
        )

    def linearize(self, w: Array, X: Array) -> _TorchLinearization:
        if self.per_sample is None:
            self.settle_smoothness(X)
        return _TorchLinearization(self, w, X)

    def forward(self, w: Array, X: Array) -> Array:
        import torch

        with torch.no_grad():
            out = self.f_tensor(_tensor(w), _tensor(X))
        return out.numpy().copy()

    def describe(self) -> str:
        return f"PyTorch {type(self.module).__name__}, p = {self.n_params}"

    def beta_bound(self, X: Array, w0: Array, radius: float) -> float | None:
        return None if self._beta_bound is None else self._beta_bound(X, w0, radius)


class _TorchLinearization(RowLinearization):
    def __init__(self, model: TorchModel, w: Array, X: Array) -> None:
        import torch

        self.model = model
        self.w = _tensor(w)
        self.X = _tensor(X)
        self.n_params = model.n_params
        with torch.no_grad():
            self.f = model.f_tensor(self.w, self.X).numpy().copy()
        self._layers: dict[str, tuple[Any, Any]] | None = None
        self._J: Array | None = None

    def _fn(self, u: Any) -> Any:
        return self.model.f_tensor(u, self.X)

    def jvp(self, v: Array) -> Array:
        import torch

        J = self._small_jacobian()
        if J is not None:
            return J @ np.asarray(v, dtype=np.float64)
        _, out = torch.func.jvp(self._fn, (self.w,), (_tensor(v),))
        return out.detach().numpy().copy()

    def vjp(self, r: Array) -> Array:
        import torch

        J = self._small_jacobian()
        if J is not None:
            return np.asarray(r, dtype=np.float64) @ J

        _, pull = torch.func.vjp(self._fn, self.w)
        return pull(_tensor(r))[0].detach().numpy().copy()

    def _small_jacobian(self) -> Array | None:
        """J, computed once (per-sample gradients, far cheaper than forward-mode AD and than
        repeated VJPs) when it fits in a quarter of the memory limit; else None."""
        if self._J is None and resources.fits(8.0 * self.n * self.n_params * _SHARE):
            self._J = self.rows(0, self.n)
        return self._J

    def rows(self, lo: int, hi: int) -> Array:
        return self._rows(lo, hi, self.model.names)

    def kernel(self) -> Array:
        self._hold_jacobian()
        return self._layerwise(self) if self.model.linear_blocks else super().kernel()

    def cross_kernel(self, other: Any) -> Array:
        if isinstance(other, _TorchLinearization):
            self._hold_jacobian()
            other._hold_jacobian()
            if self.model.linear_blocks:
                return self._layerwise(other)
        return super().cross_kernel(other)

    def difference_kernel(self, other: Any) -> Array:
        if isinstance(other, _TorchLinearization):
            self._hold_jacobian()
            other._hold_jacobian()
            if self.model.linear_blocks:
                return self._layerwise(other, difference=True)
        return super().difference_kernel(other)

    def _hold_jacobian(self) -> None:
        """Compute and hold J (:meth:`_small_jacobian`, where it fits) before a kernel that
        needs rows of per-sample gradients (parameters outside the Linear layers' layerwise
        blocks, or no such blocks): their rows then come from it (:meth:`_rows`), so one pass
        of per-sample gradients serves this point's products and kernels, where the products
        and each kernel made one each (a convolutional net along a flow: 930 passes for 377
        kernels). A model of Linear layers alone needs no rows for its kernels: J is not
        computed for them."""
        if self._J is None and (not self.model.linear_blocks or self._rest()):
            self._small_jacobian()

    def _rest(self) -> list[str]:
        """The parameters outside the Linear layers' layerwise blocks."""
        linear = {name for name, *_ in self.model.linear_blocks}
        return [k for k in self.model.names if _owner(k) not in linear]

    def _rows(self, lo: int, hi: int, names: list[str]) -> Array:
        """Rows lo:hi of the columns of J belonging to the parameters ``names`` (from the held
        J where there is one)."""
        model = self.model
        G = self._J[lo:hi] if self._J is not None else self._gradient_rows(lo, hi)
        idx = [i for i, k in enumerate(model.names) if k in names]
        if len(idx) == len(model.names):
            return G
        offs = np.concatenate([[0], np.cumsum(model.sizes)])
        cols = [G[:, offs[i] : offs[i + 1]] for i in idx]
        return np.hstack(cols) if cols else np.zeros((hi - lo, 0))

    def _gradient_rows(self, lo: int, hi: int) -> Array:
        """Rows lo:hi of J: per-sample gradients where rows are independent, else VJPs of the
        basis vectors."""
        import torch

        model = self.model
        if model.per_sample:

            def single(u: Any, x: Any) -> Any:
                return model.f_tensor(u, x[None])[0]

            G = torch.func.vmap(torch.func.grad(single), in_dims=(None, 0))(self.w, self.X[lo:hi])
        else:
            E = torch.zeros((hi - lo, self.n), dtype=torch.float64)
            E[torch.arange(hi - lo), torch.arange(lo, hi)] = 1.0
            _, pull = torch.func.vjp(self._fn, self.w)
            G = torch.func.vmap(lambda e: pull(e)[0])(E)
        return G.detach().numpy()

    def _layerwise(self, other: _TorchLinearization, difference: bool = False) -> Array:
        """Kernel blocks of Linear layers from (D D'^T) o (A A'^T + 1); the rest from rows."""
        from lazycheck.models.rows import gram

        mine, theirs = self._linear_factors(), other._linear_factors()
        K = np.zeros((self.n, other.n))
        for name, (A, D) in mine.items():
            A2, D2 = theirs[name]
            bias = any(b for k, _, _, b in self.model.linear_blocks if k == name)
            K += _linear_gram(A, D, A2, D2, bias, difference)
        rest = self._rest()
        if rest:
            if difference:
                K += gram(
                    lambda lo, hi: self._rows(lo, hi, rest) - other._rows(lo, hi, rest),
                    self.n,
                    self.n_params,
                )
            else:
                K += gram(
                    lambda lo, hi: self._rows(lo, hi, rest),
                    self.n,
                    self.n_params,
                    lambda lo, hi: other._rows(lo, hi, rest),
                    other.n,
                )
        return K

    def _linear_factors(self) -> dict[str, tuple[Array, Array]]:
        """Per Linear layer: its inputs A (n x in) and the gradients D (n x out) of sum_i f_i
        at its output, which are per-sample gradients since rows are independent."""
        if self._layers is None:
            self._layers = _capture_linear(self.model, self.w, self.X)
        return self._layers


def nonsmooth_ops(run: Callable[[], Any]) -> set[str]:
    """ATen operators with a jumping derivative called while ``run()`` executes."""
    from torch.utils._python_dispatch import TorchDispatchMode

    found: set[str] = set()

    class _Record(TorchDispatchMode):
        def __torch_dispatch__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            name = func.overloadpacket.__name__
            if name in NONSMOOTH_OPS:
                found.add(name)
            return func(*args, **(kwargs or {}))

    with _Record():
        run()
    return found


def _join(module: str, param: str) -> str:
    return f"{module}.{param}" if module else param


def _owner(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else ""


def _tensor(a: Any) -> Any:
    import torch

    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def _linear_gram(A: Array, D: Array, A2: Array, D2: Array, bias: bool, diff: bool) -> Array:
    """The Linear layer's block of J_w J_v^T: row i of its weight Jacobian is D_i (x) A_i (and
    D_i for the bias), so the block is (D D2^T) o (A A2^T + bias). With ``diff``, the same for
    (J_w - J_v)(J_w - J_v)^T from D (x) A - D2 (x) A2 = (D - D2) (x) A + D2 (x) (A - A2),
    free of cancellation; the terms of a zero difference (the first layer's input is X at both
    points, an output layer's delta is 1) are skipped rather than computed as zeros."""
    if not diff:
        G = A @ A2.T
        if bias:
            G += 1.0
        return (D @ D2.T) * G
    dD, dA = D - D2, A - A2
    if not np.any(dD):
        if not np.any(dA):
            return np.zeros((A.shape[0], A2.shape[0]))
        return (D2 @ D2.T) * (dA @ dA.T)
    DD = dD @ dD.T
    term = DD * (A @ A.T)
    if np.any(dA):
        cross = (dD @ D2.T) * (A @ dA.T)
        term += cross + cross.T + (D2 @ D2.T) * (dA @ dA.T)
    if bias:
        term += DD
    return term


def _linear_layers(model: TorchModel, w: Any, X2: Any) -> list[tuple[str, int, int, bool]]:
    """Linear submodules whose weight (and bias) are trainable, used exactly once per forward
    on a (batch, features) input, with parameters not shared: (name, in, out, has_bias)."""
    import torch

    counts: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, mod in model.module.named_modules():
        if isinstance(mod, torch.nn.Linear):

            def hook(m: Any, inp: Any, out: Any, name: str = name) -> None:
                counts[name] = counts.get(name, 0) + 1
                shapes[name] = tuple(inp[0].shape)

            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.f_tensor(w, X2)
    finally:
        for h in hooks:
            h.remove()
    ids = [id(p) for p in model.module.parameters()]
    out = []
    for name, mod in model.module.named_modules():
        if not isinstance(mod, torch.nn.Linear) or counts.get(name) != 1:
            continue
        if len(shapes[name]) != 2:
            continue
        keys = [_join(name, "weight")] + ([_join(name, "bias")] if mod.bias is not None else [])
        if not all(k in model.names for k in keys):
            continue
        if any(ids.count(id(p)) > 1 for p in mod.parameters()):
            continue
        out.append((name, mod.in_features, mod.out_features, mod.bias is not None))
    return out


def _capture_linear(model: TorchModel, w: Any, X: Any) -> dict[str, tuple[Array, Array]]:
    import torch

    names = {b[0] for b in model.linear_blocks}
    acts: dict[str, Any] = {}
    outs: dict[str, Any] = {}
    hooks = []
    for name, mod in model.module.named_modules():
        if name in names:

            def hook(m: Any, inp: Any, out: Any, name: str = name) -> None:
                acts[name] = inp[0].detach()
                out.retain_grad()
                outs[name] = out

            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.enable_grad():
            u = w.detach().clone().requires_grad_(True)
            y = model.f_tensor(u, X)
            y.sum().backward()
    finally:
        for h in hooks:
            h.remove()
    return {k: (acts[k].numpy(), outs[k].grad.detach().numpy()) for k in names}
