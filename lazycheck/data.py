"""Datasets: CSV, .npy and .npz files, and seeded synthetic generators.

:func:`load_data` turns a :class:`~lazycheck.spec.DataSpec` into float64 arrays ``X`` (n, d)
and ``y`` (n,). Synthetic generators:

* inputs ``sphere``: n points uniform on the unit sphere in R^dim; ``gaussian``: N(0, I/dim),
  so that E||x||^2 = 1 either way;
* targets ``teacher``: a random two-layer tanh network of width ``teacher_width``,
  y = sum_j a_j tanh(<u_j, x> sqrt(dim)) / sqrt(width) with u_j, a_j ~ N(0, 1/dim), N(0, 1);
  ``smooth``: y = sin(2 <v, x>) + cos(<v', x>) / 2 with v, v' unit vectors;
  ``random_labels``: y = +-1 with equal probability;
* ``noise``: Gaussian noise of that standard deviation added to y.

``subsample`` keeps that many rows, drawn without replacement; ``standardize`` rescales each
feature column to mean 0 and standard deviation 1 (a constant column is an error).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.files import regular_file_size
from lazycheck.resources import FLOAT_BYTES, require
from lazycheck.spec import DataSpec

__all__ = ["Dataset", "load_data", "synthetic_data"]


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (n, d) and targets ``y`` (n,), float64, with where they came from."""

    X: np.ndarray
    y: np.ndarray
    source: str

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])


def load_data(spec: DataSpec, rng: np.random.Generator, origin: str | None = None) -> Dataset:
    """Load or generate the dataset a spec describes (``rng`` drives every random draw).

    ``origin`` (the spec file) prefixes the errors about ``subsample`` and ``standardize``.
    """
    table = f"{origin}: [data]" if origin else "[data]"
    if spec.source == "synthetic":
        _require_synthetic(spec, table)
        X, y = synthetic_data(
            spec.n, spec.dim, spec.inputs, spec.targets, rng, spec.teacher_width, spec.noise
        )
        source = f"synthetic: {spec.n} {spec.inputs} points in R^{spec.dim}, {spec.targets} targets"
    else:
        assert spec.path is not None
        if spec.source == "csv":
            X, y = _read_csv(spec.path, spec.features or (), spec.target or "")
        elif spec.source == "npy":
            assert spec.target_path is not None
            X = _read_npy(spec.path, "features")
            y = _read_npy(spec.target_path, "targets")
        else:
            X, y = _read_npz(spec.path, spec.x_key, spec.y_key)
        X, y = _validate(X, y, str(spec.path))
        source = f"{spec.source}: {spec.path.name}"
    if spec.subsample is not None:
        if spec.subsample > X.shape[0]:
            raise LazycheckError(
                f"{table}.subsample: {spec.subsample} is more than the {X.shape[0]} rows "
                f"available; give at most {X.shape[0]}"
            )
        idx = np.sort(rng.choice(X.shape[0], size=spec.subsample, replace=False))
        X, y = X[idx], y[idx]
        source += f", {spec.subsample} rows subsampled"
    if spec.standardize:
        # a constant column is detected exactly: its computed std is often not 0 but rounding
        # noise (a column of 0.1's has std 1.4e-17), which would "standardize" to garbage
        constant = np.ptp(X, axis=0) == 0
        if np.any(constant):
            col = int(np.flatnonzero(constant)[0])
            name = repr(spec.features[col]) if spec.features else str(col)
            raise LazycheckError(
                f"{table}.standardize: feature column {name} is constant, cannot standardize; "
                "drop the column or set standardize = false"
            )
        X = (X - X.mean(axis=0)) / X.std(axis=0)
        source += ", standardized"
    return Dataset(np.ascontiguousarray(X, dtype=np.float64), np.asarray(y, np.float64), source)


def synthetic_data(
    n: int,
    dim: int,
    inputs: str,
    targets: str,
    rng: np.random.Generator,
    teacher_width: int = 16,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate (X, y); see the module docstring for each kind."""
    if inputs == "sphere":
        X = rng.standard_normal((n, dim))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    elif inputs == "gaussian":
        X = rng.standard_normal((n, dim)) / math.sqrt(dim)
    else:
        raise LazycheckError(f"[data].inputs: {inputs!r} is not allowed; choose sphere or gaussian")
    if targets == "teacher":
        U = rng.standard_normal((teacher_width, dim))
        a = rng.standard_normal(teacher_width)
        y = np.tanh(X @ U.T) @ a / math.sqrt(teacher_width)
    elif targets == "smooth":
        v = rng.standard_normal((2, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        y = np.sin(2.0 * X @ v[0]) + 0.5 * np.cos(X @ v[1])
    elif targets == "random_labels":
        y = rng.choice([-1.0, 1.0], size=n)
    else:
        raise LazycheckError(
            f"[data].targets: {targets!r} is not allowed; choose teacher, smooth or random_labels"
        )
    if noise > 0:
        y = y + noise * rng.standard_normal(n)
    return X, y


# ----------------------------------------------------------------------------- readers

#: memory of a CSV file read into rows of Python strings, per byte of the file
_CSV_BYTES_PER_BYTE = 12


def _require_synthetic(spec: DataSpec, table: str) -> None:
    """Refuse synthetic data that would not fit, before drawing it."""
    n, dim, m = spec.n, spec.dim, spec.teacher_width
    require(
        3 * FLOAT_BYTES * n * dim,
        f"{table}: the synthetic inputs (n x dim = {n} x {dim})",
        "reduce [data].n or [data].dim",
    )
    if spec.targets == "teacher":
        require(
            FLOAT_BYTES * (m * dim + 2 * n * m),
            f"{table}: the teacher network (teacher_width = {m}, on n = {n} points of dim {dim})",
            "reduce [data].teacher_width or [data].n",
        )


def _read_csv(path: Path, features: tuple[str, ...], target: str) -> tuple[np.ndarray, np.ndarray]:
    size = regular_file_size(path, "CSV data")
    require(
        _CSV_BYTES_PER_BYTE * size,
        f"reading {path} ({size} bytes of CSV)",
        "use a .npy or .npz file for data this large, or subsample the file",
    )
    reader = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = list(reader)
    except UnicodeDecodeError:
        raise LazycheckError(f"{path}: not a UTF-8 text file; expected CSV with a header") from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 0
        raise LazycheckError(
            f"{path}:{line}: not readable as CSV ({exc}); fields hold at most "
            f"{csv.field_size_limit()} characters"
        ) from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise LazycheckError(f"{path}: the file is empty; expected a header line and data rows")
    header = [h.strip() for h in rows[0]]
    if len(rows) == 1:
        raise LazycheckError(f"{path}: has a header but no data rows")
    for col in (*features, target):
        if col not in header:
            raise LazycheckError(f"{path}: no column {col!r}; the header has {', '.join(header)}")
    idx = [header.index(c) for c in features]
    t = header.index(target)
    X = np.empty((len(rows) - 1, len(idx)))
    y = np.empty(len(rows) - 1)
    for k, row in enumerate(rows[1:]):
        line = k + 2
        if len(row) != len(header):
            raise LazycheckError(
                f"{path}:{line}: ragged row with {len(row)} fields; the header has {len(header)}"
            )
        y[k] = _number(row[t], path, line, target)
        for j, c in enumerate(idx):
            X[k, j] = _number(row[c], path, line, header[c])
    return X, y


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise LazycheckError(
            f"{path}:{line}: column {column!r} holds {text.strip()!r}, which is not a number"
        ) from None
    if not math.isfinite(v):
        raise LazycheckError(
            f"{path}:{line}: column {column!r} holds {text.strip()!r}; "
            "values must be finite numbers"
        )
    return v


def _read_npy(path: Path, what: str) -> np.ndarray:
    regular_file_size(path, f".npy {what}")
    _require_npy(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad file
        raise LazycheckError(f"{path}: cannot read as .npy {what} ({type(exc).__name__})") from None


def _require_npy(path: Path, what: str) -> None:
    """Refuse a .npy array that would not fit, from its header (before reading it)."""
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except Exception:  # not a .npy file, or a version read below: np.load says why
        return
    _require_array(path, what, math.prod(shape), dtype.itemsize)


def _require_array(path: Path, what: str, count: int, itemsize: int) -> None:
    require(
        count * (itemsize + FLOAT_BYTES),
        f"{path}: the {what} ({count} values)",
        "use a smaller file or subsample it",
    )


def _read_npz(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    regular_file_size(path, ".npz data")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            for k, name in ((x_key, "x_key"), (y_key, "y_key")):
                if k not in keys:
                    raise LazycheckError(
                        f"{path}: [data].{name} {k!r} is not in the archive; it holds "
                        f"{', '.join(keys) or 'nothing'}"
                    )
                # the uncompressed size, so a small compressed archive cannot expand
                # past the memory limit
                size = z.zip.getinfo(f"{k}.npy").file_size
                _require_array(path, f"array {k!r}", size // FLOAT_BYTES, FLOAT_BYTES)
            return z[x_key], z[y_key]
    except LazycheckError:
        raise
    except Exception as exc:
        raise LazycheckError(f"{path}: cannot read as .npz ({type(exc).__name__})") from None


def _validate(X: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if X.dtype.kind not in "fiu" or y.dtype.kind not in "fiu":
        raise LazycheckError(f"{where}: features and targets must be numeric arrays")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise LazycheckError(f"{where}: features must be a 2-D array (n, d), got shape {X.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise LazycheckError(f"{where}: targets must be 1-D (n,), got shape {y.shape}")
    if X.shape[0] == 0:
        raise LazycheckError(f"{where}: the data set is empty")
    if X.shape[1] == 0:
        raise LazycheckError(
            f"{where}: the features have 0 columns (shape {X.shape}); give at least one"
        )
    if X.shape[0] != y.shape[0]:
        raise LazycheckError(
            f"{where}: {X.shape[0]} feature rows but {y.shape[0]} targets; they must match"
        )
    if not np.all(np.isfinite(X)) or not np.all(np.isfinite(y)):
        bad = "features" if not np.all(np.isfinite(X)) else "targets"
        raise LazycheckError(f"{where}: the {bad} hold NaN or infinite values")
    return X, y
