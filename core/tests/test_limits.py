"""core/limits.py in-process: what each wrapper reads of a body, and what it answers. The real servers
(gunicorn, uvicorn) with real sockets are in e2e/test_limits.py."""

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.conf import settings

from core.limits import ASGIRequestLimits, Receive, Send, WSGIRequestLimits

LIMIT = 1000


class CountingInput(io.BytesIO):
    """wsgi.input that remembers how much the app took."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


def call_wsgi(environ: dict) -> tuple[str, dict, bytes, list]:
    seen = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append((environ["CONTENT_LENGTH"], environ["wsgi.input"].read()))
        start_response("200 OK", [])
        return [b"ok"]

    result: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        result.update(status=status, headers=dict(headers))

    body = b"".join(WSGIRequestLimits(app, max_bytes=LIMIT, timeout=5)(environ, start_response))
    return result["status"], result["headers"], body, seen


def test_the_body_limits_default_to_256_kib_and_django_uses_the_same() -> None:
    assert settings.REQUEST_MAX_BODY_BYTES == 262_144 == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def test_wsgi_a_content_length_over_the_limit_is_413_without_reading_the_body() -> None:
    # given: a request announcing 10 MiB
    stream = CountingInput(b"x" * (10 * 1024 * 1024))
    # when
    status, headers, body, seen = call_wsgi(
        {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(10 * 1024 * 1024), "wsgi.input": stream}
    )
    # then: refused in the error shape, nothing read, the app never called, the connection not kept
    assert status.startswith("413") and seen == [] and stream.taken == 0
    assert json.loads(body) == {
        "message": f"Request body over {LIMIT} bytes.",
        "code": "request_too_large",
        "extra": {"max_bytes": LIMIT},
    }
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"


def test_wsgi_a_chunked_body_is_cut_off_one_byte_past_the_limit() -> None:
    stream = CountingInput(b"x" * (10 * LIMIT))
    status, _, _, seen = call_wsgi(
        {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream}
    )
    assert status.startswith("413") and seen == [] and stream.taken == LIMIT + 1


def test_wsgi_a_chunked_body_within_the_limit_reaches_the_app_whole_with_its_length() -> None:
    status, _, _, seen = call_wsgi(
        {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"y" * LIMIT)}
    )
    assert status.startswith("200") and seen == [(str(LIMIT), b"y" * LIMIT)]


def run_asgi(messages: list[dict], headers: list, *, timeout: float = 5) -> tuple[list, list, int]:
    """Runs the ASGI wrapper; returns what it sent, what the app received, and how many messages it took."""
    sent: list[dict] = []
    received: list[dict] = []
    taken = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken < len(messages):
            taken += 1
            return messages[taken - 1]
        await asyncio.sleep(3600)  # a client that sends nothing more
        raise AssertionError("unreachable: the wrapper gives up first")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/orders", "headers": headers}
    asyncio.run(ASGIRequestLimits(app, max_bytes=LIMIT, timeout=timeout)(scope, receive, send))
    return sent, received, taken


def test_asgi_a_content_length_over_the_limit_is_413_before_any_body_is_received() -> None:
    sent, received, taken = run_asgi(
        [{"type": "http.request", "body": b"x" * 65536, "more_body": True}], [(b"content-length", b"10485760")]
    )
    assert (sent[0]["status"], received, taken) == (413, [], 0)
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["code"] == "request_too_large"


def test_asgi_a_streamed_body_is_refused_once_it_grows_past_the_limit() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 300, "more_body": True}] * 30
    sent, received, taken = run_asgi(chunks, [])
    assert (sent[0]["status"], received, taken) == (413, [], 4)  # 4 x 300 > 1000


def test_asgi_a_body_within_the_limit_reaches_the_app_as_one_message() -> None:
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"c", "more_body": False},
    ]
    sent, received, _ = run_asgi(chunks, [(b"content-length", b"3")])
    assert received == [{"type": "http.request", "body": b"abc", "more_body": False}] and sent[0]["status"] == 200


def test_asgi_a_body_that_stops_arriving_is_408_after_the_timeout() -> None:
    sent, received, _ = run_asgi(
        [{"type": "http.request", "body": b"a", "more_body": True}], [(b"content-length", b"10")], timeout=0.2
    )
    assert (sent[0]["status"], received) == (408, [])
    assert json.loads(sent[1]["body"]) == {
        "message": "Request body not received within 0.2 s.",
        "code": "request_timeout",
        "extra": {"timeout_seconds": 0.2},
    }


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
def test_asgi_other_scopes_pass_through_untouched(scope_type: str) -> None:
    calls = []

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        calls.append(scope["type"])

    asyncio.run(
        ASGIRequestLimits(app, max_bytes=LIMIT, timeout=1)({"type": scope_type}, cast(Any, None), cast(Any, None))
    )  # never used
    assert calls == [scope_type]
