"""A broker that stops answering, for timeout tests, without touching the shared RabbitMQ: a TCP proxy
to the real one that passes on the first `answers` frames RabbitMQ sends to the client and swallows
everything after (what a client sees when the broker blocks publishers under a memory or disk alarm,
or hangs). `answers=0` accepts and never answers at all. What the client sends is always passed on."""

import contextlib
import socket
import struct
import threading

from django.conf import settings
from kombu import Connection

FRAME_HEADER = struct.Struct(">BHI")  # type, channel, payload size; then the payload and 0xCE

# Frames RabbitMQ sends, in order, to a confirm-mode publisher: connection.start, .tune, .open-ok,
# channel.open-ok, confirm.select-ok, then the confirms.
AFTER_HANDSHAKE = 3
AFTER_CONFIRM_SELECT = 5


class StallingBroker:
    def __init__(self, answers: int):
        self.answers = answers
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        real = Connection(settings.CELERY_BROKER_URL)
        return f"amqp://{real.userid}:{real.password}@127.0.0.1:{self.port}/{real.virtual_host}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.sockets.append(client)
            if self.answers == 0:
                threading.Thread(target=self._drain, args=(client,), daemon=True).start()
                continue
            real = Connection(settings.CELERY_BROKER_URL)
            upstream = socket.create_connection((real.hostname or "127.0.0.1", real.port or 5672))
            self.sockets.append(upstream)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answer, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _drain(sock) -> None:
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    @staticmethod
    def _pipe(source, target) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def _answer(self, upstream, client) -> None:
        buffer, passed = b"", 0
        try:
            while data := upstream.recv(65536):
                buffer += data
                while len(buffer) >= FRAME_HEADER.size:
                    size = FRAME_HEADER.unpack_from(buffer)[2] + FRAME_HEADER.size + 1
                    if len(buffer) < size:
                        break
                    frame, buffer = buffer[:size], buffer[size:]
                    if passed < self.answers:
                        client.sendall(frame)
                        passed += 1
        except OSError:
            pass

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()
