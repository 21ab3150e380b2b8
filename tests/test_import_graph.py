"""Every import arrow points down: no cycle between atx's packages, nor between the
subpackages and modules of atx.rm, and no lazy module ``__getattr__`` hiding one.

The graph is read from the source of every installed module (pyproject's
package-dir), with imports at module level, inside functions and under
TYPE_CHECKING alike, and ``importlib.import_module("literal")`` calls.
"""

from __future__ import annotations

import ast
import functools
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("_pb2.py", "_pb2_grpc.py")


@functools.cache
def _package_dirs() -> dict[str, Path]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def _modules() -> dict[str, Path]:
    """Installed module name -> source file, generated stubs left out."""
    found: dict[str, Path] = {}
    dirs = _package_dirs()
    for package, folder in dirs.items():
        for path in folder.rglob("*.py"):
            if path.name.endswith(GENERATED):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            # A folder mapped on its own (atx/rm -> rm/) is not also part of its parent.
            if package == "atx" and parts and f"atx.{parts[0]}" in dirs:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from pkg import submodule`` imports the submodule.
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


@functools.cache
def _edges() -> dict[str, frozenset[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target in _imports(module, path):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    return {module: frozenset(targets) for module, targets in graph.items()}


def _package_unit(module: str) -> str:
    """atx's packages: the core (atx.*), atx.tc, atx.rm, atx.hooks, atx.shop, and the CLI."""
    parts = module.split(".")
    if len(parts) > 1 and f"atx.{parts[1]}" in _package_dirs():
        return f"atx.{parts[1]}"
    return "atx.cli" if module == "atx.cli" else "atx"


def _rm_unit(module: str) -> str | None:
    """atx.rm's subpackages and top-level modules; its ``__init__`` (the facade) apart."""
    parts = module.split(".")
    if parts[:2] != ["atx", "rm"]:
        return None
    return "atx.rm (facade)" if len(parts) == 2 else f"atx.rm.{parts[2]}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _unit_graph(unit_of: object) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    graph: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for module, targets in _edges().items():
        a = unit_of(module)  # type: ignore[operator]
        if a is None:
            continue
        graph.setdefault(a, set())
        for target in targets:
            b = unit_of(target)  # type: ignore[operator]
            if b is None or b == a:
                continue
            graph[a].add(b)
            why.setdefault((a, b), f"{module} -> {target}")
    return graph, why


def _explain(cycle: list[str], graph: dict[str, set[str]], why: dict[tuple[str, str], str]) -> str:
    members = set(cycle)
    arrows = [why[(a, b)] for a in cycle for b in sorted(graph[a] & members)]
    return " | ".join(arrows)


@pytest.mark.parametrize("level", ["packages", "rm"])
def test_no_import_cycle(level: str) -> None:
    graph, why = _unit_graph(_package_unit if level == "packages" else _rm_unit)
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(_explain(c, graph, why) for c in cycles)


def test_the_graph_is_read() -> None:
    """The checks above see real arrows (a broken reader would pass them vacuously)."""
    edges = _edges()
    assert "atx.rm.types.sql" in edges["atx.rm.sql.parser"]
    assert "atx.rm.exec.insert" in edges["atx.rm.exec.executor"]
    assert "atx.rm.tm.hooks" in edges["atx.hooks.outbox"]
    graph, _ = _unit_graph(_rm_unit)
    assert "atx.rm.types" in graph["atx.rm.exec"]


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_lazy_module_getattr() -> None:
    lazy = [
        name
        for name, path in MODULES.items()
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            for node in ast.parse(path.read_text()).body
        )
    ]
    assert not lazy, f"module __getattr__ defers imports in {lazy}"


def test_no_bare_repository_folder_imports() -> None:
    """tc/, rm/, hooks/ and services/ install as atx.*: no module may import the bare name."""
    bare = {"tc", "rm", "hooks", "services"}
    offenders = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        for target in _imports(module, path)
        if target.partition(".")[0] in bare
    ]
    assert not offenders, offenders
