import json
from typing import cast

from amqp.channel import Channel
from amqp.exceptions import PreconditionFailed
from celery import current_app as app
from django.conf import settings
from django.core.management.base import BaseCommand

from core.celery_cluster import delayed_delivery_declare
from orders import topology

# Queue arguments as RabbitMQ policy keys, for the advice printed when a live queue has other arguments.
POLICY_KEYS = {
    "x-max-length": "max-length",
    "x-max-length-bytes": "max-length-bytes",
    "x-overflow": "overflow",
    "x-delivery-limit": "delivery-limit",
    "x-dead-letter-exchange": "dead-letter-exchange",
    "x-dead-letter-strategy": "dead-letter-strategy",
}


def policy_command(queue, vhost: str) -> str:
    definition = {POLICY_KEYS[k]: v for k, v in queue.queue_arguments.items() if k in POLICY_KEYS}
    pattern = "^" + queue.name.replace(".", r"\.") + "$"
    return (
        f"rabbitmqctl set_policy -p {vhost} {queue.name}-limits "
        f"'{pattern}' '{json.dumps(definition)}' --apply-to queues"
    )


class Command(BaseCommand):
    help = "Declare the RabbitMQ topology (exchanges, quorum queues, DLX, DLQ, bindings). Idempotent."

    def handle(self, *args, **options):
        queues = (
            *topology.work_queues(settings.QUEUE_DELIVERY_LIMIT),
            topology.dead_letter_queue(max_length=settings.DLQ_MAX_LENGTH, max_bytes=settings.DLQ_MAX_BYTES),
        )
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=10)
            channel = conn.channel()
            for exchange in (topology.ORDERS_EXCHANGE, topology.DEAD_LETTER_EXCHANGE):
                exchange(channel).declare()
            for queue in queues:
                try:
                    queue(channel).declare()
                except PreconditionFailed as exc:
                    # RabbitMQ cannot change a live queue's arguments (and closed the channel for asking).
                    # The queue exists and keeps working as declared before: say how to apply the new
                    # limits as a policy, and go on (every process must still start).
                    channel = conn.channel()
                    queue(channel).queue_declare(passive=True)
                    queue(channel).queue_bind()
                    self.stderr.write(
                        self.style.WARNING(
                            f"queue {queue.name} exists with other arguments ({exc.reply_text}); kept as it is. "
                            f"To apply {queue.queue_arguments} to it: {policy_command(queue, conn.virtual_host)}"
                        )
                    )
                    continue
                self.stdout.write(
                    f"queue {queue.name} -> {queue.exchange.name} [{queue.routing_key}] {queue.queue_arguments}"
                )
            cast(Channel, channel).close()  # kombu's StdChannel in the stubs: py-amqp's Channel here
            # Celery's delayed-retry queues (quorum, replicated like the work queues) and their bindings,
            # declared here once for the whole cluster; workers re-check them over their own connection.
            delayed_delivery_declare(conn, app.amqp.queues.values())
            self.stdout.write("delayed-delivery exchanges and queues (celery_delayed_0..27) bound")
        self.stdout.write(self.style.SUCCESS("topology declared"))
