"""The live page as the Procfile runs it: the page and its static files from `web` (gunicorn, WSGI,
WhiteNoise), the socket from `live` (uvicorn, ASGI), both behind the Procfile's `proxy` (nginx routes `/ws/`
to live: what `make run` and docker compose do), and with no proxy, live on another port which the page
learns from LIVE_WS_PORT. A real browser (Debian's chromium) must get a live socket past the page's CSP and
the socket's Origin check, follow an order to `completed`, and come back by itself after `live` restarts.
Screenshot: test-artifacts/live-page-split-*.png."""

import pytest

from e2e.conftest import ARTIFACTS, free_port, start_live, start_proxy, start_web
from e2e.test_live_page import CHROMIUM, UI_TIMEOUT_MS, assert_completed_with_timeline, chromium_page, post_order, row
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("behind_proxy", [True, False], ids=["proxy", "ports"])
def test_page_from_web_follows_orders_over_the_live_processs_socket(processes, behind_proxy):
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (apt-get install chromium)"
    # given: the workers, live (uvicorn) and web (gunicorn) on ports of their own; either the proxy in front of
    # both (the socket on the page's origin) or web telling the page live's port
    catalog_create()
    processes.pipeline()
    web_port, live_port = free_port(), free_port()
    demo = {"LIVE_FEED_ANONYMOUS": "True"}  # the anonymous page `make run` serves
    live = start_live(processes, live_port, env=demo)
    web = start_web(processes, web_port, env={"LIVE_WS_PORT": "" if behind_proxy else str(live_port), **demo})
    page_port = web_port
    if behind_proxy:
        page_port = free_port()
        start_proxy(processes, page_port, web_port=web_port, live_port=live_port)
    base = f"http://localhost:{page_port}"

    with chromium_page(base) as page:
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        try:
            # when: the page is opened on web
            page.goto("/")
            # then: it is live over the live process's port, its script came from web (WhiteNoise)
            page.wait_for_selector('#conn[data-state="live"]', timeout=UI_TIMEOUT_MS)
            page.wait_for_selector('#products li.product[data-sku="ABC"]', timeout=UI_TIMEOUT_MS)
            assert sockets == [f"ws://localhost:{page_port if behind_proxy else live_port}/ws/orders"]
            assert "WebSocket /ws/orders" in live.output() and "/ws/orders" not in web.output()

            # when: an order is posted to web's API
            order = post_order(base, "ABC", 1)
            # then: the socket on live carries it to completed
            page.wait_for_selector(row(order), timeout=5_000)
            assert_completed_with_timeline(page, order)
            page.screenshot(path=str(ARTIFACTS / "live-page-split-1-completed.png"), full_page=True)

            # when: live restarts on its port while web stays up
            live.stop()
            page.wait_for_selector('#conn[data-state="reconnecting"]', timeout=UI_TIMEOUT_MS)
            start_live(processes, live_port, env=demo)
            # then: the page reconnects to it by itself and follows the next order
            page.wait_for_selector('#conn[data-state="live"]', timeout=30_000)
            after = post_order(base, "XYZ", 1)
            page.wait_for_selector(row(after), timeout=5_000)
            assert_completed_with_timeline(page, after)
            assert page.errors == [], page.errors
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "live-page-split-failure.png"), full_page=True)
            raise
