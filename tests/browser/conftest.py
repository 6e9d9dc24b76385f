"""A real browser (Debian's chromium driven by Playwright) against a real
`perpetua serve`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.conftest import scratch_dir
from tests.support.server import Server

CHROMIUM = os.environ.get("PERPETUA_TEST_CHROMIUM", "/usr/bin/chromium")

# Without these, chromium reaches for Google's services at start, which this
# closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope, not session: while Playwright's sync API is open it holds an
# event loop running on the main thread, and every later test in the same worker
# that calls asyncio.run() would fail. Pytest closes a module's fixtures before a
# test of another module runs, so the loop never outlives the browser tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server(scratch_dir("perpetua-browser-") / "data").start()
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(ignore_https_errors=True)
    opened = context.new_page()
    yield opened
    context.close()
