"""The lint, format and type-check tooling: configured in pyproject.toml, pinned in the dev lock, wired into
scripts/lint.sh and the Makefile; and clients/ (the first app brought up to it) passes all three."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv the tests run in (scripts/venv.sh installs the tools there)
TOOLS = ["ruff", "mypy", "django-stubs", "djangorestframework-stubs", "celery-types"]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_ruff_and_mypy_are_configured_in_pyproject() -> None:
    config = pyproject()["tool"]
    ruff, mypy = config["ruff"], config["mypy"]
    assert ruff["line-length"] == 120
    assert ruff["target-version"] == f"py3{sys.version_info.minor}", "target the venv's Python"
    assert {"E", "F", "I", "B", "UP", "DJ", "S"} <= set(ruff["lint"]["select"])
    assert "S101" not in ruff["lint"].get("ignore", []), "assert is allowed in tests only"
    assert "S101" in ruff["lint"]["per-file-ignores"]["**/tests/**"]
    assert mypy["python_version"] == f"3.{sys.version_info.minor}"
    assert set(mypy["plugins"]) == {"mypy_django_plugin.main", "mypy_drf_plugin.main"}
    assert config["django-stubs"]["django_settings_module"] == "orders_project.settings_test"
    strict = next(o for o in mypy["overrides"] if o.get("disallow_untyped_defs"))
    assert {"clients.*", "core.*", "orders.services.*", "orders.apis"} <= set(strict["module"])
    assert "pytest" not in config, "pytest's configuration stays in pytest.ini"
    assert not any((ROOT / name).exists() for name in ("setup.cfg", "ruff.toml", ".ruff.toml", "mypy.ini"))


def test_the_tools_are_pinned_and_locked_with_hashes() -> None:
    pins = (ROOT / "requirements-dev.txt").read_text()
    lock = (ROOT / "requirements-dev.lock").read_text()
    for tool in TOOLS:
        match = re.search(rf"^{re.escape(tool)}(\[[^\]]*\])?==(\S+)$", pins, re.M)
        assert match, f"{tool} is not pinned in requirements-dev.txt"
        assert re.search(rf"^{re.escape(tool)}=={re.escape(match.group(2))} \\\n\s+--hash=sha256:", lock, re.M), tool


def test_lint_script_runs_all_three_and_the_tests_can_call_it() -> None:
    script = (ROOT / "scripts" / "lint.sh").read_text()
    for command in (".venv/bin/ruff check", ".venv/bin/ruff format --check", ".venv/bin/mypy"):
        assert command in script
    assert re.search(r"^LINT=\$\{LINT:-[01]\}$", (ROOT / "scripts" / "test.sh").read_text(), re.M)
    assert 'if [ "$LINT" = 1 ]; then bash scripts/lint.sh; fi' in (ROOT / "scripts" / "test.sh").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert all(re.search(rf"^{target}:", makefile, re.M) for target in ("lint", "fmt", "typecheck"))


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["ruff", "check", "clients"], id="ruff check"),
        pytest.param(["ruff", "format", "--check", "clients"], id="ruff format"),
        # Errors of the modules clients imports (core, ...) are theirs: silenced here, reported by a full `mypy`.
        pytest.param(["mypy", "--follow-imports=silent", "--no-warn-unused-configs", "clients"], id="mypy"),
    ],
)
def test_clients_passes(command: list[str]) -> None:
    binary = BIN / command[0]
    assert binary.exists(), f"{binary}: install the dev lock (bash scripts/venv.sh requirements-dev.txt)"
    result = run(str(binary), *command[1:])
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
