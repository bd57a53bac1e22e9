import pytest

from orders import selectors, services
from orders.models import OrderStatus
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_order_detail_is_served_from_the_cache_until_the_order_changes(
    catalog, django_assert_num_queries, django_capture_on_commit_callbacks
):
    order = order_create(items=[("ABC", 1)])
    assert selectors.order_detail(order_id=order.id, reader=selectors.STAFF)["status"] == OrderStatus.PENDING
    with django_assert_num_queries(0):
        assert selectors.order_detail(order_id=order.id, reader=selectors.STAFF)["status"] == OrderStatus.PENDING
    # when: a stage commits (its on-commit hook moves readers to a fresh key)
    with django_capture_on_commit_callbacks(execute=True):
        services.order_process(order_id=order.id)
    # then
    detail = selectors.order_detail(order_id=order.id, reader=selectors.STAFF)
    assert detail["status"] == OrderStatus.PROCESSING
    assert [h["stage"] for h in detail["history"]][-1] == "process"


def test_unknown_order_is_not_cached(catalog):
    import uuid

    missing = uuid.uuid4()
    assert selectors.order_detail(order_id=missing, reader=selectors.STAFF) is None
    from django.core.cache import cache

    assert cache.get(f"order:{missing}:0") is None


@pytest.mark.parametrize(
    "spell", [str.upper, lambda s: f"urn:uuid:{s}", lambda s: s.replace("-", ""), lambda s: "{" + s + "}"]
)
def test_an_order_id_spelled_another_way_reads_the_fresh_order_not_a_stale_cache_entry(
    api_client, catalog, django_capture_on_commit_callbacks, spell
):
    # given: the order read (and cached) once under its other spelling, while pending
    order = order_create(items=[("ABC", 1)])
    other = spell(str(order.id))
    assert api_client.get(f"/orders/{other}").json()["status"] == OrderStatus.PENDING
    # when: a stage commits (its on-commit hook bumps the order's cache version)
    with django_capture_on_commit_callbacks(execute=True):
        services.order_process(order_id=order.id)
    # then: every spelling reads the new status at once
    assert api_client.get(f"/orders/{other}").json()["status"] == OrderStatus.PROCESSING
    assert api_client.get(f"/orders/{order.id}").json()["status"] == OrderStatus.PROCESSING
