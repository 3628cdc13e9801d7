"""Finished configurations on disk, so an interrupted sweep resumes where it stopped.

Each configuration is keyed by :func:`config_key`: the SHA-256 of its fully resolved spec (the
spec's TOML mapping after every setting of the sweep is applied, without its ``[sweep]`` table,
as canonical JSON), the SHA-256 of each data file it reads (and of the model's Python file for
``kind = "python"`` with a file entry), lazycheck's version, the version of
the metrics, whether the infinite-width kernel is available, and the problem builder when one
other than the spec's own is used. A record is written atomically to ``DIR/runs/KEY.json``
as soon as it finishes. Any change to a key (another alpha, width, seed, data file, lazycheck
version) is another file, so a rerun with one more alpha computes only the new column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lazycheck._version import __version__
from lazycheck.errors import LazycheckError
from lazycheck.jsonio import atomic_write, dumps
from lazycheck.spec import Spec

__all__ = ["METRICS_VERSION", "Store", "config_key"]

#: bump when a metric's definition changes, so old records are not reused
METRICS_VERSION = 1
_RECORD_FORMAT = "lazycheck.sweep.run"


def config_key(spec: Spec, builder: Callable[..., Any] | None, kinf: bool) -> str:
    """The hash that names a configuration's record (module docstring)."""
    raw = {k: v for k, v in spec.raw.items() if k != "sweep"}
    paths = [spec.data.path, spec.data.target_path, _model_file(spec)]
    files = [_file_digest(Path(p)) for p in paths if p]
    payload = {
        "spec": raw,
        "data_files": files,
        "lazycheck": __version__,
        "metrics": METRICS_VERSION,
        "kinf": kinf,
        "builder": "" if builder is None else f"{builder.__module__}.{builder.__qualname__}",
    }
    text = json.dumps(payload, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """Records under ``DIR/runs/``; ``Store(None)`` keeps nothing (no ``--out``)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        if root is not None:
            if root.exists() and not root.is_dir():
                raise LazycheckError(f"--out {root}: exists and is not a directory")
            (root / "runs").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / "runs" / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored record of ``key``; None when absent or unreadable (then recomputed)."""
        p = self.path(key)
        if p is None or not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != _RECORD_FORMAT:
            return None
        if data.get("key") != key:
            return None
        record = data.get("record")
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
            return None
        record["metrics"] = {k: _decode(v) for k, v in record["metrics"].items()}
        return record

    def save(self, key: str, record: dict[str, Any], settings: dict[str, Any]) -> None:
        p = self.path(key)
        if p is None:
            return
        doc = {
            "format": _RECORD_FORMAT,
            "key": key,
            "lazycheck": __version__,
            "settings": settings,
            "record": record,
        }
        atomic_write(p, dumps(doc))


def _model_file(spec: Spec) -> Path | None:
    """The Python file of a ``kind = "python"`` model given as ``path/to/file.py:factory``."""
    entry = getattr(spec.model, "entry", None)
    if not entry or ":" not in entry:
        return None
    target = entry.rsplit(":", 1)[0]
    if not target.endswith(".py"):
        return None  # an importable module: its name is in the spec, its code is not hashed
    path = Path(target)
    base = getattr(spec.model, "base_dir", None) or (spec.path.parent if spec.path else Path.cwd())
    return path if path.is_absolute() else Path(base) / path


def _decode(v: Any) -> Any:
    """Undo :func:`lazycheck.jsonio.encode_float` ("nan", "inf", "-inf" back to floats)."""
    return float(v) if v in ("nan", "inf", "-inf") else v


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "unreadable"
    return h.hexdigest()
