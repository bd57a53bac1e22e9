"""core/parsers.py through the API: every body the JSON parser cannot take is a 400 in the error shape
(`{message, code: "parse_error", extra}`), never a 500."""

import json

import pytest
from rest_framework.test import APIClient

from orders.models import Product

pytestmark = pytest.mark.django_db

ORDER = '{"customer_id": "c-1", "items": [{"sku": "ABC", "qty": 1}]'


def nested(depth: int) -> str:
    return ORDER + ', "note": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    "body, content_type",
    [
        pytest.param("[" * 5000, "application/json", id="open-brackets-x5000"),
        pytest.param('{"a":' * 5000, "application/json", id="open-objects-x5000"),
        pytest.param(nested(33), "application/json", id="valid-json-33-deep"),
        pytest.param(nested(900), "application/json", id="valid-json-900-deep"),
        pytest.param(
            '{"customer_id": "c-1", "customer_id": "c-2", "items": [{"sku": "ABC", "qty": 1}]}',
            "application/json",
            id="duplicate-key",
        ),
        pytest.param(ORDER + ', "note": "\\ud800"}', "application/json", id="lone-surrogate-value"),
        pytest.param(ORDER + ', "\\udfff": 1}', "application/json", id="lone-surrogate-key"),
    ],
)
def test_bodies_the_parser_cannot_take_are_400_parse_error(
    api_client: APIClient, body: str, content_type: str | None
) -> None:
    response = api_client.post("/orders", data=body.encode("utf-8", "surrogatepass"), content_type=content_type)
    assert response.status_code == 400, response.content[:300]
    payload = response.json()
    assert set(payload) == {"message", "code", "extra"} and payload["code"] == "parse_error", payload


def test_an_order_32_deep_and_a_paired_surrogate_still_parse(
    api_client: APIClient, catalog: dict[str, Product]
) -> None:
    # given: nesting at the limit, an emoji written as an escaped surrogate pair, 100 items
    items = [{"sku": "ABC", "qty": 1}] * 100
    body = json.dumps(
        {"customer_id": "c-1", "items": items, "note": ["\ud83d\ude00", json.loads("[" * 30 + "]" * 30)]},
        ensure_ascii=True,
    )
    assert "\\ud83d\\ude00" in body
    # when
    response = api_client.post("/orders", data=body, content_type="application/json")
    # then
    assert response.status_code == 202, response.content[:300]
