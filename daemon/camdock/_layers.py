"""Which part of the package may import which: ``python -m camdock._layers`` checks it.

The package is layered (ARCHITECTURE.md, "Shape of the code"): the pure core and the plain
values at the bottom; the catalog (the only place with SQL) and the adapters (one library each)
beside each other and never importing each other; the services and the station above them; the
commands, the console and the CLI on top. An import that goes up or sideways, or a cycle of
modules importing each other when they load, is reported with the file and line that makes it;
so is SQL (a statement in a string) or an ``import sqlite3`` anywhere but in the catalog.
Tests run the same check (tests/test_layers.py), so a change that breaks a layer fails CI.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALLOWED", "Import", "check", "cycles", "imports", "main", "sql_outside", "violations"]

PACKAGE = Path(__file__).resolve().parent

# Each part of the package (a subpackage, or a top-level module) and the parts it may import.
_BASE = frozenset({"__init__", "errors", "model", "clock"})
_VALUES = _BASE | {"core", "events", "passwords", "aio", "terms"}
ALLOWED: dict[str, frozenset[str]] = {
    "__init__": frozenset(),
    "errors": frozenset(),
    "model": frozenset({"errors"}),
    "clock": frozenset(),
    "terms": frozenset(),  # the codes' words (issue 29): values only
    "core": frozenset({"errors", "model"}),
    "events": _BASE | {"core"},
    "passwords": _BASE,
    "aio": _BASE,
    "camera": _BASE,
    "rpc": _BASE | {"core"},  # how the control protocol declares and parses: values only
    "protocol": _BASE | {"core", "rpc"},  # the control protocol's declarations: values only
    "forms": _VALUES,
    "config": _VALUES,
    "catalog": _VALUES,
    "adapters": _VALUES | {"config"},
    "offload": _VALUES | {"config", "catalog", "adapters"},
    "services": _VALUES | {"config", "camera", "catalog", "adapters", "forms", "offload"},
    "station": _VALUES
    | {"config", "camera", "catalog", "adapters", "forms", "offload", "services", "protocol"},
    "sim": _VALUES | {"config", "camera", "catalog", "adapters", "offload", "services", "station"},
    "commands": _VALUES
    | {"config", "camera", "catalog", "adapters", "forms", "offload", "services", "station"}
    | {"sim", "web", "udev_rules", "protocol", "server"},  # run, simulate, web, udev, server
    "web": _VALUES | {"config", "forms", "adapters", "services", "station", "protocol"},
    "udev_rules": _BASE | {"config"},
    # The station server (issue 31): its own application on another host, reading the events'
    # vocabulary and passwords only; its SQL is its own PostgreSQL index, not the catalog's.
    "server": _VALUES,
    "cli": _BASE | {"adapters", "commands"},  # parsing and dispatch: commands/ runs them
    "__main__": frozenset({"cli"}),
    "_layers": frozenset(),
}


@dataclass(frozen=True)
class Import:
    """One ``import`` of a camdock module by another."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    path: Path
    line: int
    at_load: bool  # at module level (not in a function, not only for type checking)


def _module_of(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _part(module: str) -> str:
    """The part of the package a dotted module name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_package(name: str, package: Path) -> bool:
    return (package.parent / Path(*name.split("."))).is_dir()


def _known(name: str, package: Path) -> bool:
    where = package.parent / Path(*name.split("."))
    return where.is_dir() or where.with_suffix(".py").exists()


def _targets(node: ast.Import | ast.ImportFrom, module: str, package: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "camdock"]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        keep = len(module.split(".")) - node.level + (1 if _is_package(module, package) else 0)
        anchor = module.split(".")[:keep]
        base = ".".join([*anchor, *([base] if base else [])])
    if base.split(".")[0] != "camdock":
        return []
    # `from camdock import clock` imports the module camdock.clock; `from x import name` x.
    subs = [f"{base}.{a.name}" for a in node.names if _known(f"{base}.{a.name}", package)]
    return subs or [base]


_Found = tuple[ast.Import | ast.ImportFrom, bool]


def _deferred(node: ast.AST) -> bool:
    """A block whose imports do not run when the module loads."""
    if isinstance(node, ast.If):
        return "TYPE_CHECKING" in ast.unparse(node.test)
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)


def _walk(tree: ast.AST, at_load: bool = True) -> Iterator[_Found]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, at_load
        else:
            yield from _walk(node, at_load and not _deferred(node))


def imports(package: Path = PACKAGE) -> Iterator[Import]:
    """Every import of a camdock module inside the package."""
    for path in sorted(package.rglob("*.py")):
        module = _module_of(path, package)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, at_load in _walk(tree):
            for target in _targets(node, module, package):
                yield Import(module, target, path, node.lineno, at_load)


def violations(found: list[Import]) -> list[str]:
    """Each import that goes where its part may not."""
    bad = []
    for imp in found:
        src, dst = _part(imp.source), _part(imp.target)
        if src == dst:
            continue
        allowed = ALLOWED.get(src)
        if allowed is None:
            bad.append(f"{imp.path}:{imp.line}: {src} is in no layer (camdock/_layers.py)")
        elif dst not in allowed:
            bad.append(f"{imp.path}:{imp.line}: {src} may not import {dst} ({imp.target})")
    return bad


def cycles(found: list[Import], package: Path = PACKAGE) -> list[list[str]]:
    """Cycles of modules that import each other as they load (Tarjan's components)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.at_load and imp.source != imp.target:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
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
            # A package's __init__ re-exporting its own modules is no cycle of load order.
            if len(component) > 1 and not _only_reexports(component, graph, package):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _only_reexports(component: list[str], graph: dict[str, set[str]], package: Path) -> bool:
    """A package and its own modules, where only the package imports them back."""
    packages = [m for m in component if _is_package(m, package)]
    if len(packages) != 1:
        return False
    pkg = packages[0]
    return all(
        m == pkg or (m.startswith(pkg + ".") and pkg not in graph.get(m, set())) for m in component
    )


# A statement, as this code base writes SQL (upper-case keywords), at the start of a string.
_SQL = re.compile(
    r"^\s*(SELECT\s.*\sFROM\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|"
    r"DELETE\s+FROM\s|PRAGMA\s|CREATE\s+(TABLE|INDEX|TRIGGER|VIEW)\s)",
    re.S,
)
SQL_PART = "catalog"  # the only part of the package that speaks SQL or knows it is SQLite


def sql_outside(package: Path = PACKAGE) -> list[str]:
    """Each SQL statement or ``sqlite3`` import outside the catalog, with its file and line."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if _part(_module_of(path, package)) in (SQL_PART, "server"):  # server: PostgreSQL's own
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                if any(n.split(".")[0] == "sqlite3" for n in names):
                    found.append(f"{path}:{node.lineno}: sqlite3 outside the catalog")
            elif isinstance(node, ast.Constant) and _SQL.match(str(node.value)):
                found.append(f"{path}:{node.lineno}: SQL outside the catalog")
    return found


def check(package: Path = PACKAGE) -> list[str]:
    """Every layer violation and load-time cycle, one line each (empty when all is well)."""
    found = list(imports(package))
    lines = violations(found) + sql_outside(package)
    lines += [f"import cycle at load: {' → '.join(c)}" for c in cycles(found, package)]
    return lines


def main() -> int:
    """Print the problems; exit 1 if there are any."""
    problems = check()
    for line in problems:
        print(line)
    print(f"camdock layers: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
