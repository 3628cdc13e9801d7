"""Reading input files safely: only regular files, of a sane size, checked before opening.

A FIFO given as a spec or data path would block forever, ``/dev/zero`` would never end and a
directory cannot be read; each is refused with one line before it is opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lazycheck.errors import LazycheckError

__all__ = ["file_kind", "read_small_text", "regular_file_size"]


def regular_file_size(path: Path, what: str) -> int:
    """The size of ``path`` in bytes; a :class:`LazycheckError` unless it is a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LazycheckError(f"{path}: {what} file does not exist") from None
    except OSError as exc:
        raise LazycheckError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise LazycheckError(f"{path}: is a directory; give a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise LazycheckError(
            f"{path}: not a regular file (a {file_kind(st.st_mode)}); give a {what} file"
        )
    return int(st.st_size)


def read_small_text(path: Path, limit: int, what: str, expected: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (``expected`` says what
    the file should be, for the messages)."""
    size = regular_file_size(path, what)
    if size > limit:
        raise LazycheckError(
            f"{path}: the {what} file is {size} bytes, over the limit of {limit}; {expected}"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise LazycheckError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    if len(data) > limit:  # it grew after the check
        raise LazycheckError(f"{path}: the {what} file is over the limit of {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LazycheckError(f"{path}: not a UTF-8 text file; {expected}") from None


def file_kind(mode: int) -> str:
    """``"FIFO"``, ``"character device"``, ... for a ``st_mode``."""
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISREG, "regular file"),
    ):
        if test(mode):
            return name
    return "special file"
