"""docs/configuration.md against the settings: every environment variable orders_project/settings.py reads is
listed in the reference, and the reference lists no variable that nothing reads."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
# Read elsewhere than settings.py, by the process that needs them (documented in the same table).
READ_ELSEWHERE = {
    path: ROOT / path
    for path in ("orders_project/gunicorn_conf.py", "Procfile", "scripts/run.sh", "scripts/proxy.sh", "flowerconfig.py")
}


def variables_read(path: Path) -> set[str]:
    """Names passed as the first argument of env.<cast>(...), env(...), os.environ.get / os.getenv / environ[...]."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            owner = func.value if isinstance(func, ast.Attribute) else None
            owner_name = getattr(owner, "id", None) or getattr(owner, "attr", None)
            if (isinstance(func, ast.Name) and func.id == "env") or owner_name in ("env", "environ", "os"):
                if isinstance(node.args[0].value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.args[0].value):
                    names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if getattr(node.value, "attr", None) == "environ" and isinstance(node.slice.value, str):
                names.add(node.slice.value)
    return names


def documented() -> set[str]:
    """Every `NAME` in the first column of the reference's tables (`A` / `B` rows name several)."""
    names: set[str] = set()
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_setting_read_is_in_the_reference():
    missing = variables_read(ROOT / "orders_project" / "settings.py") - documented()
    assert not missing, f"read by orders_project/settings.py, not in docs/configuration.md: {sorted(missing)}"


def test_the_reference_lists_nothing_that_nothing_reads():
    sources = [ROOT / "orders_project" / "settings.py", *READ_ELSEWHERE.values()]
    text = "\n".join(path.read_text() for path in sources)
    python_read = set().union(*(variables_read(path) for path in sources if path.suffix == ".py"))
    stale = {name for name in documented() - python_read if name not in text}
    assert not stale, f"in docs/configuration.md, read nowhere: {sorted(stale)}"


def test_the_parser_finds_a_read_and_a_row(tmp_path):
    settings = tmp_path / "settings.py"
    settings.write_text('import os\nA = env.int("SOME_LIMIT", default=3)\nB = os.environ.get("OTHER_ONE")\n')
    assert variables_read(settings) == {"SOME_LIMIT", "OTHER_ONE"}


def test_every_variable_deploy_env_example_sets_is_documented_or_compose_s_own():
    """deploy/env.example is compose's environment: each name it sets is an app setting of the reference, or one
    docker-compose.yml itself interpolates (the database's, the broker's, the published ports)."""
    compose = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / "deploy" / "env.example").read_text().splitlines()
    names = {line.split("=", 1)[0].strip() for line in example if "=" in line and not line.lstrip().startswith("#")}
    unknown = {name for name in names - documented() if not re.search(rf"\$\{{{name}\b", compose)}
    assert not unknown, f"deploy/env.example sets what neither the reference nor docker-compose.yml knows: {unknown}"
