"""Three tasks that only pass a number along; the last one records when it finished (Redis)."""

import time

import redis

from bench.ceiling_celery import DONE_KEY, app
from orders_project import settings as product

_redis = None


def _client():
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(product.REDIS_URL)
    return _redis


@app.task(name="bench.a")
def step_a(n, sent_at=None):
    return [n, sent_at]


@app.task(name="bench.b")
def step_b(value):
    return value


@app.task(name="bench.c")
def step_c(value):
    n, sent_at = value
    now = time.time()
    _client().rpush(DONE_KEY, f"{now:.6f} {sent_at or 0:.6f}")
    return n


def ceiling_chain(n: int, sent_at: float | None = None):
    from celery import chain

    return chain(step_a.si(n, sent_at), step_b.s(), step_c.s())
