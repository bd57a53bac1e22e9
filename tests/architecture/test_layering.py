"""The layering of docs/architecture.md, checked on the source: imports point down only."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("core", "clients", "enrichment", "orders", "orders_project")
DEV_ONLY = ("devtools", "bench", "chaos", "e2e", "tests", "psutil", "pytest", "conftest")


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level packages imported by each non-test module of `package`, by module path."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        relative = path.relative_to(ROOT)
        if "tests" in relative.parts or "migrations" in relative.parts:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(relative)] = names
    return found


def _offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        module: sorted(names & set(forbidden)) for module, names in _imports(package).items() if names & set(forbidden)
    }


def test_core_imports_no_app_and_not_the_project_package():
    assert _offenders("core", ("clients", "enrichment", "orders", "orders_project")) == {}


def test_enrichment_is_a_provider_client_that_imports_no_order_code():
    assert _offenders("enrichment", ("orders", "orders_project", "clients")) == {}


def test_clients_import_nothing_of_the_orders():
    assert _offenders("clients", ("orders", "enrichment", "orders_project")) == {}


def test_apps_reach_celery_through_current_app_not_the_project_module():
    offenders = {
        module: names
        for package in ("clients", "enrichment", "orders")
        for module, names in _imports(package).items()
        if "orders_project" in names and "orders_project.celery" in (ROOT / module).read_text()
    }
    assert offenders == {}


@pytest.mark.parametrize("package", RUNTIME)
def test_runtime_code_imports_no_development_tooling(package):
    assert _offenders(package, DEV_ONLY) == {}


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    # given: a throwaway package with an upward import (the checker must not pass vacuously)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "views.py").write_text("from orders import metrics_collect\nimport os\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    # then
    assert _offenders("fake", ("orders",)) == {"fake/views.py": ["orders"]}


# --------------------------------------------------------------------------- the module graph

PACKAGES = ("core", "clients", "enrichment", "orders")  # the apps and the kernel below the project package


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(packages: tuple[str, ...] = RUNTIME) -> dict[str, set[str]]:
    """Every runtime module (tests and migrations aside) -> every module it imports, relative imports resolved,
    `from package import name` counted as an edge to `package.name` when that is a module, else to `package`;
    imports inside functions count too (they are edges all the same)."""
    modules = {
        _module_name(path): path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.relative_to(ROOT).parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in modules else base)
        graph[name] = {edge for edge in edges if edge.split(".")[0] in packages and edge != name}
    return graph


def test_apps_and_core_import_nothing_from_the_project_package():
    graph = module_graph()
    upward = {
        module: sorted(e for e in edges if e.split(".")[0] == "orders_project")
        for module, edges in graph.items()
        if module.split(".")[0] in PACKAGES and any(e.split(".")[0] == "orders_project" for e in edges)
    }
    assert upward == {}


def _top(module: str) -> str:
    return module.split(".")[0]


def package_cycles(graph: dict[str, set[str]], bucket=_top) -> list[list[str]]:
    """Cycles between packages (a module's package: `bucket(module)`, its top-level one by default): the
    strongly connected components of more than one package, by Tarjan's algorithm."""
    packages: dict[str, set[str]] = {}
    for module, edges in graph.items():
        source = bucket(module)
        packages.setdefault(source, set()).update(bucket(e) for e in edges if bucket(e) != source)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in packages.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(packages):
        if node not in index:
            visit(node)
    return cycles


def test_no_cycle_between_the_top_level_packages():
    # orders_project imports orders (its settings read the topology); nothing below imports it back.
    assert package_cycles(module_graph()) == []


def test_the_graph_checks_see_an_upward_edge_and_a_cycle(tmp_path, monkeypatch):
    # given: throwaway packages with a relative import, an upward import and a two-package cycle
    for package, source in {
        "core": "from ..orders_project import settings\n",
        "orders": "from core import views\n",
        "orders_project": "",
    }.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "views.py").write_text(source)
    (tmp_path / "orders_project" / "settings.py").write_text("")
    (tmp_path / "core" / "views.py").write_text("from orders_project import settings\nfrom orders import views\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    graph = module_graph(("core", "orders", "orders_project"))
    # then
    assert "orders_project.settings" in graph["core.views"]
    assert package_cycles(graph) == [["core", "orders"]]
