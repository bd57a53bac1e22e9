"""The checker: once the system is quiet again, the invariants that prove nothing the clients were told
was accepted got lost or doubled, nothing is stuck, and the faults did not show as errors they should not.
Each invariant is a function returning {name: {"ok", "detail"}}; check() runs them in the report's order.
Needs Django set up on the chaos run's database (chaos/run.py does)."""

import json
import time
from dataclasses import dataclass
from typing import cast

from amqp.channel import Channel

from chaos.config import Config
from chaos.load import TERMINAL, ClientLog


def wait_quiescent(cfg: Config, accepted_ids: set[str]) -> dict:
    """Until every accepted order is terminal, the outbox is published and the stage queues and dead-letter
    queue are empty, at most `quiesce_timeout` s; the last state seen."""
    from django.db import connection

    from orders import topology
    from orders.dead_letters import dlq_depth
    from orders.models import Order, OutboxMessage
    from orders_project.celery import app

    deadline = time.monotonic() + cfg.quiesce_timeout
    state = {}
    while time.monotonic() < deadline:
        try:
            open_orders = Order.objects.filter(id__in=accepted_ids).exclude(status__in=TERMINAL).count()
            unsent = OutboxMessage.objects.filter(published_at__isnull=True).count()
            with app.connection_for_write() as conn:
                channel = cast(Channel, conn.channel())  # stubs: StdChannel; run time: amqp Channel
                # amqp-stubs: queue_declare returns None only with nowait=True (no overload for it)
                depths = {q: channel.queue_declare(q, passive=True)[1] for q in [s.queue for s in topology.ALL_STAGES]}  # type: ignore[index]
            state = {"open_orders": open_orders, "unsent_outbox": unsent, "dlq": dlq_depth(), **depths}
            if not any(state.values()):
                return state
        except Exception as exc:  # a service still coming back
            state = {"error": str(exc)}
            connection.close()
        time.sleep(2)
    return state


@dataclass
class Seen:
    """What the invariants compare: the client's log, the outages, the catalog's stock before the run, and
    the orders in the database (by id) with the ids the clients were given."""

    client: ClientLog
    outages: dict
    initial_stock: dict[str, int]
    orders: dict
    accepted_ids: set[str]

    @property
    def failed_ids(self) -> set[str]:
        return {i for i, o in self.orders.items() if o.status == "failed"}


def result(name: str, ok, detail) -> dict:
    return {name: {"ok": bool(ok), "detail": detail}}


def check(cfg: Config, client: ClientLog, outages: dict, initial_stock: dict[str, int]) -> dict:
    from orders.models import Order

    accepted_ids = {oid for ids in client.accepted.values() for oid in ids}
    seen = Seen(client, outages, initial_stock, {str(o.id): o for o in Order.objects.all()}, accepted_ids)
    results = {}
    for invariant in INVARIANTS:
        results.update(invariant(seen))
    return results


def accepted_orders_exist(seen: Seen) -> dict:
    missing = sorted(seen.accepted_ids - set(seen.orders))
    return result(
        "every accepted order exists", not missing, {"accepted": len(seen.accepted_ids), "missing": missing[:10]}
    )


def none_stuck(seen: Seen) -> dict:
    stuck = sorted(i for i in seen.accepted_ids & set(seen.orders) if seen.orders[i].status not in TERMINAL)
    return result("none stuck in pending/processing/refund_pending", not stuck, {"stuck": stuck[:10]})


def failures_have_reasons(seen: Seen) -> dict:
    failed_no_reason = [i for i, o in seen.orders.items() if o.status == "failed" and not o.failure_reason]
    return result(
        "every failed order has a reason",
        not failed_no_reason,
        {"failed": sum(o.status == "failed" for o in seen.orders.values())},
    )


def dead_letters_archived(seen: Seen) -> dict:
    from orders.models import DeadLetter

    archived = {str(i) for i in DeadLetter.objects.filter(order__isnull=False).values_list("order_id", flat=True)}
    not_archived = sorted(seen.failed_ids - archived)
    return result(
        "every dead-lettered (failed) order has its dead letter archived",
        not not_archived,
        {"not_archived": not_archived[:10]},
    )


def one_order_per_key(seen: Seen) -> dict:
    from orders.models import IdempotencyKey

    accepted = seen.client.accepted
    multi = {k: sorted(v) for k, v in accepted.items() if len(v) > 1}
    keys_db = IdempotencyKey.objects.count()
    return result(
        "one order per idempotency key",
        not multi and keys_db == len(seen.orders) == len(accepted),
        {
            "keys_client": len(accepted),
            "keys_db": keys_db,
            "orders_db": len(seen.orders),
            "keys_with_two_orders": multi,
        },
    )


def client_ids_match(seen: Seen) -> dict:
    from orders.models import IdempotencyKey

    key_orders = {k.key: str(k.order_id) for k in IdempotencyKey.objects.all()}
    mismatched = [k for k, ids in seen.client.accepted.items() if key_orders.get(k) not in ids]
    return result("client's order id per key matches the database", not mismatched, {"mismatched": mismatched[:10]})


def one_invoice_per_completed_order(seen: Seen) -> dict:
    from django.db.models import Count

    from orders.models import Invoice

    orders = seen.orders
    invoice_counts = dict(Invoice.objects.values_list("order_id").annotate(n=Count("id")).values_list("order_id", "n"))
    completed = {i for i, o in orders.items() if o.status == "completed"}
    invoiced = completed | {i for i, o in orders.items() if o.status == "refunded"}
    bad_invoices = [i for i in invoiced if invoice_counts.get(orders[i].id, 0) != 1]
    never_invoiced = {i for i, o in orders.items() if o.status in ("failed", "cancelled")}
    invoiced_wrongly = [i for i in never_invoiced if invoice_counts.get(orders[i].id, 0)]
    return result(
        "one invoice per completed or refunded order, none for a failed or cancelled one",
        not bad_invoices and not invoiced_wrongly,
        {
            "completed": len(completed),
            "bad": bad_invoices[:10],
            "failed_or_cancelled_with_invoice": invoiced_wrongly[:10],
        },
    )


def credit_notes_match_refunds(seen: Seen) -> dict:
    from django.db.models import Count

    from orders.models import CreditNote

    counts = {
        str(k): n
        for k, n in CreditNote.objects.values_list("order_id").annotate(n=Count("id")).values_list("order_id", "n")
    }
    refunded = {i for i, o in seen.orders.items() if o.status == "refunded"}
    missing = sorted(i for i in refunded if counts.get(i) != 1)
    unexpected = sorted(i for i in counts if i not in refunded or counts[i] > 1)
    return result(
        "exactly one credit note per refunded order, none for any other",
        not missing and not unexpected,
        {"refunded": len(refunded), "missing": missing[:10], "unexpected": unexpected[:10]},
    )


def cancels_took_effect(seen: Seen) -> dict:
    """Every cancel ends `cancelled` or `refunded`, or was answered 409 because its order had failed."""
    wrong = {}
    for order_id, (code, answered) in seen.client.cancels.items():
        order = seen.orders.get(order_id)
        final = order.status if order else None
        if code == 409 and final == "failed":
            continue
        if code == 200 and answered in ("cancelled", "refunded") and final == answered:
            continue
        if code == 202 and answered == "refund_pending" and final == "refunded":
            continue
        if code == 200 and answered == "refund_pending" and final == "refunded":  # a repeated cancel
            continue
        wrong[order_id] = {"answer": [code, answered], "final": final}
    by_final: dict = {}
    for order_id in seen.client.cancels:
        final = seen.orders[order_id].status if order_id in seen.orders else None
        by_final[final] = by_final.get(final, 0) + 1
    return result(
        "every cancel ends cancelled or refunded (409 only for a failed order)",
        not wrong,
        {"cancels": len(seen.client.cancels), "by_final_status": by_final, "wrong": dict(list(wrong.items())[:10])},
    )


def stock_adds_up(seen: Seen) -> dict:
    from django.db.models import Sum

    from orders.models import OrderItem, Product

    sold = dict(
        OrderItem.objects.filter(order__status="completed")
        .values_list("sku")
        .annotate(q=Sum("qty"))
        .values_list("sku", "q")
    )
    stock_errors = {}
    for product in Product.objects.all():
        expected = seen.initial_stock[product.sku] - sold.get(product.sku, 0)
        if product.stock != expected or product.reserved != 0:
            stock_errors[product.sku] = {"stock": product.stock, "expected": expected, "reserved": product.reserved}
    return result(
        "stock = initial - sum(qty of completed, not refunded, orders), nothing reserved",
        not stock_errors,
        stock_errors,
    )


def no_5xx_but_database_outage(seen: Seen) -> dict:
    """A 503 within a PostgreSQL restart or failover (2 s before it to 15 s after) is the API's answer to it."""
    statuses = seen.client.statuses
    windows = [w for w in [seen.outages.get("postgres"), *seen.outages.get("database_failovers", [])] if w]
    bad_5xx = [
        (round(t, 1), code)
        for t, code in statuses
        if code >= 500 and not (code == 503 and any(w[0] - 2 <= t <= (w[1] or t) + 15 for w in windows))
    ]
    return result(
        "no 5xx except 503 during the database outage",
        not bad_5xx,
        {"bad": bad_5xx[:10], "503s": sum(c == 503 for _, c in statuses)},
    )


def every_request_answered(seen: Seen) -> dict:
    client = seen.client
    return result(
        "no unexpected answers, no request given up",
        not client.unexpected and not client.gave_up,
        {"unexpected": client.unexpected[:5], "gave_up": client.gave_up[:5], "retried_keys": len(client.retried_keys)},
    )


# in the report's order
INVARIANTS = (
    accepted_orders_exist,
    none_stuck,
    failures_have_reasons,
    dead_letters_archived,
    one_order_per_key,
    client_ids_match,
    one_invoice_per_completed_order,
    credit_notes_match_refunds,
    cancels_took_effect,
    stock_adds_up,
    no_5xx_but_database_outage,
    every_request_answered,
)


def print_table(results: dict) -> None:
    width = max(len(n) for n in results)
    print(f"\n{'check'.ljust(width)}  result  detail")
    for name, r in results.items():
        print(f"{name.ljust(width)}  {'ok  ' if r['ok'] else 'FAIL'}    {json.dumps(r['detail'], default=str)[:160]}")
