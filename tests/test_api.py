"""The curated Python API (``lazycheck/__init__.py``): every name resolves, ``import lazycheck``
stays light, and no curated name is shadowed by a submodule of the same name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lazycheck

PACKAGE = Path(lazycheck.__file__).resolve().parent


def test_every_curated_name_resolves() -> None:
    for name in lazycheck.__all__:
        assert getattr(lazycheck, name) is not None, name
    assert sorted(dir(lazycheck)) == sorted(lazycheck.__all__)


def test_import_lazycheck_loads_no_numerics() -> None:
    _in_fresh_interpreter(
        "import sys, lazycheck",
        "heavy = [m for m in ('numpy', 'scipy', 'rich', 'matplotlib') if m in sys.modules]",
        "assert not heavy, heavy",
    )


def test_no_curated_name_is_also_a_submodule() -> None:
    """A submodule named like a curated function would replace it on the package once
    imported (``import lazycheck.x`` binds ``lazycheck.x`` to the module)."""
    clashes = [
        name
        for name in lazycheck.__all__
        if (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()
    ]
    assert clashes == []


def test_simulate_stays_the_function_after_its_module_is_imported() -> None:
    _in_fresh_interpreter(
        "import lazycheck, lazycheck.commands.simulate",
        "assert lazycheck.simulate is lazycheck.commands.simulate.simulate",
        "assert callable(lazycheck.simulate)",
    )


def _in_fresh_interpreter(*lines: str) -> None:
    subprocess.run([sys.executable, "-c", "\n".join(lines)], check=True)
