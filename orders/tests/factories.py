from decimal import Decimal

from clients.models import DEFAULT_CLIENT_ID
from orders import services
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
    *, items=(("ABC", 2), ("XYZ", 1)), customer_id: str = "c-1", source: str = "api", key: str | None = None, client_id: int = DEFAULT_CLIENT_ID
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
