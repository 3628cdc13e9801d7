"""Experiment specs: one TOML file per experiment, parsed into frozen dataclasses.

Layout (every key documented in the README, section "Spec reference")::

    seed = 0                 # optional, top level: every random draw derives from it
    name = "..."             # optional label

    [data]   source = "synthetic" | "csv" | "npy" | "npz", and the keys of that source
    [model]  kind = "mlp", widths, activation, parameterization, bias, ...
    [flow]   alpha, method, rtol, atol, horizon, decay, lr, ...
    [check]  beta, radius, beta_samples, ...

Every mistake is a :class:`~lazycheck.errors.LazycheckError` whose one-line message names the
file, the key path (``[model].activation``) and what is allowed. Data paths are resolved
relative to the spec file.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazycheck.errors import LazycheckError
from lazycheck.files import read_small_text
from lazycheck.models.activations import ACTIVATIONS
from lazycheck.suggest import did_you_mean, match_choice

__all__ = [
    "SHORTHANDS",
    "CheckSpec",
    "DataSpec",
    "FlowSpec",
    "ModelSpec",
    "Spec",
    "load_spec",
    "parse_setting",
    "parse_spec",
]

DATA_SOURCES = ("synthetic", "csv", "npy", "npz")
INPUT_KINDS = ("sphere", "gaussian")
TARGET_KINDS = ("teacher", "smooth", "random_labels")
PARAMETERIZATIONS = ("ntk", "standard")
INITS = ("gaussian", "symmetric")
METHODS = ("auto", "exp", "RK45", "DOP853", "LSODA", "Radau", "BDF", "gd")
BETA_MODES = ("auto", "certified", "sampled")
#: a spec is a small text file; anything larger is refused before it is read
MAX_SPEC_BYTES = 2**20
#: alpha must lie in [ALPHA_MIN, ALPHA_MAX]: alpha^2 then stays within 1e+-200, leaving
#: float64 (up to 1.8e308) 1e108 of room for sigma^2, ||f||^2, L0 and 1/t, so that
#: alpha^2 sigma^2 t, alpha f(w) - y and L0 stay finite and nonzero
ALPHA_MIN, ALPHA_MAX = 1e-100, 1e100
#: most output times / checkpoints of a run (each costs a model evaluation, or an n x n
#: eigenproblem), and most beta samples / ascent steps / ball points (each a model evaluation)
MAX_TIMES = 100_000
MAX_SAMPLES = 100_000
_PER_EVAL = "each costs a model evaluation"
_INT64_MAX = 2**63 - 1
#: decay (the bound's fall, exp(-decay)) beyond which e^-decay underflows float64 to 0
DECAY_MAX = 700.0


@dataclass(frozen=True)
class DataSpec:
    """The ``[data]`` table. See the README for each key."""

    source: str = "synthetic"
    # files
    path: Path | None = None
    features: tuple[str, ...] | None = None
    target: str | None = None
    target_path: Path | None = None
    x_key: str = "X"
    y_key: str = "y"
    # synthetic
    n: int = 10
    dim: int = 3
    inputs: str = "sphere"
    targets: str = "teacher"
    teacher_width: int = 16
    noise: float = 0.0
    # both
    standardize: bool = False
    subsample: int | None = None
    #: the data's own random stream seed (synthetic draws, subsampling); None: the spec's seed
    seed: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """The ``[model]`` table."""

    kind: str = "mlp"
    widths: tuple[int, ...] = (100,)
    activation: str = "tanh"
    parameterization: str = "ntk"
    bias: bool = False
    sigma_w: float = 1.0
    sigma_b: float = 1.0
    init: str = "gaussian"
    center: bool = False
    #: kind = "python": "path/to/file.py:factory" (relative to the spec) or "package.module:factory"
    entry: str | None = None
    #: kind = "python": keyword arguments of the factory
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: kind = "python": declared smoothness of w -> J_w (None: detected where possible)
    smooth: bool | None = None
    #: kind = "python": the directory a relative entry path resolves against
    base_dir: Path | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FlowSpec:
    """The ``[flow]`` table."""

    alpha: float = 1.0
    method: str = "auto"
    rtol: float = 1e-6
    atol: float = 1e-12
    horizon: float | None = None
    decay: float = 8.0
    lr: float | None = None
    n_times: int = 200
    checkpoints: int = 24


@dataclass(frozen=True)
class CheckSpec:
    """The ``[check]`` table."""

    beta: str | float = "auto"
    radius: str | float = "auto"
    beta_samples: int = 48
    beta_iterations: int = 30
    ball_points: int = 32
    tolerance: float | None = None


@dataclass(frozen=True)
class Spec:
    """A whole experiment spec."""

    path: Path | None
    seed: int = 0
    name: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    flow: FlowSpec = field(default_factory=FlowSpec)
    check: CheckSpec = field(default_factory=CheckSpec)

    #: the TOML mapping the spec was parsed from (what ``--set`` edits and re-validates)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def data_seed(self) -> int:
        """The seed of the data stream: ``[data].seed``, else the spec's ``seed``."""
        return self.seed if self.data.seed is None else self.data.seed

    def with_settings(
        self, settings: Mapping[str, Any], labels: Mapping[str, str] | None = None
    ) -> Spec:
        """A copy with dotted keys set (``{"model.widths": [64, 64], "seed": 3}``), validated by
        the same rules as the file. ``labels`` names where each key came from (``"--alpha"``);
        by default ``--set KEY``, so an error names the option and the key."""
        if not settings:
            return self
        raw = copy.deepcopy(dict(self.raw)) if self.raw else _raw_from(self)
        names = {}
        for key, value in settings.items():
            names[key] = (labels or {}).get(key, f"--set {key}")
            _assign(raw, key, value, names[key])
        return parse_spec(raw, path=self.path, labels=names)

    def with_overrides(self, **overrides: Any) -> Spec:
        """A copy with command-line shorthands applied (``seed``, ``data_seed``, ``alpha``,
        ``method``, ``rtol``, ``atol``, ``horizon``, ``decay``, ``lr``, ``beta``; ``None`` values
        are ignored). Any other spec key goes through :meth:`with_settings`."""
        o = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(o) - set(SHORTHANDS))
        if unknown:
            raise LazycheckError(
                f"unknown override(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(SHORTHANDS))} (any other key: with_settings)"
            )
        settings = {SHORTHANDS[k]: v for k, v in o.items()}
        labels = {SHORTHANDS[k]: "--" + k.replace("_", "-") for k in o}
        return self.with_settings(settings, labels)

    @property
    def label(self) -> str:
        """The spec's name, or its file name."""
        return self.name or (self.path.name if self.path else "<in-memory spec>")


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file (a regular file of at most :data:`MAX_SPEC_BYTES`)."""
    p = Path(path)
    text = read_small_text(p, MAX_SPEC_BYTES, "spec", "a spec is a TOML file")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LazycheckError(f"{p}: not valid TOML ({exc})") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise LazycheckError(f"{p}: not a usable spec ({exc})") from None
    except RecursionError:
        raise LazycheckError(
            f"{p}: not a usable spec: its arrays or tables are nested too deeply"
        ) from None
    return parse_spec(raw, path=p)


def parse_spec(
    raw: Mapping[str, Any],
    path: Path | None = None,
    labels: Mapping[str, str] | None = None,
) -> Spec:
    """Validate an already-parsed TOML mapping. Data paths resolve relative to ``path``.
    ``labels`` maps dotted keys set from the command line to the option that set them."""
    where = _Where(str(path) if path else "<spec>", "", dict(labels or {}))
    _reject_unknown(raw, set(TOP_KEYS), where)
    seed = _check_seed(raw.get("seed", 0), where.key("seed"))
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise LazycheckError(f"{where.file}: name: must be a string")
    base = path.parent if path else Path.cwd()
    tables = {}
    for key in ("data", "model", "flow", "check"):
        val = raw.get(key, {})
        if not isinstance(val, dict):
            raise LazycheckError(f"{where.file}: [{key}] must be a table")
        tables[key] = val
    if "data" not in raw:
        raise LazycheckError(f"{where.file}: missing table [data]; every spec names its data")
    if "model" not in raw:
        raise LazycheckError(f"{where.file}: missing table [model]; every spec names its model")
    return Spec(
        path=path,
        seed=seed,
        name=name,
        data=_parse_data(tables["data"], where.sub("data"), base),
        model=_parse_model(tables["model"], where.sub("model"), path),
        flow=_parse_flow(tables["flow"], where.sub("flow")),
        check=_parse_check(tables["check"], where.sub("check")),
        raw=copy.deepcopy(dict(raw)),
    )


def parse_setting(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` from ``--set``: a dotted key and a TOML value (a bare word such as
    ``erf`` is taken as a string)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.fullmatch(key):
        raise LazycheckError(
            f"--set {text!r}: expected KEY=VALUE with a dotted spec key, e.g. "
            "--set model.widths=[64,64] or --set data.n=40"
        )
    value = value.strip()
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        if _WORD_RE.fullmatch(value):
            return key, value
        raise LazycheckError(
            f"--set {key}: {value!r} is not a TOML value (a number, true/false, a quoted "
            "string, a [list] or an {inline table})"
        ) from None
    except RecursionError:
        raise LazycheckError(f"--set {key}: the value is nested too deeply") from None


TOP_KEYS = ("seed", "name", "data", "model", "flow", "check", "sweep")  # sweep: lazycheck.sweep
TABLES = ("data", "model", "flow", "check")

#: command-line shorthands and the spec key each sets
SHORTHANDS = {
    "seed": "seed",
    "data_seed": "data.seed",
    "alpha": "flow.alpha",
    "method": "flow.method",
    "rtol": "flow.rtol",
    "atol": "flow.atol",
    "horizon": "flow.horizon",
    "decay": "flow.decay",
    "lr": "flow.lr",
    "beta": "check.beta",
}
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/+-]*")


def _assign(raw: dict[str, Any], key: str, value: Any, label: str) -> None:
    """Set a dotted key in a nested mapping, creating tables on the way."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            where = ".".join(parts[: depth + 1])
            raise LazycheckError(f"{label}: {where} is not a table, so it has no key {parts[-1]!r}")
        node = nxt
    node[parts[-1]] = value


def _raw_from(spec: Spec) -> dict[str, Any]:
    """A TOML mapping equivalent to a spec built in memory (without a file)."""
    raw: dict[str, Any] = {"seed": spec.seed}
    if spec.name:
        raw["name"] = spec.name
    for table in TABLES:
        obj = getattr(spec, table)
        vals = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is None or v == f.default or not f.compare:
                continue
            if f.default_factory is not dataclasses.MISSING and v == f.default_factory():
                continue
            vals[f.name] = str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        if table == "data":
            vals["source"] = obj.source
        raw[table] = vals
    return raw


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Where:
    file: str
    table: str
    labels: dict[str, str] = field(default_factory=dict)

    def sub(self, table: str) -> _Where:
        return _Where(self.file, table, self.labels)

    def dotted(self, key: str) -> str:
        return f"{self.table}.{key}" if self.table else key

    def key(self, key: str) -> str:
        label = self.labels.get(self.dotted(key))
        if label is not None:
            return label
        return f"{self.file}: [{self.table}].{key}" if self.table else f"{self.file}: {key}"


def _check_seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LazycheckError(f"{where}: must be a non-negative integer, got {_show(value)}")
    return value


def _reject_unknown(raw: Mapping[str, Any], allowed: set[str], where: _Where) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        loc = f"[{where.table}]" if where.table else "top level"
        label = where.labels.get(where.dotted(unknown[0]))
        raise LazycheckError(
            f"{label or where.file}: unknown key {unknown[0]!r} in {loc}"
            f"{did_you_mean(unknown[0], allowed)}; allowed keys: {', '.join(sorted(allowed))}"
        )


def _get(
    raw: Mapping[str, Any],
    key: str,
    where: _Where,
    kind: str,
    default: Any = None,
    *,
    choices: tuple[str, ...] | None = None,
    positive: bool = False,
    nonneg: bool = False,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    if key not in raw:
        return default
    v = raw[key]
    loc = where.key(key)
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise LazycheckError(f"{loc}: must be an integer, got {_show(v)}")
        if abs(v) > _INT64_MAX:
            raise LazycheckError(f"{loc}: {_show(v)} is too large; at most 2^63 - 1")
    elif kind == "float":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise LazycheckError(f"{loc}: must be a number, got {_show(v)}")
        try:
            v = float(v)
        except OverflowError:
            raise LazycheckError(
                f"{loc}: {_show(v)} is too large for a float64 number (at most about 1.8e308)"
            ) from None
        if not math.isfinite(v):
            raise LazycheckError(f"{loc}: must be a finite number, got {v!r}")
    elif kind == "bool":
        if not isinstance(v, bool):
            raise LazycheckError(f"{loc}: must be true or false, got {v!r}")
    elif kind == "str":
        if not isinstance(v, str):
            raise LazycheckError(f"{loc}: must be a string, got {v!r}")
        if choices is not None and match_choice(v, choices) is None:
            raise LazycheckError(
                f"{loc}: {v!r} is not allowed{did_you_mean(v, choices)}; "
                f"choose one of {', '.join(choices)}"
            )
        v = v if choices is None else match_choice(v, choices)
    if positive and v <= 0:
        raise LazycheckError(f"{loc}: must be > 0, got {_show(v)}")
    if nonneg and v < 0:
        raise LazycheckError(f"{loc}: must be >= 0, got {_show(v)}")
    if check is not None:
        msg = check(v)
        if msg:
            raise LazycheckError(f"{loc}: {msg}")
    return v


def _path(raw: Mapping[str, Any], key: str, where: _Where, base: Path) -> Path | None:
    v = _get(raw, key, where, "str")
    if v is None:
        return None
    p = (base / v).resolve() if not Path(v).is_absolute() else Path(v)
    if not p.exists():
        raise LazycheckError(f"{where.key(key)}: file {v!r} does not exist (looked for {p})")
    if p.is_dir():
        raise LazycheckError(f"{where.key(key)}: {v!r} is a directory, not a data file")
    return p


def _str_list(raw: Mapping[str, Any], key: str, where: _Where) -> tuple[str, ...] | None:
    if key not in raw:
        return None
    v = raw[key]
    if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
        raise LazycheckError(f"{where.key(key)}: must be a non-empty list of column names")
    return tuple(v)


_DATA_KEYS = {
    "synthetic": {"n", "dim", "inputs", "targets", "teacher_width", "noise"},
    "csv": {"path", "features", "target"},
    "npy": {"path", "target_path"},
    "npz": {"path", "x_key", "y_key"},
}
_DATA_COMMON = {"source", "standardize", "subsample", "seed"}


def _parse_data(raw: Mapping[str, Any], where: _Where, base: Path) -> DataSpec:
    source = _get(raw, "source", where, "str", None, choices=DATA_SOURCES)
    if source is None:
        raise LazycheckError(
            f"{where.key('source')}: missing; choose one of {', '.join(DATA_SOURCES)}"
        )
    _reject_unknown(raw, _DATA_KEYS[source] | _DATA_COMMON, where)
    common = dict(
        source=source,
        standardize=_get(raw, "standardize", where, "bool", False),
        subsample=_get(raw, "subsample", where, "int", None, positive=True),
        seed=None if "seed" not in raw else _check_seed(raw["seed"], where.key("seed")),
    )
    if source == "synthetic":
        return DataSpec(
            **common,
            n=_get(raw, "n", where, "int", 10, positive=True),
            dim=_get(raw, "dim", where, "int", 3, positive=True),
            inputs=_get(raw, "inputs", where, "str", "sphere", choices=INPUT_KINDS),
            targets=_get(raw, "targets", where, "str", "teacher", choices=TARGET_KINDS),
            teacher_width=_get(raw, "teacher_width", where, "int", 16, positive=True),
            noise=_get(raw, "noise", where, "float", 0.0, nonneg=True),
        )
    path = _path(raw, "path", where, base)
    if path is None:
        raise LazycheckError(f"{where.key('path')}: missing; give the {source} file's path")
    if source == "csv":
        features = _str_list(raw, "features", where)
        target = _get(raw, "target", where, "str")
        if features is None:
            raise LazycheckError(f"{where.key('features')}: missing; list the feature columns")
        if target is None:
            raise LazycheckError(f"{where.key('target')}: missing; name the target column")
        if target in features:
            raise LazycheckError(f"{where.key('target')}: {target!r} is also a feature column")
        return DataSpec(**common, path=path, features=features, target=target)
    if source == "npy":
        target_path = _path(raw, "target_path", where, base)
        if target_path is None:
            raise LazycheckError(
                f"{where.key('target_path')}: missing; give the .npy file of targets"
            )
        return DataSpec(**common, path=path, target_path=target_path)
    return DataSpec(
        **common,
        path=path,
        x_key=_get(raw, "x_key", where, "str", "X"),
        y_key=_get(raw, "y_key", where, "str", "y"),
    )


MODEL_KINDS = ("mlp", "python")
_MLP_KEYS = {
    "kind", "widths", "activation", "parameterization", "bias", "sigma_w", "sigma_b", "init",
    "center",
}  # fmt: skip
_PYTHON_KEYS = {"kind", "entry", "options", "smooth", "init", "center"}


def _parse_model(raw: Mapping[str, Any], where: _Where, path: Path | None = None) -> ModelSpec:
    kind = _get(raw, "kind", where, "str", "mlp", choices=MODEL_KINDS)
    if kind == "python":
        return _parse_python_model(raw, where, path)
    _reject_unknown(raw, _MLP_KEYS, where)
    widths = raw.get("widths", [100])
    if (
        not isinstance(widths, list)
        or not widths
        or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in widths)
    ):
        raise LazycheckError(
            f"{where.key('widths')}: must be a non-empty list of positive integers "
            f"(hidden layer widths), got {_show(widths)}"
        )
    init = _get(raw, "init", where, "str", "gaussian", choices=INITS)
    if init == "symmetric" and any(m % 2 for m in widths):
        raise LazycheckError(
            f"{where.key('widths')}: init = 'symmetric' splits each layer into two halves, "
            f"so every width must be even, got {widths!r}"
        )
    return ModelSpec(
        kind=kind,
        widths=tuple(widths),
        activation=_get(raw, "activation", where, "str", "tanh", choices=tuple(ACTIVATIONS)),
        parameterization=_get(
            raw, "parameterization", where, "str", "ntk", choices=PARAMETERIZATIONS
        ),
        bias=_get(raw, "bias", where, "bool", False),
        sigma_w=_get(raw, "sigma_w", where, "float", 1.0, positive=True),
        sigma_b=_get(raw, "sigma_b", where, "float", 1.0, nonneg=True),
        init=init,
        center=_get(raw, "center", where, "bool", False),
    )


def _parse_python_model(raw: Mapping[str, Any], where: _Where, path: Path | None) -> ModelSpec:
    """``kind = "python"``: a factory named by ``entry`` (see :mod:`lazycheck.models.entry`)."""
    _reject_unknown(raw, _PYTHON_KEYS, where)
    entry = _get(raw, "entry", where, "str")
    if entry is None and path is not None:
        raise LazycheckError(
            f"{where.key('entry')}: missing; kind = 'python' names its factory, "
            "e.g. entry = 'model.py:make_model' or entry = 'package.module:make_model'"
        )
    if entry is not None:
        target, sep, func = entry.rpartition(":")
        if not sep or not target or not func.isidentifier():
            raise LazycheckError(
                f"{where.key('entry')}: {entry!r} is not 'path/to/file.py:function' or "
                "'package.module:function'"
            )
        base = path.parent if path else Path.cwd()
        if target.endswith(".py"):
            file = Path(target) if Path(target).is_absolute() else (base / target).resolve()
            if not file.is_file():
                raise LazycheckError(
                    f"{where.key('entry')}: file {target!r} does not exist (looked for {file})"
                )
    options = raw.get("options", {})
    if not isinstance(options, dict) or not all(k.isidentifier() for k in options):
        raise LazycheckError(
            f"{where.key('options')}: must be a table of keyword arguments for the factory, "
            f"got {options!r}"
        )
    return ModelSpec(
        kind="python",
        init=_get(raw, "init", where, "str", "gaussian", choices=INITS),
        center=_get(raw, "center", where, "bool", False),
        entry=entry,
        options=copy.deepcopy(options),
        smooth=_get(raw, "smooth", where, "bool", None),
        base_dir=path.parent if path else None,
    )


def _parse_flow(raw: Mapping[str, Any], where: _Where) -> FlowSpec:
    allowed = {f.name for f in dataclasses.fields(FlowSpec)}
    _reject_unknown(raw, allowed, where)

    def tol(v: float) -> str | None:
        return None if 1e-14 <= v <= 1e-1 else "must lie between 1e-14 and 0.1"

    return FlowSpec(
        alpha=_get(
            raw,
            "alpha",
            where,
            "float",
            1.0,
            positive=True,
            check=_in_range(
                ALPHA_MIN, ALPHA_MAX, "so that alpha^2 sigma^2 t and L0 stay finite in float64"
            ),
        ),
        method=_get(raw, "method", where, "str", "auto", choices=METHODS),
        rtol=_get(raw, "rtol", where, "float", 1e-6, check=tol),
        atol=_get(raw, "atol", where, "float", 1e-12, positive=True),
        horizon=_get(raw, "horizon", where, "float", None, positive=True),
        decay=_get(
            raw,
            "decay",
            where,
            "float",
            8.0,
            positive=True,
            check=_in_range(0, DECAY_MAX, "beyond, the bound L0 e^-decay underflows to 0"),
        ),
        lr=_get(raw, "lr", where, "float", None, positive=True),
        n_times=_get(raw, "n_times", where, "int", 200, check=_between(10, MAX_TIMES, _PER_EVAL)),
        checkpoints=_get(
            raw, "checkpoints", where, "int", 24, check=_between(2, MAX_TIMES, _PER_EVAL)
        ),
    )


def _parse_check(raw: Mapping[str, Any], where: _Where) -> CheckSpec:
    allowed = {f.name for f in dataclasses.fields(CheckSpec)}
    _reject_unknown(raw, allowed, where)
    return CheckSpec(
        beta=_mode_or_number(raw, "beta", where, BETA_MODES, "auto"),
        radius=_mode_or_number(raw, "radius", where, ("auto",), "auto", positive=True),
        beta_samples=_get(
            raw, "beta_samples", where, "int", 48, check=_between(1, MAX_SAMPLES, _PER_EVAL)
        ),
        beta_iterations=_get(
            raw, "beta_iterations", where, "int", 30, check=_between(1, MAX_SAMPLES, _PER_EVAL)
        ),
        ball_points=_get(
            raw, "ball_points", where, "int", 32, check=_between(1, MAX_SAMPLES, _PER_EVAL)
        ),
        tolerance=_get(raw, "tolerance", where, "float", None, positive=True),
    )


def _mode_or_number(
    raw: Mapping[str, Any],
    key: str,
    where: _Where,
    modes: tuple[str, ...],
    default: str,
    positive: bool = False,
) -> str | float:
    if key not in raw:
        return default
    v = raw[key]
    if isinstance(v, str):
        if match_choice(v, modes) is not None:
            return match_choice(v, modes)
        try:
            v = float(v)
        except ValueError:
            raise LazycheckError(
                f"{where.key(key)}: {v!r} is not allowed{did_you_mean(v, modes)}; give a "
                f"number >= 0 or one of {', '.join(modes)}"
            ) from None
    least = "> 0" if positive else ">= 0"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > _INT64_MAX:
        v = math.inf  # too large for a float: refused below as not finite
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or v < 0
        or (positive and v == 0)
    ):
        raise LazycheckError(
            f"{where.key(key)}: must be a finite number {least} or one of {', '.join(modes)}, "
            f"got {_show(raw[key])}"
        )
    return float(v)


def _in_range(low: float, high: float, why: str) -> Callable[[float], str | None]:
    return lambda v: (
        None if low <= v <= high else f"must lie in [{low:g}, {high:g}] ({why}), got {v:g}"
    )


def _show(v: Any) -> str:
    """A value for an error message, shortened (an integer of 400 digits is not repeated)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**30:
        return f"an integer of {len(str(abs(v)))} digits"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _between(low: int, high: int, why: str) -> Callable[[int], str | None]:
    def check(v: int) -> str | None:
        if v < low:
            return f"must be >= {low}, got {v}"
        return None if v <= high else f"must be <= {high} ({why}), got {_show(v)}"

    return check


def _at_least(k: int) -> Callable[[int], str | None]:
    return lambda v: None if v >= k else f"must be >= {k}, got {v}"
