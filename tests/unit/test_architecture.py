"""The package's shape: imports point one way, one render path, clouds own their names.

These read the source (ast), not the running program, so a function-level
import counts as much as a module-level one. Imports under `if TYPE_CHECKING:`
are left out: they are type hints and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from skyterra import clouds

PACKAGE = Path(__file__).resolve().parents[2] / "skyterra"
# Where a cloud's name may be written: the clouds themselves and their catalogs. The
# Terraform "local" state backend is another noun that shares the word.
CLOUD_NAME_HOMES = ("clouds/", "catalog/")
OTHER_MEANINGS = {"backend.py": {"local"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(path: Path, known: set[str]) -> set[str]:
    """skyterra modules `path` imports anywhere (functions included), resolved to modules."""
    found: set[str] = set()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name in known and name != this}


def import_graph() -> dict[str, set[str]]:
    table = modules()
    known = set(table)
    return {name: runtime_imports(path, known) for name, path in table.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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
            connect(node)
    return found


def test_the_walker_sees_function_level_imports():
    graph = import_graph()
    assert "skyterra.api" in graph["skyterra.cli"]          # imported inside commands only
    assert "skyterra.clouds" in graph["skyterra.resources"]


def test_no_import_cycle_among_skyterra_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_lower_layers_import_nothing_above_them():
    graph = import_graph()
    above_model = {"skyterra.optimizer", "skyterra.deployment", "skyterra.renderer",
                   "skyterra.provision", "skyterra.launcher", "skyterra.submission",
                   "skyterra.jobs", "skyterra.api", "skyterra.cli"}
    for low in ("skyterra.errors", "skyterra.resources", "skyterra.task", "skyterra.clouds",
                "skyterra.catalog", "skyterra.catalog.lookup", "skyterra.state"):
        assert not graph[low] & above_model, (low, graph[low] & above_model)
    for cloud in clouds.MODULES.values():
        assert not graph[cloud] & (above_model - {"skyterra.optimizer"}), cloud


def test_one_render_path():
    """Only renderer.render (clusters) and renderer.render_bucket (a bucket's own module)
    write a module; everything that renders calls one of them."""
    writers = [name for name, path in modules().items()
               if "_write_module(" in path.read_text() and name != "skyterra.renderer"]
    assert writers == []
    text = (PACKAGE / "renderer.py").read_text()
    # its definition, render()'s one call and render_bucket()'s one call
    assert text.count("_write_module(") == 3


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_cloud_name_literal_outside_clouds_and_catalog():
    names = set(clouds.names())
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(CLOUD_NAME_HOMES):
            continue
        used = (_string_constants(path) & names) - OTHER_MEANINGS.get(relative, set())
        if used:
            offenders[relative] = sorted(used)
    assert offenders == {}


def test_every_registered_cloud_is_listed_once_and_registers_itself():
    registered = [c.name for c in clouds.all_clouds()]
    assert registered == list(clouds.MODULES) and len(set(registered)) == len(registered)
