"""The run's RabbitMQ vhost as the driver sees it: the vhost itself, queue depths and consumers, purges."""

import subprocess
import time

# the stages' queues and Celery's delayed-delivery queues (retries with a countdown wait there)
DELAYED = [f"celery_delayed_{i}" for i in range(28)]
PIPELINE_QUEUES = ["process", "enrichment", "finalize", *DELAYED]


class Queues:
    def __init__(self, url: str):
        self.url = url

    def connection(self):
        from kombu import Connection

        return Connection(self.url, connect_timeout=5)

    def depth(self, name: str) -> int:
        with self.connection() as conn:
            try:
                return conn.default_channel.queue_declare(name, passive=True).message_count
            except Exception:
                return 0

    def consumers(self, name: str) -> int:
        with self.connection() as conn:
            try:
                return conn.default_channel.queue_declare(name, passive=True).consumer_count
            except Exception:
                return 0

    def ready_messages(self, names: list[str]) -> int:
        """Messages waiting (ready, incl. delayed retries) in `names`, over one connection; a queue not
        declared yet counts 0."""
        total = 0
        with self.connection() as conn:
            channel = conn.channel()
            for name in names:
                try:
                    total += channel.queue_declare(name, passive=True).message_count
                except Exception:
                    channel = conn.channel()
        return total

    def work_queues(self) -> list[str]:
        from bench.ceiling_celery import QUEUES

        return ["process", "enrichment", "finalize", *QUEUES]

    def purge(self) -> None:
        from bench.ceiling_celery import QUEUES

        names = ["process", "enrichment", "finalize", "orders.dlq", *QUEUES, *DELAYED]
        with self.connection() as conn:
            channel = conn.channel()
            for name in names:
                try:
                    channel.queue_purge(name)
                except Exception:  # a delayed-delivery queue not declared yet
                    channel = conn.channel()

    def ensure_vhost(self, name: str, deadline: float, log) -> None:
        """Create the vhost if missing; RabbitMQ down is waited for until `deadline`."""
        while True:
            try:
                with self.connection() as conn:
                    conn.connect()  # the vhost exists and guest may use it: no rabbitmqctl (a second each)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ vhost {name} not usable: {exc}") from exc
                created = subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True, timeout=60)
                allowed = subprocess.run(
                    ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                    capture_output=True,
                    timeout=60,
                )
                if allowed.returncode != 0:
                    log(
                        "RabbitMQ not ready "
                        f"({(allowed.stderr or created.stderr).decode(errors='replace').strip()[:80]}); retrying"
                    )
                    time.sleep(3)
