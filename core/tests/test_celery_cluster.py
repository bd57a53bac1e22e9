"""The worker's consumer (core/celery_cluster.py): its event connection publishes without confirms while
every task publish keeps them; against the system RabbitMQ, the tests' vhost."""

from types import SimpleNamespace

from core.celery_cluster import Consumer
from orders_project.celery import app


def _consumer() -> SimpleNamespace:
    """What Consumer.connection_for_write reads of the consumer: the app and its connect-with-retries."""
    return SimpleNamespace(app=app, ensure_connected=lambda conn: conn.ensure_connection(max_retries=1))


def test_event_connection_has_no_publisher_confirms_and_task_publishes_keep_them():
    events = Consumer.connection_for_write(_consumer())  # type: ignore[arg-type]
    try:
        # the broker's transport options otherwise (timeouts), only confirms off
        assert events.transport_options["confirm_publish"] is False
        assert events.transport_options["read_timeout"] == app.conf.broker_transport_options["read_timeout"]
        assert events.connection.confirm_publish is False  # the AMQP connection itself: no confirm.select
        channel = events.channel()
        try:
            assert channel.basic_publish.__name__ != "basic_publish_confirm"
        finally:
            channel.close()
    finally:
        events.release()
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)
        assert producer.connection.connection.confirm_publish is True
