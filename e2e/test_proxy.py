"""The proxy `make run` and compose put in front of web (scripts/proxy.sh, deploy/nginx/): nginx reads each
request whole before one of web's sync workers sees it, so clients that connect and send nothing, or drip
their request, cost an nginx connection each instead of a gunicorn worker each. web runs with three workers,
as compose and k8s size it (WEB_CONCURRENCY=3); raw sockets play the idle and slow clients."""

import contextlib
import json
import socket
import time

import pytest
import requests
from websockets.sync.client import connect

from e2e.conftest import Processes, free_port, start_live, start_proxy, start_web

pytestmark = pytest.mark.e2e

WORKERS = 3
CLIENT_TIMEOUT = 3  # PROXY_CLIENT_TIMEOUT here (seconds between two reads of a request)
ANSWER_WITHIN = 2.0  # /healthz answers in milliseconds on an idle machine; a stalled server not for ~30 s


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    processes = Processes(env_overrides={"LIVE_FEED_ANONYMOUS": "True"})
    ports = {"web": free_port(), "live": free_port(), "proxy": free_port()}
    try:
        with django_db_blocker.unblock():
            start_web(processes, ports["web"], env={"WEB_CONCURRENCY": str(WORKERS), "NUM_PROXIES": "1"})
            start_live(processes, ports["live"])
            start_proxy(
                processes,
                ports["proxy"],
                web_port=ports["web"],
                live_port=ports["live"],
                env={"PROXY_CLIENT_TIMEOUT": f"{CLIENT_TIMEOUT}s"},
            )
        yield ports
    finally:
        processes.stop_all()


@contextlib.contextmanager
def idle_clients(port: int, count: int, first_bytes: bytes = b""):
    """`count` connections that send `first_bytes` (a request's first bytes, or nothing) and then wait."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if first_bytes:
                sock.sendall(first_bytes)
            sockets.append(sock)
        time.sleep(0.3)  # every connection accepted (and, straight on gunicorn, taken by a worker)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def healthz_seconds(port: int) -> float | None:
    """Seconds /healthz took on the port, None if it did not answer within ANSWER_WITHIN."""
    start = time.monotonic()
    try:
        response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=ANSWER_WITHIN)
    except requests.Timeout:
        return None
    assert response.status_code == 200, response.text
    return time.monotonic() - start


def test_idle_clients_stall_gunicorn_without_the_proxy(stack):
    """The finding itself (what the proxy is for): as many idle connections as web has workers, straight on
    web, and /healthz waits behind them. Were this ever to pass without stalling, the next test would prove
    nothing."""
    with idle_clients(stack["web"], WORKERS):
        assert healthz_seconds(stack["web"]) is None


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"",
        b"GET /orders HTTP/1.1\r\nHost: localhost\r\n",
        b"POST /orders HTTP/1.1\r\nHost: localhost\r\n"
        b'Content-Length: 1000\r\nContent-Type: application/json\r\n\r\n{"cus',
    ],
    ids=["silent", "dripping-head", "dripping-body"],
)
def test_idle_or_slow_clients_do_not_stall_the_api_behind_the_proxy(stack, first_bytes):
    # given: ten times as many idle or slow clients as web has workers, on the proxy
    with idle_clients(stack["proxy"], 10 * WORKERS, first_bytes) as sockets:
        # then: the API answers at once through the proxy, and web itself too (none of its workers is taken)
        assert healthz_seconds(stack["proxy"]) is not None
        assert healthz_seconds(stack["web"]) is not None
        # and: the proxy drops each slow client after PROXY_CLIENT_TIMEOUT of silence
        sockets[0].settimeout(CLIENT_TIMEOUT + 5)
        started = time.monotonic()
        answer = sockets[0].recv(65536)
        assert time.monotonic() - started < CLIENT_TIMEOUT + 3
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_an_order_posts_through_the_proxy_and_metrics_do_not(stack, transactional_db):
    from django.conf import settings

    from orders.tests.factories import catalog_create

    catalog_create()
    base = f"http://127.0.0.1:{stack['proxy']}"
    response = requests.post(
        f"{base}/orders",
        json={"customer_id": "proxy", "source": "web", "items": [{"sku": "ABC", "qty": 1}]},
        headers={"Authorization": f"Bearer {settings.SECRET_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert requests.get(f"{base}/metrics", timeout=5).status_code == 404
    assert requests.get(f"http://127.0.0.1:{stack['web']}/metrics", timeout=5).status_code == 200


def test_a_body_over_the_limit_is_refused_by_the_proxy(stack):
    response = requests.post(f"http://127.0.0.1:{stack['proxy']}/orders", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert response.status_code == 413


def test_the_live_socket_is_on_the_pages_own_origin_through_the_proxy(stack):
    port = stack["proxy"]
    with connect(f"ws://localhost:{port}/ws/orders", origin=f"http://localhost:{port}", open_timeout=10) as ws:
        ws.send('{"type": "ping"}')
        answer = ws.recv(timeout=10)
    assert json.loads(answer) == {"type": "pong"}
