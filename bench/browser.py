"""One operator's browser on the live page during a bench run: `python -m bench.browser BASE_URL`.

Debian's chromium, headless, driven by Playwright (as e2e/test_live_page.py), opens BASE_URL/, waits for its
socket to be live, prints `browser-ready`, and stays until SIGTERM; then prints what the page did (events
received, detail and list fetches, page errors) as one JSON line."""

import contextlib
import json
import signal
import sys
import threading

from devtools.chromium import CHROMIUM, CHROMIUM_ARGS

BROWSER_READY = "browser-ready"  # printed once the page's socket is live (bench/deployed.py waits for it)
LIVE_TIMEOUT_MS = 60_000
# An operator's page is in front: no throttled timers (headless chromium may treat the page as in background).
UNTHROTTLED = [
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def main(base_url: str) -> int:
    from playwright.sync_api import sync_playwright

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    counts = {"orders_requests": 0, "products_requests": 0, "failed_requests": 0, "page_errors": 0}

    def on_request(request) -> None:
        path = request.url.split("://", 1)[-1].partition("/")[2]
        if path.startswith("orders"):
            counts["orders_requests"] += 1
        elif path.startswith("products"):
            counts["products_requests"] += 1

    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, *UNTHROTTLED]
        # SIGTERM is this script's to handle (it reports, then closes the browser), not Playwright's.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=args,
            handle_sigterm=False,
            handle_sigint=False,
            handle_sighup=False,
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=base_url)
            page.on("request", on_request)
            page.on("requestfailed", lambda _: counts.__setitem__("failed_requests", counts["failed_requests"] + 1))
            page.on("pageerror", lambda _: counts.__setitem__("page_errors", counts["page_errors"] + 1))
            page.goto("/")
            page.wait_for_selector('#conn[data-state="live"]', timeout=LIVE_TIMEOUT_MS)
            print(BROWSER_READY, flush=True)
            while not done.is_set():
                page.wait_for_timeout(500)  # Playwright's loop runs the page's events meanwhile
            # What the page did, before the browser closes (at shutdown the driver may already be going).
            print(json.dumps({**counts, "rows": page.locator("#orders > *").count()}), flush=True)
        finally:
            with contextlib.suppress(Exception):
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
