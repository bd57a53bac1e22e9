"""The pipeline's ceiling: a bare 3-task Celery chain, no database, over the same kind of queues.

Same broker, vhost and Celery settings as the product (every CELERY_* value of orders_project.settings:
publisher confirms, acks_late, prefetch, serializer, events), same queue arguments (quorum, delivery
limit, dead-letter strategy), its own topic exchange `bench` and quorum queues bench.a, bench.b,
bench.c. Workers: `celery -A bench.ceiling_celery worker -Q bench.a ...`, started by bench/run.py.
Celery's Django fix-up is off (`fixups=[]`): importing `orders_project` sets DJANGO_SETTINGS_MODULE
(orders_project/celery.py), which would otherwise switch it on, so that every ceiling worker set up
the whole Django project and closed its (unused) database connections and caches around every task.
The chain touches no PostgreSQL. The last task appends its finish time to a Redis list named after
the run (BENCH_CEILING_DONE_KEY, set by bench/run.py), so that two runs never count each other's chains.
"""

import os

from celery import Celery
from kombu import Exchange, Queue

from orders import topology
from orders_project import settings as product

EXCHANGE = Exchange("bench", type="topic", durable=True)
QUEUES = ("bench.a", "bench.b", "bench.c")
DONE_KEY = os.environ.get("BENCH_CEILING_DONE_KEY", "bench:ceiling:done")


def ceiling_queues() -> list[Queue]:
    args = topology.work_queue_arguments(product.QUEUE_DELIVERY_LIMIT)
    return [Queue(name, EXCHANGE, routing_key=name, durable=True, queue_arguments=args) for name in QUEUES]


def _product_celery_conf() -> dict:
    return {
        name[len("CELERY_") :].lower(): getattr(product, name) for name in dir(product) if name.startswith("CELERY_")
    }


app = Celery("bench_ceiling", fixups=[])
app.conf.update(_product_celery_conf())
app.conf.update(
    task_queues=ceiling_queues(),
    task_routes={name: {"queue": name, "exchange": EXCHANGE.name, "routing_key": name} for name in QUEUES},
    task_default_exchange=EXCHANGE.name,
    task_default_queue="bench.a",
    include=["bench.ceiling_tasks"],
)


def declare(connection) -> None:
    channel = connection.default_channel
    EXCHANGE(channel).declare()
    for queue in ceiling_queues():
        queue(channel).declare()
