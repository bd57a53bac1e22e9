from decimal import Decimal

from django.core.management.base import BaseCommand

from orders.models import Product

# Demo catalog; the upper-case trigger SKUs drive the simulated provider (README "Simulating failures").
CATALOG = [
    ("ABC", "ABC widget", "12.50"),
    ("XYZ", "XYZ gadget", "7.99"),
    ("Notebook", "Notebook A5", "3.20"),
    ("Pen", "Ballpoint pen", "1.10"),
    ("Mug", "Coffee mug", "8.00"),
    ("FLAKY", "Flaky item (fails twice, then works)", "5.00"),
    ("DOWN", "Down item (provider always unavailable)", "5.00"),
    ("BOMBA", "Poison item (provider rejects it)", "5.00"),
    ("HANG", "Hanging item (provider times out)", "5.00"),
    ("CRASH", "Crashing item (kills the worker)", "5.00"),
]
DEMO_STOCK = 1_000_000


class Command(BaseCommand):
    help = "Create the demo catalog (existing products keep their stock)."

    def handle(self, *args, **options):
        created = 0
        for sku, name, price in CATALOG:
            _, was_created = Product.objects.get_or_create(
                sku=sku, defaults={"name": name, "price": Decimal(price), "stock": DEMO_STOCK}
            )
            created += was_created
        self.stdout.write(self.style.SUCCESS(f"catalog ready: {len(CATALOG)} products ({created} new)"))
