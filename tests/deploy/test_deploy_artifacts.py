"""Checks for the deployment artifacts: Dockerfile, docker-compose.yml and k8s/ (kustomize).

Plain pytest: no Django import, no database, no network. The external validators
(check-jsonschema, kubernetes-validate, hadolint) come from the virtualenv running the
tests; `kubectl` (for `kubectl kustomize`) must be on PATH. A missing tool is a FAILURE,
never a skip: CI installs all of them.

The Procfile is the contract: every process in it must be run by the image, by compose
and by Kubernetes with the same program and arguments (only `${VAR:-default}` defaults
may differ).
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Not resolved on purpose: .venv/bin/python is a symlink to the base interpreter.
VENV_BIN = Path(sys.executable).parent

KUSTOMIZE_DIRS = ["k8s/base", "k8s/overlays/dev"]
K8S_VERSION = "1.32.0"
NAMESPACE = "orders"
APP_IMAGE = "order-pipeline"

# Procfile key -> compose service / Kubernetes Deployment name
PROCESS_NAMES = {
    "web": "web",
    "live": "live",
    "worker_process": "worker-process",
    "worker_enrichment": "worker-enrichment",
    "worker_finalize": "worker-finalize",
    "worker_refund": "worker-refund",
    "worker_webhooks": "worker-webhooks",
    "relay": "relay",
    "archiver": "archiver",
    "flower": "flower",
}
# Worker Deployment / compose service -> the one queue it consumes (its node name is <queue>@%h).
# Checked against the Procfile's workers and the broker's topology (test_procfile_workers_*).
WORKERS = {
    "worker-process": "process",
    "worker-enrichment": "enrichment",
    "worker-finalize": "finalize",
    "worker-refund": "refund",
    "worker-webhooks": "webhooks",
}
HEARTBEAT_PROCESSES = ("relay", "archiver")
HEARTBEAT_PROBE = ["python", "manage.py", "check_heartbeat", "/tmp/heartbeat", "--max-age", "60"]
SETUP_COMMANDS = [
    "python manage.py migrate --noinput",
    "python manage.py seed_catalog",
    "python manage.py declare_topology",
]

# Custom resources that kubernetes-validate has no schema for. They are checked by hand
# below (test_keda_scaled_object); any other unknown kind fails the build validation.
CRDS_CHECKED_BY_HAND = {("keda.sh/v1alpha1", "ScaledObject")}
# CloudNativePG's resources: validated against their CRD's schema, vendored and trimmed under schemas/
# (schemas/README.md: source commit, what is kept), by test_cnpg_resources_match_their_schema, and by hand below.
CRD_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): Path(__file__).parent / "schemas" / "cnpg-cluster.json",
    ("postgresql.cnpg.io/v1", "Pooler"): Path(__file__).parent / "schemas" / "cnpg-pooler.json",
}
# The PostgreSQL cluster (k8s/base/postgres.yaml) and what CloudNativePG makes from it.
PG_CLUSTER = "postgres"
PG_POOLER = "postgres-pooler"
PG_DATABASE = "orders"
# The Secret CNPG creates for the database owner (<cluster>-app) and the keys the app pods read from it. Not in
# the build (the operator makes it in the cluster): container_env() resolves references to it with these values.
OPERATOR_SECRETS = {
    f"{PG_CLUSTER}-app": {
        "username": "orders",
        "password": "generated-by-cloudnative-pg",
        "host": f"{PG_CLUSTER}-rw",
        "port": "5432",
        "dbname": "orders",
        "uri": "postgresql://orders:generated-by-cloudnative-pg@postgres-rw.orders:5432/orders",
    }
}
# Processes that need a session on the primary (DATABASE_DIRECT_URL, CNPG's -rw Service): the relay's LISTEN, the
# setup Job's migrations. Everything else goes through the pooler only.
DIRECT_DB_PROCESSES = {"relay", "setup"}

# Environment variables the application reads (names are the contract with the app code).
APP_ENV = {
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "SECRET_TOKEN",
    "FLOWER_BASIC_AUTH",
    "RABBITMQ_MANAGEMENT_URL",
    "LOG_FORMAT",
    "ENRICHMENT_LATENCY_MS",
    "ENRICHMENT_FAILURE_RATE",
    "TASK_MAX_RETRIES",
    "PROMETHEUS_MULTIPROC_DIR",
    "WEB_CONCURRENCY",
    "ENRICHMENT_CONCURRENCY",
    "PROCESS_CONCURRENCY",
    "FINALIZE_CONCURRENCY",
    "REFUND_CONCURRENCY",
    "WEBHOOK_CONCURRENCY",
}
SECRET_ENV = {
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_TOKEN",
    "FLOWER_BASIC_AUTH",
    "RABBITMQ_MANAGEMENT_URL",
    "REDIS_URL",
    "REDIS_PASSWORD",
}


# --------------------------------------------------------------------------- helpers


def tool(name: str) -> str:
    """Path of a validator: the virtualenv's bin dir first, then PATH. Fails if missing."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"`{name}` not found in {VENV_BIN} nor on PATH. Install the dev requirements "
        f"(pip install -r requirements-dev.txt); kubectl must be installed by CI.",
        pytrace=False,
    )


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.fail(
            "kubectl is not on PATH: it is required to build the manifests with "
            "`kubectl kustomize` (CI installs it). Not skipping.",
            pytrace=False,
        )
    return found


def run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60)


@functools.cache
def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, command = line.partition(":")
        assert sep, f"malformed Procfile line: {line!r}"
        entries[key.strip()] = command.strip()
    return entries


_ENV_REF = re.compile(r"\$\{(\w+)(?::?[-=?+][^}]*)?\}|\$\((\w+)\)|\$(\w+)")


def normalize(command: str | list[str]) -> list[str]:
    """Tokens of a command, comparable across Procfile / Dockerfile / compose / Kubernetes.

    `sh -c "exec ..."` wrappers are unwrapped, and every env reference (`${X:-default}`,
    `$X`, `$(X)`) becomes `<$X>`: the variable name must match, the default need not.
    """
    if isinstance(command, list):
        if len(command) == 3 and command[0] in ("sh", "/bin/sh") and command[1] == "-c":
            command = command[2]
        else:
            return [_ENV_REF.sub(lambda m: f"<${next(g for g in m.groups() if g)}>", t) for t in command]
    tokens = shlex.split(command)
    if tokens and tokens[0] == "exec":
        tokens = tokens[1:]
    return [_ENV_REF.sub(lambda m: f"<${next(g for g in m.groups() if g)}>", t) for t in tokens]


def option(tokens: list[str], *names: str) -> str | None:
    for i, token in enumerate(tokens):
        for name in names:
            if token == name and i + 1 < len(tokens):
                return tokens[i + 1]
            if name.startswith("--") and token.startswith(name + "="):
                return token.split("=", 1)[1]
    return None


def duration_seconds(value: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", str(value))
    assert parts, f"not a compose duration: {value!r}"
    factor = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * factor[u] for n, u in parts)


# --------------------------------------------------------------------------- Procfile


# The Procfile's nginx in front of web and live (`make run`): compose runs nginx's own image (service `proxy`,
# test_compose_proxy_*), k8s the Ingress controller.
PROXY = "proxy"


def test_procfile_has_every_process():
    assert set(procfile()) == set(PROCESS_NAMES) | {PROXY}, (
        "Procfile processes changed: update PROCESS_NAMES here, docker-compose.yml and k8s/ "
        f"(Procfile has {sorted(procfile())})"
    )


def worker_queues(tokens: list[str]) -> list[str] | None:
    """The queues a `celery ... worker` command consumes (`-Q a,b`, `-Qa,b`, `--queues a,b`, `--queues=a,b`),
    None for a command that is not a Celery worker."""
    if tokens[:1] != ["celery"] or "worker" not in tokens:
        return None
    value = None
    for i, token in enumerate(tokens):
        if token in ("-Q", "--queues") and i + 1 < len(tokens):
            value = tokens[i + 1]
        elif token.startswith("--queues="):
            value = token.split("=", 1)[1]
        elif token.startswith("-Q") and len(token) > 2:
            value = token[2:]
    assert value, f"{' '.join(tokens)}: a worker without -Q consumes Celery's default queue only; name its queues"
    return [queue for queue in value.split(",") if queue]


def procfile_workers() -> dict[str, list[str]]:
    """{Procfile key: the queues it consumes} for every Celery worker of the Procfile."""
    workers = {key: worker_queues(normalize(command)) for key, command in procfile().items()}
    return {key: queues for key, queues in workers.items() if queues is not None}


def broker_topology() -> tuple[set[str], set[str]]:
    """The work queues `manage.py declare_topology` declares and the queues Celery routes tasks to, both
    from orders.topology (no Django settings: topology.py reads only orders/pipeline.py)."""
    from orders import topology

    declared = {queue.name for queue in topology.work_queues(1)}
    routed = {route["queue"] for route in topology.task_routes().values()}
    return declared, routed


def test_procfile_workers_consume_every_work_queue_and_only_those():
    """A stage whose queue no Procfile worker consumes would pile up its messages forever (and every
    deployment of the Procfile with it); a worker on a queue the topology does not declare would wait
    on a queue nothing routes to."""
    declared, routed = broker_topology()
    assert declared and routed <= declared, f"routes to undeclared queues: {sorted(routed - declared)}"
    consumed = {queue for queues in procfile_workers().values() for queue in queues}
    assert not declared - consumed, (
        f"work queues no Procfile worker consumes: {sorted(declared - consumed)} "
        "(add a worker_<stage> line, its compose service and k8s Deployment, and WORKERS here)"
    )
    assert not consumed - declared, (
        f"Procfile workers on queues the broker topology does not declare: {sorted(consumed - declared)}"
    )


def test_procfile_workers_are_the_workers_checked_here():
    """WORKERS drives the compose and Kubernetes worker checks (ping node, probes, metrics, network
    policies): it must name every Procfile worker, each on the one queue its node is named after."""
    expected = {}
    for key, queues in procfile_workers().items():
        assert len(queues) == 1, (
            f"{key}: one queue per worker (node name, probes and Deployment are per queue), not {queues}"
        )
        node = option(normalize(procfile()[key]), "-n", "--hostname")
        assert node == f"{queues[0]}@%h", f"{key}: node name {node!r}, expected {queues[0]}@%h"
        expected[PROCESS_NAMES[key]] = queues[0]
    assert expected == WORKERS, f"WORKERS {WORKERS} != the Procfile's workers {expected}"


# --------------------------------------------------------------------------- Dockerfile


@functools.cache
def dockerfile_stages() -> list[dict]:
    """[{'name', 'base', 'instructions': [(INSTR, args)]}] with continuations joined."""
    logical, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment line inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stages: list[dict] = []
    for line in logical:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append({"base": words[0], "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((instr, args.strip()))
    return stages


def _final_stage_args(instr: str) -> list[str]:
    return [a for i, a in dockerfile_stages()[-1]["instructions"] if i == instr]


def test_hadolint_passes():
    result = run([tool("hadolint"), "Dockerfile"])
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_hadolint_ignores_are_justified():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(ignore|global)", line):
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#") and "hadolint" not in previous and len(previous) > 10, (
                f"Dockerfile:{number + 1}: `{line.strip()}` needs a justification comment on the line above"
            )
    assert not (ROOT / ".hadolint.yaml").exists() and not (ROOT / ".hadolint.yml").exists(), (
        "rules must be ignored inline with a justification, not globally"
    )


def test_dockerfile_is_multistage_slim_with_wheels():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "expected a builder stage and a final stage"
    for stage in stages:
        assert stage["base"] == "python:3.11-slim", stage["base"]
    builder = " ".join(a for i, a in stages[0]["instructions"] if i == "RUN")
    assert "pip wheel" in builder and "-r requirements.lock" in builder and "--require-hashes" in builder
    final_runs = " ".join(_final_stage_args("RUN"))
    assert "--no-index" in final_runs and "from=builder" in final_runs, "final stage must install the builder's wheels"
    # the builder's wheels are checked against the lock's hashes again where they are installed
    assert "--require-hashes" in final_runs and "requirements.lock" in final_runs
    copied = [a for i, a in stages[0]["instructions"] if i == "COPY"]
    assert any(a.split()[0] == "requirements.lock" for a in copied) and not any("requirements.txt" in a for a in copied)
    assert "collectstatic --noinput" in final_runs and "DJANGO_SECRET_KEY=" in final_runs


def test_dockerfile_final_user_is_numeric_non_root():
    users = _final_stage_args("USER")
    assert users, "final stage has no USER instruction (would run as root)"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, (
        f"USER {users[-1]!r}: must be a numeric non-zero UID so Kubernetes can verify runAsNonRoot"
    )
    # the last USER must come after every RUN (nothing later runs as root)
    instrs = [i for i, _ in dockerfile_stages()[-1]["instructions"]]
    assert max(n for n, i in enumerate(instrs) if i == "USER") > max(n for n, i in enumerate(instrs) if i == "RUN")


def dockerfile_uid() -> int:
    return int(_final_stage_args("USER")[-1].split(":")[0])


def test_dockerfile_cmd_is_procfile_web():
    cmds = _final_stage_args("CMD")
    assert cmds, "no CMD in the final stage"
    cmd = json.loads(cmds[-1])  # exec (JSON) form: signals reach the server
    tokens = normalize(cmd)
    assert tokens[:2] == ["gunicorn", "orders_project.wsgi:application"], tokens
    assert tokens == normalize(procfile()["web"]), (tokens, normalize(procfile()["web"]))
    if cmd[0] in ("sh", "/bin/sh"):
        assert cmd[2].startswith("exec "), "use `sh -c 'exec ...'` so gunicorn is PID 1 and gets SIGTERM"


def test_dockerfile_exposes_web_and_live():
    exposed = {port for args in _final_stage_args("EXPOSE") for port in args.split()}
    assert {"8000", "8001"} <= exposed, exposed


def dockerfile_env() -> dict[str, str]:
    env = {}
    for args in _final_stage_args("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def test_dockerfile_collectstatic_builds_what_whitenoise_serves(tmp_path):
    """The image's collectstatic step with the image's settings (manifest storage, build-time dummies),
    then the page through the WSGI app: hashed, compressed, cached for good. A static file the manifest
    storage cannot post-process (a missing source map, say) fails here, not in `docker build`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "SECRET_"))}
    env.update(dockerfile_env())
    assert env.get("DJANGO_STATIC_MANIFEST") == "true", "the image must collect for the manifest storage"
    build_run = next(a for a in _final_stage_args("RUN") if "collectstatic" in a)
    words = shlex.split(build_run.split("python manage.py collectstatic")[0])  # VAR=value ... [env -u VAR]
    while words:
        word = words.pop(0)
        if "=" in word:
            env.update([word.split("=", 1)])
        elif word == "-u":
            env.pop(words.pop(0), None)
    (tmp_path / "image_settings.py").write_text(
        f"from {env['DJANGO_SETTINGS_MODULE']} import *  # noqa\nSTATIC_ROOT = {str(tmp_path / 'static')!r}\n"
    )
    env.update(DJANGO_SETTINGS_MODULE="image_settings", PYTHONPATH=f"{tmp_path}:{ROOT}")
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stdout + collect.stderr
    serve = subprocess.run(
        [sys.executable, "-c", IMAGE_STATIC_CHECK], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert serve.returncode == 0, serve.stdout + serve.stderr
    served = json.loads(serve.stdout.splitlines()[-1])
    entry = served[0]["url"]
    assert re.fullmatch(r"/static/orders/live/main\.[0-9a-f]{12}\.js", entry), entry
    # The entry's ES module imports, and theirs, name hashed files too (orders_project/storage.py):
    # every module of the page is cached for good, and one page never mixes two builds' modules.
    assert len(served) > 1, served
    for module in served:
        assert re.fullmatch(r"/static/orders/live/\w+\.[0-9a-f]{12}\.js", module["url"]), module
        assert (module["status"], module["encoding"]) == (200, "gzip"), module
        assert "immutable" in module["cache_control"] and "max-age=315360000" in module["cache_control"], module


# The page's module script, then every module it imports, as the browser would fetch them.
IMAGE_STATIC_CHECK = """
import json, posixpath, re, django
django.setup()
from django.test import Client
client = Client()
page = client.get("/", HTTP_HOST="localhost").content.decode()
queue = [re.search(r'<script type="module" src="(/static/orders/live/[^"]+)"', page).group(1)]
served = []
while queue:
    url = queue.pop(0)
    if any(m["url"] == url for m in served):
        continue
    response = client.get(url, HTTP_HOST="localhost", HTTP_ACCEPT_ENCODING="gzip")
    plain = b"".join(client.get(url, HTTP_HOST="localhost").streaming_content).decode()
    served.append({"url": url, "status": response.status_code, "encoding": response.get("Content-Encoding"),
                   "cache_control": response["Cache-Control"].replace(" ", "")})
    for target in re.findall(r'^import [^;]*? from "([^"]+)";', plain, re.M):
        queue.append(posixpath.normpath(posixpath.join(posixpath.dirname(url), target)))
print(json.dumps(served))
"""


def test_dockerfile_healthcheck_uses_python_urllib():
    checks = _final_stage_args("HEALTHCHECK")
    assert checks, "no HEALTHCHECK in the final stage"
    assert "urllib" in checks[-1] and "http://127.0.0.1:8000/healthz" in checks[-1]
    assert "curl" not in checks[-1] and "wget" not in checks[-1], "slim has neither curl nor wget"


def test_dockerignore_keeps_secrets_and_venv_out():
    entries = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for needed in (".git", ".venv", ".env"):
        assert needed in entries, f".dockerignore must exclude {needed}"


# Development-only code (needs the dev requirements, e.g. psutil): out of the image, and never imported by it.
DEV_ONLY = ("devtools", "bench", "chaos", "e2e", "tests")
RUNTIME_PACKAGES = ("core", "orders", "clients", "enrichment", "orders_project")


def dockerignored(path: str) -> bool:
    """Whether `path` (relative to the build context) is left out of it by .dockerignore, as Docker
    reads it: the last pattern that matches the path or one of its parent directories wins, `!`
    re-includes, `*` and `?` stay within a path segment, `**` spans any number of them."""

    def regex(pattern: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
                i += 1
        return re.compile(out)

    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        if any(regex(pattern).fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_image_build_context_leaves_the_dev_only_code_out():
    # `COPY . .` in the final stage: what the context holds is what the image holds
    assert "COPY . ." in [f"COPY {a}" for a in _final_stage_args("COPY")]
    for name in DEV_ONLY:
        assert (ROOT / name).is_dir(), name
        assert dockerignored(name), f".dockerignore must exclude {name}/"
        for path in (ROOT / name).rglob("*.py"):
            assert dockerignored(str(path.relative_to(ROOT))), path
    for needed in (
        "manage.py",
        "requirements.lock",
        *RUNTIME_PACKAGES,
        "orders_project/settings.py",
        "orders/templates",
    ):
        assert not dockerignored(needed), f"the image needs {needed}"
    assert "psutil" not in lock_entries("requirements.lock"), (
        "psutil is a dev requirement: the runtime must not need it"
    )


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a module (`import a.b`, `from a.b import c`), and of the
    dotted module paths in its strings (INSTALLED_APPS, ROOT_URLCONF, import_module arguments)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"\w+(\.\w+)+", node.value)
        ):
            names.add(node.value.split(".")[0])
    return names


def test_no_runtime_module_imports_dev_only_code():
    forbidden = {*DEV_ONLY, "psutil"}
    found = {}
    for package in RUNTIME_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "tests" in path.relative_to(ROOT).parts:
                continue  # an app's tests run under pytest with the dev lock, never in the runtime
            hits = _imported_modules(path) & forbidden
            if hits:
                found[str(path.relative_to(ROOT))] = sorted(hits)
    assert not found, f"runtime modules import development-only code (not in the image): {found}"
    assert "psutil" in _imported_modules(ROOT / "devtools" / "procs.py")  # the scan sees imports inside functions too


# --------------------------------------------------------------------------- compose


@functools.cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


APP_SERVICES = ["setup", *PROCESS_NAMES.values()]
INFRA_SERVICES = ["postgres", "rabbitmq", "redis"]


def compose_command(service: str) -> list[str]:
    command = compose()["services"][service]["command"]
    # `$$` is compose's escape for a literal `$` (expanded by the container's shell)
    if isinstance(command, list):
        return [c.replace("$$", "$") for c in command]
    return command.replace("$$", "$")


def test_compose_validates_against_compose_spec():
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"])
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_compose_has_all_services():
    services = compose()["services"]
    missing = set(APP_SERVICES + INFRA_SERVICES) - set(services)
    assert not missing, f"missing compose services: {sorted(missing)}"


def test_compose_app_services_share_one_image_built_once():
    services = compose()["services"]
    images = {name: services[name].get("image") for name in APP_SERVICES}
    assert set(images.values()) == {f"{APP_IMAGE}:latest"}, images
    builders = [name for name, svc in services.items() if "build" in svc]
    assert len(builders) == 1, f"the image must be built by exactly one service, not {builders}"
    build = services[builders[0]]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert context in (".", "./"), build
    if isinstance(build, dict):
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"


def test_compose_infra_images_and_healthchecks():
    services = compose()["services"]
    assert services["postgres"]["image"].split(":")[1].startswith("16")
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["rabbitmq"]["healthcheck"]["test"][-3:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    volumes = compose().get("volumes", {})
    for svc, path in (("postgres", "/var/lib/postgresql/data"), ("rabbitmq", "/var/lib/rabbitmq")):
        mounts = services[svc].get("volumes", [])
        named = [m.split(":")[0] for m in mounts if isinstance(m, str) and m.split(":")[1] == path]
        assert named and named[0] in volumes, f"{svc} needs a named volume on {path}"


def test_compose_setup_job():
    setup = compose()["services"]["setup"]
    command = compose_command("setup")
    script = command[2] if isinstance(command, list) else command
    assert [part.strip() for part in script.split("&&")] == SETUP_COMMANDS
    assert setup.get("restart") == "no"
    for infra in INFRA_SERVICES:
        assert setup["depends_on"][infra]["condition"] == "service_healthy"


@pytest.mark.parametrize("key", sorted(PROCESS_NAMES))
def test_compose_commands_match_procfile(key):
    service = PROCESS_NAMES[key]
    assert normalize(compose_command(service)) == normalize(procfile()[key])


@pytest.mark.parametrize("service", list(PROCESS_NAMES.values()))
def test_compose_app_service_wiring(service):
    svc = compose()["services"][service]
    env_files = svc.get("env_file")
    env_files = [env_files] if isinstance(env_files, (str, dict)) else env_files
    assert [e if isinstance(e, str) else e["path"] for e in env_files] == [".env"]
    deps = svc["depends_on"]
    assert deps["setup"]["condition"] == "service_completed_successfully"
    for infra in INFRA_SERVICES:
        assert deps[infra]["condition"] == "service_healthy", (service, infra)
    health = svc.get("healthcheck")
    assert health and not health.get("disable") and health.get("test"), f"{service} needs a healthcheck"
    assert duration_seconds(svc["stop_grace_period"]) >= 30, f"{service}: stop_grace_period"


@pytest.mark.parametrize("service,node", sorted(WORKERS.items()))
def test_compose_worker_healthcheck_pings_own_node(service, node):
    svc = compose()["services"][service]
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    ping = shlex.split(test[1])
    assert ping[:5] == ["celery", "-A", "orders_project", "inspect", "ping"], ping
    assert option(ping, "-d", "--destination") == f"{node}@$$HOSTNAME"
    worker_node = option(normalize(compose_command(service)), "-n", "--hostname")
    assert worker_node == f"{node}@%h", "the ping destination must be the worker's node name"
    assert duration_seconds(svc["stop_grace_period"]) >= 60
    assert svc["environment"]["METRICS_PORT"] == "9100"


def test_compose_runs_no_worker_outside_the_procfile():
    services = compose()["services"]
    runners = {
        name
        for name, svc in services.items()
        if "command" in svc and worker_queues(normalize(compose_command(name))) is not None
    }
    assert runners == set(WORKERS), f"compose's Celery workers {sorted(runners)} != the Procfile's {sorted(WORKERS)}"


def test_compose_publishes_web_and_live_only_through_the_proxy():
    """nginx (deploy/nginx/orders.conf.template, the file `make run`'s proxy renders too) is the one published
    port of the API and the page; web and live are reachable only inside compose's network."""
    services = compose()["services"]
    proxy = services[PROXY]
    assert proxy["image"].startswith("nginx:") and ":latest" not in proxy["image"]
    assert [v.split(":")[:2] for v in proxy["volumes"]] == [
        ["./deploy/nginx/orders.conf.template", "/etc/nginx/templates/default.conf.template"]
    ]
    (published,) = proxy["ports"]
    assert published.endswith(f":{proxy['environment']['PROXY_PORT']}")
    assert proxy["environment"]["PROXY_WEB_UPSTREAM"] == "web:8000"
    assert proxy["environment"]["PROXY_LIVE_UPSTREAM"] == "live:8001"
    # every ${PROXY_*} of the template is set (nginx's image leaves an unset one in the file: nginx would fail)
    template = (ROOT / "deploy/nginx/orders.conf.template").read_text()
    assert set(re.findall(r"\$\{(PROXY_\w+)\}", template)) == set(proxy["environment"])
    for name in ("web", "live"):
        assert "ports" not in services[name], f"{name} is published: clients must come through the proxy"
        assert proxy["depends_on"][name]["condition"] == "service_healthy"
    # the page opens its socket on its own origin (the proxy routes /ws/ to live); web counts nginx's address
    assert "LIVE_WS_PORT" not in services["web"].get("environment", {})
    assert services["web"]["environment"]["NUM_PROXIES"] == "1"
    # uvicorn takes WEB_CONCURRENCY (.env, sized for web's gunicorn) as its --workers default
    assert services["live"]["environment"]["WEB_CONCURRENCY"] == "1"


def test_compose_web_flower_heartbeat_healthchecks():
    services = compose()["services"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8001/healthz" in " ".join(services["live"]["healthcheck"]["test"])
    assert "http://127.0.0.1:5555/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    for name in HEARTBEAT_PROCESSES:
        assert services[name]["healthcheck"]["test"] == ["CMD", *HEARTBEAT_PROBE]


def test_env_example_lists_every_app_variable():
    text = (ROOT / "deploy" / "env.example").read_text()
    names = {
        line.split("=", 1)[0].strip() for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#")
    }
    missing = APP_ENV - names
    assert not missing, f"deploy/env.example lacks {sorted(missing)}"
    values = [line.split("=", 1)[1] for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#")]
    assert not [v for v in values if "$" in v], "no `$` in env values (compose interpolates env files)"


# --------------------------------------------------------------------------- Kubernetes


@functools.cache
def kustomize_build(directory: str) -> str:
    result = run([kubectl(), "kustomize", directory])
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return result.stdout


@functools.cache
def manifests(directory: str) -> tuple[dict, ...]:
    return tuple(doc for doc in yaml.safe_load_all(kustomize_build(directory)) if doc)


def objects(directory: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in manifests(directory) if o["kind"] == kind}


def workloads(directory: str) -> dict[str, dict]:
    return {**objects(directory, "Deployment"), **objects(directory, "StatefulSet")}


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def main_container(obj: dict) -> dict:
    containers = pod_spec(obj)["containers"]
    assert len(containers) == 1, f"{obj['metadata']['name']}: expected one container"
    return containers[0]


def is_app(obj: dict) -> bool:
    return any(c["image"].split(":")[0] == APP_IMAGE for c in pod_spec(obj)["containers"])


def config_data(directory: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """ConfigMaps and Secrets of a build as {name: {key: decoded value}}."""
    configmaps = {n: dict(o.get("data", {})) for n, o in objects(directory, "ConfigMap").items()}
    secrets = {}
    for name, obj in objects(directory, "Secret").items():
        values = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        values.update(obj.get("stringData", {}))
        secrets[name] = values
    return configmaps, secrets


def container_env(directory: str, container: dict) -> dict[str, str | None]:
    """Every env var a container gets (env + envFrom), value when statically known."""
    configmaps, secrets = config_data(directory)
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in configmaps, f"envFrom references a missing ConfigMap {name}"
            env.update(configmaps[name])
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            assert name in secrets, f"envFrom references a missing Secret {name}"
            env.update(secrets[name])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            assert key_ref["key"] in configmaps.get(key_ref["name"], {}), f"missing {key_ref}"
            env[item["name"]] = configmaps[key_ref["name"]][key_ref["key"]]
        elif "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            known = {**OPERATOR_SECRETS, **secrets}
            assert key_ref["key"] in known.get(key_ref["name"], {}), f"missing {key_ref}"
            env[item["name"]] = known[key_ref["name"]][key_ref["key"]]
        else:
            env[item["name"]] = item.get("value")
    return env


_VAR_REF = re.compile(r"\$\((\w+)\)")


def expanded_env(directory: str, container: dict) -> dict[str, str | None]:
    """container_env with the kubelet's $(VAR) expansion applied to `env` values: a reference resolves only to a
    variable defined before it (envFrom, or an earlier `env` item); an unresolved one stays as written."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(container_env(directory, {"envFrom": [source]}))
    for item in container.get("env", []):
        value = container_env(directory, {"env": [item]})[item["name"]]
        if "value" in item and value is not None:
            value = _VAR_REF.sub(lambda m: env[m.group(1)] if env.get(m.group(1)) is not None else m.group(0), value)
        env[item["name"]] = value
    return env


def named_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_kubernetes_validate_strict(directory):
    """Every built-in kind validates strictly; unknown kinds are only the allowed CRDs.

    kubernetes-validate prints `WARN - Couldn't find schema for kind X ...` and still exits 0
    for a kind it has no schema for -- a typo in a built-in kind would pass silently. So the
    output is parsed: each built-in object must have its own `passed` line.
    """
    build = kustomize_build(directory)
    result = run([tool("kubernetes-validate"), "-k", K8S_VERSION, "--strict", "-"], stdin=build)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"kubernetes-validate failed for {directory}:\n{output}"
    assert "ERROR" not in output, output

    unknown = set(re.findall(r"Couldn't find schema for kind (\S+) with api version (\S+)", output))
    unknown = {(api, kind) for kind, api in unknown}
    checked_elsewhere = CRDS_CHECKED_BY_HAND | set(CRD_SCHEMAS)
    assert unknown <= checked_elsewhere, f"kinds without a schema (typo or unchecked CRD): {unknown}"
    other_warnings = [line for line in output.splitlines() if "WARN" in line and "Couldn't find schema" not in line]
    assert not other_warnings, other_warnings

    passed = set(re.findall(r"passed for resource (\S+) against version", output))
    for obj in manifests(directory):
        if (obj["apiVersion"], obj["kind"]) in checked_elsewhere:
            continue
        ident = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        assert ident in passed, f"{ident} was not validated:\n{output}"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_keda_scaled_object(directory):
    """Hand check of the ScaledObject (kubernetes-validate has no keda.sh schema)."""
    scaled = objects(directory, "ScaledObject")
    assert list(scaled) == ["worker-enrichment"], list(scaled)
    obj = scaled["worker-enrichment"]
    assert obj["apiVersion"] == "keda.sh/v1alpha1"
    assert obj["metadata"]["namespace"] == NAMESPACE
    spec = obj["spec"]
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target.get("apiVersion", "apps/v1") == "apps/v1"
    deployment = objects(directory, "Deployment").get(target["name"])
    assert deployment is not None, f"scaleTargetRef {target['name']} is not a Deployment of this build"
    container = main_container(deployment)
    assert option(normalize(container["command"]), "-Q") == "enrichment", "target must consume the enrichment queue"
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; drop spec.replicas"

    assert 0 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]
    triggers = spec["triggers"]
    assert [t["type"] for t in triggers] == ["rabbitmq"]
    meta = triggers[0]["metadata"]
    assert meta["queueName"] == "enrichment"
    assert meta.get("mode") in ("QueueLength", "MessageRate")
    assert float(meta["value"]) > 0 and isinstance(meta["value"], str), "KEDA metadata values are strings"
    assert "host" not in meta, "no credentials inline: use hostFromEnv"
    env = container_env(directory, container)
    assert meta["hostFromEnv"] in env, f"{meta['hostFromEnv']} is not set on the target container"
    scheme = "amqp" if meta.get("protocol", "auto") in ("amqp", "auto") else "http"
    assert env[meta["hostFromEnv"]].startswith(scheme), f"hostFromEnv must hold an {scheme} URL"

    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in objects(directory, "HorizontalPodAutoscaler").values()}
    assert target["name"] not in hpa_targets, "KEDA creates its own HPA; a second one would fight it"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_every_object_in_namespace(directory):
    for obj in manifests(directory):
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_workloads_have_probes_resources_and_non_root(directory):
    services = objects(directory, "Service")
    for name, obj in workloads(directory).items():
        spec = pod_spec(obj)
        labels = obj["spec"]["template"]["metadata"]["labels"]
        served = any(
            svc["spec"].get("selector") and svc["spec"]["selector"].items() <= labels.items()
            for svc in services.values()
        )
        for container in spec.get("initContainers", []) + spec["containers"]:
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}/{container['name']}: {kind}"
        for container in spec["containers"]:
            assert "livenessProbe" in container, f"{name}/{container['name']} has no livenessProbe"
            if served:  # behind a Service: must only get traffic when ready
                assert "readinessProbe" in container, f"{name}/{container['name']} has no readinessProbe"
        pod_sc = spec.get("securityContext", {})
        for container in spec.get("initContainers", []) + spec["containers"]:
            non_root = container.get("securityContext", {}).get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            assert non_root is True, f"{name}/{container['name']}: runAsNonRoot"
        if is_app(obj):
            assert pod_sc.get("runAsUser") == dockerfile_uid(), f"{name}: runAsUser must be the Dockerfile UID"
            # Service links would inject e.g. FLOWER_PORT=tcp://... and break `--port=${FLOWER_PORT}`.
            assert spec.get("enableServiceLinks") is False, f"{name}: enableServiceLinks must be false"
            for container in spec["containers"]:
                assert container["image"].split(":")[0] == APP_IMAGE


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
@pytest.mark.parametrize("key", sorted(PROCESS_NAMES))
def test_k8s_commands_match_procfile(directory, key):
    deployment = objects(directory, "Deployment").get(PROCESS_NAMES[key])
    assert deployment is not None, f"no Deployment {PROCESS_NAMES[key]} for Procfile process {key}"
    container = main_container(deployment)
    assert "args" not in container
    assert normalize(container["command"]) == normalize(procfile()[key])


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_app_env_complete(directory):
    configmaps, _secrets = config_data(directory)
    for name, obj in workloads(directory).items():
        if not is_app(obj):
            continue
        env = container_env(directory, main_container(obj))
        missing = APP_ENV - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
    for cm_name, data in configmaps.items():
        leaked = SECRET_ENV & set(data)
        assert not leaked, f"secrets in ConfigMap {cm_name}: {leaked}"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_prometheus_multiproc_dir_exists_where_used(directory):
    """prometheus_client fails on a missing PROMETHEUS_MULTIPROC_DIR; /tmp is an emptyDir that
    hides the image's /tmp/prometheus, so each app container mounts one where it points. An empty value
    does not turn multiprocess mode off (prometheus_client only asks whether the variable exists): the
    files would go to the working directory, on the read-only root filesystem."""
    pods = {**workloads(directory), **objects(directory, "Job")}
    for name, obj in pods.items():
        if not is_app(obj):
            continue
        spec = pod_spec(obj)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            env = container_env(directory, container)
            if "PROMETHEUS_MULTIPROC_DIR" not in env:
                continue
            directory_value = env["PROMETHEUS_MULTIPROC_DIR"]
            assert directory_value, (
                f"{name}/{container['name']}: an empty PROMETHEUS_MULTIPROC_DIR means the working directory"
            )
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert directory_value in mounts, f"{name}/{container['name']}: no volume on {directory_value}"
            assert "emptyDir" in volumes[mounts[directory_value]], f"{name}/{container['name']}: not an emptyDir"


def test_dev_overlay_replaces_placeholder_secrets():
    _, secrets = config_data("k8s/overlays/dev")
    assert len(secrets) >= 2, "orders-secrets and rabbitmq-erlang-cookie"
    for name, values in secrets.items():
        for key, value in values.items():
            assert "REPLACE-ME" not in value, f"dev overlay still uses the base placeholder for {name}.{key}"
    values = next(v for v in secrets.values() if "REDIS_URL" in v)  # orders-secrets (hashed name)
    assert f":{values['REDIS_PASSWORD']}@" in values["REDIS_URL"], "REDIS_URL password != REDIS_PASSWORD"
    # the database's credentials are CloudNativePG's (Secret postgres-app), never committed in an overlay
    assert not {"DATABASE_URL", "DATABASE_DIRECT_URL", "POSTGRES_PASSWORD"} & set(values), sorted(values)
    for url in ("CELERY_BROKER_URL", "RABBITMQ_MANAGEMENT_URL", "RABBITMQ_SERVICE_URL"):
        for one in values[url].split(";"):
            assert f":{values['RABBITMQ_DEFAULT_PASS']}@" in one, f"{url} password != RABBITMQ_DEFAULT_PASS"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_workers(directory):
    deployments = objects(directory, "Deployment")
    for name, queue in WORKERS.items():
        obj = deployments[name]
        spec = pod_spec(obj)
        container = main_container(obj)
        assert spec["terminationGracePeriodSeconds"] >= 120, f"{name}: warm shutdown needs >= 120 s"
        tokens = normalize(container["command"])
        assert option(tokens, "-Q") == queue
        assert option(tokens, "-n", "--hostname") == f"{queue}@%h"
        for probe_name in ("livenessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if probe is None and probe_name == "startupProbe":
                continue
            command = probe["exec"]["command"]
            assert command[:2] == ["sh", "-c"], f"{name}: the probe needs a shell to expand $HOSTNAME"
            ping = shlex.split(command[2])
            ping = ping[1:] if ping[0] == "exec" else ping
            assert ping[:5] == ["celery", "-A", "orders_project", "inspect", "ping"], ping
            # $(HOSTNAME) inside `sh -c` is a command substitution, and kubelet does not
            # expand $(VAR) in probes for runtime-provided variables: use ${HOSTNAME}.
            assert option(ping, "-d", "--destination") in (f"{queue}@${{HOSTNAME}}", f"{queue}@$HOSTNAME")
            assert probe["timeoutSeconds"] >= 10, f"{name}: celery inspect needs time to start"
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true"
        assert annotations.get("prometheus.io/port") == "9100"
        env = container_env(directory, container)
        assert env.get("METRICS_PORT") == "9100"
        assert 9100 in [p["containerPort"] for p in container.get("ports", [])]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        multiproc = env["PROMETHEUS_MULTIPROC_DIR"]
        assert multiproc in mounts and "emptyDir" in volumes[mounts[multiproc]], f"{name}: {multiproc} emptyDir"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_runs_no_worker_outside_the_procfile(directory):
    runners = {
        name
        for name, obj in workloads(directory).items()
        if any(worker_queues(normalize(c.get("command", []))) is not None for c in pod_spec(obj)["containers"])
    }
    assert runners == set(WORKERS), (
        f"{directory}: Celery worker Deployments {sorted(runners)} != the Procfile's {sorted(WORKERS)}"
    )


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_heartbeat_processes(directory):
    deployments = objects(directory, "Deployment")
    for name in HEARTBEAT_PROCESSES:
        container = main_container(deployments[name])
        assert container["livenessProbe"]["exec"]["command"] == HEARTBEAT_PROBE
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{name}: /tmp/heartbeat needs a writable /tmp"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_web_and_flower(directory):
    deployments = objects(directory, "Deployment")
    web = deployments["web"]
    container = main_container(web)
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and live["path"] == "/healthz"
    assert named_port(container, ready["port"]) == named_port(container, live["port"]) == 8000
    # kubelet sends Host: <pod IP>; the pinned Host must be allowed by Django
    env = container_env(directory, container)
    allowed = env["DJANGO_ALLOWED_HOSTS"].split(",")
    for probe in (ready, live):
        hosts = [h["value"] for h in probe.get("httpHeaders", []) if h["name"].lower() == "host"]
        assert hosts and hosts[0] in allowed, "probe Host header must be in DJANGO_ALLOWED_HOSTS"
    annotations = web["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000" and annotations["prometheus.io/path"] == "/metrics"
    multiproc = env["PROMETHEUS_MULTIPROC_DIR"]
    assert multiproc in {m["mountPath"] for m in container["volumeMounts"]}

    flower = main_container(deployments["flower"])
    for probe in ("readinessProbe", "livenessProbe"):
        get = flower[probe]["httpGet"]
        assert get["path"] == "/healthcheck" and named_port(flower, get["port"]) == 5555


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_live_probes_its_own_port(directory):
    live = main_container(objects(directory, "Deployment")["live"])
    port = int(option(normalize(procfile()["live"]), "--port").replace("<$LIVE_PORT>", "8001"))
    ready, alive = live["readinessProbe"]["httpGet"], live["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and alive["path"] == "/healthz"
    assert named_port(live, ready["port"]) == named_port(live, alive["port"]) == port
    allowed = container_env(directory, live)["DJANGO_ALLOWED_HOSTS"].split(",")
    for probe in (ready, alive):
        hosts = [h["value"] for h in probe.get("httpHeaders", []) if h["name"].lower() == "host"]
        assert hosts and hosts[0] in allowed, "probe Host header must be in DJANGO_ALLOWED_HOSTS"


def gunicorn_default(name: str) -> int:
    """A default of orders_project/gunicorn_conf.py, e.g. WEB_GRACEFUL_TIMEOUT -> 20."""
    text = (ROOT / "orders_project" / "gunicorn_conf.py").read_text()
    return int(re.search(rf'"{name}", "(\d+)"', text).group(1))


def prestop_seconds(container: dict) -> float:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return float(command[1]) if command[:1] == ["sleep"] else 0.0


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_termination_grace_covers_graceful_shutdown(directory):
    """SIGKILL must not cut the servers' drain short: preStop + graceful timeout <= grace period, and
    not far above it either (a rollout waits that long for a stuck pod)."""
    deployments = objects(directory, "Deployment")
    web, live = main_container(deployments["web"]), main_container(deployments["live"])
    web_env = container_env(directory, web)
    drains = {
        "web": prestop_seconds(web)
        + int(web_env.get("WEB_GRACEFUL_TIMEOUT") or gunicorn_default("WEB_GRACEFUL_TIMEOUT")),
        "live": prestop_seconds(live) + int(option(normalize(live["command"]), "--timeout-graceful-shutdown")),
    }
    for name, drain in drains.items():
        grace = pod_spec(deployments[name])["terminationGracePeriodSeconds"]
        assert drain < grace <= drain + 15, f"{name}: terminationGracePeriodSeconds {grace} for a {drain:g} s drain"


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if str(quantity).endswith("m") else float(quantity)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_web_concurrency_fits_the_cpu_limit(directory):
    deployments = objects(directory, "Deployment")
    web = main_container(deployments["web"])
    cores = cpu_cores(web["resources"]["limits"]["cpu"])
    workers = int(container_env(directory, web)["WEB_CONCURRENCY"])
    assert workers == int(2 * cores + 1), f"web: {workers} gunicorn workers for a {cores:g}-CPU limit (2 x CPU + 1)"
    # uvicorn takes WEB_CONCURRENCY as its --workers default: live pins one process per pod
    assert container_env(directory, main_container(deployments["live"]))["WEB_CONCURRENCY"] == "1"


def ingress_backend(rule: dict, request_path: str) -> dict:
    """The backend Kubernetes picks for a path: the longest matching path (Prefix matches whole
    path elements: /ws/ matches /ws/orders, not /wsx)."""

    def matches(path: dict) -> bool:
        if path["pathType"] == "Exact":
            return request_path == path["path"]
        prefix = [e for e in path["path"].split("/") if e]
        return [e for e in request_path.split("/") if e][: len(prefix)] == prefix

    candidates = [p for p in rule["http"]["paths"] if matches(p)]
    assert candidates, f"no Ingress path matches {request_path}"
    return max(candidates, key=lambda p: (len(p["path"].rstrip("/")), p["pathType"] == "Exact"))["backend"]


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
@pytest.mark.parametrize(
    "request_path,process",
    [
        ("/ws/orders", "live"),
        ("/ws/orders/", "live"),
        ("/", "web"),
        ("/orders", "web"),
        ("/orders/3f1c", "web"),
        ("/static/orders/live/main.js", "web"),
        ("/admin/", "web"),
        ("/healthz", "web"),
        ("/wsx", "web"),
    ],
)
def test_ingress_routes_the_socket_to_live_and_the_rest_to_web(directory, request_path, process):
    """One host: /ws/ reaches the Procfile's `live` (uvicorn), everything else its `web` (gunicorn),
    through a Service whose port leads to the port that process listens on."""
    ingresses = objects(directory, "Ingress")
    assert len(ingresses) == 1, list(ingresses)
    ingress = next(iter(ingresses.values()))
    assert ingress["spec"].get("ingressClassName") == "nginx"
    rules = ingress["spec"]["rules"]
    assert len(rules) == 1 and rules[0].get("host"), "one host for the page, the API and the socket"
    backend = ingress_backend(rules[0], request_path)["service"]
    service = objects(directory, "Service")[backend["name"]]
    port = next(
        p
        for p in service["spec"]["ports"]
        if p.get("name") == backend["port"].get("name") or p["port"] == backend["port"].get("number")
    )
    deployment = next(
        d
        for d in objects(directory, "Deployment").values()
        if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    )
    container = main_container(deployment)
    assert normalize(container["command"]) == normalize(procfile()[process]), (
        f"{request_path} reaches {deployment['metadata']['name']}"
    )
    listen = {"web": "8000", "live": "8001"}[process]
    command = " ".join(normalize(procfile()[process]))
    assert listen in procfile()[process], command
    assert named_port(container, port.get("targetPort", port["port"])) == int(listen)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_ingress_host_is_allowed_and_the_socket_same_origin(directory):
    ingress = next(iter(objects(directory, "Ingress").values()))
    host = ingress["spec"]["rules"][0]["host"]
    annotations = ingress["metadata"].get("annotations", {})
    # ingress-nginx closes a socket idle for proxy-read-timeout (default 60 s)
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 300
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 300
    deployments = objects(directory, "Deployment")
    for name in ("web", "live"):
        env = container_env(directory, main_container(deployments[name]))
        # web serves the page under that Host; live checks the page's Origin against the same list
        assert host in env["DJANGO_ALLOWED_HOSTS"].split(","), f"{name}: {host} not in DJANGO_ALLOWED_HOSTS"
        # behind the Ingress the page opens its socket on its own origin
        assert not env.get("LIVE_WS_PORT"), f"{name}: LIVE_WS_PORT must stay empty behind the Ingress"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
@pytest.mark.parametrize("name", ["web", "live"])
def test_k8s_pdb_and_hpa_target_web_and_live(directory, name):
    deployment = objects(directory, "Deployment")[name]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdbs = objects(directory, "PodDisruptionBudget")
    assert name in pdbs, f"no PodDisruptionBudget for {name}"
    pdb = pdbs[name]
    assert pdb["apiVersion"] == "policy/v1"
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), f"PDB does not select the {name} pods"
    assert selector.items() <= deployment["spec"]["selector"]["matchLabels"].items()
    hpas = objects(directory, "HorizontalPodAutoscaler")
    assert name in hpas
    hpa = hpas[name]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], f"the HPA owns {name}'s replica count; drop spec.replicas"
    container = main_container(deployment)
    assert "cpu" in container["resources"]["requests"], "CPU utilization HPA needs a CPU request"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_every_pdb_selects_a_workload(directory):
    pods = workloads(directory).values()  # Deployments and StatefulSets (rabbitmq's PDB)
    for name, pdb in objects(directory, "PodDisruptionBudget").items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in pods), name


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_statefulsets_and_setup_job(directory):
    statefulsets = objects(directory, "StatefulSet")
    services = objects(directory, "Service")
    # PostgreSQL is CloudNativePG's Cluster now (test_cnpg_*): no StatefulSet or Service of ours for it
    assert set(statefulsets) == {"rabbitmq"}, sorted(statefulsets)
    assert PG_CLUSTER not in services and PG_CLUSTER not in workloads(directory)
    sts = statefulsets["rabbitmq"]
    assert sts["spec"]["volumeClaimTemplates"], "rabbitmq: volumeClaimTemplates"
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"].get("clusterIP") == "None", "rabbitmq: governing Service must be headless"
    assert main_container(sts)["image"] == "rabbitmq:3.13-management"
    assert "redis" in {**objects(directory, "Deployment"), **statefulsets}

    jobs = objects(directory, "Job")
    assert "setup" in jobs
    container = main_container(jobs["setup"])
    assert container["image"].split(":")[0] == APP_IMAGE
    assert container["command"][:2] == ["sh", "-c"]
    assert [part.strip() for part in container["command"][2].split("&&")] == SETUP_COMMANDS
    assert container.get("resources", {}).get("limits"), "setup Job needs resources"
    assert pod_spec(jobs["setup"])["securityContext"]["runAsNonRoot"] is True


# --------------------------------------------------------------------------- RabbitMQ cluster

RABBITMQ_REPLICAS = 3
CLUSTER_DOMAIN = "svc.cluster.local"


def rabbitmq_statefulset(directory: str) -> dict:
    return objects(directory, "StatefulSet")["rabbitmq"]


def rabbitmq_pod_labels(directory: str) -> dict:
    return rabbitmq_statefulset(directory)["spec"]["template"]["metadata"]["labels"]


def rabbitmq_headless(directory: str) -> dict:
    return objects(directory, "Service")[rabbitmq_statefulset(directory)["spec"]["serviceName"]]


def rabbitmq_hostname_suffix(directory: str) -> str:
    """`.<headless>.<namespace>.svc.cluster.local`: what follows a pod's name in its stable DNS name."""
    return f".{rabbitmq_headless(directory)['metadata']['name']}.{NAMESPACE}.{CLUSTER_DOMAIN}"


def rabbitmq_node_hosts(directory: str) -> set[str]:
    replicas = rabbitmq_statefulset(directory)["spec"]["replicas"]
    return {f"rabbitmq-{i}{rabbitmq_hostname_suffix(directory)}" for i in range(replicas)}


def rabbitmq_mounted_files(directory: str) -> dict[str, str]:
    """{mount path: content} of the ConfigMap files the rabbitmq container mounts."""
    sts = rabbitmq_statefulset(directory)
    volumes = {v["name"]: v for v in pod_spec(sts).get("volumes", [])}
    configmaps, _ = config_data(directory)
    files = {}
    for mount in main_container(sts).get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "configMap" not in volume:
            continue
        data = configmaps[volume["configMap"]["name"]]  # kustomize's hashed name, resolved in the build
        if "subPath" in mount:
            files[mount["mountPath"]] = data[mount["subPath"]]
        else:
            for key, value in data.items():
                files[f"{mount['mountPath']}/{key}"] = value
    return files


def rabbitmq_conf(directory: str) -> dict[str, str]:
    """The settings of every rabbitmq.conf-format file the node reads from /etc/rabbitmq/conf.d/."""
    settings: dict[str, str] = {}
    for path, text in sorted(rabbitmq_mounted_files(directory).items()):
        if not (path.startswith("/etc/rabbitmq/conf.d/") and path.endswith(".conf")):
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                key, sep, value = line.partition("=")
                assert sep, f"{path}: not a `key = value` line: {line!r}"
                assert key.strip() not in settings, f"{key.strip()} set twice"
                settings[key.strip()] = value.strip()
    return settings


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_is_a_three_node_statefulset_started_in_parallel(directory):
    sts = rabbitmq_statefulset(directory)
    assert sts["spec"]["replicas"] == RABBITMQ_REPLICAS
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "OrderedReady deadlocks a whole-cluster restart"
    assert sts["spec"].get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    headless = rabbitmq_headless(directory)
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"].get("publishNotReadyAddresses") is True, (
        "peers must resolve each other before any of them is ready"
    )
    assert headless["spec"]["selector"].items() <= rabbitmq_pod_labels(directory).items()
    # the client Service balances over the ready pods: not headless, same pods
    client = objects(directory, "Service")["rabbitmq"]
    assert client["spec"].get("clusterIP") != "None" and client["metadata"]["name"] != headless["metadata"]["name"]
    assert client["spec"]["selector"].items() <= rabbitmq_pod_labels(directory).items()
    assert {p["name"] for p in client["spec"]["ports"]} >= {"amqp", "management"}
    container = main_container(sts)
    assert container["image"] == "rabbitmq:3.13-management"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["epmd"] == 4369 and ports["cluster-rpc"] == 25672 and ports["prometheus"] == 15692


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_pods_spread_over_nodes_and_zones(directory):
    spec = pod_spec(rabbitmq_statefulset(directory))
    labels = rabbitmq_pod_labels(directory)
    anti = spec["affinity"]["podAntiAffinity"]
    terms = [(t, "required") for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])] + [
        (t["podAffinityTerm"], "preferred") for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    per_node = [kind for term, kind in terms if term["topologyKey"] == "kubernetes.io/hostname"]
    assert per_node, "no anti-affinity across Kubernetes nodes"
    for term, _ in terms:
        assert _selects(term["labelSelector"], labels), "the anti-affinity must select the rabbitmq pods"
    if directory == "k8s/base":
        # production: a machine lost is one member of each queue lost, never two
        assert "required" in per_node, "k8s/base: the anti-affinity across nodes must be required"
    spread = [c for c in spec.get("topologySpreadConstraints", []) if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert spread and spread[0]["whenUnsatisfiable"] == "ScheduleAnyway", "zones: preferred (single-zone clusters)"
    assert _selects(spread[0]["labelSelector"], labels)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_pdb_takes_one_node_at_a_time(directory):
    pdbs = [
        p
        for p in objects(directory, "PodDisruptionBudget").values()
        if _selects(p["spec"]["selector"], rabbitmq_pod_labels(directory))
    ]
    assert len(pdbs) == 1, f"one PodDisruptionBudget must select the rabbitmq pods, found {len(pdbs)}"
    spec = pdbs[0]["spec"]
    assert spec.get("maxUnavailable") == 1 and "minAvailable" not in spec, spec
    # it selects exactly the StatefulSet's pods (no broader set where one disruption could be another pod's)
    assert spec["selector"]["matchLabels"] == rabbitmq_statefulset(directory)["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_config_forms_the_cluster_by_peer_discovery(directory):
    conf = rabbitmq_conf(directory)
    assert conf.get("cluster_formation.peer_discovery_backend") in ("k8s", "rabbit_peer_discovery_k8s"), conf
    assert conf.get("cluster_formation.k8s.host", "").startswith("kubernetes.default.svc")
    assert conf.get("cluster_formation.k8s.address_type") == "hostname", "IPs change at every restart"
    assert conf.get("cluster_formation.k8s.service_name") == rabbitmq_headless(directory)["metadata"]["name"]
    assert conf.get("cluster_formation.k8s.hostname_suffix") == rabbitmq_hostname_suffix(directory)
    assert conf.get("cluster_formation.node_cleanup.only_log_warning") == "true", "never drop members by itself"
    assert conf.get("cluster_partition_handling") == "pause_minority"
    assert conf.get("net_ticktime") == "15"
    plugins = rabbitmq_mounted_files(directory)["/etc/rabbitmq/enabled_plugins"]
    listed = set(re.fullmatch(r"\s*\[([\w,\s]*)\]\.\s*", plugins).group(1).replace(" ", "").split(","))
    assert {"rabbitmq_peer_discovery_k8s", "rabbitmq_prometheus", "rabbitmq_management"} <= listed, listed
    # the node names the plugin builds (pod hostname + suffix) are the names the nodes run under
    env = {e["name"]: e for e in main_container(rabbitmq_statefulset(directory))["env"]}
    assert env["RABBITMQ_USE_LONGNAME"]["value"] == "true"
    assert env["RABBITMQ_NODENAME"]["value"] == f"rabbit@$(MY_POD_NAME){rabbitmq_hostname_suffix(directory)}"
    assert env["MY_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_rabbitmq_conf_reader_sees_what_is_mounted():
    """The config checks above read the files through the mounts: a file left unmounted is not read."""
    files = rabbitmq_mounted_files("k8s/base")
    assert "/etc/rabbitmq/conf.d/20-cluster.conf" in files and "/etc/rabbitmq/enabled_plugins" in files
    text = (ROOT / "k8s" / "base" / "rabbitmq" / "cluster.conf").read_text()
    assert files["/etc/rabbitmq/conf.d/20-cluster.conf"] == text


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_peer_discovery_may_read_endpoints(directory):
    sts = rabbitmq_statefulset(directory)
    spec = pod_spec(sts)
    account = spec.get("serviceAccountName")
    assert account in objects(directory, "ServiceAccount"), "the plugin calls the API as its own ServiceAccount"
    assert spec.get("automountServiceAccountToken") is True, "the plugin needs the pod's token"
    bindings = [
        b
        for b in objects(directory, "RoleBinding").values()
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])
    ]
    assert bindings, f"no RoleBinding for ServiceAccount {account}"
    roles = objects(directory, "Role")
    rules = [rule for b in bindings if b["roleRef"]["kind"] == "Role" for rule in roles[b["roleRef"]["name"]]["rules"]]
    assert any("" in r["apiGroups"] and "endpoints" in r["resources"] and "get" in r["verbs"] for r in rules), (
        f"{account} may not get endpoints: {rules}"
    )
    # least privilege: reads endpoints and writes events, nothing else (no secrets, no wildcard)
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] and set(rule["resources"]) <= {"endpoints", "events"}, rule


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_erlang_cookie_comes_from_its_own_secret(directory):
    sts = rabbitmq_statefulset(directory)
    spec = pod_spec(sts)
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_volumes = {n: v["secret"]["secretName"] for n, v in volumes.items() if "secret" in v}
    cookie_secret = next(iter(secret_volumes.values()))
    _, secrets = config_data(directory)
    assert cookie_secret in secrets and set(secrets[cookie_secret]) == {"cookie"}, cookie_secret
    assert len(secrets[cookie_secret]["cookie"]) >= 20
    # the app pods never get it: it is no key of the Secret they envFrom
    for name, obj in {**workloads(directory), **objects(directory, "Job")}.items():
        if is_app(obj):
            for container in pod_spec(obj)["containers"]:
                refs = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
                assert cookie_secret not in refs, f"{name} gets the Erlang cookie"
    (init,) = [c for c in spec["initContainers"] if any(m["name"] in secret_volumes for m in c["volumeMounts"])]
    script = init["command"][2]
    assert "/var/lib/rabbitmq/.erlang.cookie" in script and "chmod 400" in script, script
    assert "RABBITMQ_ERLANG_COOKIE" not in {e["name"] for e in main_container(sts)["env"]}, "deprecated: file"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_rabbitmq_prestop_keeps_quorum_queues_above_a_majority(directory):
    spec = pod_spec(rabbitmq_statefulset(directory))
    container = main_container(rabbitmq_statefulset(directory))
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2]
    await_at, drain_at = script.find("await_online_quorum_plus_one"), script.find("rabbitmq-upgrade drain")
    assert 0 <= await_at < drain_at, "wait for quorum + 1 first, then drain"
    assert "&&" in script[await_at:drain_at], "drain only once the wait succeeded"
    timeouts = [int(t) for t in re.findall(r"-t (\d+)", script)]
    assert timeouts and spec["terminationGracePeriodSeconds"] >= max(timeouts), "SIGKILL would cut the wait"
    # the readiness probe must not need the cluster (a node waiting for its peers would never get ready)
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "check_running" not in probe and "await" not in probe and "cluster" not in probe, probe


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_clients_get_the_cluster_node_list(directory):
    """Every app process gets CELERY_BROKER_URL as the `;`-separated list of the StatefulSet's pods by their
    stable names (one per replica, same credentials and vhost); the management URL and KEDA's URL go through
    the client Service."""
    hosts = rabbitmq_node_hosts(directory)
    assert len(hosts) == RABBITMQ_REPLICAS
    configmaps, secrets = config_data(directory)
    config = next(v for v in configmaps.values() if "RABBITMQ_DEFAULT_USER" in v)
    password = next(v for v in secrets.values() if "RABBITMQ_DEFAULT_PASS" in v)["RABBITMQ_DEFAULT_PASS"]
    user, vhost = config["RABBITMQ_DEFAULT_USER"], config["RABBITMQ_DEFAULT_VHOST"]
    pods = {name: obj for name, obj in {**workloads(directory), **objects(directory, "Job")}.items() if is_app(obj)}
    assert {"web", "live", "relay", "archiver", "flower", "setup", *WORKERS} <= set(pods)
    for name, obj in pods.items():
        env = container_env(directory, main_container(obj))
        urls = env["CELERY_BROKER_URL"].split(";")
        assert len(urls) == RABBITMQ_REPLICAS, f"{name}: {len(urls)} broker URLs"
        parts = [urlsplit(url) for url in urls]
        assert {p.hostname for p in parts} == hosts, f"{name}: {sorted(p.hostname for p in parts)}"
        for p in parts:
            assert (p.scheme, p.username, p.password, p.port, p.path) == ("amqp", user, password, 5672, f"/{vhost}")
        management = urlsplit(env["RABBITMQ_MANAGEMENT_URL"])
        assert (management.hostname, management.port) == ("rabbitmq", 15672), env["RABBITMQ_MANAGEMENT_URL"]
        service = urlsplit(env["RABBITMQ_SERVICE_URL"])
        assert ";" not in env["RABBITMQ_SERVICE_URL"] and (service.hostname, service.port) == ("rabbitmq", 5672)
        assert (service.username, service.password, service.path) == (user, password, f"/{vhost}")
    # the names resolve: the pods' subdomain is the headless Service, in this namespace
    assert rabbitmq_statefulset(directory)["metadata"]["namespace"] == NAMESPACE
    client = objects(directory, "Service")["rabbitmq"]
    assert client["spec"].get("clusterIP") != "None"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_keda_reads_the_queue_through_one_url(directory):
    """KEDA's rabbitmq scaler takes one AMQP URL: a `;` list would not parse."""
    trigger = objects(directory, "ScaledObject")["worker-enrichment"]["spec"]["triggers"][0]["metadata"]
    env = container_env(directory, main_container(objects(directory, "Deployment")["worker-enrichment"]))
    url = env[trigger["hostFromEnv"]]
    assert ";" not in url and url.startswith("amqp://") and "@rabbitmq:5672/" in url, url


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_network_policies_let_the_rabbitmq_nodes_reach_each_other_only(directory):
    node = rabbitmq_pod_labels(directory)
    for port in (4369, 25672, 35672, 35682):  # epmd, distribution, the CLI tools' range
        assert admitted(directory, NS_OWN, node, "rabbitmq", port), f"rabbitmq -> rabbitmq:{port}"
        assert not admitted(directory, NS_OTHER, node, "rabbitmq", port), f"another namespace -> {port}"
        assert not admitted(directory, NS_KEDA, {"app": "keda-operator"}, "rabbitmq", port), port
        for name, labels in app_pods(directory).items():
            assert not admitted(directory, NS_OWN, labels, "rabbitmq", port), f"{name} -> rabbitmq:{port}"
    assert not admitted(directory, NS_OWN, node, "rabbitmq", 35683)
    assert not admitted(directory, NS_OWN, node, "postgres", 5432), "the broker needs no database"


# --------------------------------------------------------------------------- PostgreSQL (CloudNativePG)


def cnpg_cluster(directory: str) -> dict:
    return objects(directory, "Cluster")[PG_CLUSTER]


def cnpg_pooler(directory: str) -> dict:
    return objects(directory, "Pooler")[PG_POOLER]


@functools.cache
def crd_validator(key: tuple[str, str]):
    import jsonschema  # requirements-dev.lock (check-jsonschema's dependency, pinned)

    schema = json.loads(CRD_SCHEMAS[key].read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def crd_errors(obj: dict) -> list[str]:
    validator = crd_validator((obj["apiVersion"], obj["kind"]))
    return [
        f"{obj['kind']}/{obj['metadata']['name']} .{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_cnpg_resources_match_their_schema(directory):
    """The Cluster and the Pooler against their CRD's schema (tests/deploy/schemas/, vendored and trimmed)."""
    found = [o for o in manifests(directory) if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS]
    assert {(o["apiVersion"], o["kind"]) for o in found} == set(CRD_SCHEMAS), found
    errors = [error for obj in found for error in crd_errors(obj)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "kind, mutate",
    [
        ("Cluster", lambda s: s.__setitem__("instancess", 3)),  # misspelt field
        ("Cluster", lambda s: s["postgresql"]["parameters"].__setitem__("max_connections", 150)),  # not a string
        ("Cluster", lambda s: s["postgresql"]["synchronous"].__setitem__("method", "quorum")),
        ("Cluster", lambda s: s["postgresql"]["synchronous"].__setitem__("number", 0)),
        ("Cluster", lambda s: s["postgresql"]["synchronous"].pop("number")),
        ("Cluster", lambda s: s["postgresql"]["synchronous"].__setitem__("dataDurability", "strict")),
        ("Cluster", lambda s: s.__setitem__("primaryUpdateMethod", "failover")),
        ("Cluster", lambda s: s.pop("instances")),
        ("Cluster", lambda s: s["affinity"].__setitem__("enablePodAntiAfinity", True)),
        ("Cluster", lambda s: s["storage"].__setitem__("sizee", "1Gi")),
        ("Cluster", lambda s: s["resources"]["requests"].__setitem__("memory", "2 GB")),
        ("Cluster", lambda s: s.__setitem__("imageCatalogRef", {"kind": "ImageCatalog", "name": "x", "major": 16})),
        ("Pooler", lambda s: s["pgbouncer"].__setitem__("poolMode", "statement")),  # CNPG allows session/transaction
        ("Pooler", lambda s: s["pgbouncer"]["parameters"].__setitem__("default_pool_size", 20)),
        ("Pooler", lambda s: s.__setitem__("type", "primary")),
        ("Pooler", lambda s: s.pop("cluster")),
        ("Pooler", lambda s: s.__setitem__("pgbouncerr", {})),
    ],
)
def test_cnpg_schemas_reject_what_the_api_server_would(kind, mutate):
    """The vendored schemas are not vacuous: each mistake here fails them (the same ones the API server rejects)."""
    import copy

    obj = copy.deepcopy(next(o for o in manifests("k8s/base") if o["kind"] == kind))
    assert not crd_errors(obj)
    mutate(obj["spec"])
    assert crd_errors(obj), f"the {kind} schema accepted a broken spec"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_cnpg_cluster_is_three_instances_with_a_synchronous_standby(directory):
    spec = cnpg_cluster(directory)["spec"]
    assert spec["instances"] == 3
    # ANY 1 of the two standbys confirms each commit, and commits wait rather than go on without one: a 202 means
    # the order is on two servers (docs/postgres-k8s.md)
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1, "dataDurability": "required"}
    assert not {"minSyncReplicas", "maxSyncReplicas"} & set(spec), "one syntax: spec.postgresql.synchronous"
    params = spec["postgresql"]["parameters"]
    assert params.get("synchronous_commit", "on") in ("on", "remote_apply"), "a weaker level acks before the standby"
    assert "synchronous_standby_names" not in params, "CloudNativePG sets it from `synchronous`"
    # one instance per node (the dev overlay may only relax required to preferred, for one-node clusters)
    affinity = spec["affinity"]
    assert affinity["enablePodAntiAffinity"] is True and affinity["topologyKey"] == "kubernetes.io/hostname"
    expected = "required" if directory == "k8s/base" else "preferred"
    assert affinity["podAntiAffinityType"] == expected
    # CloudNativePG makes the PodDisruptionBudgets (primary, standbys): never switched off, none of ours
    assert spec.get("enablePDB", True) is True
    for name, pdb in objects(directory, "PodDisruptionBudget").items():
        assert not pdb["spec"]["selector"]["matchLabels"].keys() & {"cnpg.io/cluster"}, name
    # the database and owner the app connects as; the password is the operator's (Secret <cluster>-app)
    initdb = spec["bootstrap"]["initdb"]
    assert initdb["database"] == PG_DATABASE and initdb.get("owner", initdb["database"]) == "orders"
    assert "secret" not in initdb, "the operator generates the owner's password (Secret postgres-app)"
    assert spec["imageName"].startswith("ghcr.io/cloudnative-pg/postgresql:16"), spec["imageName"]
    requests, limits = spec["resources"]["requests"], spec["resources"]["limits"]
    assert {"cpu", "memory"} <= set(requests) and requests["memory"] == limits["memory"], "guaranteed memory"
    assert spec["storage"]["size"] and spec["walStorage"]["size"]
    assert spec.get("primaryUpdateMethod") == "switchover"
    # no PodMonitor: the build assumes no Prometheus operator (pods are scraped by annotation)
    assert not [o for o in manifests(directory) if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert spec["monitoring"].get("enablePodMonitor", False) is False
    annotations = spec["inheritedMetadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9187"


def test_cnpg_backups_are_flagged_until_configured():
    """No object store here: the manifest says so where the backup section would be, and the runbook covers
    backups and point-in-time recovery."""
    spec = cnpg_cluster("k8s/base")["spec"]
    if "backup" not in spec and not spec.get("plugins"):
        text = (ROOT / "k8s/base/postgres.yaml").read_text()
        assert "BACKUPS ARE NOT CONFIGURED" in text and "# backup:" in text
    doc = (ROOT / "docs/postgres-k8s.md").read_text()
    assert "point-in-time" in doc.lower() and "barmanObjectStore" in doc


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_cnpg_pooler_in_transaction_mode_fits_max_connections(directory):
    pooler, cluster = cnpg_pooler(directory), cnpg_cluster(directory)
    spec = pooler["spec"]
    assert pooler["metadata"]["name"] != cluster["metadata"]["name"], "CNPG: a Pooler may not share its cluster's name"
    assert spec["cluster"]["name"] == PG_CLUSTER and spec.get("type", "rw") == "rw"
    assert spec["pgbouncer"]["poolMode"] == "transaction"
    assert spec["instances"] == (2 if directory == "k8s/base" else 1)
    params = spec["pgbouncer"]["parameters"]
    pool, reserve = int(params["default_pool_size"]), int(params.get("reserve_pool_size", "0"))
    assert int(params["max_client_conn"]) >= 500
    # PostgreSQL's connections: every PgBouncer pod's pool and reserve (during a rollout twice over), the direct
    # sessions, CNPG's own and the superuser reserve (3) all fit
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    assert 2 * spec["instances"] * (pool + reserve) + 20 <= max_connections, (pool, reserve, max_connections)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_app_reaches_postgres_through_the_pooler_and_the_primary_directly(directory):
    """DATABASE_URL -> the Pooler's Service (every container of every app pod); DATABASE_DIRECT_URL -> the
    Cluster's -rw Service (the relay and the setup Job only); credentials from CloudNativePG's Secret, never a
    committed Secret; prepared statements off through PgBouncer unless it tracks them."""
    prepared = int(cnpg_pooler(directory)["spec"]["pgbouncer"]["parameters"].get("max_prepared_statements", "0"))
    owner = OPERATOR_SECRETS[f"{PG_CLUSTER}-app"]
    pods = {**workloads(directory), **objects(directory, "Job")}
    apps = {name: obj for name, obj in pods.items() if is_app(obj)}
    assert {"web", "relay", "setup", *WORKERS} <= set(apps)
    for name, obj in apps.items():
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            env = expanded_env(directory, container)
            items = [item["name"] for item in container.get("env", [])]
            assert "DATABASE_URL" in items, f"{where}: DATABASE_URL must be built in env (not from orders-secrets)"
            for key in ("POSTGRES_APP_USER", "POSTGRES_APP_PASSWORD"):
                ref = next(i for i in container["env"] if i["name"] == key)["valueFrom"]["secretKeyRef"]
                assert ref["name"] == f"{PG_CLUSTER}-app" and not ref.get("optional"), (where, ref)
                assert items.index(key) < items.index("DATABASE_URL"), f"{where}: $({key}) used before it is set"
            url = urlsplit(env["DATABASE_URL"])
            assert (url.hostname, url.port, url.path) == (PG_POOLER, 5432, f"/{PG_DATABASE}"), (where, url)
            assert (url.username, url.password) == (owner["username"], owner["password"]), where
            direct = env.get("DATABASE_DIRECT_URL")
            if name in DIRECT_DB_PROCESSES and container in spec["containers"]:
                assert direct, f"{where}: needs DATABASE_DIRECT_URL"
                url = urlsplit(direct)
                assert (url.hostname, url.port, url.path) == (f"{PG_CLUSTER}-rw", 5432, f"/{PG_DATABASE}"), where
                assert (url.username, url.password) == (owner["username"], owner["password"]), where
            else:
                assert direct is None, f"{where}: only {sorted(DIRECT_DB_PROCESSES)} bypass the pooler"
            # transaction pooling: no server-side cursors, no named prepares (orders_project/settings.py)
            assert env.get("DB_TRANSACTION_POOLER") == "true", f"{where}: DATABASE_URL is a transaction pooler"
            if not prepared:
                assert env.get("DB_PREPARE_THRESHOLD") == "off", f"{where}: prepared statements through PgBouncer"
            assert not [v for v in env.values() if v and _VAR_REF.search(v)], f"{where}: unresolved $(VAR)"


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_network_policies_let_cloudnative_pg_run_the_cluster(directory):
    instance, _ = _pod(directory, PG_CLUSTER)
    join, _ = _pod(directory, f"{PG_CLUSTER}-join")
    pooler, _ = _pod(directory, PG_POOLER)
    operator = ({"kubernetes.io/metadata.name": "cnpg-system"}, {"app.kubernetes.io/name": "cloudnative-pg"})
    for port in (5432, 8000):
        # the instances among themselves (replication, status) and a new instance's clone Job
        assert admitted(directory, NS_OWN, instance, PG_CLUSTER, port), port
        assert admitted(directory, NS_OWN, join, PG_CLUSTER, port), port
        # the operator
        assert admitted(directory, *operator, PG_CLUSTER, port), port
        assert not admitted(directory, operator[0], STRANGER, PG_CLUSTER, port), port
        assert not admitted(directory, NS_OTHER, instance, PG_CLUSTER, port), port
    # PgBouncer's server connections
    assert admitted(directory, NS_OWN, pooler, PG_CLUSTER, 5432)
    assert not admitted(directory, NS_OWN, pooler, PG_CLUSTER, 8000)
    # the pooler takes the app's connections only
    assert not admitted(directory, NS_OWN, STRANGER, PG_POOLER, 5432)
    assert not admitted(directory, NS_KEDA, {"app": "keda-operator"}, PG_POOLER, 5432)
    assert not admitted(directory, NS_OWN, rabbitmq_pod_labels(directory), PG_POOLER, 5432)


# --------------------------------------------------------------------------- operator surfaces

OPERATOR_SERVICES = ("flower", "rabbitmq", "postgres", "redis", "prometheus", "grafana")


def test_compose_publishes_operator_ports_on_loopback_only():
    services = compose()["services"]
    for name in OPERATOR_SERVICES:
        for port in services[name].get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} on every interface"
    assert services["flower"]["ports"] and services["rabbitmq"]["ports"], "the operator UIs stay reachable locally"


def test_flower_has_no_default_credentials_anywhere():
    commands = {
        "Procfile": procfile()["flower"],
        "compose": compose_command("flower")[2],
        **{f"k8s {d}": main_container(objects(d, "Deployment")["flower"])["command"][2] for d in KUSTOMIZE_DIRS},
    }
    for where, command in commands.items():
        assert ': "${FLOWER_BASIC_AUTH:?' in command, f"{where}: Flower must refuse to start without FLOWER_BASIC_AUTH"
    for path in ("Procfile", "docker-compose.yml", "deploy/env.example", *map(str, (ROOT / "k8s").rglob("*.yaml"))):
        assert "admin:admin" not in (ROOT / path).read_text(), f"{path}: admin:admin"


def test_flower_refuses_to_start_without_credentials():
    """The Procfile's line through a shell, as honcho, compose and Kubernetes run it: no credentials, no Flower."""
    env = {"PATH": "/usr/bin:/bin"}  # and no FLOWER_BASIC_AUTH
    result = subprocess.run(["sh", "-c", procfile()["flower"]], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "FLOWER_BASIC_AUTH" in result.stderr, result.stderr


SECRET_OPTIONS = ("--basic-auth", "--broker-api", "--requirepass", "requirepass=")


def test_no_secret_is_passed_as_a_process_argument():
    """Issue 27 LOW 14: Flower's credentials and Redis's password come from the environment, never argv (ps)."""
    commands = {
        "Procfile flower": procfile()["flower"],
        "compose flower": compose_command("flower")[2],
        "compose redis": compose_command("redis")[2],
        **{f"k8s {d} flower": main_container(objects(d, "Deployment")["flower"])["command"][2] for d in KUSTOMIZE_DIRS},
        **{
            f"k8s {d} redis": " ".join(main_container(objects(d, "Deployment")["redis"])["command"])
            for d in KUSTOMIZE_DIRS
        },
        **{
            f"k8s {d} redis args": " ".join(main_container(objects(d, "Deployment")["redis"]).get("args", []))
            for d in KUSTOMIZE_DIRS
        },
    }
    for where, command in commands.items():
        assert not [o for o in SECRET_OPTIONS if o in command], f"{where}: a secret in the arguments: {command}"


def _cmdlines() -> str:
    out = []
    for proc in Path("/proc").iterdir():
        try:
            out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(out)


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_compose_redis_command_requires_the_password_without_showing_it(tmp_path):
    """compose's Redis command, run through sh as the container does: the password works, and no process
    on the machine carries it in its command line."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = "Zq7-not-in-argv-" + os.urandom(6).hex()
    command = compose_command("redis")[2].replace("redis-server - ", f"redis-server - --port {port} --save '' ", 1)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_PASSWORD": password}
    proc = subprocess.Popen(
        ["sh", "-c", command], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        cli = ["redis-cli", "-p", str(port)]
        for _ in range(50):
            pong = subprocess.run(
                [*cli, "ping"], capture_output=True, text=True, env={**env, "REDISCLI_AUTH": password}
            )
            if pong.stdout.strip() == "PONG":
                break
            subprocess.run(["sleep", "0.1"])
        assert pong.stdout.strip() == "PONG", pong.stdout + pong.stderr
        anonymous = subprocess.run([*cli, "ping"], capture_output=True, text=True, env={"PATH": env["PATH"]})
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr
        assert password not in _cmdlines()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_compose_redis_requires_a_password_the_apps_carry():
    redis = compose()["services"]["redis"]
    command = compose_command("redis")
    assert "requirepass $REDIS_PASSWORD\n" in command[-1] and "redis-server - " in command[-1], command
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?"), "no default password"
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?"), "the healthcheck needs it too"
    text = (ROOT / "deploy" / "env.example").read_text()
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    assert values["REDIS_URL"].startswith(f"redis://:{values['REDIS_PASSWORD']}@redis:"), values["REDIS_URL"]


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_k8s_redis_requires_the_password_from_the_secret(directory):
    redis = main_container(objects(directory, "Deployment")["redis"])
    assert "requirepass $REDIS_PASSWORD\n" in redis["command"][2] and "redis-server - " in redis["command"][2]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in redis["env"]}
    assert env["REDIS_PASSWORD"] == env["REDISCLI_AUTH"] and env["REDIS_PASSWORD"]["key"] == "REDIS_PASSWORD"
    assert env["REDIS_PASSWORD"]["name"] in objects(directory, "Secret"), env  # kustomize's hashed Secret name
    for probe in ("readinessProbe", "livenessProbe"):
        assert redis[probe]["exec"]["command"] == ["redis-cli", "ping"]  # authenticated by REDISCLI_AUTH
    _, secrets = config_data(directory)
    password = secrets[env["REDIS_PASSWORD"]["name"]]["REDIS_PASSWORD"]
    for name, obj in workloads(directory).items():
        if is_app(obj):
            assert container_env(directory, main_container(obj))["REDIS_URL"].startswith(
                f"redis://:{password}@redis:"
            ), name


# --------------------------------------------------------------------------- NetworkPolicies

NS_INGRESS = {"kubernetes.io/metadata.name": "ingress-nginx"}
NS_MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
NS_KEDA = {"kubernetes.io/metadata.name": "keda"}
NS_OWN = {"kubernetes.io/metadata.name": NAMESPACE}
NS_OTHER = {"kubernetes.io/metadata.name": "default"}
INGRESS_CONTROLLER = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
STRANGER = {"app.kubernetes.io/name": "debug-shell"}


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def cnpg_pods(directory: str) -> dict[str, tuple[dict, list[dict]]]:
    """The pods CloudNativePG makes from the build's Cluster and Pooler, as the operator labels them (and the
    ports its containers listen on), for the NetworkPolicy checks: "postgres" (an instance, whatever its role),
    "postgres-join" (the Job that clones a new instance), "postgres-pooler" (PgBouncer)."""
    (cluster,) = objects(directory, "Cluster")
    (pooler,) = objects(directory, "Pooler")
    instance = {"cnpg.io/cluster": cluster, "cnpg.io/podRole": "instance", "cnpg.io/instanceRole": "primary"}
    ports = [
        {"name": "postgresql", "containerPort": 5432},
        {"name": "status", "containerPort": 8000},
        {"name": "metrics", "containerPort": 9187},
    ]
    return {
        cluster: (instance, ports),
        f"{cluster}-join": ({"cnpg.io/cluster": cluster, "cnpg.io/jobRole": "join"}, []),
        pooler: (
            {"cnpg.io/poolerName": pooler, "cnpg.io/podRole": "pooler"},
            [{"name": "pgbouncer", "containerPort": 5432}, {"name": "metrics", "containerPort": 9127}],
        ),
    }


def _pod(directory: str, name: str) -> tuple[dict, list[dict]]:
    if name in cnpg_pods(directory):
        return cnpg_pods(directory)[name]
    obj = {**workloads(directory), **objects(directory, "Job")}[name]
    return obj["spec"]["template"]["metadata"]["labels"], [
        p for c in pod_spec(obj)["containers"] for p in c.get("ports", [])
    ]


def admitted(directory: str, source_ns: dict, source_pod: dict, target: str, port: int) -> bool:
    """Whether the build's NetworkPolicies let a TCP connection from a pod (its namespace's labels, its
    labels) to `target`'s pods on `port` (the semantics of networking.k8s.io/v1, ingress only)."""
    labels, ports = _pod(directory, target)
    policies = [
        p
        for p in objects(directory, "NetworkPolicy").values()
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) and _selects(p["spec"]["podSelector"], labels)
    ]
    if not policies:
        return True

    def port_matches(rule_port: dict) -> bool:
        wanted = rule_port.get("port")
        if rule_port.get("protocol", "TCP") != "TCP":
            return False
        if wanted is None:
            return True
        if isinstance(wanted, str):
            return any(p.get("name") == wanted and p["containerPort"] == port for p in ports)
        return wanted <= port <= rule_port.get("endPort", wanted)

    def peer_matches(peer: dict) -> bool:
        if "ipBlock" in peer:
            return False
        ns_ok = _selects(peer["namespaceSelector"], source_ns) if "namespaceSelector" in peer else source_ns == NS_OWN
        pod_ok = _selects(peer["podSelector"], source_pod) if "podSelector" in peer else True
        return ns_ok and pod_ok

    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if ("ports" not in rule or any(port_matches(p) for p in rule["ports"])) and (
                "from" not in rule or any(peer_matches(p) for p in rule["from"])
            ):
                return True
    return False


def app_pods(directory: str) -> dict[str, dict]:
    pods = {**workloads(directory), **objects(directory, "Job")}
    return {name: obj["spec"]["template"]["metadata"]["labels"] for name, obj in pods.items() if is_app(obj)}


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_network_policies_deny_by_default(directory):
    deny = [p for p in objects(directory, "NetworkPolicy").values() if p["spec"]["podSelector"] == {}]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"] and not deny[0]["spec"].get("ingress")
    # a pod of this namespace that no rule names, and any pod elsewhere, reach nothing
    for name in [*workloads(directory), "setup", PG_CLUSTER, PG_POOLER]:
        for port in [p["containerPort"] for p in _pod(directory, name)[1]] or [8000]:
            assert not admitted(directory, NS_OWN, STRANGER, name, port), (name, port)
            assert not admitted(directory, NS_OTHER, STRANGER, name, port), (name, port)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_network_policies_let_the_ingress_controller_reach_web_and_live_only(directory):
    assert admitted(directory, NS_INGRESS, INGRESS_CONTROLLER, "web", 8000)
    assert admitted(directory, NS_INGRESS, INGRESS_CONTROLLER, "live", 8001)
    for target, port in (("flower", 5555), ("postgres", 5432), ("redis", 6379), ("rabbitmq", 15672), ("web", 9100)):
        assert not admitted(directory, NS_INGRESS, INGRESS_CONTROLLER, target, port), (target, port)
    # another pod of the controller's namespace is not the controller
    assert not admitted(directory, NS_INGRESS, STRANGER, "web", 8000)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_network_policies_data_services_only_from_the_app_pods(directory):
    pods = app_pods(directory)
    assert {"web", "live", "relay", "archiver", "flower", "setup", *WORKERS} <= set(pods)
    for name, labels in pods.items():
        for target, port in ((PG_POOLER, 5432), (PG_CLUSTER, 5432), ("rabbitmq", 5672), ("redis", 6379)):
            assert admitted(directory, NS_OWN, labels, target, port), f"{name} cannot reach {target}:{port}"
        # the instance manager's port is the cluster's and the operator's only
        assert not admitted(directory, NS_OWN, labels, PG_CLUSTER, 8000), f"{name} -> {PG_CLUSTER}:8000"
    assert admitted(directory, NS_OWN, pods["flower"], "rabbitmq", 15672), "Flower's broker tab"
    # KEDA reads the enrichment queue's length over AMQP, and nothing else
    assert admitted(directory, NS_KEDA, {"app": "keda-operator"}, "rabbitmq", 5672)
    assert not admitted(directory, NS_KEDA, {"app": "keda-operator"}, "postgres", 5432)
    # the app pods' labels from another namespace are not the app pods
    assert not admitted(directory, NS_OTHER, pods["web"], "postgres", 5432)


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS)
def test_network_policies_let_monitoring_scrape_the_metrics_ports(directory):
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    assert admitted(directory, NS_MONITORING, prometheus, "web", 8000)
    for worker in WORKERS:
        assert admitted(directory, NS_MONITORING, prometheus, worker, 9100), worker
    assert admitted(directory, NS_MONITORING, prometheus, "rabbitmq", 15692)
    for target, port in (("postgres", 5432), ("redis", 6379), ("rabbitmq", 5672), ("flower", 5555)):
        assert not admitted(directory, NS_MONITORING, prometheus, target, port), (target, port)
    # CloudNativePG's exporters: the instances' (9187) and PgBouncer's (9127), annotated for the same scrape job
    assert admitted(directory, NS_MONITORING, prometheus, PG_CLUSTER, 9187)
    assert admitted(directory, NS_MONITORING, prometheus, PG_POOLER, 9127)
    assert not admitted(directory, NS_MONITORING, prometheus, PG_POOLER, 5432)
    # every pod Prometheus is told to scrape (annotations) is let in on that port
    for name, obj in workloads(directory).items():
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            assert admitted(directory, NS_MONITORING, prometheus, name, int(annotations["prometheus.io/port"])), name


# --------------------------------------------------------------------------- dependency lock

LOCKS = {"requirements.txt": "requirements.lock", "requirements-dev.txt": "requirements-dev.lock"}
_LOCK_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def lock_entries(path: str) -> dict[str, tuple[str, str | None, int]]:
    """{name: (version, marker, number of hashes)} of a lock file."""
    entries, current = {}, None
    for line in (ROOT / path).read_text().splitlines():
        match = _LOCK_ENTRY.match(line)
        if match:
            current = _canonical(match.group(1))
            entries[current] = [match.group(2), match.group(3), 0]
        elif line.strip().startswith("--hash=sha256:") and current:
            entries[current][2] += 1
    return {k: tuple(v) for k, v in entries.items()}


def _direct_pins(path: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[_canonical(name.split("[")[0])] = version.strip()
    return pins


@pytest.mark.parametrize("source,lock", sorted(LOCKS.items()))
def test_lock_pins_every_requirement_with_hashes(source, lock):
    entries = lock_entries(lock)
    assert entries, f"{lock} is empty"
    for name, (version, _, hashes) in entries.items():
        assert hashes >= 1, f"{lock}: {name}=={version} has no --hash"
    pins = _direct_pins(source)
    if source == "requirements-dev.txt":
        pins.update(_direct_pins("requirements.txt"))
    stale = {n: (v, entries.get(n, ("missing",))[0]) for n, v in pins.items() if entries.get(n, ("missing",))[0] != v}
    assert not stale, f"{lock} is stale against {source} (pin, locked): {stale}; run scripts/lock.sh"


def test_dev_lock_keeps_the_runtime_versions():
    runtime, dev = lock_entries("requirements.lock"), lock_entries("requirements-dev.lock")
    assert {n: v[0] for n, v in runtime.items()} == {n: dev[n][0] for n in runtime if n in dev} and set(runtime) <= set(
        dev
    )


def test_lock_covers_every_installed_runtime_distribution():
    """Walk the installed dependency tree of requirements.txt (this interpreter's markers and extras): each
    distribution it reaches is in requirements.lock, at the installed version."""
    from importlib import metadata

    from packaging.requirements import Requirement

    lock = lock_entries("requirements.lock")
    todo = [
        (Requirement(line.split("#", 1)[0].strip()), ())
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip() and not line.startswith("-")
    ]
    seen: set[str] = set()
    while todo:
        requirement, parent_extras = todo.pop()
        name = _canonical(requirement.name)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in (parent_extras or ("",))):
            continue
        assert name in lock, f"{name} (installed, needed by the runtime requirements) is not in requirements.lock"
        installed = metadata.version(requirement.name)
        assert lock[name][0] == installed, f"{name}: installed {installed}, locked {lock[name][0]}"
        key = f"{name}{sorted(requirement.extras)}"
        if key in seen:
            continue
        seen.add(key)
        for dependency in metadata.requires(requirement.name) or []:
            todo.append((Requirement(dependency), tuple(requirement.extras)))
    assert len({k.split("[")[0] for k in seen}) >= 40, seen


def test_venv_script_installs_the_lock_with_hashes():
    script = (ROOT / "scripts" / "venv.sh").read_text()
    assert re.search(r'pip install .*--require-hashes -r "\$lock"', script), script
    assert 'lock="${req%.txt}.lock"' in script
    assert "cat requirements*.lock | sha256sum" in script, "the stamp must change when a lock changes"
    lock_script = (ROOT / "scripts" / "lock.sh").read_text()
    assert "--generate-hashes" in lock_script and "https://pypi.org/simple" in lock_script
    assert _direct_pins("requirements-dev.txt").get("uv"), "pin the lock tool"
