"""The fault items (HANG, DOWN, BOMBA, FLAKY, CRASH) are the demo's: seeded only with DEMO_FAULTS_ENABLED,
which no deployment (compose, k8s) sets; `make run` does."""

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from orders.management.commands.seed_catalog import FAULT_SKUS
from orders.models import Product

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_catalog", stdout=out)
    return out.getvalue()


def test_a_deployments_default_seeds_no_fault_item(settings):
    settings.DEMO_FAULTS_ENABLED = False
    _seed()
    skus = set(Product.objects.values_list("sku", flat=True))
    assert skus and not skus & FAULT_SKUS


def test_fault_items_seeded_by_an_earlier_version_are_withdrawn_outside_the_demo(settings):
    # given: a deployment seeded with the fault items, one HANG unit reserved by an order in flight
    settings.DEMO_FAULTS_ENABLED = True
    _seed()
    Product.objects.filter(sku="HANG").update(reserved=1)
    # when: seeded again without the demo setting
    settings.DEMO_FAULTS_ENABLED = False
    out = _seed()
    # then: nothing more of them can be reserved; the reservation in flight stays valid
    assert "withdrawn" in out
    for product in Product.objects.filter(sku__in=FAULT_SKUS):
        assert product.stock == product.reserved


def test_the_demo_setting_seeds_the_fault_items(settings):
    settings.DEMO_FAULTS_ENABLED = True
    _seed()
    assert set(Product.objects.filter(sku__in=FAULT_SKUS).values_list("sku", flat=True)) == FAULT_SKUS


def test_compose_and_k8s_leave_the_demo_setting_off_and_make_run_turns_it_on():
    deployed = [ROOT / "docker-compose.yml", *sorted((ROOT / "k8s").rglob("*.yaml"))]
    for path in deployed:
        assert "DEMO_FAULTS_ENABLED" not in path.read_text(), path
    assert "DEMO_FAULTS_ENABLED=${DEMO_FAULTS_ENABLED:-true}" in (ROOT / "scripts" / "run.sh").read_text()
