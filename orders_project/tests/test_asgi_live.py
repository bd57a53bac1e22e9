"""Issue 27 LOW 15: `live` (uvicorn, orders_project.asgi) answers over HTTP only its probes; the admin, /ops,
the API and /metrics are web's. Driven in-process as uvicorn drives it."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

from orders_project.asgi import application


async def http_get(path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8001),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=10)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=5)
    return start["status"], body


@pytest.mark.parametrize("path", ["/admin/login/", "/ops/diagnostics", "/orders", "/metrics", "/", "/static/x.js"])
def test_live_refuses_every_http_path_but_its_probes(path):
    status, _ = async_to_sync(http_get)(path)
    assert status == 404, (path, status)


def test_live_still_answers_its_liveness_probe():
    status, _ = async_to_sync(http_get)("/healthz")
    assert status == 200
