"""A polling loop for the relay and the archiver: finishes its batch on SIGTERM/SIGINT, then exits."""

import signal
import threading
from collections.abc import Callable
from types import FrameType

from core import heartbeat
from core.logging import get_logger

log = get_logger(__name__)


class GracefulLoop:
    def __init__(self, name: str, *, heartbeat_file: str | None = None, failure_limit: int = 0):
        self.name = name
        self.heartbeat_file = heartbeat_file
        # After this many failed batches in a row the heartbeat is no longer touched, so the liveness
        # probe restarts a loop that keeps failing (0: a failed batch never stops the heartbeat).
        self.failure_limit = failure_limit
        self.failures = 0
        self.stopping = threading.Event()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        log.info("loop_stopping", loop=self.name, signal=signal.Signals(signum).name)
        self.stopping.set()

    def run(self, batch: Callable[[], int], *, idle_seconds: float, once: bool = False) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("loop_started", loop=self.name)
        while not self.stopping.is_set():
            try:
                done = batch()
                self.failures = 0
            except Exception as exc:  # a database or broker blip: back off and go on
                self.failures += 1
                log.warning(
                    "loop_batch_failed",
                    loop=self.name,
                    error=f"{type(exc).__name__}: {exc}",
                    failures_in_a_row=self.failures,
                )
                done = 0
                self._close_db()
            if not self.failure_limit or self.failures < self.failure_limit:
                heartbeat.beat(self.heartbeat_file)
            elif self.failures == self.failure_limit:
                log.error(
                    "loop_unhealthy", loop=self.name, failures_in_a_row=self.failures, heartbeat="no longer touched"
                )
            if once:
                break
            if not done:
                self.stopping.wait(idle_seconds)
        log.info("loop_stopped", loop=self.name)

    @staticmethod
    def _close_db() -> None:
        from django.db import connections

        for conn in connections.all():
            conn.close_if_unusable_or_obsolete()
