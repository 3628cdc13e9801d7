"""The package's layout rules (README, "Layout"), read from the source with ``ast``:

* no import cycle between lazycheck's modules, counting the imports inside functions too (a
  deferred import hides a cycle from the interpreter, not from the reader); imports under
  ``if TYPE_CHECKING:`` are for annotations only and are not counted;
* at most 25 modules at the top of the package (beyond it they are grouped in subpackages);
* no module longer than 800 lines (the integrators' 1348-line module was split in round 14);
* no function or method longer than 80 lines;
* in each module the public functions come first, the private helpers after (classes are left
  out: a private class may have to precede the module-level code that uses it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lazycheck"
MAX_TOP_MODULES = 25
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 800


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(tree: ast.AST, known: set[str]) -> set[str]:
    """The lazycheck modules a module imports anywhere, but under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & known


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(ast.parse(p.read_text()), known) - {name} for name, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return [*path[path.index(v) :], v]
            if v not in state and (found := dfs(v)) is not None:
                return found
        path.pop()
        state[u] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := dfs(start)) is not None:
            return found
    return None


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_deferred_cycle() -> None:
    a = ast.parse("def f():\n    from lazycheck.b import x\n")
    b = ast.parse("import lazycheck.a\nif TYPE_CHECKING:\n    import lazycheck.c\n")
    known = {"lazycheck.a", "lazycheck.b", "lazycheck.c"}
    graph = {"lazycheck.a": _imports(a, known), "lazycheck.b": _imports(b, known)}
    assert graph == {"lazycheck.a": {"lazycheck.b"}, "lazycheck.b": {"lazycheck.a"}}
    assert _cycle(graph) == ["lazycheck.a", "lazycheck.b", "lazycheck.a"]
    assert _cycle({"lazycheck.a": {"lazycheck.b"}, "lazycheck.b": set()}) is None


def test_few_modules_at_the_top() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))
    assert len(top) <= MAX_TOP_MODULES, top


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_giant_module(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_long_function(path: Path) -> None:
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_public_functions_first(path: Path) -> None:
    names = [n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)]
    first_private = next((i for i, name in enumerate(names) if name.startswith("_")), len(names))
    late = [name for name in names[first_private:] if not name.startswith("_")]
    assert not late, f"public after {names[first_private]}: {late}"
