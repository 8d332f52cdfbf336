"""The layering of the hbdk_sim package, read from its source with `ast`: no import cycle, and the
compiler API below the torch side.

The graph: one node per module of python/hbdk_sim (a package is its `__init__.py`; the C++ core
`hbdk_sim._core` is a leaf). Every `import` and `from ... import` statement is an edge, wherever it
stands (module level, inside a function or class, under `if TYPE_CHECKING`), relative imports
resolved against the importing module:
  - `import a.b.c` is an edge to a.b.c;
  - `from p import name` is an edge to the module p.name when there is one, else to p (the name is
    an attribute of p, so p's `__init__.py`, with everything it re-exports, runs).
The parent packages that Python initializes before a module (hbdk_sim, hbdk_sim.engine, ...) are
not edges: otherwise every package that re-exports its modules would be in a cycle with them. So
`from hbdk_sim.engine.trainer import Trainer` depends on engine/trainer.py, while
`from hbdk_sim.engine import Trainer` depends on engine/__init__.py and all that it imports.

Rule 1: the graph has no strongly connected component of more than one module (no cycle, lazy
imports inside functions included).
Rule 2: hbdk_sim.api, the compiler API, and every module it reaches imports nothing but the standard
library, numpy and hbdk_sim's own compiler modules: no torch, and nothing of hbdk_sim.frontend,
quantization, engine, models or data. The torch front end calls the compiler API, never the other
way round.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "python" / "hbdk_sim"
# What the compiler API must not reach (rule 2).
TORCH_SIDE = ("hbdk_sim.frontend", "hbdk_sim.quantization", "hbdk_sim.engine", "hbdk_sim.nn", "hbdk_sim.metrics",
              "hbdk_sim.data")
API_THIRD_PARTY = {"numpy"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path | None]:
    modules: dict[str, Path | None] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    modules["hbdk_sim._core"] = None  # the compiled extension: imports nothing of the package
    return modules


MODULES = _modules()
PACKAGES = {m for m, p in MODULES.items() if p is not None and p.name == "__init__.py"}


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module name, line) for every import statement of `module`, hbdk_sim or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if module in PACKAGES else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((sub if sub in MODULES else source, node.lineno))
    return found


def _graph() -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """hbdk_sim module -> {hbdk_sim module it imports: first line}, and module -> the top-level
    names of the other packages it imports."""
    edges: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    external: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        if path is None:
            continue
        for name, line in _imports(module, path):
            if name == "hbdk_sim" or name.startswith("hbdk_sim."):
                assert name in MODULES, f"{path}:{line}: imports {name}, which is no module of the package"
                if name != module:
                    edges[module].setdefault(name, line)
            elif name != "__future__":
                external[module].add(name.split(".")[0])
    return edges, external


def _strongly_connected(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components of the graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, successors = work[-1]
            w = next(successors, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                components.append(sorted(component))
    return components


def _reachable(edges: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in edges[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _where(edges: dict[str, dict[str, int]], a: str, b: str) -> str:
    path = MODULES[a]
    return f"{path.relative_to(REPO) if path else a}:{edges[a][b]}: {a} -> {b}"


def test_the_graph_sees_the_imports_it_should():
    edges, external = _graph()
    assert "hbdk_sim.engine.trainer" in edges["hbdk_sim.engine.stages"]  # a module-level import
    assert "hbdk_sim.quantization.converters" in edges["hbdk_sim.engine.stages"]  # one inside a function
    assert "hbdk_sim._core" in edges["hbdk_sim.api"]  # `from hbdk_sim import _core`: the module
    assert "torch" in external["hbdk_sim.engine.trainer"]
    assert len(MODULES) > 50


def test_no_import_cycle():
    edges, _ = _graph()
    cycles = [c for c in _strongly_connected(edges) if len(c) > 1]
    report = []
    for component in cycles:
        members = set(component)
        report.append(f"import cycle among {', '.join(component)}:")
        report += [f"  {_where(edges, a, b)}" for a in component for b in edges[a] if b in members]
    assert not cycles, "\n".join(report)


def test_the_compiler_api_knows_nothing_of_torch():
    edges, external = _graph()
    reached = _reachable(edges, "hbdk_sim.api")
    torch_side = sorted(m for m in reached if m.startswith(TORCH_SIDE))
    assert not torch_side, f"hbdk_sim.api reaches {torch_side}"
    third_party = {(m, name) for m in reached for name in external[m]
                   if name not in sys.stdlib_module_names and name not in API_THIRD_PARTY}
    assert not third_party, f"hbdk_sim.api reaches modules that import {sorted(third_party)}"


def test_importing_the_compiler_api_loads_no_torch():
    """The same rule at run time, where an import by importlib or a plugin would show too."""
    code = "import sys, hbdk_sim.api, hbdk_sim.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
