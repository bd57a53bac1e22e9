"""Bounded requests on the servers the project ships, started as the Procfile starts them: `web` (gunicorn,
orders_project.wsgi) and `live` (uvicorn, orders_project.asgi, the Procfile's own flags). Raw sockets, so
a test controls exactly how much of a body is sent, and how slowly.

- a 10 MiB body, with the token or without, to POST /orders and to /healthz with a bad Host: 413 in the
  error shape at once, after the headers and a few bytes (the server never waited for the rest);
- a chunked body (no Content-Length) that grows past the limit: 413 before it ends;
- a body dripping a byte at a time: 408 after REQUEST_BODY_TIMEOUT, and the server serves the next request;
- a request head over the bound: refused (uvicorn's httptools had no bound; h11 has);
- a 1 MiB WebSocket frame: the server closes the socket with 1009 before the app sees the frame, and
  keeps serving other sockets.
"""

import json
import select
import socket
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bench import procs as bench_procs
from e2e.conftest import UVICORN, Processes, free_port, start_web, wait_healthy

pytestmark = pytest.mark.e2e

MAX_BODY = 262_144  # REQUEST_MAX_BODY_BYTES' default: the servers run with it
BODY_TIMEOUT = 2.0
TEN_MIB = 10 * 1024 * 1024
SERVERS = ["gunicorn", "uvicorn"]


def start_live_from_procfile(processes: Processes, port: int, *, env: dict) -> None:
    """The Procfile's `live` line itself (its --http, --ws-max-size, ... flags), on a test port."""
    argv = bench_procs.serve_on(bench_procs.procfile_commands(env)["live"], "127.0.0.1", port)
    assert argv[0] == "uvicorn", argv
    proc = processes.start("live", [UVICORN, *argv[1:]], env={"WEB_CONCURRENCY": "1", **env})
    wait_healthy(proc, port)


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker):
    env = {"REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT), "LIVE_FEED_ANONYMOUS": "True"}
    processes = Processes(env_overrides=env)
    ports = {"gunicorn": free_port(), "uvicorn": free_port()}
    try:
        with django_db_blocker.unblock():
            start_web(processes, ports["gunicorn"])
            start_live_from_procfile(processes, ports["uvicorn"], env=env)
        yield ports
    finally:
        processes.stop_all()


def token() -> str:
    from django.conf import settings

    return settings.SECRET_TOKEN


def head(method: str, path: str, *, host: str = "localhost", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, *, timeout: float) -> tuple[int, dict, bytes]:
    """One HTTP response off the socket; (0, {}, b"") if the server closed without one."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return 0, {}, b""
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def assert_error_shape(body: bytes, code: str) -> dict:
    payload = json.loads(body)
    assert set(payload) == {"message", "code", "extra"} and payload["code"] == code, payload
    return payload


CASES = [("/orders", True), ("/orders", False), ("/healthz", False), ("/healthz", True)]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    "path,auth", CASES, ids=["orders-token", "orders-anonymous", "healthz-bad-host", "healthz-bad-host-token"]
)
def test_a_10_mib_body_is_refused_with_413_after_its_headers_and_a_few_bytes(servers, server, path, auth):
    # given: a POST announcing 10 MiB, of which the client sends only the headers and 1 KiB
    headers = {"Content-Type": "application/json", "Content-Length": str(TEN_MIB)}
    if auth:
        headers["Authorization"] = f"Bearer {token()}"
    with socket.create_connection(("127.0.0.1", servers[server])) as sock:
        started = time.monotonic()
        sock.sendall(head("POST", path, host="evil.example" if path == "/healthz" else "localhost", headers=headers))
        sock.sendall(b"[" * 1024)
        # when: it waits for an answer without sending the rest
        status, response_headers, body = read_response(sock, timeout=5)
    # then: 413 at once, in the API's error shape, and the connection is not kept for the rest
    assert status == 413, (status, body)
    assert time.monotonic() - started < 3
    assert assert_error_shape(body, "request_too_large")["extra"] == {"max_bytes": MAX_BODY}
    assert response_headers.get("connection", "").lower() == "close"


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_sending_the_whole_10_mib_gets_the_413(servers, server):
    # given/when: an ordinary client that sends its whole 10 MiB body before reading
    response = requests.post(
        f"http://127.0.0.1:{servers[server]}/orders",
        data=b"x" * TEN_MIB,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    # then
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


@pytest.mark.parametrize("server", SERVERS)
def test_a_chunked_body_growing_past_the_limit_is_refused_before_it_ends(servers, server):
    # given: a chunked POST (no Content-Length) that sends twice the limit and never its last chunk
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": f"Bearer {token()}"}
    chunk = b"[" * 16384
    with socket.create_connection(("127.0.0.1", servers[server])) as sock:
        sock.sendall(head("POST", "/orders", headers=headers))
        for _ in range(2 * MAX_BODY // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        # when: it waits, the body unfinished
        status, _, body = read_response(sock, timeout=5)
    # then
    assert status == 413, (status, body)
    assert_error_shape(body, "request_too_large")


# gunicorn only: live (uvicorn) serves no API (issue 27 LOW 15); its reassembly of a chunked body is
# core/tests/test_limits.py's test_asgi_a_body_within_the_limit_reaches_the_app_as_one_message.
@pytest.mark.parametrize("server", ["gunicorn"])
def test_a_chunked_body_within_the_limit_reaches_the_api(servers, server):
    # given: a small chunked POST with a bad order (so no database write is needed to answer)
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": f"Bearer {token()}"}
    payload = b'{"customer_id": "c", "items": []}'
    with socket.create_connection(("127.0.0.1", servers[server])) as sock:
        sock.sendall(head("POST", "/orders", headers=headers) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
        status, _, body = read_response(sock, timeout=10)
    # then: the API read the body: only `items` is wrong (Django under gunicorn used to read a chunked body
    # as empty, so `customer_id` was "required" too)
    assert status == 400, (status, body)
    assert set(assert_error_shape(body, "invalid")["extra"]["fields"]) == {"items"}, body


@pytest.mark.parametrize("server", SERVERS)
def test_a_body_dripping_a_byte_at_a_time_is_cut_off_with_408_and_the_server_serves_on(servers, server):
    # given: a POST announcing 1,000 bytes and sending one every 0.3 s (it would take 5 minutes)
    headers = {"Content-Type": "application/json", "Content-Length": "1000", "Authorization": f"Bearer {token()}"}
    with socket.create_connection(("127.0.0.1", servers[server])) as sock:
        started = time.monotonic()
        sock.sendall(head("POST", "/orders", headers=headers))
        answered = False
        # when: it drips, watching for an answer
        while time.monotonic() - started < BODY_TIMEOUT + 6:
            try:
                sock.sendall(b" ")
            except OSError:  # the server closed its side
                break
            if select.select([sock], [], [], 0.3)[0]:
                answered = True
                break
        elapsed = time.monotonic() - started
        status, _, body = read_response(sock, timeout=2) if answered else (0, {}, b"")
    # then: 408 soon after REQUEST_BODY_TIMEOUT, not when gunicorn's 30 s worker timeout would kill the worker
    assert answered and status == 408, (elapsed, status, body)
    assert BODY_TIMEOUT - 0.5 <= elapsed < BODY_TIMEOUT + 2, elapsed
    assert_error_shape(body, "request_timeout")
    assert requests.get(f"http://127.0.0.1:{servers[server]}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("server", ["uvicorn"])  # gunicorn's bounds (limit_request_*) were there before
def test_a_request_head_over_the_bound_is_refused(servers, server):
    # given: a GET with a 1 MiB header (gunicorn bounds a field at 8 KiB; uvicorn's h11 bounds what it
    # buffers of an unfinished head at 16 KiB, so a head that arrives whole in one read may pass up to that
    # read's size: asyncio reads 256 KiB at most)
    with socket.create_connection(("127.0.0.1", servers[server])) as sock:
        sock.sendall(head("GET", "/healthz", headers={"X-Padding": "a" * 1024 * 1024}))
        status, _, _ = read_response(sock, timeout=5)
    # then: a 4xx or a closed connection, never the page
    assert status == 0 or 400 <= status < 500, status


def test_a_1_mib_websocket_frame_closes_that_socket_with_1009_and_the_server_serves_others(servers):
    url, origin = f"ws://127.0.0.1:{servers['uvicorn']}/ws/orders", f"http://127.0.0.1:{servers['uvicorn']}"
    with (
        connect(url, origin=origin, max_size=None, open_timeout=10) as other,
        connect(url, origin=origin, max_size=None, open_timeout=10) as ws,
    ):
        # when: one socket sends a 1 MiB text frame
        ws.send("x" * (1024 * 1024))
        # then: uvicorn closes it as too big (1009) on its own: the app's own check (orders/consumers.py)
        # would say "frame over 64 KiB", after uvicorn had taken the whole frame in
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
        assert "frame over 64 KiB" not in closed.value.rcvd.reason
        # and the other socket is served as before
        other.send(json.dumps({"type": "ping"}))
        assert json.loads(other.recv(timeout=10)) == {"type": "pong"}
