"""Debian's chromium (scripts/browser.sh installs it), as the real-browser tests and the bench's browser on
the live page launch it through Playwright's executable_path (`playwright install` is never run)."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# No network beyond the page itself: no sync, no component or field-trial downloads, no QUIC probes.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
