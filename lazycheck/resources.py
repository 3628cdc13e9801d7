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
    "FLOAT_BYTES",
    "KERNEL_COPIES",
    "fits",
    "format_bytes",
    "kernel_bytes",
    "memory_limit",
    "parse_bytes",
    "require",
    "require_kernel",
    "set_memory_limit",
]

#: stages needing less than this are never refused by :func:`require`
FLOOR_BYTES = 2**20
#: bytes of one float64
FLOAT_BYTES = 8
#: n x n float64 arrays alive at once while a dense tangent kernel is built and decomposed
#: (the kernel, one layer's Gram products, the eigenvectors / LAPACK workspace)
KERNEL_COPIES = 4

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

    ``change`` says what the user can change (``"reduce [data].n"``). Stages under
    :data:`FLOOR_BYTES` are never refused: the limit is about large arrays (a tiny limit is how
    the tests force the matrix-free routes, which :func:`fits` decides)."""
    if nbytes <= FLOOR_BYTES or fits(nbytes):
        return
    raise LazycheckError(
        f"{what} needs {format_bytes(nbytes)}, over the memory limit of "
        f"{format_bytes(memory_limit())} (--memory-limit; {format_bytes(_available())} "
        f"is available to this process); {change}"
    )


def kernel_bytes(n: int) -> int:
    """Memory for building and decomposing a dense n x n tangent kernel."""
    return KERNEL_COPIES * FLOAT_BYTES * int(n) ** 2


def require_kernel(n: int, why: str = "the tangent kernel") -> None:
    """:func:`require` for a dense n x n kernel (``why`` names the stage that needs it)."""
    require(
        kernel_bytes(n),
        f"{why} (a dense n x n matrix, n = {n})",
        "reduce [data].n or set [data].subsample",
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
    """Memory this process can still take: the machine's ``MemAvailable``, capped by the
    cgroup's ``memory.max`` and by the address-space limit (``ulimit -v``, RLIMIT_AS) less
    what the process has mapped already."""
    avail = _meminfo("/proc/meminfo", "MemAvailable:")
    if avail is None:
        avail = _FALLBACK
    cgroup = _cgroup_headroom()
    if cgroup is not None:
        avail = min(avail, cgroup)
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        soft = -1
    if soft is not None and soft >= 0 and soft != getattr(resource, "RLIM_INFINITY", -1):
        mapped = _meminfo("/proc/self/status", "VmSize:") or 0
        avail = min(avail, max(soft - mapped, 0))
    return avail


def _meminfo(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a /proc file, in bytes."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), when limited."""
    base = "/sys/fs/cgroup/"
    try:
        with open(base + "memory.max", encoding="ascii") as fh:
            text = fh.read().strip()
        if text == "max":
            return None
        with open(base + "memory.current", encoding="ascii") as fh:
            current = int(fh.read().strip())
        return max(int(text) - current, 0)
    except (OSError, ValueError):
        return None
