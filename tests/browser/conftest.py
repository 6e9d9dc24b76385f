"""A real browser (Debian's chromium driven by Playwright) against a real
`perpetua serve`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.conftest import scratch_dir
from tests.support.server import Server, perpetua

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


# One `perpetua serve` per test process, not per module: each start makes and
# migrates a database, the slowest part of a browser test. The served demo practice
# is only read by the tests that use it, each on a sample patient of its own, and
# every other test signs up a practice of its own, so no test sees another's data.
@pytest.fixture(scope="session")
def demo() -> Iterator[tuple[Server, dict[str, Any]]]:
    """A real `perpetua serve` holding the demo practice, with the demo's details."""
    data_dir = scratch_dir("perpetua-browser-") / "data"
    seeded = perpetua("demo", "--json", data_dir=data_dir, timeout=600)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    details = json.loads(seeded.stdout)
    running = Server(data_dir).start()
    yield running, details
    running.stop()


@pytest.fixture(scope="session")
def server(demo: tuple[Server, dict[str, Any]]) -> Server:
    return demo[0]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(ignore_https_errors=True)
    opened = context.new_page()
    yield opened
    context.close()
