"""Request bodies bounded in size and time, before Django sees them, on both servers the project ships.

`WSGIRequestLimits` wraps the WSGI app (gunicorn, `web`), `ASGIRequestLimits` the ASGI app (uvicorn,
`live`). Each answers, in the API's error shape, before any view, middleware or host check runs:
- `413` when `Content-Length` says more than REQUEST_MAX_BODY_BYTES, without reading a byte of the body,
  or when a chunked body (no Content-Length) grows past it: at most the limit (+1 byte) is ever read;
- `408` when the body has not fully arrived REQUEST_BODY_TIMEOUT seconds after the headers (a client that
  drips a few bytes a second would otherwise hold a gunicorn sync worker until its `timeout` kills it).
A body within the limits is read here, into memory (at most the limit), and handed on whole: Django reads
it all before any view anyway (and spools an ASGI body over 2.5 MiB to disk, which can no longer happen),
and a chunked body reaches Django at all (its WSGI request ignores a body without Content-Length).
Both answers close the connection: the rest of the body is never read.
"""

import asyncio
import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings

# WSGI and ASGI as these wrappers use them (the wrapped apps are Django's handlers, typed by their own stubs).
StartResponse = Callable[..., Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_CHUNK = 64 * 1024


def _error_body(status: int, max_bytes: int, timeout: float) -> tuple[str, bytes]:
    reason, code, message, extra = {
        413: (
            "413 Content Too Large",
            "request_too_large",
            f"Request body over {max_bytes} bytes.",
            {"max_bytes": max_bytes},
        ),
        408: (
            "408 Request Timeout",
            "request_timeout",
            f"Request body not received within {timeout:g} s.",
            {"timeout_seconds": timeout},
        ),
        400: ("400 Bad Request", "malformed_body", "Request body could not be read (malformed chunked encoding?).", {}),
    }[status]
    return reason, json.dumps({"message": message, "code": code, "extra": extra}).encode()


class _Malformed(Exception):
    pass


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class _Watchdog:
    """One thread per worker process that ends a body read past its deadline: it shuts the socket's read
    side, so the blocked recv returns end-of-file. A per-recv socket timeout would not do (a client sending
    one byte just inside it would be waited for forever). Arming is an attribute write, no lock and no
    wake-up on the request path; the thread looks every INTERVAL seconds (the deadline's precision)."""

    INTERVAL = 0.25

    def __init__(self) -> None:
        self.armed: list[Any] | None = None  # [deadline, socket, fired]: one per read, so a late look never leaks
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, deadline: float) -> list[Any]:
        if self._thread is None or not self._thread.is_alive():  # first request, or after a fork
            self._thread = threading.Thread(target=self._run, name="request-body-watchdog", daemon=True)
            self._thread.start()
        self.armed = armed = [deadline, sock, False]
        return armed

    def disarm(self) -> None:
        self.armed = None

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL)
            armed = self.armed
            if armed is not None and time.monotonic() >= armed[0]:
                armed[2] = True
                with contextlib.suppress(OSError):  # already closed: the request ended meanwhile
                    armed[1].shutdown(socket.SHUT_RD)


class WSGIRequestLimits:
    def __init__(self, app: Any, *, max_bytes: int | None = None, timeout: float | None = None) -> None:
        self.app = app
        self.max_bytes = settings.REQUEST_MAX_BODY_BYTES if max_bytes is None else max_bytes
        self.timeout = settings.REQUEST_BODY_TIMEOUT if timeout is None else timeout
        self.watchdog = _Watchdog()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # gunicorn refuses a malformed Content-Length itself; Django reads such a body as empty
        if length > self.max_bytes:
            return self._refuse(413, start_response)
        if length > 0 or chunked:
            try:
                body = self._read(environ, length if not chunked else None)
            except _TooLarge:
                return self._refuse(413, start_response)
            except _TooSlow:
                return self._refuse(408, start_response)
            except _Malformed:
                return self._refuse(400, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)

    def _read(self, environ: dict[str, Any], length: int | None) -> bytes:
        stream = environ["wsgi.input"]
        sock = environ.get("gunicorn.socket")  # the deadline needs the socket; other servers read unbounded in time
        armed = self.watchdog.arm(sock, time.monotonic() + self.timeout) if sock is not None else None
        want = self.max_bytes + 1 if length is None else length
        chunks: list[bytes] = []
        got, error = 0, None
        try:
            while got < want:
                chunk = stream.read(min(_CHUNK, want - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except Exception as exc:  # the read side shut by the watchdog mid-chunk, or the client went away
            error = exc
        finally:
            if armed is not None:
                self.watchdog.disarm()
        if armed is not None and armed[2] and (error is not None or (length is not None and got < want)):
            raise _TooSlow
        if error is not None:  # gunicorn's InvalidChunkSize and kin, or the client gone (then nobody reads this)
            raise _Malformed from error
        if got > self.max_bytes:
            raise _TooLarge
        return b"".join(chunks)

    def _refuse(self, status: int, start_response: StartResponse) -> list[bytes]:
        reason, body = _error_body(status, self.max_bytes, self.timeout)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
        start_response(reason, headers)
        return [body]


class ASGIRequestLimits:
    """The same for ASGI HTTP requests; WebSocket frames are bounded by uvicorn (`--ws-max-size`)."""

    def __init__(self, app: Any, *, max_bytes: int | None = None, timeout: float | None = None) -> None:
        self.app = app
        self.max_bytes = settings.REQUEST_MAX_BODY_BYTES if max_bytes is None else max_bytes
        self.timeout = settings.REQUEST_BODY_TIMEOUT if timeout is None else timeout

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                try:
                    if int(value) > self.max_bytes:
                        return await self._refuse(413, send)
                except ValueError:
                    pass  # the server's parser refuses a malformed length before the app runs
        chunks: list[bytes] = []
        got = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left; nobody to answer
                    chunk = message.get("body", b"")
                    got += len(chunk)
                    if got > self.max_bytes:
                        return await self._refuse(413, send)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return await self._refuse(408, send)
        if declared is None and got:
            # A chunked body, now whole: say its length, or DRF reads it as empty (no Content-Length).
            headers = [(k, v) for k, v in scope["headers"] if k != b"transfer-encoding"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(got).encode())]}
        replayed = False

        async def receive_buffered() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: the server's http.disconnect, when it comes

        return await self.app(scope, receive_buffered, send)

    async def _refuse(self, status: int, send: Send) -> None:
        _, body = _error_body(status, self.max_bytes, self.timeout)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
