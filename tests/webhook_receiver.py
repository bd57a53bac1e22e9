"""A real webhook receiver for the tests: an HTTP server on loopback, in a thread, that verifies every
delivery with the `standardwebhooks` library (as a client's receiver would) and answers as scripted:
200 by default, or the next scripted answer (a status with headers, a hang past the read timeout, an answer
dripped a byte at a time, or one cut short of its Content-Length)."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: str = "ok"
    hang: float = 0.0  # seconds to wait before answering (past the read timeout: the sender gives up)
    drip: float = 0.0  # seconds between bytes: the answer sent one byte at a time, each read well in time
    drip_head: bool = False  # drip the status line and headers too (else they go at once, then the body drips)
    short_by: int = 0  # announce this many more bytes than sent, then close (an incomplete answer)


@dataclass
class Call:
    path: str
    headers: dict
    body: bytes
    verified_by: list  # indexes into the receiver's secrets that verify this delivery
    answered: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.calls: list[Call] = []
        self.script: list[Answer] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    answer = receiver.script.pop(0) if receiver.script else Answer()
                    verified = [
                        i for i, secret in enumerate(receiver.secrets) if receiver.verifies(secret, body, headers)
                    ]
                    receiver.calls.append(Call(self.path, headers, body, verified, answer.status))
                if answer.hang:
                    time.sleep(answer.hang)
                try:
                    payload = answer.body.encode()
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload) + answer.short_by))
                    if answer.drip:
                        head = b"".join(self._headers_buffer)  # what end_headers() would flush, and its CRLF
                        self._headers_buffer = []
                        self._drip(head + b"\r\n", answer.drip if answer.drip_head else 0.0)
                        self._drip(payload, answer.drip)
                    else:
                        self.end_headers()
                        self.wfile.write(payload)
                    if answer.short_by:
                        self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up (a hang past its read timeout, or its deadline)

            def _drip(self, data: bytes, interval: float) -> None:
                if not interval:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(interval)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def verifies(secret: str, body: bytes, headers: dict) -> bool:
        try:
            Webhook(secret).verify(body, headers)
            return True
        except WebhookVerificationError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orders"

    def answer_next(self, *answers: Answer) -> None:
        with self.lock:
            self.script.extend(answers)

    def wait_for(self, count: int, timeout: float = 30) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.calls)} webhook calls after {timeout}s, expected {count}: {self.calls}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
