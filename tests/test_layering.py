"""The package's import graph: no cycles (type-only imports included) and arrows that point one way.

Read from the source with ``ast``, so imports under ``if TYPE_CHECKING:`` and inside functions
count as much as module-level ones. An import of ``pkg.sub`` is an edge to ``pkg.sub`` only: the
package's ``__init__`` re-exporting its submodules is how packages are built, not a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import graph_router

ROOT = Path(graph_router.__file__).parent

Graph = Mapping[str, frozenset[str]]


def modules(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (path, is_pkg)
    return out


def _imported(name: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".")
    if not is_pkg:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(root: Path, package: str) -> dict[str, frozenset[str]]:
    """Every module of ``package`` -> the modules of ``package`` it imports, wherever the import is."""
    mods = modules(root, package)
    graph: dict[str, frozenset[str]] = {}
    for name, (path, is_pkg) in mods.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: Iterable[str] = ()
            if isinstance(node, ast.ImportFrom):
                mod = _imported(name, is_pkg, node)
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            found.update(t for t in targets if t in mods and t != name)
        graph[name] = frozenset(found)
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_in(graph, group) for group in groups]


def _path_in(graph: Graph, group: set[str]) -> list[str]:
    """A closed path through ``group`` from its first module (for the failure message)."""
    start = min(group)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in graph[path[-1]] if w in group)
        if nxt in seen:
            return [*path[path.index(nxt):], nxt]
        path.append(nxt)
        seen.add(nxt)


def reachable(graph: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def under(mods: Iterable[str], *prefixes: str) -> list[str]:
    return sorted(m for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture(scope="module")
def graph() -> dict[str, frozenset[str]]:
    return import_graph(ROOT, "graph_router")


def test_no_import_cycles(graph: Graph) -> None:
    assert find_cycles(graph) == []


def test_the_walker_sees_every_kind_of_import(graph: Graph) -> None:
    # a module-level import, a function-level one and a TYPE_CHECKING one of modules we know of
    assert "graph_router.compiler" in graph["graph_router.engine"]
    assert "graph_router.grpc.backend" in graph["graph_router.api"]  # inside a function
    assert "graph_router.http.client_limits" in graph["graph_router.http.client_protocol"]  # TYPE_CHECKING


def test_engine_imports_no_http_telemetry_or_cli(graph: Graph) -> None:
    """Everything the engine pulls in, transitively: it talks to Backends, nothing else."""
    seen = reachable(graph, "graph_router.engine")
    assert under(seen, "graph_router.http", "graph_router.telemetry", "graph_router.cli", "graph_router.process",
                 "graph_router.transport", "graph_router.grpc", "graph_router.app",
                 "graph_router.api") == []


def test_compiler_does_not_import_the_engine(graph: Graph) -> None:
    assert "graph_router.engine" not in reachable(graph, "graph_router.compiler")


@pytest.mark.parametrize("module", ["graph_router.backend", "graph_router.transport", "graph_router.grpc.backend"])
def test_backends_import_nothing_above_them(graph: Graph, module: str) -> None:
    """server -> engine -> backends -> http: a backend knows nothing of the engine or the server."""
    seen = reachable(graph, module)
    assert under(seen, "graph_router.engine", "graph_router.compiler", "graph_router.api", "graph_router.app",
                 "graph_router.telemetry", "graph_router.cli", "graph_router.process") == []


def test_http_is_the_bottom_layer(graph: Graph) -> None:
    """The HTTP package imports only itself and ``headers`` (which imports nothing of ours)."""
    http = under(graph, "graph_router.http")
    outside = {w for m in http for w in graph[m]} - set(http)
    assert outside == {"graph_router.headers"}
    assert graph["graph_router.headers"] == frozenset()


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A type-only cycle and a function-level cycle in a made-up package are both found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "b.py").write_text("from .a import A\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import C\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from ..d import D\n")
    (pkg / "d.py").write_text("from pkg.sub import c\n")
    g = import_graph(pkg, "pkg")
    assert g["pkg.sub"] == {"pkg.sub.c"}
    assert sorted(map(sorted, find_cycles(g))) == [["pkg.a", "pkg.a", "pkg.b"], ["pkg.d", "pkg.d", "pkg.sub.c"]]
    assert reachable(g, "pkg.a") == {"pkg.a", "pkg.b"}


# --- CONTRIBUTING.md's layout table is the rule ----------------------------------------------------

CONTRIBUTING = ROOT.parent / "CONTRIBUTING.md"


def layout_table() -> dict[str, tuple[int, set[str] | None]]:
    """CONTRIBUTING.md's table: each module (``a/b`` is ``a.b``; a trailing ``/`` names a package) -> its
    row, and the modules it may import besides those of its row (None: everything)."""
    rows: dict[str, tuple[int, set[str] | None]] = {}
    section = CONTRIBUTING.read_text().split("## Layout", 1)[1]
    for n, line in enumerate(section.splitlines()):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        allowed = cells[2]
        may: set[str] | None = (None if allowed == "everything" else set() if allowed == "nothing"
                                else {a.strip() for a in allowed.split(",")})
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name.rstrip("/").replace("/", ".")] = (n, may)
    return rows


def row_of(module: str, table: Mapping[str, object]) -> str:
    """The table's name for ``graph_router.x.y``: ``x.y`` when the table has it, else ``x``."""
    parts = module.split(".")[1:]
    if not parts:
        return "graph_router"
    return ".".join(parts[:2]) if ".".join(parts[:2]) in table else parts[0]


def disallowed(graph: Graph) -> list[str]:
    """Every import the layout table does not allow."""
    table = layout_table()
    wrong = []
    for module, imported in graph.items():
        name = row_of(module, table)
        row, may = table[name]
        if may is None:
            continue
        for target in imported:
            to = row_of(target, table)
            if table[to][0] != row and to not in may:
                wrong.append(f"{module} -> {target} ({name} may import: {', '.join(sorted(may)) or 'nothing'})")
    return sorted(wrong)


def test_every_module_has_a_row_in_the_layout_table(graph: Graph) -> None:
    table = layout_table()
    assert len(table) > 20
    assert sorted({row_of(m, table) for m in graph} - set(table)) == []


def test_every_import_is_one_the_layout_table_allows(graph: Graph) -> None:
    assert disallowed(graph) == []


def test_the_layout_table_check_can_fail(graph: Graph) -> None:
    """An arrow up that no narrower test covers (telemetry -> cli) is caught by the table."""
    bad = {**graph, "graph_router.telemetry.spans": graph["graph_router.telemetry.spans"] | {"graph_router.cli"}}
    assert disallowed(bad) == ["graph_router.telemetry.spans -> graph_router.cli (telemetry may import: compiler, "
                               "engine, graph_router, http)"]
