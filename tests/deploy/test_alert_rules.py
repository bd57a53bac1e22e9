"""The Prometheus alerts (deploy/prometheus/alerts.yml), their promtool unit tests (alerts_test.yml), the
scrape configuration that gives their labels (prometheus.yml) and the Grafana dashboard
(deploy/grafana/orders-dashboard.json).

promtool comes from Debian's `prometheus` package (scripts/promtool.sh, run by scripts/test.sh). A missing
promtool is a FAILURE, never a skip. No Django, no service: everything here runs offline.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orders.pipeline import ALL_STAGES
from orders.topology import DEAD_LETTER_QUEUE_NAME

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "orders-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
# Where runbooks live: docs/operations.md's "Alerts and runbook" table, and the RabbitMQ and PostgreSQL clusters'
# own pages for their alerts.
RUNBOOK_FILES = {"docs/operations.md", "docs/rabbitmq-cluster.md", "docs/postgres-k8s.md"}
# Metric prefixes of exporters that are not ours: RabbitMQ's plugin, CloudNativePG's instance exporter.
FOREIGN_METRIC_PREFIXES = ("rabbitmq_", "cnpg_")
METRICS_MODULE = ROOT / "orders" / "metrics.py"
# core's own metrics (core imports no app): which broker node each process is on, and its failovers
METRICS_MODULES = (METRICS_MODULE, ROOT / "core" / "broker_nodes.py")
K8S_BASE = ROOT / "k8s" / "base"

SEVERITIES = {"critical", "warning"}
REQUIRED_ANNOTATIONS = {"severity", "summary", "runbook"}
# Metrics a rule may use before the code exports them (each one said so in a comment in alerts.yml).
FUTURE_METRICS: dict[str, str] = {}  # metrics an alert may name before orders/metrics.py exports them
# Jobs alerts.yml names that are not a pod's app.kubernetes.io/name (prometheus.yml's own jobs).
EXTRA_JOBS = {"rabbitmq-detailed", "rabbitmq-per-object"}
# Of those, the jobs only the Kubernetes scrape config has (the cluster's): compose's Prometheus has no such
# target, so OrdersComponentNotReporting must not require them (absent() would fire there for good); the
# rabbitmq-cluster alerts watch them instead and stay quiet without them.
K8S_ONLY_JOBS = {"rabbitmq-per-object"}
RABBITMQ_STATEFULSET = K8S_BASE / "rabbitmq.yaml"


# --------------------------------------------------------------------------- helpers


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail(
            "promtool is not on PATH: `bash scripts/promtool.sh` installs Debian's prometheus package "
            "(scripts/test.sh runs it). Not skipping.",
            pytrace=False,
        )
    return found


def run_promtool(*args: str | Path) -> str:
    result = subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


@functools.cache
def rule_groups() -> list[dict]:
    return yaml.safe_load(ALERTS.read_text())["groups"]


@functools.cache
def alerts() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            assert "alert" in rule, f"only alerting rules belong in {ALERTS.name}: {rule}"
            assert rule["alert"] not in found, f"alert {rule['alert']} defined twice"
            found[rule["alert"]] = rule
    return found


@functools.cache
def unit_tests() -> dict:
    return yaml.safe_load(ALERTS_TEST.read_text())


@functools.cache
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel, rows' nested panels included."""
    found = []

    def visit(panels: list[dict]) -> None:
        for panel in panels:
            visit(panel.get("panels", []))
            for target in panel.get("targets", []):
                found.append((panel.get("title", "?"), target.get("expr", "")))

    visit(dashboard()["panels"])
    return found


@functools.cache
def exported_metrics() -> dict[str, set[str]]:
    """Metric family -> the series names it exposes, from the Counter/Gauge/Histogram/Summary calls of
    orders/metrics.py (read as source: the module needs Django's settings to import)."""
    families: dict[str, set[str]] = {}
    for node in (n for module in METRICS_MODULES for n in ast.walk(ast.parse(module.read_text()))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        kind = node.func.id
        if kind not in {"Counter", "Gauge", "Histogram", "Summary"}:
            continue
        name = node.args[0].value
        assert isinstance(name, str)
        if kind == "Histogram":
            families[name] = {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        elif kind == "Summary":
            families[name] = {name, f"{name}_count", f"{name}_sum"}
        elif kind == "Counter":
            base = name.removesuffix("_total")
            families[name] = {f"{base}_total", f"{base}_created"}
        else:
            families[name] = {name}
    assert families, f"no metric found in {METRICS_MODULES}"
    return families


def known_series() -> set[str]:
    return set().union(*exported_metrics().values())


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9smhdwy]+")
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label names and values dropped)."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub("", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function or an aggregation
        names.add(word)
    return names


def test_promql_metric_names_helper():
    assert promql_metric_names(
        'sum by (stage) (rate(order_stage_duration_seconds_count{outcome="error"}[10m])) / on(stage) group_left '
        'sum(rate(x_total[$__rate_interval])) > 0.2 and on() max(y offset 5m) - 1e3 or absent(up{job="web"})'
    ) == {"order_stage_duration_seconds_count", "x_total", "y", "up"}
    assert promql_metric_names("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 14.4 * 0.01") == {
        "a_bucket"
    }


def github_slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def markdown_anchors(markdown: str) -> set[str]:
    """Anchors a Markdown file offers: its headings' slugs and every <a id|name="..."> tag."""
    anchors = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", markdown))
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not in_code:
            anchors.add(github_slug(heading.group(1)))
    return anchors


def test_markdown_anchors_helper():
    text = '## Alerts and runbook\n| <a id="alert-x"></a>`X` | y |\n```sh\n# not a heading\n```\n### Tests (CI)\n'
    assert markdown_anchors(text) == {"alerts-and-runbook", "alert-x", "tests-ci"}


@functools.cache
def scraped_pod_names() -> set[str]:
    """app.kubernetes.io/name of every pod template the Kubernetes manifests annotate for scraping."""
    names = set()
    for path in sorted(K8S_BASE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            # our workloads only: CloudNativePG's Pooler has a pod template too, but its pods are the operator's
            # (watched by the postgres-cluster alerts, not as a component of the pipeline)
            if (doc or {}).get("kind") not in ("Deployment", "StatefulSet"):
                continue
            template = ((doc or {}).get("spec") or {}).get("template") or {}
            metadata = template.get("metadata") or {}
            if (metadata.get("annotations") or {}).get("prometheus.io/scrape") == "true":
                names.add(metadata["labels"]["app.kubernetes.io/name"])
    return names


# --------------------------------------------------------------------------- promtool


def test_promtool_check_rules():
    output = run_promtool("check", "rules", ALERTS)
    assert f"SUCCESS: {len(alerts())} rules found" in output, output


def test_promtool_unit_tests():
    output = run_promtool("test", "rules", ALERTS_TEST)
    assert "SUCCESS" in output, output


def test_promtool_check_scrape_config(tmp_path):
    """prometheus.yml with its Kubernetes service discovery swapped for a static target (Debian's
    Prometheus is built without Kubernetes SD): relabelling, params and rule_files are checked."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs"), job["job_name"]
        job["static_configs"] = [{"targets": ["kubernetes-sd.invalid:80"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    run_promtool("check", "config", tmp_path / "prometheus.yml")


# --------------------------------------------------------------------------- the rules


def test_every_alert_fires_and_stays_quiet_in_a_unit_test():
    tests = unit_tests()
    assert tests["rule_files"] == [ALERTS.name]
    fires, quiet = set(), set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    unknown = (fires | quiet) - set(alerts())
    assert not unknown, (
        f"alerts_test.yml tests alerts that alerts.yml does not define (a typo passes as quiet): {unknown}"
    )
    assert not set(alerts()) - fires, f"alerts never tested firing: {sorted(set(alerts()) - fires)}"
    assert not set(alerts()) - quiet, f"alerts never tested quiet: {sorted(set(alerts()) - quiet)}"


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_labels_and_annotations(name):
    rule = alerts()[name]
    annotations, labels = rule.get("annotations", {}), rule.get("labels", {})
    assert set(annotations) >= REQUIRED_ANNOTATIONS, f"{name}: annotations {sorted(annotations)}"
    assert all(str(annotations[key]).strip() for key in REQUIRED_ANNOTATIONS), name
    # Alertmanager routes on the label; the annotation says the same to whoever reads the alert.
    assert labels.get("severity") in SEVERITIES, f"{name}: severity label {labels.get('severity')!r}"
    assert annotations["severity"] == labels["severity"], name
    runbook_file, _, anchor = annotations["runbook"].partition("#")
    assert runbook_file in RUNBOOK_FILES and anchor == f"alert-{name.lower()}", (name, annotations["runbook"])
    assert rule.get("for"), f"{name}: no `for:`, it would flap"


def test_runbook_anchors_exist_in_their_files():
    anchors = {path: markdown_anchors((ROOT / path).read_text()) for path in RUNBOOK_FILES}
    missing = sorted(
        rule["annotations"]["runbook"]
        for rule in alerts().values()
        if rule["annotations"]["runbook"].partition("#")[2]
        not in anchors.get(rule["annotations"]["runbook"].partition("#")[0], set())
    )
    assert not missing, f"runbook anchors with no heading or <a id> in their file: {missing}"
    # the pipeline's alerts keep their rows in the operations table; only the clusters' alerts live elsewhere
    elsewhere = {
        name for name, rule in alerts().items() if not rule["annotations"]["runbook"].startswith("docs/operations.md#")
    }
    assert elsewhere <= {name for name in alerts() if name.startswith(("RabbitMQ", "Postgres"))}, elsewhere


def test_alert_expressions_use_exported_metrics():
    allowed = known_series() | set(FUTURE_METRICS)
    for name, rule in alerts().items():
        names = promql_metric_names(rule["expr"])
        assert names, f"{name}: no metric found in its expression"
        unknown = {n for n in names - allowed if not n.startswith(FOREIGN_METRIC_PREFIXES) and n != "up"}
        assert not unknown, f"{name} uses metrics orders/metrics.py does not export: {unknown}"
    for metric in FUTURE_METRICS:
        assert not any(metric in names for names in exported_metrics().values()), (
            f"{metric} is exported now: drop it from FUTURE_METRICS"
        )


def test_alerts_name_the_scraped_jobs():
    """The jobs in up{job=...} are the pods k8s/base annotates for scraping (job = app.kubernetes.io/name,
    prometheus.yml), and every scraped Deployment is watched as a whole by OrdersComponentNotReporting."""
    pods = scraped_pod_names()
    jobs = pods | EXTRA_JOBS
    matchers = [m for rule in alerts().values() for m in re.findall(r'up\{job(=~?)"([^"]+)"\}', rule["expr"])]
    assert matchers, "no up{job=...} in alerts.yml"
    for op, value in matchers:
        matched = {job for job in jobs if (re.fullmatch(value, job) if op == "=~" else job == value)}
        assert matched, f"up{{job{op}{value!r}}} matches no scraped job ({sorted(jobs)})"
    absent = set(re.findall(r'absent\(up\{job="([^"]+)"\}\)', alerts()["OrdersComponentNotReporting"]["expr"]))
    expected = (pods - {"rabbitmq"}) | (EXTRA_JOBS - K8S_ONLY_JOBS)
    assert absent == expected, f"absent() per scraped job: {sorted(absent)} vs {sorted(expected)}"


def test_no_consumer_alert_covers_every_queue():
    expr = alerts()["OrdersQueueNoConsumers"]["expr"]
    pattern = re.search(r'queue=~"([^"]+)"', expr).group(1).replace("\\\\", "\\")
    for queue in [stage.queue for stage in ALL_STAGES] + [DEAD_LETTER_QUEUE_NAME]:
        assert re.fullmatch(pattern, queue), f"OrdersQueueNoConsumers does not watch queue {queue}"


def scrape_job(name: str) -> dict:
    return next(job for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"] if job["job_name"] == name)


def test_rabbitmq_cluster_alerts_read_the_per_object_scrape():
    """The per-queue members-online count needs rabbitmq_raft_term_total{vhost,queue} from every node: the
    job scrapes /metrics/per-object on each rabbitmq pod's prometheus port (not the Service, which answers
    from one node) and keeps that series."""
    job = scrape_job("rabbitmq-per-object")
    assert job["metrics_path"] == "/metrics/per-object"
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert keep["source_labels"] == [
        "__meta_kubernetes_pod_label_app_kubernetes_io_name",
        "__meta_kubernetes_pod_container_port_name",
    ]
    assert keep["regex"] == "rabbitmq;prometheus"
    kept = next(r for r in job["metric_relabel_configs"] if r.get("action") == "keep")
    assert re.fullmatch(kept["regex"], "rabbitmq_raft_term_total") and not re.fullmatch(kept["regex"], "up")
    for name in ("RabbitMQClusterNodeDown", "RabbitMQQuorumQueueBelowMajority"):
        assert 'job="rabbitmq-per-object"' in alerts()[name]["expr"], name
    assert "rabbitmq_raft_term_total" in promql_metric_names(alerts()["RabbitMQQuorumQueueBelowMajority"]["expr"])
    # compose runs one node: no such job there, so the cluster alerts stay quiet (a unit test checks it)
    compose = yaml.safe_load((PROMETHEUS_DIR / "prometheus-compose.yml").read_text())
    assert "rabbitmq-per-object" not in {j["job_name"] for j in compose["scrape_configs"]}


POSTGRES_CLUSTER_ALERTS = {"PostgresNoPrimary", "PostgresSyncStandbyMissing", "PostgresReplicationLagHigh"}


def test_postgres_cluster_alerts_read_cloudnative_pg_series_only():
    """The postgres-cluster group reads the CloudNativePG instances' exporter (k8s/base/postgres.yaml annotates
    its pods for the orders-pods scrape job, port 9187) and nothing else, with no job matcher (the job label is
    whatever app.kubernetes.io/name the operator leaves on its pods)."""
    group = next(g for g in rule_groups() if g["name"] == "postgres-cluster")
    assert {rule["alert"] for rule in group["rules"]} == POSTGRES_CLUSTER_ALERTS
    for rule in group["rules"]:
        names = promql_metric_names(rule["expr"])
        assert names and all(n.startswith("cnpg_") for n in names), (rule["alert"], names)
        assert "job=" not in rule["expr"], rule["alert"]
    cluster = next(
        doc for doc in yaml.safe_load_all((K8S_BASE / "postgres.yaml").read_text()) if doc and doc["kind"] == "Cluster"
    )
    annotations = cluster["spec"]["inheritedMetadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9187",
        "prometheus.io/path": "/metrics",
    }
    # the synchronous standby alert matters because commits wait without one
    assert cluster["spec"]["postgresql"]["synchronous"]["dataDurability"] == "required"


def test_node_down_alert_expects_the_statefulsets_replicas():
    sts = next(
        doc
        for doc in yaml.safe_load_all(RABBITMQ_STATEFULSET.read_text())
        if doc and doc["kind"] == "StatefulSet" and doc["metadata"]["name"] == "rabbitmq"
    )
    expr = alerts()["RabbitMQClusterNodeDown"]["expr"]
    expected = int(re.search(r"\)\s*<\s*(\d+)\s*$", expr.strip()).group(1))
    assert expected == sts["spec"]["replicas"], f"RabbitMQClusterNodeDown expects {expected} nodes"
    assert alerts()["RabbitMQClusterNodeDown"]["for"] == "1m"


# --------------------------------------------------------------------------- the dashboard


def test_dashboard_panels_and_queries():
    board = dashboard()
    assert board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    graphs = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert all(target.get("expr", "").strip() for target in panel["targets"]), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_dashboard_uses_exported_metrics_only():
    allowed = known_series()
    for title, expr in dashboard_targets():
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        unknown = {n for n in names - allowed if not n.startswith("rabbitmq_") and n != "up"}
        assert not unknown, f"panel {title!r} uses metrics orders/metrics.py does not export: {unknown}"


def test_dashboard_shows_every_exported_metric():
    used = set().union(*(promql_metric_names(expr) for _, expr in dashboard_targets()))
    missing = sorted(family for family, series in exported_metrics().items() if not series & used)
    assert not missing, f"metrics on no panel: {missing}"


def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each query as a recording rule through `promtool check rules` (Grafana's $__ intervals as 5m)."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)}
        for i, (_, expr) in enumerate(dashboard_targets())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", path)


def test_compose_monitoring_profile_runs_the_shipped_rules_and_dashboard():
    import yaml as _yaml

    services = _yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]  # optional: not started by default
    mounts = " ".join(prometheus["volumes"] + grafana["volumes"])
    for path in (
        "deploy/prometheus/prometheus-compose.yml",
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/orders-dashboard.json",
    ):
        assert f"./{path}:" in mounts and (ROOT / path).exists(), path
    # the compose configuration is valid and names the jobs the rules match on
    config = ROOT / "deploy/prometheus/prometheus-compose.yml"
    rules_dir = ROOT / "deploy/prometheus"
    text = config.read_text().replace("/etc/prometheus/alerts.yml", str(rules_dir / "alerts.yml"))
    local = ROOT / "test-artifacts" / "prometheus-compose.yml"
    local.parent.mkdir(exist_ok=True)
    local.write_text(text)
    result = subprocess.run([promtool(), "check", "config", str(local)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"] for job in _yaml.safe_load(text)["scrape_configs"]}
    assert {
        "web",
        "worker-process",
        "worker-enrichment",
        "worker-finalize",
        "worker-refund",
        "rabbitmq-detailed",
    } <= jobs
