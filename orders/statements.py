"""The pipeline's raw SQL, in one place: the statements of the hot path (accepting an order, the three stages,
the relay's batch) and the pieces they share, each one round trip where the ORM would take several.

They speak the models' language: table names come from the models' `_meta`, and every status, history event,
outbox kind and webhook state is a parameter taken from the models' enums (`VOCABULARY`, merged in by
`params()`), never a literal in the SQL. Rows come back named (`fetch_one`, `fetch_all`). History rows are
written by `history_insert()` here and by `services/history.py` through the ORM, and nowhere else.
"""

from collections import namedtuple
from functools import lru_cache
from typing import Any

from clients.models import WebhookEndpoint
from orders.models import (
    HistoryEvent,
    IdempotencyKey,
    Invoice,
    Order,
    OrderEnrichment,
    OrderHistory,
    OrderItem,
    OrderStatus,
    OutboxMessage,
    Product,
)
from orders.pipeline import OutboxKind
from orders.webhooks.models import WebhookEvent, WebhookEventStatus

# PostgreSQL NOTIFY channel: a commit that leaves an outbox row for the relay wakes it at once.
OUTBOX_CHANNEL = "orders_outbox"

T = {
    "order": Order._meta.db_table,
    "item": OrderItem._meta.db_table,
    "product": Product._meta.db_table,
    "history": OrderHistory._meta.db_table,
    "enrichment": OrderEnrichment._meta.db_table,
    "invoice": Invoice._meta.db_table,
    "key": IdempotencyKey._meta.db_table,
    "outbox": OutboxMessage._meta.db_table,
    "event": WebhookEvent._meta.db_table,
    "endpoint": WebhookEndpoint._meta.db_table,
}

# Every state, event and kind the statements write or compare, by parameter name.
VOCABULARY = {
    "status_pending": OrderStatus.PENDING.value,
    "status_processing": OrderStatus.PROCESSING.value,
    "status_completed": OrderStatus.COMPLETED.value,
    "event_accepted": HistoryEvent.ACCEPTED.value,
    "event_completed": HistoryEvent.COMPLETED.value,
    "event_published": HistoryEvent.PUBLISHED.value,
    "kind_order_created": OutboxKind.ORDER_CREATED.value,
    "kind_webhook": OutboxKind.WEBHOOK.value,
    "webhook_pending": WebhookEventStatus.PENDING.value,
    "channel": OUTBOX_CHANNEL,
}


def params(**values: Any) -> dict:
    """A statement's parameters: the vocabulary and `values`."""
    return {**VOCABULARY, **values}


@lru_cache(maxsize=64)
def _row_type(columns: tuple[str, ...]) -> type:
    return namedtuple("Row", columns)


def _named(cursor: Any, rows: list[tuple]) -> list:
    row = _row_type(tuple(column.name for column in cursor.description))
    return [row(*values) for values in rows]


def fetch_all(cursor: Any) -> list:
    """The rows of the statement just executed, each a named tuple of its columns."""
    return _named(cursor, cursor.fetchall())


def fetch_one(cursor: Any) -> Any:
    """The first row of the statement just executed, named; None without one."""
    values = cursor.fetchone()
    return None if values is None else _named(cursor, [values])[0]


def history_insert(name: str, source: str) -> str:
    """A CTE `name` writing history rows: `source` is a VALUES or SELECT giving (order_id, stage, event, detail,
    created_at)."""
    return f"{name} AS (\n    INSERT INTO {T['history']} (order_id, stage, event, detail, created_at)\n    {source}\n)"


# ----------------------------------------------------------------------------------------- accepting an order
# One statement, so one round trip and one durable commit (autocommit): the order, its items, its idempotency key
# (if any), the outbox row and the `accepted` history entry, then NOTIFY, which PostgreSQL delivers at commit to
# the relay's LISTEN. A reused key violates the (client, key) constraint and the whole statement rolls back (the
# caller handles it); a racing twin waits for the first's commit.
ORDER_CREATE = """
WITH o AS (
    INSERT INTO {order} (
        id, client_id, customer_id, source, status, total_amount, failure_reason, failure_kind, created_at, updated_at
    )
    VALUES (%(id)s, %(client_id)s, %(customer_id)s, %(source)s, %(status_pending)s, NULL, '', '', %(now)s, %(now)s)
    RETURNING id
), i AS (
    INSERT INTO {item} (order_id, sku, qty, unit_price)
    SELECT o.id, t.sku, t.qty, NULL
    FROM o, unnest(%(skus)s::varchar[], %(qtys)s::int[]) WITH ORDINALITY AS t(sku, qty, n)
    ORDER BY t.n
), k AS (
    INSERT INTO {key} (order_id, client_id, key, request_hash, created_at)
    SELECT o.id, %(client_id)s, %(key)s, %(request_hash)s, %(now)s FROM o WHERE %(key)s::varchar IS NOT NULL
), m AS (
    INSERT INTO {outbox} (id, order_id, kind, payload, created_at, published_at, publish_attempts, last_error)
    SELECT %(outbox_id)s, o.id, %(kind_order_created)s, '{{}}', %(now)s, NULL, 0, '' FROM o
), {history_cte}
SELECT pg_notify(%(channel)s, '') FROM o WHERE %(notify)s
""".format(  # noqa: S608  (table names from _meta; every value is a parameter)
    history_cte=history_insert("h", "SELECT o.id, %(step)s, %(event_accepted)s, %(detail)s, %(now)s FROM o"), **T
)

# ----------------------------------------------------------------------------------------- stock
# A CTE fragment for the stages' statements: the wanted products, locked in sku order (the order every writer
# locks them in: no deadlock between orders), each with whether enough is available. Parameters: skus, qtys.
STOCK_LOCKED = """
    want AS (SELECT * FROM unnest(%(skus)s::varchar[], %(qtys)s::int[]) AS w(sku, qty)),
    locked AS (
        SELECT p.id, w.qty, p.stock >= p.reserved + w.qty AS enough
        FROM {product} p JOIN want w ON w.sku = p.sku ORDER BY p.sku FOR UPDATE OF p
    )""".format(**T).strip()  # noqa: S608  (the table name from _meta; values are parameters)

# ----------------------------------------------------------------------------------------- webhook events
# CTEs `wh` (the event, if the order's client has an endpoint) and `wo` (its outbox row, whose RETURNING wakes
# the relay at commit) for a statement with parameters id (the order), now and webhook_type. Data-modifying CTEs
# always run to completion, referenced or not.
WEBHOOK_EVENT = """
wh AS (
    INSERT INTO {event} (id, order_id, client_id, type, status, body, attempts, last_error, created_at)
    SELECT gen_random_uuid(), o.id, o.client_id, %(webhook_type)s, %(webhook_pending)s, '', 0, '', %(now)s
    FROM {order} o JOIN {endpoint} e ON e.client_id = o.client_id WHERE o.id = %(id)s
    RETURNING id, order_id
), wo AS (
    INSERT INTO {outbox} (id, order_id, kind, payload, created_at, publish_attempts, last_error)
    SELECT gen_random_uuid(), order_id, %(kind_webhook)s, jsonb_build_object('event_id', id::text), %(now)s, 0, ''
    FROM wh RETURNING pg_notify(%(channel)s, '')
)""".format(**T).strip()  # noqa: S608  (tables from _meta; values are parameters)
WEBHOOK_EVENT_RECORD = f"WITH {WEBHOOK_EVENT}\nSELECT count(*) AS recorded FROM wh"
# A re-enabled endpoint: every pending event of its client published again through the outbox.
WEBHOOK_REPUBLISH = """
WITH m AS (
    INSERT INTO {outbox} (id, order_id, kind, payload, created_at, publish_attempts, last_error)
    SELECT gen_random_uuid(), order_id, %(kind_webhook)s, jsonb_build_object('event_id', id::text), %(now)s, 0, ''
    FROM {event} WHERE client_id = %(client_id)s AND status = %(webhook_pending)s
    RETURNING 1
)
SELECT count(*) AS published, pg_notify(%(channel)s, '') FROM m""".format(**T)  # noqa: S608  (tables from _meta)

# ----------------------------------------------------------------------------------------- the stages
# Each stage is one short transaction of few round trips (BEGIN, one read under the order's row lock, one write
# statement, COMMIT); the enrich stage's store is a single statement. Product rows are locked only by the write
# statement, the last before the commit: the hot rows stay locked for one round trip.
PROCESS_READ = """
SELECT o.status, o.source, o.failure_reason, i.id AS item_id, i.sku, i.qty, p.price
FROM {order} o LEFT JOIN {item} i ON i.order_id = o.id LEFT JOIN {product} p ON p.sku = i.sku
WHERE o.id = %(id)s ORDER BY i.id FOR UPDATE OF o""".format(**T)
PROCESS_WRITE = """
WITH u AS (
    UPDATE {order} SET status = %(status_processing)s, total_amount = %(total)s, updated_at = %(now)s
    WHERE id = %(id)s
), it AS (
    UPDATE {item} AS i SET unit_price = v.price
    FROM unnest(%(item_ids)s::bigint[], %(prices)s::numeric[]) AS v(id, price) WHERE i.id = v.id
), {history_cte}, {stock},
    ok AS (SELECT count(*) FILTER (WHERE enough) = %(n)s AS ok FROM locked),
    r AS (
        UPDATE {product} p SET reserved = p.reserved + locked.qty
        FROM locked, ok WHERE ok.ok AND p.id = locked.id RETURNING p.id
    )
SELECT (SELECT ok FROM ok) AS enough, (SELECT count(*) FROM r) AS reserved""".format(  # noqa: S608  (tables from _meta)
    history_cte=history_insert("h", "VALUES (%(id)s, %(stage)s, %(event_completed)s, %(detail)s::jsonb, %(now)s)"),
    stock=STOCK_LOCKED,
    **T,
)
ENRICH_READ = """
SELECT o.status, o.customer_id, EXISTS (SELECT 1 FROM {enrichment} e WHERE e.order_id = o.id) AS enriched,
    i.sku, i.qty, i.unit_price
FROM {order} o LEFT JOIN {item} i ON i.order_id = o.id WHERE o.id = %(id)s ORDER BY i.id""".format(**T)  # noqa: S608
ENRICH_STORE = """
WITH o AS (
    SELECT id, status, source, failure_reason FROM {order} WHERE id = %(id)s FOR UPDATE
), e AS (
    INSERT INTO {enrichment} (order_id, data, created_at)
    SELECT id, %(data)s::jsonb, %(now)s FROM o WHERE status = %(status_processing)s
    ON CONFLICT (order_id) DO NOTHING RETURNING order_id
), {history_cte}
SELECT o.status, o.source, o.failure_reason, (SELECT count(*) FROM e) AS stored FROM o""".format(  # noqa: S608
    history_cte=history_insert(
        "h", "SELECT order_id, %(stage)s, %(event_completed)s, %(detail)s::jsonb, %(now)s FROM e"
    ),
    **T,
)
FINALIZE_READ = """
SELECT o.status, o.source, o.failure_reason, e.data AS enrichment, i.sku, i.qty, i.unit_price, o.created_at
FROM {order} o LEFT JOIN {enrichment} e ON e.order_id = o.id LEFT JOIN {item} i ON i.order_id = o.id
WHERE o.id = %(id)s ORDER BY i.id FOR UPDATE OF o""".format(**T)
FINALIZE_WRITE = """
WITH inv AS (
    INSERT INTO {invoice} (order_id, number, subtotal, discount, total, lines, created_at)
    VALUES (%(id)s, %(number)s, %(subtotal)s, %(discount)s, %(total)s, %(lines)s::jsonb, %(now)s)
), u AS (
    UPDATE {order} SET status = %(status_completed)s, total_amount = %(total)s, updated_at = %(now)s
    WHERE id = %(id)s
), {history_cte}, {webhook}, {stock}
UPDATE {product} p SET stock = p.stock - locked.qty, reserved = p.reserved - locked.qty
FROM locked WHERE p.id = locked.id""".format(  # noqa: S608  (tables from _meta)
    history_cte=history_insert("h", "VALUES (%(id)s, %(stage)s, %(event_completed)s, %(detail)s::jsonb, %(now)s)"),
    webhook=WEBHOOK_EVENT,
    stock=STOCK_LOCKED,
    **T,
)

# ----------------------------------------------------------------------------------------- the relay's batch
# Two statements: take the rows (and what the live page needs of their orders), then, once the broker confirmed,
# mark them sent and write their history entries together.
RELAY_TAKE = """
SELECT m.id, m.kind, m.order_id, m.payload, o.status, o.source, o.failure_reason, o.created_at
FROM {outbox} m JOIN {order} o ON o.id = m.order_id
WHERE m.published_at IS NULL AND m.created_at <= %(cutoff)s
ORDER BY m.created_at LIMIT %(limit)s FOR UPDATE OF m SKIP LOCKED""".format(**T)
RELAY_MARK = """
WITH sent AS (
    UPDATE {outbox} SET published_at = %(now)s, publish_attempts = publish_attempts + 1
    WHERE id = ANY(%(ids)s::uuid[])
), {history_cte}
SELECT count(*) AS marked FROM h""".format(  # noqa: S608  (tables from _meta)
    history_cte=history_insert(
        "h",
        "SELECT h.order_id, %(stage)s, %(event_published)s, h.detail, %(now)s\n"
        "    FROM unnest(%(order_ids)s::uuid[], %(details)s::jsonb[]) AS h(order_id, detail)\n    RETURNING 1",
    ),
    **T,
)
NOTIFY = "SELECT pg_notify(%(channel)s, '')"  # delivered at commit: wakes the relay
