"""The import graph of a package, lazy imports inside functions and TYPE_CHECKING blocks included (a
cycle hidden behind a late import is still a cycle in the design), and its cycles."""

from __future__ import annotations

import ast
from pathlib import Path


def _module_names(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    names = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        names[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return names


def _targets(node: ast.stmt, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    names = _module_names(root, package)
    graph = {}
    for module, (path, is_package) in names.items():
        found = {t for node in ast.walk(ast.parse(path.read_text())) for t in _targets(node, module, is_package)}
        # Importing pkg.sub runs pkg/__init__.py first: that is an edge too, unless pkg encloses this module.
        found |= {parent for t in found for parent in _parents(t)}
        # ... and an enclosing package is already initialized while its own modules import (`from . import x`).
        found = {t for t in found if not (module + ".").startswith(t + ".")}
        graph[module] = {t for t in found if t in names and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
