"""The grid of a sweep: its axes, their syntax on the command line and in ``[sweep]``.

Axes (their product is the grid):

* ``alpha``: a list ``1,10,100`` or a log range ``LO:HI:COUNT`` (COUNT points log-spaced from LO
  to HI inclusive). Values are rounded to 12 significant digits, so the same alpha written in
  two ranges (``1:1e4:5`` and ``1:1e4:9``) is one configuration, stored once.
* ``seed`` and ``data_seed``: ``0-4`` (inclusive), ``0,3,7``, or a mix ``0-2,5``. Seeds are
  replicates: the aggregates average over them, they are never a slope axis.
* ``--set KEY=V1,V2,...``: any dotted spec key. The values are TOML, split on the commas that
  are outside brackets, braces and quotes: ``model.widths=[64],[128,128]`` is two values,
  ``model.widths=[64,64]`` one. A single value is a fixed setting, not an axis.

In a spec::

    [sweep]
    alpha = "1e-2:1e4:7"          # or a list of numbers
    seeds = "0-2"                 # or a list of integers
    data_seeds = [0, 1]
    threshold = true              # refine the laziness threshold by bisection
    threshold_rtol = 0.05
    fit_alpha = "1:1e4"           # only runs with alpha in [1, 1e4] enter the slope fits
    out = "runs/"                 # relative to the spec file
    [sweep.set]
    "model.widths" = [[50], [200], [800]]

Command-line options replace the ``[sweep]`` value of the same axis.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazycheck.errors import LazycheckError

__all__ = [
    "SWEEP_KEYS",
    "Axis",
    "Config",
    "Grid",
    "SweepOptions",
    "axis_number",
    "build_grid",
    "parse_alpha",
    "parse_fit_alpha",
    "parse_seeds",
    "parse_set_axis",
    "round_alpha",
    "split_values",
    "sweep_options",
]

ALPHA = "flow.alpha"
SEED = "seed"
DATA_SEED = "data.seed"
#: keys of the ``[sweep]`` table
SWEEP_KEYS = (
    "alpha",
    "seeds",
    "data_seeds",
    "set",
    "threshold",
    "threshold_rtol",
    "fit_alpha",
    "out",
)
_RANGE_RE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


@dataclass(frozen=True)
class Axis:
    """One axis of the grid: a spec key and its values. ``name`` is how reports call it."""

    key: str
    values: tuple[Any, ...]
    name: str

    @property
    def replicate(self) -> bool:
        """Seeds are replicates (averaged over), not axes to fit against."""
        return self.key in (SEED, DATA_SEED)

    @property
    def numeric(self) -> bool:
        """Every value has a positive number (:func:`axis_number`): a slope axis."""
        if self.replicate or len(self.values) < 2:
            return False
        return all(axis_number(v) is not None for v in self.values)


@dataclass(frozen=True)
class Config:
    """One point of the grid: the settings it applies and its coordinates (axis name -> value)."""

    index: int
    settings: dict[str, Any]
    coords: dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """The axes (in order) and the fixed settings applied to every configuration."""

    axes: tuple[Axis, ...]
    fixed: dict[str, Any] = field(default_factory=dict)

    def configs(self) -> list[Config]:
        """The product of the axes, the last axis varying fastest."""
        out = []
        values = [a.values for a in self.axes]
        for i, combo in enumerate(itertools.product(*values)):
            settings = dict(self.fixed)
            coords = {}
            for axis, v in zip(self.axes, combo, strict=True):
                settings[axis.key] = v
                coords[axis.name] = v
            out.append(Config(i, settings, coords))
        return out

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.name == name), None)

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)


@dataclass(frozen=True)
class SweepOptions:
    """What a ``[sweep]`` table (or the command line) asks for, before the grid is built."""

    alpha: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    data_seeds: tuple[int, ...] | None = None
    sets: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    threshold: bool = False
    threshold_rtol: float = 0.05
    fit_alpha: tuple[float, float] | None = None
    out: Path | None = None


def parse_alpha(text: str, where: str = "--alpha") -> tuple[float, ...]:
    """``1,10,100`` or ``LO:HI:COUNT`` (log-spaced, inclusive) as rounded positive floats."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            lo, hi, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise LazycheckError(
                f"{where} {text!r}: a log range is LO:HI:COUNT, e.g. 1:1e4:9"
            ) from None
        if not (0 < lo < hi and math.isfinite(hi)) or count < 2:
            raise LazycheckError(
                f"{where} {text!r}: needs 0 < LO < HI (finite) and COUNT >= 2, e.g. 1:1e4:9"
            )
        ratio = math.log(hi / lo) / (count - 1)
        return tuple(round_alpha(lo * math.exp(k * ratio)) for k in range(count))
    values = []
    for piece in text.split(","):
        try:
            v = float(piece)
        except ValueError:
            raise LazycheckError(
                f"{where} {text!r}: {piece.strip()!r} is not a number; give a list 1,10,100 "
                "or a log range 1:1e4:9"
            ) from None
        values.append(v)
    return _check_alphas(values, where)


def parse_fit_alpha(text: str, where: str = "--fit-alpha") -> tuple[float, float]:
    """``LO:HI``: the alpha range whose runs enter the slope fits (inclusive)."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise LazycheckError(f"{where} {text!r}: expected LO:HI, e.g. 1:1e4") from None
    if not 0 < lo <= hi:
        raise LazycheckError(f"{where} {text!r}: needs 0 < LO <= HI")
    return round_alpha(lo), round_alpha(hi)


def parse_seeds(text: str, where: str = "--seeds") -> tuple[int, ...]:
    """``0-4``, ``0,3,7`` or ``0-2,5``: distinct non-negative integers, in the order given."""
    out: list[int] = []
    for piece in text.split(","):
        m = _RANGE_RE.fullmatch(piece)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise LazycheckError(f"{where} {text!r}: range {piece.strip()!r} is empty")
            out.extend(range(lo, hi + 1))
            continue
        try:
            out.append(int(piece))
        except ValueError:
            raise LazycheckError(
                f"{where} {text!r}: {piece.strip()!r} is not a seed; give 0-4, 0,3,7 or 0-2,5"
            ) from None
    return _check_seeds(out, where)


def split_values(text: str) -> list[str]:
    """Split on the commas outside brackets, braces and quotes."""
    pieces, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    pieces.append("".join(cur))
    return [p.strip() for p in pieces]


def parse_set_axis(text: str) -> tuple[str, tuple[Any, ...]]:
    """``KEY=V1,V2,...`` (see the module docstring) as the key and its TOML values."""
    from lazycheck.spec import parse_setting

    key, sep, rest = text.partition("=")
    if not sep:
        parse_setting(text)  # raises the one-line KEY=VALUE error
    pieces = split_values(rest)
    if any(not p for p in pieces):
        raise LazycheckError(
            f"--set {text!r}: an empty value; separate values by commas, e.g. "
            "--set model.widths=[64],[128] or --set model.activation=tanh,erf"
        )
    values = []
    for piece in pieces:
        k, v = parse_setting(f"{key}={piece}")
        values.append(v)
    return k, _distinct(values, f"--set {key.strip()}")


def round_alpha(v: float) -> float:
    """alpha rounded to 12 significant digits (one stored configuration per printed alpha)."""
    return float(f"{float(v):.12g}")


def axis_number(value: Any) -> float | None:
    """The positive number an axis value stands for: itself, or the smallest entry of a list of
    numbers (the narrowest hidden layer for ``model.widths``); None when it has none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 and math.isfinite(value) else None
    if isinstance(value, list | tuple) and value:
        nums = [axis_number(v) for v in value]
        if all(n is not None for n in nums):
            return min(nums)  # type: ignore[type-var]
    return None


def sweep_options(raw: Mapping[str, Any], where: str, base: Path) -> SweepOptions:
    """Validate a ``[sweep]`` table (``where`` names the spec file; paths relative to ``base``)."""
    if not isinstance(raw, Mapping):
        raise LazycheckError(f"{where}: [sweep] must be a table")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise LazycheckError(
            f"{where}: unknown key {unknown[0]!r} in [sweep]; allowed keys: {', '.join(SWEEP_KEYS)}"
        )
    loc = f"{where}: [sweep]."
    sets = raw.get("set", {})
    if not isinstance(sets, Mapping):
        raise LazycheckError(f"{loc}set: must be a table of dotted spec keys to lists of values")
    set_axes: dict[str, tuple[Any, ...]] = {}
    for key, values in sets.items():
        if not isinstance(values, list) or not values:
            raise LazycheckError(
                f"{loc}set.{key}: must be a non-empty list of values, got {values!r}"
            )
        set_axes[str(key)] = _distinct(values, f"{loc}set.{key}")
    rtol = raw.get("threshold_rtol", 0.05)
    if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not 0 < rtol < 1:
        raise LazycheckError(f"{loc}threshold_rtol: must be a number in (0, 1), got {rtol!r}")
    threshold = raw.get("threshold", False)
    if not isinstance(threshold, bool):
        raise LazycheckError(f"{loc}threshold: must be true or false, got {threshold!r}")
    fit = raw.get("fit_alpha")
    if fit is not None and not isinstance(fit, str):
        raise LazycheckError(f'{loc}fit_alpha: must be a string "LO:HI", got {fit!r}')
    out = raw.get("out")
    if out is not None and not isinstance(out, str):
        raise LazycheckError(f"{loc}out: must be a directory path (a string), got {out!r}")
    return SweepOptions(
        alpha=_table_values(
            raw.get("alpha"),
            f"{loc}alpha",
            parse_alpha,
            _check_alphas,
            'a list of numbers or a log range "1:1e4:9"',
        ),
        seeds=_table_values(
            raw.get("seeds"),
            f"{loc}seeds",
            parse_seeds,
            _check_seeds,
            'a list of integers or a range "0-4"',
        ),
        data_seeds=_table_values(
            raw.get("data_seeds"),
            f"{loc}data_seeds",
            parse_seeds,
            _check_seeds,
            'a list of integers or a range "0-4"',
        ),
        sets=set_axes,
        threshold=threshold,
        threshold_rtol=float(rtol),
        fit_alpha=None if fit is None else parse_fit_alpha(fit, f"{loc}fit_alpha"),
        out=None if out is None else (base / out),
    )


def build_grid(opts: SweepOptions, spec_alpha: float) -> Grid:
    """The axes of ``opts``: alpha first, then the ``--set`` axes, then the seeds. A key with one
    value is a fixed setting; without alpha values the spec's alpha is the only one."""
    axes: list[Axis] = []
    fixed: dict[str, Any] = {}
    alphas = opts.alpha or (round_alpha(spec_alpha),)
    candidates: list[tuple[str, Sequence[Any], str]] = [(ALPHA, alphas, "alpha")]
    for key, values in opts.sets.items():
        if key in (ALPHA, SEED, DATA_SEED):
            raise LazycheckError(
                f"--set {key}: sweep it with --alpha, --seeds or --data-seeds instead"
            )
        candidates.append((key, values, key))
    candidates.append((SEED, opts.seeds or (), "seed"))
    candidates.append((DATA_SEED, opts.data_seeds or (), "data_seed"))
    for key, values, name in candidates:
        if len(values) == 1:
            fixed[key] = values[0]
        elif len(values) > 1:
            axes.append(Axis(key, tuple(values), name))
    if not any(a.key == ALPHA for a in axes):
        axes.insert(0, Axis(ALPHA, (fixed.pop(ALPHA),), "alpha"))
    return Grid(tuple(axes), fixed)


# ----------------------------------------------------------------------------- helpers


def _check_alphas(values: Iterable[Any], where: str) -> tuple[float, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise LazycheckError(f"{where}: every alpha must be a finite number > 0, got {v!r}")
        out.append(round_alpha(v))
    return _distinct(out, where)


def _check_seeds(values: Iterable[Any], where: str) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise LazycheckError(f"{where}: every seed must be an integer >= 0, got {v!r}")
        out.append(v)
    return _distinct(out, where)


def _distinct(values: Sequence[Any], where: str) -> tuple[Any, ...]:
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise LazycheckError(f"{where}: the value {v!r} is given twice")
        seen.append(v)
    return tuple(seen)


def _table_values(
    value: Any, where: str, parse: Callable[[str, str], Any], check: Callable[..., Any], what: str
) -> Any:
    """A ``[sweep]`` axis: absent (None), a string in the option's syntax, or a TOML list."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse(value, where)
    if isinstance(value, list) and value:
        return check(value, where)
    raise LazycheckError(f"{where}: {what}, got {value!r}")
