"""A chaos run inside the test command (`python -m chaos.run` in small), shared by the single-node and the
cluster smoke tests: its output kept in test-artifacts/, its checker required to find nothing wrong."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def chaos_run_passes(*args: str, report: Path, log_name: str, timeout: float, env: dict | None = None) -> dict:
    """Run chaos.run with `args`, keep its output as test-artifacts/<log_name>, and return its report once every
    check of it passed and the run exited 0."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "chaos.run", *args, "--report", str(report)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        # PostgreSQL may have been restarted under us: drop this process's dead connections.
        from django.db import connections

        connections.close_all()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / log_name).write_text(result.stdout + result.stderr)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(report.read_text())
    failed = {name: check["detail"] for name, check in data["checks"].items() if not check["ok"]}
    assert failed == {}, failed
    assert result.returncode == 0
    return data
