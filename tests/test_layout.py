"""The layout's dependency rule, checked on the source: serving -> workloads -> envs, cluster at the bottom.

Every import statement counts, also those inside functions (a lazy import is still a dependency), so that an
arrow running back up or a cycle between two modules fails here instead of in a reader's head.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cluster", "envs", "workloads", "serving", "benchmarks", "tests")
# package -> project packages it must never import (third-party rules are separate)
FORBIDDEN = {
    "envs": {"workloads", "serving", "cluster", "benchmarks"},
    "workloads": {"serving", "benchmarks"},
    "cluster": {"workloads", "serving", "envs", "benchmarks"},
    "serving": {"benchmarks"},
    "tests": {"benchmarks"},
}
ENVS_THIRD_PARTY_FORBIDDEN = {"ray"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _sources() -> dict[str, Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if ".venv" not in p.parts]
    return {_module_name(p): p for p in files}


SOURCES = _sources()
GRAPH = {name: {i for i in _imports(path) if i in SOURCES and i != name} for name, path in SOURCES.items()}


def test_the_scan_sees_the_project():
    assert {"envs.bizsim.env", "workloads.contract", "serving.omr.app", "cluster.head"} <= set(SOURCES)
    assert "workloads.contract" in GRAPH["workloads.rl.train"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_arrow_runs_back_up(package):
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] == package
        for target in targets
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert not wrong, (
        "dependency rule broken (serving -> workloads -> envs; cluster and envs import neither):\n" + "\n".join(wrong)
    )


def test_envs_know_nothing_of_ray():
    wrong = sorted(
        f"{name} imports {i}"
        for name, path in SOURCES.items()
        if name.startswith("envs.")
        for i in _imports(path)
        if i.split(".")[0] in ENVS_THIRD_PARTY_FORBIDDEN
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    """Strongly connected components of the module graph (a package importing its own submodules is fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def edges(name: str):
        # `package/__init__` pulling in its submodules, and submodules naming their package, are not cycles
        return [t for t in GRAPH[name] if not t.startswith(name + ".") and not name.startswith(t + ".")]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
