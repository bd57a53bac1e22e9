import contextlib
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from core.logging import get_logger
from core.loop import GracefulLoop
from orders.services import OUTBOX_CHANNEL, orders_reconcile, outbox_relay_batch

log = get_logger(__name__)


class OutboxWakeup:
    """LISTEN on the outbox channel over a connection of its own (the `direct` database: a session on the
    primary, never through a transaction pooler): a commit that leaves an outbox row for the relay
    (OUTBOX_PUBLISH_INLINE=False) wakes the relay at once instead of at its next poll."""

    def __init__(self, channel: str):
        self.channel = channel
        self.wrapper: BaseDatabaseWrapper | None = None

    def _connection(self):
        if self.wrapper is None:
            # A wrapper of its own (no request or task end closes it), on the alias's current settings (under
            # the tests, the mirror of the test database).
            direct = connections["direct"]
            self.wrapper = type(direct)(dict(direct.settings_dict), "direct")
            self.wrapper.ensure_connection()
            self.wrapper.connection.autocommit = True
            with self.wrapper.connection.cursor() as cursor:
                cursor.execute(f'LISTEN "{self.channel}"')
        return self.wrapper.connection

    def wait(self, timeout: float, linger: float = 0.0) -> bool:
        """Block until a notification or `timeout` seconds; True if notified. After the first notification,
        take every other one that arrives within `linger` seconds (or is already here): each commit notifies,
        and one batch takes all of their rows, so they must not wake the relay again to read an empty outbox."""
        try:
            connection = self._connection()
            if not any(True for _ in connection.notifies(timeout=timeout, stop_after=1)):
                return False
            # psycopg's own deadline bounds this (a stream of commits cannot keep the relay here); with no
            # linger it polls once and takes what has arrived.
            for _ in connection.notifies(timeout=linger):
                pass
            return True
        except Exception as exc:  # the database went away: poll until it is back
            log.warning("outbox_listen_failed", error=f"{type(exc).__name__}: {exc}")
            self.close()
            return False

    def close(self) -> None:
        if self.wrapper is not None:
            with contextlib.suppress(Exception):
                self.wrapper.close()
            self.wrapper = None


class Command(BaseCommand):
    help = "Publish outbox rows that were committed but not published (safe to run several)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one batch, then exit")
        # Rows are the fast path's for a grace period; with the inline publish off, they are the relay's at once.
        parser.add_argument(
            "--grace", type=float, default=settings.OUTBOX_GRACE_SECONDS if settings.OUTBOX_PUBLISH_INLINE else 0.0
        )
        parser.add_argument("--batch-size", type=int, default=settings.OUTBOX_BATCH_SIZE)
        parser.add_argument("--heartbeat-file", default=settings.HEARTBEAT_FILE)
        parser.add_argument("--no-listen", action="store_true", help="poll only, no LISTEN/NOTIFY wake-up")

    def handle(self, *args, once, grace, batch_size, heartbeat_file, no_listen, **options):
        if settings.DB_TRANSACTION_POOLER and not settings.DATABASE_DIRECT_URL and not no_listen:
            # A LISTEN through a transaction pooler lands on a server connection other transactions then take.
            log.warning("outbox_listen_off", reason="DB_TRANSACTION_POOLER without DATABASE_DIRECT_URL: polling only")
            no_listen = True
        wakeup = None if (once or no_listen) else OutboxWakeup(OUTBOX_CHANNEL)
        interval = settings.RECONCILE_INTERVAL_SECONDS
        next_reconcile = time.monotonic() + interval

        def batch() -> int:
            nonlocal next_reconcile
            if interval and not once and time.monotonic() >= next_reconcile:
                # The relay is the one long-running process beside the outbox: it also finds lost messages.
                next_reconcile = time.monotonic() + interval
                try:
                    orders_reconcile()
                except Exception as exc:  # never let a reconcile pass stop the relay's publishing
                    log.warning("reconcile_failed", error=f"{type(exc).__name__}: {exc}")
            published = outbox_relay_batch(grace_seconds=grace, batch_size=batch_size)
            if published:
                log.info("outbox_relayed", published=published)
                if wakeup is None or published >= batch_size:
                    return published  # a full batch: more may be waiting
            if wakeup is not None:
                # Idle, or a partial batch took every row there was: sleep on LISTEN (not a fixed poll) rather
                # than read an empty outbox again; a commit since that read has notified, so this returns at once.
                # The wake-up takes every notification already here (and those of OUTBOX_LINGER_SECONDS, if set):
                # one batch carries their orders, rather than a wake-up and an outbox read for each.
                return (
                    1 if wakeup.wait(settings.OUTBOX_POLL_SECONDS, settings.OUTBOX_LINGER_SECONDS) or published else 0
                )
            return 0

        idle = 0.0 if wakeup is not None else settings.OUTBOX_POLL_SECONDS
        try:
            GracefulLoop("relay", heartbeat_file=heartbeat_file).run(batch, idle_seconds=idle, once=once)
        finally:
            if wakeup is not None:
                wakeup.close()
