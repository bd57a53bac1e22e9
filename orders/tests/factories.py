"""Factories of the orders tests: catalog and orders, orders in a given state, and dead letters shaped
exactly like the ones RabbitMQ hands the archiver (Celery protocol 2 + x-death)."""

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from clients.models import DEFAULT_CLIENT_ID
from conftest import subprocess_env
from orders import services
from orders.dead_letters import dead_letter_archive
from orders.models import Order, Product

DEFAULT_STOCK = 1000


def catalog_create(stock: int = DEFAULT_STOCK) -> dict[str, Product]:
    rows = [
        ("ABC", "12.50"),
        ("XYZ", "7.99"),
        ("Notebook", "3.20"),
        ("FLAKY", "5.00"),
        ("DOWN", "5.00"),
        ("BOMBA", "5.00"),
        ("HANG", "5.00"),
        ("CRASH", "5.00"),
        ("SCARCE", "1.00"),
    ]
    products = {}
    for sku, price in rows:
        products[sku] = Product.objects.create(
            sku=sku, name=sku.title(), price=Decimal(price), stock=2 if sku == "SCARCE" else stock
        )
    return products


def order_create(
    *,
    items=(("ABC", 2), ("XYZ", 1)),
    customer_id: str = "c-1",
    source: str = "api",
    key: str | None = None,
    client_id: int = DEFAULT_CLIENT_ID,
) -> Order:
    result = services.order_create(
        client_id=client_id,
        customer_id=customer_id,
        source=source,
        items=[services.ItemIn(sku=sku, qty=qty) for sku, qty in items],
        idempotency_key=key,
        request_hash="h",
    )
    return result.order


def order_failed_at_enrich(items=(("ABC", 2),), task_id: str = "T-1") -> Order:
    """An order processed, then failed at the enrich stage with its retries exhausted, as the stage's task
    records it before its message is dead-lettered."""
    order = order_create(items=items)
    services.order_process(order_id=order.id)
    return services.order_fail(
        order_id=order.id,
        stage="enrich",
        reason="enrich: retries exhausted",
        kind="retries_exhausted",
        detail={
            "task_id": task_id,
            "exception": "ProviderTransientError",
            "message": "provider unavailable (503)",
            "attempts": 3,
            "dead_lettered": True,
        },
    )


CREATE_ORDERS = """
import django; django.setup()
from orders import services
for n in range({count}):
    services.order_create(client_id=1, customer_id=f"c{{n}}", source="api", items=[services.ItemIn("ABC", 1)])
"""


def create_orders_while_broker_is_down(count: int) -> None:
    """Orders committed by a process whose publish fails (broker unreachable): the outbox keeps them."""
    env = subprocess_env(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//", OUTBOX_PUBLISH_INLINE="True")
    subprocess.run([sys.executable, "-c", CREATE_ORDERS.format(count=count)], env=env, check=True, timeout=120)


def dead_letter_message(
    *, order_id, task="enrichment.enrich", queue="enrichment", reason="rejected", retries=2, task_id=None
):
    task_id = task_id or str(uuid.uuid4())
    chain: list[dict] = [
        {"task": "orders.finalize", "args": [], "kwargs": {}, "options": {}, "subtask_type": None, "immutable": False}
    ]
    body = json.dumps(
        [[str(order_id)], {}, {"callbacks": None, "errbacks": None, "chain": chain, "chord": None}]
    ).encode()
    now = datetime.now(UTC)
    headers = {
        "task": task,
        "id": task_id,
        "retries": retries,
        "x-death": [
            {"count": 1, "reason": reason, "queue": queue, "exchange": "orders", "routing-keys": ["x"], "time": now}
        ],
        "x-first-death-reason": reason,
        "x-first-death-queue": queue,
    }
    return {
        "body": body,
        "headers": headers,
        "properties": {"content_type": "application/json"},
        "content_type": "application/json",
    }


def dead_letter_archived(**kwargs):
    return dead_letter_archive(**dead_letter_message(**kwargs))[0]


def order_completed(**kwargs) -> Order:
    """An order taken through every forward stage by the services (no workers)."""
    order = order_create(**kwargs)
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    return services.order_finalize(order_id=order.id)


def order_refund_pending(**kwargs) -> Order:
    """A completed order, cancelled: its refund is owed."""
    order = order_completed(**kwargs)
    return services.order_cancel(order_id=order.id, actor="client:default").order


# Every staff right (orders/models.py Meta.permissions, and reading dead letters): what on-call holds.
ON_CALL_PERMISSIONS = (
    "orders.view_every_order",
    "orders.cancel_order",
    "orders.view_diagnostics",
    "orders.view_deadletter",
    "orders.redrive_deadletter",
    "orders.discard_deadletter",
)


def staff_user_create(username: str, password: str | None = None, permissions: tuple[str, ...] = ON_CALL_PERMISSIONS):
    """A staff user (not a superuser) holding `permissions` ('app_label.codename'); none: staff rights only."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username, password=password, is_staff=True)
    for perm in permissions:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user
