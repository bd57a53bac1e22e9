"""Issue: live page. A real browser (Debian's chromium, headless, driven by Playwright) watches `/` served
by web (gunicorn) over live's socket (uvicorn), as the Procfile runs them, with the three real workers
behind it: an order posted through the API appears and reaches `completed`; the live server is restarted
and the page reconnects by itself, catches up on an order that completed while it was down, and follows
the next one; the same after the browser's network drops. Screenshots: test-artifacts/live-page-*.png.

Chromium comes from scripts/browser.sh (apt); `playwright install` is never run. No skip: without the
browser this test fails."""

import contextlib
import socket

import pytest
import requests
from django.conf import settings

from devtools.chromium import CHROMIUM, CHROMIUM_ARGS
from devtools.procs import Proc, wait_until
from e2e.conftest import ARTIFACTS, start_live, start_web, wait_terminal
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e

DEMO = {"LIVE_FEED_ANONYMOUS": "True"}
UI_TIMEOUT_MS = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def chromium_page(base_url: str):
    """A headless page on Debian's chromium. Fails (never skips) when the browser is missing."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=base_url)
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"live-page-{name}.png"), full_page=True)


def start_live_page(processes) -> tuple[str, int, Proc]:
    """As the Procfile runs them: web (gunicorn) serves the page and the API and tells the page live's port
    (LIVE_WS_PORT); live (uvicorn) serves only the socket. The demo's anonymous page (what `make run` serves).
    Returns web's base URL, live's port and live's process."""
    live_port = free_port()
    live = start_live(processes, live_port, env=DEMO)
    web_port = free_port()
    start_web(processes, web_port, env={"LIVE_WS_PORT": str(live_port), **DEMO})
    return f"http://127.0.0.1:{web_port}", live_port, live


def post_order(base_url: str, sku: str, qty: int = 1) -> str:
    response = requests.post(
        f"{base_url}/orders",
        json={"customer_id": "live-page", "source": "web", "items": [{"sku": sku, "qty": qty}]},
        headers={"Authorization": f"Bearer {settings.SECRET_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["order_id"]


# Every status each row shows, in order (consecutive repeats dropped): the page is watched, not polled.
STATUS_RECORDER = """
window.__statuses = {};
const note = (el) => {
  if (!(el instanceof HTMLElement) || !el.matches("li.order") || !el.dataset.status) return;
  const seen = (window.__statuses[el.dataset.orderId] ||= []);
  if (seen[seen.length - 1] !== el.dataset.status) seen.push(el.dataset.status);
};
new MutationObserver((mutations) => {
  for (const m of mutations) {
    note(m.target);
    m.addedNodes.forEach(note);
  }
}).observe(document.getElementById("orders"), {
  subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"]
});
"""


def statuses_shown(page, order_id: str) -> list[str]:
    return page.evaluate("(id) => window.__statuses[id] || []", order_id)


def row(order_id: str, status: str | None = None) -> str:
    selector = f'li.order[data-order-id="{order_id}"]'
    return selector + (f'[data-status="{status}"]' if status else "")


# The pipeline's stages as the server hands them to the page (orders/live.py, json_script).
STAGES = ("process", "enrich", "finalize")


def assert_completed_with_timeline(page, order_id: str) -> None:
    from playwright.sync_api import expect

    page.wait_for_selector(row(order_id, "completed"), timeout=UI_TIMEOUT_MS)
    assert page.locator(f"{row(order_id)} .stage").evaluate_all("nodes => nodes.map((n) => n.dataset.stage)") == list(
        STAGES
    )
    for stage in STAGES:
        page.wait_for_selector(
            f'{row(order_id)} .stage[data-stage="{stage}"][data-state="done"]', timeout=UI_TIMEOUT_MS
        )
    assert page.locator(f'{row(order_id)} .stage[data-stage="{STAGES[-1]}"] .stage-time').inner_text().strip()
    # the end-to-end time needs the last stage's completion (the final stage, from the server's list)
    expect(page.locator(f"{row(order_id)} .meta")).to_contain_text("end to end", timeout=UI_TIMEOUT_MS)


def test_live_page_follows_orders_and_survives_a_server_restart(processes, http):
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (apt-get install chromium)"
    # given: the catalog, the workers, web and live on free ports, the page open in chromium
    catalog_create()
    processes.pipeline()
    base, live_port, live = start_live_page(processes)

    with chromium_page(base) as page:
        try:
            page.goto("/")
            page.wait_for_selector('#conn[data-state="live"]', timeout=UI_TIMEOUT_MS)
            page.wait_for_selector('#products li.product[data-sku="ABC"]', timeout=UI_TIMEOUT_MS)
            assert settings.SECRET_TOKEN not in page.content()  # the token is never baked into the page
            # the script (ES modules) reads the stages the server embedded
            stages = page.evaluate('JSON.parse(document.getElementById("pipeline-stages").textContent)')
            assert [s["name"] for s in stages] == list(STAGES)
            page.evaluate("window.__sameDocument = true")
            page.evaluate(STATUS_RECORDER)

            # when: an order is posted through the API
            first = post_order(base, "ABC", 2)
            # then: its row appears at once and moves to completed with its stage timeline
            page.wait_for_selector(row(first), timeout=5_000)
            assert_completed_with_timeline(page, first)
            assert statuses_shown(page, first) == ["pending", "processing", "completed"]
            wait_until(
                lambda: page.locator('#products li.product[data-sku="ABC"]').get_attribute("data-available") == "998",
                timeout=10,
                what="ABC stock to show 998 available",
            )
            screenshot(page, "1-completed")

            # when: the live server goes away
            live.stop()
            # then: the page says so and counts down to its next attempt
            page.wait_for_selector('#conn[data-state="reconnecting"]', timeout=UI_TIMEOUT_MS)
            assert "Reconnecting" in page.locator("#conn-text").inner_text()
            # and an order placed through another web instance completes while this one is down
            missed = http.post_order([("XYZ", 1)], customer_id="while-down")
            assert wait_terminal(http, missed, timeout=30)["status"] == "completed"
            screenshot(page, "2-server-down")
            assert page.locator(row(missed)).count() == 0

            # when: the live server comes back on the same port
            start_live(processes, live_port, env=DEMO)
            # then: the page reconnects by itself (no reload) and catches up on the missed order
            page.wait_for_selector('#conn[data-state="live"]', timeout=30_000)
            assert page.evaluate("window.__sameDocument === true")
            assert_completed_with_timeline(page, missed)
            screenshot(page, "3-reconnected-caught-up")

            # when: the next order is posted after the restart
            after = post_order(base, "Notebook", 3)
            # then: it appears and completes on the new socket
            page.wait_for_selector(row(after), timeout=5_000)
            assert_completed_with_timeline(page, after)
            assert statuses_shown(page, after) == ["pending", "processing", "completed"]
            screenshot(page, "4-after-restart")

            # when: the browser's network drops and an order completes meanwhile
            page.context.set_offline(True)
            page.wait_for_selector('#conn[data-state="offline"]', timeout=UI_TIMEOUT_MS)
            dropped = post_order(base, "XYZ", 2)
            assert wait_terminal(http, dropped, timeout=30)["status"] == "completed"
            # then: back online, the page reconnects at once and catches up
            page.context.set_offline(False)
            page.wait_for_selector('#conn[data-state="live"]', timeout=UI_TIMEOUT_MS)
            assert_completed_with_timeline(page, dropped)
            assert page.locator("li.order").count() == 4
            screenshot(page, "5-back-online")
            assert page.errors == [], page.errors
        except Exception:
            screenshot(page, "failure")
            raise


def cancel(base_url: str, order_id: str) -> requests.Response:
    return requests.post(
        f"{base_url}/orders/{order_id}/cancel",
        json={},
        headers={"Authorization": f"Bearer {settings.SECRET_TOKEN}"},
        timeout=10,
    )


def test_live_page_shows_cancelled_refund_pending_and_refunded(processes, http):
    # given: the pipeline with its refund worker, and the page open
    catalog_create()
    processes.pipeline(refund=True)
    base, _, _ = start_live_page(processes)
    with chromium_page(base) as page:
        try:
            page.goto("/")
            page.wait_for_selector('#conn[data-state="live"]', timeout=UI_TIMEOUT_MS)
            page.evaluate(STATUS_RECORDER)
            # when: an order completes, then is cancelled
            sold = post_order(base, "ABC", 1)
            assert_completed_with_timeline(page, sold)
            assert cancel(base, sold).status_code == 202
            # then: the completed order goes through refund_pending to refunded
            page.wait_for_selector(row(sold, "refunded"), timeout=UI_TIMEOUT_MS)
            shown = statuses_shown(page, sold)
            assert shown[-1] == "refunded" and "completed" in shown
            assert page.locator(f"{row(sold)} .status").inner_text().strip().lower() == "refunded"
            wait_until(
                lambda: page.locator('[data-count="refunded"] b').inner_text() == "1", timeout=10, what="refunded count"
            )
            screenshot(page, "6-refunded")
            assert page.errors == [], page.errors
        except Exception:
            screenshot(page, "failure-saga")
            raise


def test_live_page_shows_a_cancelled_order_with_its_stages_skipped(processes, http):
    # given: the relay (the publisher announces an accepted order to the page) but no worker, the page open
    catalog_create()
    processes.relay()
    base, _, _ = start_live_page(processes)
    with chromium_page(base) as page:
        try:
            page.goto("/")
            page.wait_for_selector('#conn[data-state="live"]', timeout=UI_TIMEOUT_MS)
            # when: an order is accepted and cancelled before its first stage
            order_id = post_order(base, "XYZ", 1)
            page.wait_for_selector(row(order_id), timeout=5_000)
            assert cancel(base, order_id).json()["status"] == "cancelled"
            # then: its row says cancelled, its stages never ran, and the count shows it
            page.wait_for_selector(row(order_id, "cancelled"), timeout=UI_TIMEOUT_MS)
            states = page.locator(f"{row(order_id)} .stage").evaluate_all("nodes => nodes.map((n) => n.dataset.state)")
            assert states == ["skipped", "skipped", "skipped"]
            assert page.locator('[data-count="cancelled"] b').inner_text() == "1"
            screenshot(page, "7-cancelled")
            assert page.errors == [], page.errors
        except Exception:
            screenshot(page, "failure-cancelled")
            raise
