"""Beyond the schema: hostile raw bodies, through the whole WSGI app as gunicorn runs it
(orders_project.wsgi: the body limits, then Django and DRF), against the real test database. Whatever the
bytes and the declared content type, POST /orders answers a 4xx in the error shape or accepts the order:
never a 5xx. Deep nesting, unbalanced brackets, lone surrogates, NUL, NaN, huge exponents, invalid UTF-8
and charsets that are no text codec are all in the alphabet. FUZZ_MAX_EXAMPLES scales it."""

import json
import os

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import Client

from orders_project.wsgi import application

MAX_EXAMPLES = 10 * int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
TOKENS = [
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    " ",
    '"a"',
    '"a":',
    "1",
    "-0",
    "1e999",
    "-1e999",
    "1" * 5000,
    "NaN",
    "Infinity",
    "null",
    "true",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    '"\\"',
    "\\",
    '"\u00ff"',
    '"customer_id":"c"',
    '"customer_id":',
    '"items":[{"sku":"ABC","qty":1}]',
    '"items":',
    '{"sku":"ABC","qty":1}',
    '"qty":',
    '"source":"web"',
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "application/json; charset=rot13",
    "application/json; charset=latin-1",
    "application/json; charset=nope",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
]
bodies = st.one_of(
    st.binary(max_size=1024),
    st.lists(st.sampled_from(TOKENS), max_size=120).map(
        lambda tokens: "".join(tokens).encode("utf-8", "surrogatepass")
    ),
    st.tuples(st.integers(0, 3000), st.sampled_from(["[", '{"a":', '{"items":']), st.sampled_from(TOKENS)).map(
        lambda t: (t[1] * t[0] + t[2]).encode()
    ),
)


@pytest.mark.django_db
@given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES), authenticated=st.booleans())
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_body_to_post_orders_is_a_4xx_in_the_error_shape_or_accepted_never_a_5xx(
    in_process_requests, body, content_type, authenticated
):
    headers = {"Authorization": f"Bearer {settings.SECRET_TOKEN}"} if authenticated else {}
    response = Client(application).post("/orders", data=body, content_type=content_type, headers=headers)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code >= 400:
        assert set(json.loads(response.get_data())) == {"message", "code", "extra"}
