"""Issue: alerts. Debian's Prometheus server on loopback scrapes the running web's /metrics and evaluates the
project's own outbox rule (deploy/prometheus/alerts.yml, its threshold and `for:` scaled down from minutes
to seconds, nothing else changed): with the relay stopped and orders waiting in the outbox, the alert goes
pending, then firing, as Prometheus's API reports it. No skip: without /usr/bin/prometheus this fails
(scripts/promtool.sh installs it)."""

import copy
import shutil
import socket
from pathlib import Path

import pytest
import requests
import yaml

from devtools.procs import wait_until
from e2e.conftest import ARTIFACTS
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
ALERT = "OrdersOutboxBacklogOld"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scaled_rule(tmp: Path) -> Path:
    """The outbox rule as shipped, with seconds for minutes: threshold 60 s → 2 s, `for: 5m` → 2s."""
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    rule = next(r for group in rules["groups"] for r in group["rules"] if r.get("alert") == ALERT)
    assert rule["expr"].strip().endswith("> 60") and rule["for"] == "5m"  # what is scaled below
    scaled = copy.deepcopy(rule)
    scaled["expr"] = rule["expr"].strip().removesuffix("> 60") + "> 2"
    scaled["for"] = "2s"
    path = tmp / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "e2e", "interval": "1s", "rules": [scaled]}]}))
    return path


def alert_states(base: str) -> set[str]:
    alerts = requests.get(f"{base}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {a["state"] for a in alerts if a["labels"].get("alertname") == ALERT}


def test_prometheus_fires_the_outbox_alert_when_the_relay_is_stopped(processes, http, live_server, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: run `bash scripts/promtool.sh` (apt-get install prometheus)"
    # given: Prometheus scraping the web's /metrics every second, with the scaled outbox rule
    catalog_create()
    target = live_server.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(scaled_rule(tmp_path))],
        "scrape_configs": [{"job_name": "web", "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        ready="Server is ready to receive web requests",
    )

    def web_up() -> bool:
        targets = requests.get(f"{base}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return bool(targets) and targets[0]["health"] == "up"

    wait_until(web_up, timeout=30, what="the web target up")
    assert alert_states(base) == set()  # nothing waits yet
    # when: orders are accepted while no relay runs (they wait in the outbox)
    for _ in range(3):
        http.post_order([("ABC", 1)])
    # then: the alert goes pending, then firing
    wait_until(lambda: "pending" in alert_states(base) or "firing" in alert_states(base), timeout=30, what="pending")
    wait_until(lambda: "firing" in alert_states(base), timeout=30, what="firing")
    # when: the relay publishes them, the alert resolves
    processes.relay()
    wait_until(lambda: alert_states(base) == set(), timeout=30, what="the alert resolved")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "prometheus-alerts.json").write_text(requests.get(f"{base}/api/v1/rules", timeout=5).text)
