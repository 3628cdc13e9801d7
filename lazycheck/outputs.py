"""Output files: checked before a run, written after it, all or none, never over an input.

A command declares its outputs (``-o``, ``--save``, ``--csv``, ``--plot``) before it runs, and
:class:`Outputs` refuses at once:

* an output that is one of the run's inputs (the spec, a data file: the same path after
  symlinks, or the same inode), or the same file as another output;
* a directory, a suffix the writer cannot produce, or a directory that cannot be written.

After the run, each output is rendered to a hidden temporary file (``.NAME.XXXX.SUFFIX`` beside
a regular target; in the system temporary directory for a special file) and, once every one
rendered, the temporaries are renamed into place. A failure or a signal (SIGINT, SIGTERM: the
CLI turns both into exceptions) before that point removes every temporary and leaves every
target as it was. Special files (a character device such as ``/dev/null``, a FIFO, anything
under ``/dev`` or ``/proc``) are written as a stream, never replaced; a FIFO without a reader
is refused instead of blocking. A symlink is followed: the file it points to is replaced and
the link kept. An existing file keeps its permission bits. Errors name the path the user gave,
never a temporary.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lazycheck.errors import LazycheckError

__all__ = ["Outputs", "Writer", "atomic_write", "input_paths"]

#: text, bytes, or a function that writes the (temporary) path it is given
Writer = str | bytes | Callable[[Path], None]
_STREAM_ROOTS = ("/dev/", "/proc/")


@dataclass
class _Target:
    path: Path  # as the user gave it
    option: str
    real: Path  # symlinks followed
    special: bool  # written as a stream
    staged: Path | None = None


class Outputs:
    """The output files of one run (see the module docstring)."""

    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}

    def declare(
        self, path: Path | str | None, option: str, suffixes: tuple[str, ...] | None = None
    ) -> None:
        """Register ``path`` as the output of ``option`` (``None``: not asked for)."""
        if path is None:
            return
        target = _target(Path(path), option, suffixes)
        for other in self._targets.values():
            if _same(target, other):
                raise LazycheckError(
                    f"{option} {path}: is also the file of {other.option} {other.path}; "
                    "give each output its own path"
                )
        self._targets[option] = target

    def check_inputs(self, paths: Iterable[Path | str | None]) -> None:
        """Refuse any output that is one of ``paths`` (the run's input files)."""
        for p in paths:
            if p is None:
                continue
            src = Path(p)
            real = Path(os.path.realpath(src))
            for t in self._targets.values():
                if t.real == real or _samefile(t.real, src):
                    raise LazycheckError(
                        f"{t.option} {t.path}: is an input of this run ({src}); writing it "
                        "would destroy the input: give another output path"
                    )

    def __contains__(self, option: str) -> bool:
        return option in self._targets

    def stage(self, option: str, write: Writer) -> None:
        """Render the output of ``option`` to its temporary file (nothing is replaced yet)."""
        t = self._targets[option]
        if t.staged is not None:
            raise ValueError(f"{option} is staged already")
        t.staged = _render(t, write)

    def commit(self) -> None:
        """Move every staged output into place: regular files by rename, then the streams."""
        staged = [t for t in self._targets.values() if t.staged is not None]
        for t in staged:
            if not t.special:
                _replace(t)
        for t in staged:
            if t.special:
                _stream(t)

    def discard(self) -> None:
        """Remove every temporary file not yet moved into place."""
        for t in self._targets.values():
            if t.staged is not None:
                t.staged.unlink(missing_ok=True)
                t.staged = None

    @contextmanager
    def transaction(self) -> Iterator[Outputs]:
        """``with outputs.transaction():`` stage and commit inside; on any exception (a
        signal included) the staged temporaries are removed and no target is touched."""
        try:
            yield self
        finally:
            self.discard()


def atomic_write(path: str | Path, write: Writer, option: str = "") -> None:
    """Write one output file atomically (with every protection of :class:`Outputs`)."""
    outputs = Outputs()
    outputs.declare(path, option or "output")
    with outputs.transaction():
        outputs.stage(option or "output", write)
        outputs.commit()


def input_paths(spec_path: Path | str | None, spec: Any) -> list[Path]:
    """The files a run reads: the spec file, every path in its tables, and the Python file
    of a ``[model] kind = "python"`` entry (``"file.py:factory"``)."""
    paths: list[Path] = [Path(spec_path)] if spec_path is not None else []
    for table in (getattr(spec, name, None) for name in ("data", "model", "flow", "check")):
        if table is None or not dataclasses.is_dataclass(table):
            continue
        for f in dataclasses.fields(table):
            value = getattr(table, f.name)
            if isinstance(value, Path):
                paths.append(value)
    model = getattr(spec, "model", None)
    entry = getattr(model, "entry", None)
    if isinstance(entry, str) and entry.rpartition(":")[0].endswith(".py"):
        file = Path(entry.rpartition(":")[0])
        base = getattr(model, "base_dir", None)
        paths.append(file if file.is_absolute() or base is None else Path(base) / file)
    return paths


# ----------------------------------------------------------------------------- helpers


def _target(path: Path, option: str, suffixes: tuple[str, ...] | None) -> _Target:
    label = f"{option} {path}"
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise LazycheckError(
            f"{label}: unsupported file type {path.suffix or '(none)'!r}; use {', '.join(suffixes)}"
        )
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise LazycheckError(f"{label}: cannot be written ({exc.strerror})") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise LazycheckError(f"{label}: is a directory; give a file path")
    given = os.path.abspath(path)
    special = st is not None and (
        not stat.S_ISREG(st.st_mode) or any(str(p).startswith(_STREAM_ROOTS) for p in (given, real))
    )
    if not special:
        parent = real.parent
        if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise LazycheckError(f"{label}: cannot write in {parent} (permission denied)")
        for ancestor in (parent, *parent.parents):
            if ancestor.exists():
                if not ancestor.is_dir():
                    raise LazycheckError(f"{label}: {ancestor} is not a directory")
                break
    return _Target(path, option, real, special)


def _same(a: _Target, b: _Target) -> bool:
    return a.real == b.real or _samefile(a.real, b.real)


def _samefile(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _render(t: _Target, write: Writer) -> Path:
    label = f"{t.option} {t.path}"
    if t.special:
        directory = Path(tempfile.gettempdir())
    else:
        directory = t.real.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LazycheckError(f"{label}: cannot create {directory} ({exc.strerror})") from None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{t.real.name}.", suffix=t.real.suffix, dir=directory)
    except OSError as exc:
        raise LazycheckError(f"{label}: cannot write in {directory} ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        if isinstance(write, str):
            tmp.write_text(write, encoding="utf-8")
        elif isinstance(write, bytes):
            tmp.write_bytes(write)
        else:
            write(tmp)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LazycheckError(f"{label}: cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _replace(t: _Target) -> None:
    assert t.staged is not None
    try:
        mode = stat.S_IMODE(os.stat(t.real).st_mode)
    except OSError:  # a new file: a normal file's mode (mkstemp makes 0600)
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.chmod(t.staged, mode)
        os.replace(t.staged, t.real)
    except OSError as exc:
        raise LazycheckError(
            f"{t.option} {t.path}: cannot be written ({exc.strerror or exc})"
        ) from None
    t.staged = None


def _stream(t: _Target) -> None:
    """Copy the staged bytes into a special file (a device, a FIFO) without replacing it."""
    assert t.staged is not None
    label = f"{t.option} {t.path}"
    try:
        # the path as given (/dev/stdout is a link to a descriptor); O_NONBLOCK so that a FIFO
        # without a reader fails instead of blocking; O_APPEND: a stream is never truncated
        fd = os.open(t.path, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise LazycheckError(
                f"{label}: is a FIFO that no process is reading; start the reader first"
            ) from None
        raise LazycheckError(f"{label}: cannot be written ({exc.strerror})") from None
    try:
        os.set_blocking(fd, True)
        with open(fd, "wb", closefd=True) as out, t.staged.open("rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    except OSError as exc:
        raise LazycheckError(f"{label}: cannot be written ({exc.strerror or exc})") from None
    finally:
        t.staged.unlink(missing_ok=True)
        t.staged = None
