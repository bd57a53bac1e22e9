"""`GET /` (orders/live.py) and its static files through the WSGI stack the Procfile's web serves
(gunicorn): the socket's address follows LIVE_WS_PORT, the CSP lets the page reach it, the pipeline's
stages come from the server, and WhiteNoise serves the page's ES modules without collectstatic (tests
and `make run` collect nothing)."""

import json
import posixpath
import re
from pathlib import Path

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def connect_src(response) -> str:
    directives = dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))
    return directives["connect-src"]


def test_socket_on_the_pages_origin_by_default(client):
    response = client.get("/", HTTP_HOST="localhost:8000")
    assert response.status_code == 200
    assert 'data-ws-path="/ws/orders" data-ws-port=""' in response.content.decode()
    assert connect_src(response) == "'self'"


@override_settings(LIVE_WS_PORT="8001")
def test_socket_on_the_live_port_of_the_pages_host(client):
    response = client.get("/", HTTP_HOST="localhost:8000")
    assert response.status_code == 200
    assert 'data-ws-port="8001"' in response.content.decode()
    assert connect_src(response) == "'self' ws://localhost:8001 wss://localhost:8001"


@override_settings(LIVE_WS_PORT="8001")
def test_an_ipv6_host_gets_the_live_port_on_any_host(client):
    # a CSP host-source cannot name an IPv6 literal
    response = client.get("/", HTTP_HOST="[::1]:8000")
    assert connect_src(response) == "'self' ws://*:8001 wss://*:8001"


def csp(response) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))


def test_scripts_only_from_self_and_none_inline(client):
    response = client.get("/")
    assert csp(response)["script-src"] == "'self'"  # module scripts from 'self' need nothing more
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    # The page's only inline <script> is the stages' JSON: a data block, which a CSP never runs.
    scripts = re.findall(r"<script([^>]*)>", response.content.decode())
    assert sorted(scripts) == sorted(
        [' type="module" src="/static/orders/live/main.js"', ' id="pipeline-stages" type="application/json"']
    ), scripts


def test_the_page_embeds_the_pipelines_stages(client):
    page = client.get("/").content.decode()
    embedded = re.search(r'<script id="pipeline-stages" type="application/json">(.*?)</script>', page, re.S)
    assert embedded, "no json_script pipeline-stages in the page"
    assert json.loads(embedded.group(1)) == [
        {"name": "process", "queue": "process"},
        {"name": "enrich", "queue": "enrichment"},
        {"name": "finalize", "queue": "finalize"},
    ]
    # and the row template has one stage cell per stage, in that order
    assert re.findall(r'<li class="stage" data-stage="(\w+)">', page) == ["process", "enrich", "finalize"]


LIVE_MODULES = Path(__file__).resolve().parents[1] / "static" / "orders" / "live"


def module_imports(source: str) -> list[str]:
    return re.findall(r'^import [^;]*? from "([^"]+)";', source, re.M)


def test_whitenoise_serves_the_pages_modules(client):
    page = client.get("/").content.decode()
    assert '<script type="module" src="/static/orders/live/main.js">' in page
    served, queue = {}, ["/static/orders/live/main.js"]
    while queue:
        url = queue.pop()
        if url in served:
            continue
        response = client.get(url)
        assert response.status_code == 200, url
        assert type(response).__module__.startswith("whitenoise"), url
        # a module script needs a JavaScript MIME type, or the browser refuses it
        assert response["Content-Type"].startswith("text/javascript"), (url, response["Content-Type"])
        served[url] = b"".join(response.streaming_content).decode()
        queue += [posixpath.normpath(posixpath.join(posixpath.dirname(url), m)) for m in module_imports(served[url])]
    assert "function socketUrl()" in served["/static/orders/live/config.js"]
    # main.js reaches every module in the directory: none is left behind unused
    assert {posixpath.basename(u) for u in served} == {p.name for p in LIVE_MODULES.glob("*.js")}


def test_no_stage_name_is_spelled_in_the_pages_script():
    """The stages come from the server (the json_script above): a renamed stage leaves no stale name."""
    for module in LIVE_MODULES.glob("*.js"):
        source = module.read_text()
        for stage in ("process", "enrich", "enrichment", "finalize"):
            assert not re.search(rf'["\'`]{stage}["\'`]', source), f"{module.name} spells the stage {stage!r}"
