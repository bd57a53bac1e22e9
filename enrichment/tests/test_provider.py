"""The simulated provider: its fault items act only in the demo setting, and every call ends by its total
deadline (ENRICHMENT_PROVIDER_TIMEOUT), whatever it waits for."""

import time

import pytest

from enrichment import controls, provider
from enrichment.provider import ProviderItem, ProviderTransientError


@pytest.fixture(autouse=True)
def provider_controls_reset():
    controls.controls_reset()
    yield
    controls.controls_reset()


def _items(sku: str) -> list[ProviderItem]:
    return [ProviderItem(sku=sku, qty=1, unit_price="5.00")]


@pytest.mark.parametrize("sku", ["HANG", "DOWN", "BOMBA", "FLAKY"])
def test_outside_the_demo_setting_a_fault_sku_is_an_ordinary_item(settings, sku):
    # given: a deployment's default (the fault items are the demo's)
    settings.DEMO_FAULTS_ENABLED = False
    settings.ENRICHMENT_PROVIDER_TIMEOUT = 2.0
    # when
    started = time.monotonic()
    answer = provider.enrich(customer_id="c-1", items=_items(sku), attempt=0)
    # then: answered at the provider's usual latency, not held until the timeout, nor failed
    assert time.monotonic() - started < 1.0
    assert answer["items"] == [{"sku": sku, "qty": 1, "list_price": "5.00"}]


def test_in_the_demo_setting_hang_times_out_at_the_calls_deadline(settings):
    settings.DEMO_FAULTS_ENABLED = True
    settings.ENRICHMENT_PROVIDER_TIMEOUT = 0.3
    started = time.monotonic()
    with pytest.raises(ProviderTransientError, match="timed out"):
        provider.enrich(customer_id="c-1", items=_items("HANG"), attempt=0)
    assert 0.25 < time.monotonic() - started < 1.0


@pytest.mark.parametrize("call", ["enrich", "refund"])
def test_a_provider_slower_than_the_deadline_is_cut_off_at_the_deadline(settings, call):
    # given: the provider answers in 5 s, the call's total deadline is 0.3 s
    settings.ENRICHMENT_LATENCY_MS = 5000
    settings.ENRICHMENT_PROVIDER_TIMEOUT = 0.3
    started = time.monotonic()
    # when / then: a transient timeout at the deadline, not an answer 5 s later
    with pytest.raises(ProviderTransientError, match="timed out"):
        if call == "enrich":
            provider.enrich(customer_id="c-1", items=_items("ABC"), attempt=0)
        else:
            provider.refund(customer_id="c-1", reference="INV-1", amount="5.00", attempt=0)
    assert time.monotonic() - started < 1.0
