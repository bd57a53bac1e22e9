"""Stock: reserve, release, and the parameters of the stages' SQL that locks product rows
(orders/statements.py, STOCK_LOCKED).

Every order touches the same few hot product rows, so they are locked only by the statement that
writes them, the last before the commit (no SELECT ... FOR UPDATE before), and always in sku order
(no deadlock between orders). The `reserved <= stock` constraint backs every reservation.
"""

from collections import Counter
from collections.abc import Iterable

from django.db.models import F

from orders.models import OrderItem, Product


class StockShort(Exception):
    """Some sku is unknown or has less available than wanted; nothing was reserved."""


def quantities(items: Iterable[OrderItem]) -> Counter:
    return sku_totals((item.sku, item.qty) for item in items)


def sku_totals(pairs: Iterable[tuple[str, int]]) -> Counter:
    totals: Counter = Counter()
    for sku, qty in pairs:
        totals[sku] += qty
    return totals


def stock_params(wanted: Counter) -> dict:
    """The stock statements' arrays, in sku order (the order every writer locks product rows in)."""
    skus = sorted(wanted)
    return {"skus": skus, "qtys": [wanted[sku] for sku in skus]}


def stock_reserve(wanted: Counter) -> None:
    """Reserve every sku's quantity, or none and raise StockShort. One conditional UPDATE per sku, in
    sku order; PostgreSQL re-checks the condition after a concurrent writer commits."""
    done: Counter = Counter()
    short = []
    for sku, qty in sorted(wanted.items()):
        if Product.objects.filter(sku=sku, stock__gte=F("reserved") + qty).update(reserved=F("reserved") + qty):
            done[sku] = qty
        else:
            short.append((sku, qty))
    if short:
        stock_release(done)
        raise StockShort(_shortage(short))


def stock_release(reserved: Counter) -> None:
    for sku, qty in sorted(reserved.items()):
        Product.objects.filter(sku=sku).update(reserved=F("reserved") - qty)


def stock_short_reason(wanted: Counter) -> str:
    """Why `wanted` cannot be reserved now, as an order's failure reason."""
    available = {p.sku: p.available for p in Product.objects.filter(sku__in=wanted)}
    short = [(sku, qty) for sku, qty in sorted(wanted.items()) if available.get(sku, 0) < qty]
    return _shortage(short, available) or "not enough stock"


def _shortage(short: list[tuple[str, int]], available: dict[str, int] | None = None) -> str:
    if available is None:
        available = {p.sku: p.available for p in Product.objects.filter(sku__in=[sku for sku, _ in short])}
    return "; ".join(
        f"unknown sku {sku}"
        if sku not in available
        else f"not enough stock for {sku} (wanted {qty}, available {available[sku]})"
        for sku, qty in short
    )


def stock_return(returned: Counter) -> None:
    """Put the stock a completed order took back on the shelf (its refund), in sku order."""
    for sku, qty in sorted(returned.items()):
        Product.objects.filter(sku=sku).update(stock=F("stock") + qty)
