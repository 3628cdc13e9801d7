"""Strict JSON for reports, and atomic file writes.

JSON has no infinity or NaN. lazycheck encodes a non-finite float as a string: ``"inf"``,
``"-inf"`` or ``"nan"`` (documented in each report schema), and always serializes with
``allow_nan=False`` so nothing non-standard can slip out. Files are written to a temporary
file beside the target and renamed into place, so a failure never leaves a half-written file
(:mod:`lazycheck.outputs`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "dumps", "encode_float", "to_jsonable"]


def encode_float(x: float | None) -> float | str | None:
    """A float as strict JSON: itself if finite, else ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays, tuples and non-finite floats."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return encode_float(float(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON text (indent 2) for ``obj``."""
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"


def atomic_write(path: str | Path, write: Callable[[Path], None] | str | bytes) -> None:
    """Write ``path`` atomically: ``write`` is text, bytes, or a function that writes the
    temporary path it is given (for numpy/matplotlib savers). A temporary file beside the
    target is renamed into place; a special file (a device, a FIFO) is written as a stream;
    see :mod:`lazycheck.outputs` for every rule."""
    from lazycheck.outputs import atomic_write as write_output

    write_output(path, write)
