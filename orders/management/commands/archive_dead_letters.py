import os

from django.conf import settings
from django.core.management.base import BaseCommand

from core.loop import GracefulLoop
from orders.dead_letters import dlq_archive_batch


class Command(BaseCommand):
    help = "Move dead letters from the RabbitMQ DLQ into PostgreSQL (store, then ack)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="drain one batch, then exit")
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--heartbeat-file", default=settings.HEARTBEAT_FILE)

    def handle(self, *args, once, batch_size, heartbeat_file, **options):
        # The fault for the at-least-once test and the chaos run: die between a dead letter's store and its ack.
        crash = (lambda: os._exit(99)) if settings.DEAD_LETTER_FAULT_AFTER_STORE else None
        GracefulLoop("archiver", heartbeat_file=heartbeat_file, failure_limit=settings.ARCHIVER_FAILURE_LIMIT).run(
            lambda: dlq_archive_batch(limit=batch_size, after_store=crash),
            idle_seconds=settings.OUTBOX_POLL_SECONDS,
            once=once,
        )
