"""Memory limits: estimate before allocating, refuse with a clear message.

Every stage that allocates more than a few megabytes asks :func:`require` (or :func:`fits`,
where a cheaper method exists) first, so a spec that would need 298 GiB is refused up front
with what it needs, what is allowed and what to change, instead of ending in ``MemoryError``.

The limit is, in order: :func:`set_memory_limit` (the ``--memory-limit`` option), the
``LAZYCHECK_MEMORY_LIMIT`` environment variable, else 80% of the memory available now
(``MemAvailable`` of ``/proc/meminfo``; 4 GiB where that cannot be read).
"""

from __future__ import annotations

import os
import re

from lazycheck.errors import LazycheckError

__all__ = [
    "fits",
    "format_bytes",
    "memory_limit",
    "parse_bytes",
    "require",
    "set_memory_limit",
]

_FALLBACK = 4 * 2**30
_limit: int | None = None
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_limit() -> int:
    """The memory a single array (or stage) may take, in bytes."""
    if _limit is not None:
        return _limit
    env = os.environ.get("LAZYCHECK_MEMORY_LIMIT")
    if env:
        return parse_bytes(env, "LAZYCHECK_MEMORY_LIMIT")
    return int(0.8 * _available())


def set_memory_limit(limit: int | str | None) -> None:
    """Set the limit (bytes, or a size such as ``"2G"``); ``None`` restores the default."""
    global _limit
    _limit = None if limit is None else parse_bytes(limit, "--memory-limit")


def fits(nbytes: float) -> bool:
    """Whether an allocation of ``nbytes`` is within the limit."""
    return nbytes <= memory_limit()


def require(nbytes: float, what: str, change: str) -> None:
    """Raise a one-line :class:`LazycheckError` when ``what`` would need more than the limit.

    ``change`` says what the user can change (``"reduce [data].n"``)."""
    if fits(nbytes):
        return
    raise LazycheckError(
        f"{what} needs {format_bytes(nbytes)}, over the memory limit of "
        f"{format_bytes(memory_limit())} (--memory-limit; this machine has "
        f"{format_bytes(_available())} available); {change}"
    )


def parse_bytes(value: int | str, where: str) -> int:
    """``"512M"``, ``"2G"``, ``"1.5GiB"`` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise LazycheckError(f"{where}: must be > 0 bytes, got {value}")
        return value
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([BKMGT]?)(i?B)?\s*", str(value), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise LazycheckError(
            f"{where}: {value!r} is not a memory size; give bytes or a size such as 512M or 2G"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_bytes(nbytes: float) -> str:
    """A size in the largest binary unit that keeps it >= 1 (``"4.6 GiB"``)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} B"


def _available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _FALLBACK
