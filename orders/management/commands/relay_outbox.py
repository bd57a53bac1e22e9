from django.conf import settings
from django.core.management.base import BaseCommand

from core.logging import get_logger
from core.loop import GracefulLoop
from orders.services import outbox_relay_batch

log = get_logger(__name__)


class Command(BaseCommand):
    help = "Publish outbox rows that were committed but not published (safe to run several)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one batch, then exit")
        parser.add_argument("--grace", type=float, default=settings.OUTBOX_GRACE_SECONDS)
        parser.add_argument("--batch-size", type=int, default=settings.OUTBOX_BATCH_SIZE)
        parser.add_argument("--heartbeat-file", default=settings.HEARTBEAT_FILE)

    def handle(self, *args, once, grace, batch_size, heartbeat_file, **options):
        def batch() -> int:
            published = outbox_relay_batch(grace_seconds=grace, batch_size=batch_size)
            if published:
                log.info("outbox_relayed", published=published)
            return published

        GracefulLoop("relay", heartbeat_file=heartbeat_file).run(batch, idle_seconds=settings.OUTBOX_POLL_SECONDS, once=once)
