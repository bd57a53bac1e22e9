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
