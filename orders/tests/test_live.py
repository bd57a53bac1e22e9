"""`GET /` (orders/live.py) and its static files through the WSGI stack the Procfile's web serves
(gunicorn): the socket's address follows LIVE_WS_PORT, the CSP lets the page reach it, and WhiteNoise
serves the page's script without collectstatic (tests and `make run` collect nothing)."""
import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def connect_src(response) -> str:
    directives = dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))
    return directives["connect-src"]


def test_socket_on_the_pages_origin_by_default(client):
    response = client.get("/", HTTP_HOST="localhost:8000")
    assert response.status_code == 200
    assert 'data-ws-path="/ws/orders" data-ws-port=""' in response.content.decode()
    assert connect_src(response) == "'self'"


@override_settings(LIVE_WS_PORT="8001")
def test_socket_on_the_live_port_of_the_pages_host(client):
    response = client.get("/", HTTP_HOST="localhost:8000")
    assert response.status_code == 200
    assert 'data-ws-port="8001"' in response.content.decode()
    assert connect_src(response) == "'self' ws://localhost:8001 wss://localhost:8001"


@override_settings(LIVE_WS_PORT="8001")
def test_an_ipv6_host_gets_the_live_port_on_any_host(client):
    # a CSP host-source cannot name an IPv6 literal
    response = client.get("/", HTTP_HOST="[::1]:8000")
    assert connect_src(response) == "'self' ws://*:8001 wss://*:8001"


def test_whitenoise_serves_the_pages_static_files(client):
    page = client.get("/").content.decode()
    assert 'src="/static/orders/live.js"' in page
    response = client.get("/static/orders/live.js")
    assert response.status_code == 200
    assert type(response).__module__.startswith("whitenoise")
    assert b"function socketUrl()" in b"".join(response.streaming_content)
