from django.conf import settings
from django.core.management.base import BaseCommand

from orders_project import broker
from orders_project.celery import app


class Command(BaseCommand):
    help = "Declare the RabbitMQ topology (exchanges, quorum queues, DLX, DLQ, bindings). Idempotent."

    def handle(self, *args, **options):
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=10)
            channel = conn.default_channel
            for exchange in (broker.ORDERS_EXCHANGE, broker.DEAD_LETTER_EXCHANGE):
                exchange(channel).declare()
            for queue in (*broker.work_queues(settings.QUEUE_DELIVERY_LIMIT), broker.dead_letter_queue()):
                queue(channel).declare()
                self.stdout.write(f"queue {queue.name} -> {queue.exchange.name} [{queue.routing_key}] {queue.queue_arguments}")
        self.stdout.write(self.style.SUCCESS("topology declared"))
