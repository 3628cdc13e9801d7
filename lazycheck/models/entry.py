"""``[model] kind = "python"``: load the user's factory and turn what it returns into a Model.

The factory named by ``entry`` (``"path/to/file.py:make_model"``, relative to the spec, or
``"package.module:make_model"``) is called as ``make_model(input_dim, rng, **options)`` with the
input dimension d of the data and a ``numpy.random.Generator`` seeded from the spec's ``init``
stream, and returns one of

* a :class:`lazycheck.Model` (for instance a :class:`lazycheck.NumpyModel`);
* a JAX model: a pair ``(apply, params)`` with ``apply(params, X) -> (n,)`` and ``params`` a
  pytree of arrays, or a :class:`lazycheck.models.jax_adapter.JaxModel`;
* a PyTorch ``torch.nn.Module`` mapping an ``(n, d)`` tensor to ``(n,)`` (or ``(n, 1)``).

Frameworks are imported only when a model of theirs is returned. Every failure is one line
naming the entry: a file or module that cannot be loaded, a factory that raises, a return
value of another type (what it got and what is accepted), an output of the wrong shape or
precision.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import Model
from lazycheck.models.guard import GuardedModel, user_error
from lazycheck.models.rows import check_output

__all__ = ["as_model", "build_python_model", "load_entry"]

ACCEPTED = (
    "a lazycheck.Model (e.g. a lazycheck.NumpyModel), a JAX (apply, params) pair or "
    "lazycheck.models.jax_adapter.JaxModel, or a torch.nn.Module"
)


def build_python_model(
    entry: str,
    options: Mapping[str, Any],
    smooth: bool | None,
    X: np.ndarray,
    rng: np.random.Generator,
    base_dir: Path | None = None,
) -> Model:
    """Call the factory and adapt its result; checked on X (one forward pass)."""
    who = f"[model].entry {entry!r}"
    factory = load_entry(entry, base_dir)
    _enable_jax_x64()
    try:
        obj = factory(int(X.shape[1]), rng, **dict(options))
    except LazycheckError:
        raise
    except Exception as exc:
        raise user_error(
            who, f"{entry.rpartition(':')[2]}(input_dim, rng, **options)", exc
        ) from exc
    return as_model(obj, smooth=smooth, X=X, who=who)


def as_model(
    obj: Any, *, smooth: bool | None = None, X: np.ndarray | None = None, who: str = "model"
) -> Model:
    """A lazycheck Model from a Model, a JAX (apply, params) pair or a torch Module, guarded so
    errors in user code are one line naming ``who``, its smoothness settled, and (given X) its
    output checked to be float64 of shape (n,)."""
    model = _adapt(obj, smooth, who)
    guarded = model if isinstance(model, GuardedModel) else GuardedModel(model, who)
    if X is not None:
        w0 = guarded.init(np.random.default_rng(0))
        if np.shape(w0) != (guarded.n_params,):
            raise LazycheckError(
                f"{who}: init returned weights of shape {np.shape(w0)}; expected "
                f"({guarded.n_params},)"
            )
        check_output(guarded.forward(np.asarray(w0, dtype=np.float64), X), X.shape[0], who)
        settle = getattr(model, "settle_smoothness", None)
        if settle is not None:
            guarded._call("a forward pass", settle, X)
    if model.smooth is None:
        if smooth is None:
            raise LazycheckError(
                f"{who}: {type(model).__name__} does not say whether it is smooth (w -> J_w "
                "Lipschitz); declare it: smooth = true or false in [model] (or smooth=...)"
            )
        model.smooth = bool(smooth)
        model.smooth_reason = f"smoothness declared (smooth = {str(smooth).lower()})"
    elif smooth is not None and bool(smooth) != bool(model.smooth):
        raise LazycheckError(
            f"{who}: the model says smooth = {str(model.smooth).lower()} but smooth = "
            f"{str(smooth).lower()} is declared; remove one"
        )
    if not getattr(model, "smooth_reason", ""):
        state = "smooth" if model.smooth else "not smooth"
        model.smooth_reason = f"{state}, as {type(model).__name__} declares"
    guarded.smooth = model.smooth
    guarded.smooth_reason = model.smooth_reason
    return guarded


def load_entry(entry: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """The function an entry names (``file.py:name`` or ``package.module:name``)."""
    who = f"[model].entry {entry!r}"
    target, _, name = entry.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute():
            path = ((base_dir or Path.cwd()) / path).resolve()
        module = _load_file(path, who)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name and target.startswith(exc.name):
                raise LazycheckError(
                    f"{who}: no module named {target!r} (not importable from here; give a "
                    "path to a .py file instead)"
                ) from None
            raise user_error(who, f"importing {target}", exc) from exc
        except Exception as exc:
            raise user_error(who, f"importing {target}", exc) from exc
    fn = getattr(module, name, None)
    if fn is None:
        raise LazycheckError(f"{who}: {target} has no attribute {name!r}")
    if not callable(fn):
        raise LazycheckError(f"{who}: {name} is a {type(fn).__name__}, not a function")
    return fn


# ----------------------------------------------------------------------------- helpers

_LOADED: dict[tuple[Path, float], Any] = {}


def _load_file(path: Path, who: str) -> Any:
    """Execute a .py file as a module (once per path and modification time)."""
    if not path.is_file():
        raise LazycheckError(f"{who}: file {str(path)!r} does not exist")
    key = (path, path.stat().st_mtime)
    if key in _LOADED:
        return _LOADED[key]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"lazycheck_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LazycheckError(f"{who}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # helper modules beside the file
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise user_error(who, f"loading {path.name}", exc) from exc
    finally:
        sys.path.remove(str(path.parent))
    _LOADED[key] = module
    return module


def _adapt(obj: Any, smooth: bool | None, who: str) -> Model:
    if isinstance(obj, Model):
        return obj
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        from lazycheck.models.torch_adapter import TorchModel

        return TorchModel(obj, smooth=smooth, who=who)
    if isinstance(obj, tuple) and len(obj) == 2 and callable(obj[0]):
        if "jax" not in sys.modules:
            raise LazycheckError(
                f"{who}: returned an (apply, params) pair but JAX is not imported; a pair "
                "is taken as a JAX model (pip install 'lazycheck[jax]')"
            )
        from lazycheck.models.jax_adapter import JaxModel

        return JaxModel(obj[0], obj[1], smooth=smooth, who=who)
    got = type(obj).__name__
    if isinstance(obj, tuple):
        got = f"a tuple of {len(obj)} ({', '.join(type(o).__name__ for o in obj)})"
    raise LazycheckError(f"{who}: returned {got}; expected {ACCEPTED}")


def _enable_jax_x64() -> None:
    """JAX computes in float32 unless x64 is on; turn it on before the factory builds params."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
