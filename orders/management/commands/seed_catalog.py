from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import F

from orders.models import Product

# Demo catalog (docs/pipeline.md "Simulating failures").
CATALOG = [
    ("ABC", "ABC widget", "12.50"),
    ("XYZ", "XYZ gadget", "7.99"),
    ("Notebook", "Notebook A5", "3.20"),
    ("Pen", "Ballpoint pen", "1.10"),
    ("Mug", "Coffee mug", "8.00"),
]
# The upper-case trigger SKUs drive the simulated provider: seeded only with DEMO_FAULTS_ENABLED (make run,
# the tests, the chaos run), never in a deployment's default, where one client's HANG orders would hold
# the enrichment threads every client's orders need.
FAULT_ITEMS = [
    ("FLAKY", "Flaky item (fails twice, then works)", "5.00"),
    ("DOWN", "Down item (provider always unavailable)", "5.00"),
    ("BOMBA", "Poison item (provider rejects it)", "5.00"),
    ("HANG", "Hanging item (provider times out)", "5.00"),
    ("CRASH", "Crashing item (kills the worker)", "5.00"),
]
FAULT_SKUS = frozenset(sku for sku, _, _ in FAULT_ITEMS)
DEMO_STOCK = 1_000_000


class Command(BaseCommand):
    help = (
        "Create the demo catalog (existing products keep their stock); the fault items only with "
        "DEMO_FAULTS_ENABLED, and without it any seeded before are withdrawn (no stock left to order)."
    )

    def handle(self, *args, **options):
        catalog = CATALOG + FAULT_ITEMS if settings.DEMO_FAULTS_ENABLED else CATALOG
        created = 0
        for sku, name, price in catalog:
            _, was_created = Product.objects.get_or_create(
                sku=sku, defaults={"name": name, "price": Decimal(price), "stock": DEMO_STOCK}
            )
            created += was_created
        self.stdout.write(self.style.SUCCESS(f"catalog ready: {len(catalog)} products ({created} new)"))
        if not settings.DEMO_FAULTS_ENABLED:
            # Seeded by an earlier version in every deployment: what is reserved stays, nothing more can be.
            withdrawn = Product.objects.filter(sku__in=FAULT_SKUS, stock__gt=F("reserved")).update(stock=F("reserved"))
            if withdrawn:
                self.stdout.write(f"fault items withdrawn (DEMO_FAULTS_ENABLED is off): {withdrawn}")
