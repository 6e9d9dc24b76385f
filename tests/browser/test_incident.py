"""An owner takes an alert to a breach notice in the browser: the alert (raised as
the detectors raise it) is escalated into an incident, its 24-hour clock is
shown, the four-factor risk assessment is filled in, the notice reaches the
practice through the outbox with its delivery time, and once the application's
clock moves past the 60-day deadline the overdue job (its coroutine run here as
the job runner runs it, on the same clock) escalates the overdue clock, once,
with a banner in the console.

The server runs in this process (uvicorn with TLS 1.3 in a thread) so that it
shares the test's FrozenClock. Async work runs in a thread of its own: the
browser's event loop owns this one."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import uvicorn
from playwright.sync_api import Page, expect
from starlette.testclient import TestClient
from tests.conftest import admin_connection
from tests.functional.incidents.helpers import (
    outbox,
    raise_suspicion,
    suspect_touches,
    with_db,
)
from tests.support.factories import STRONG_PASSWORD
from tests.support.server import free_port
from tests.support.world import World, build_world

from perpetua.clock import FrozenClock
from perpetua.db.pool import Database
from perpetua.incidents.overdue import escalate_overdue
from perpetua.mail.outbox import deliver_due
from perpetua.mail.transport import transport_for
from perpetua.server import Tls13Config
from perpetua.tls import ensure_self_signed, server_context
from perpetua.web.app import create_app

pytestmark = pytest.mark.browser

T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


@pytest.fixture
def live(target, settings, clock) -> Iterator[str]:
    """The application on a free port, over TLS, with the test's clock."""
    app = create_app(
        settings,
        Database(target.conninfo("service"), min_size=1),
        clock,
        run_jobs=False,
    )
    cert, key = ensure_self_signed(settings.data_dir)
    port = free_port()
    server = uvicorn.Server(
        Tls13Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            context=server_context(cert, key),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield f"https://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def world(live, target, settings, clock) -> World:
    """A practice with a BAA and one member per role, and an alert about the
    front desk's accesses, all made before the browser opens."""

    def build() -> World:
        app = create_app(
            settings,
            Database(target.conninfo("service"), min_size=1),
            clock,
            run_jobs=False,
        )
        with TestClient(app, base_url="https://testserver") as client:
            made = build_world(client, target)
            suspect_touches(made, count=2)
        raise_suspicion(target, made, clock)
        return made

    return in_thread(build)


def _sign_in(page: Page, live: str, email: str) -> None:
    page.goto(live + "/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")


def _email(target: Any, user_id: str) -> str:
    with admin_connection(target) as conn:
        row = conn.execute(
            "select email from app.users where id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_alert_to_incident_to_notice_and_an_overdue_clock(
    live: str, world: World, page: Page, target, settings, clock: FrozenClock
):
    owner = _email(target, world.user_ids["owner"])
    _sign_in(page, live, owner)

    page.get_by_role("navigation").get_by_role("link", name="Alerts").click()
    row = page.get_by_test_id("alert-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("high")
    expect(row).to_contain_text("unexplained access")
    row.get_by_role("link").first.click()
    expect(page.get_by_test_id("evidence-row").first).to_be_visible()
    page.get_by_role("button", name="Escalate to incident").click()

    page.wait_for_url("**/incidents/*")
    notice_clock = page.get_by_test_id("clock-practice_notice")
    expect(notice_clock).to_contain_text("Practice notified (24 hours")
    expect(notice_clock.get_by_test_id("clock-state")).to_contain_text("running")
    expect(notice_clock.get_by_test_id("clock-state")).to_contain_text("1 day 0 h left")
    due = (clock.now() + dt.timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
    expect(notice_clock.get_by_test_id("clock-due")).to_have_text(due)
    expect(page.get_by_test_id("affected-count")).to_have_text("2")

    form = page.get_by_test_id("assessment-form")
    form.get_by_label("Nature and extent").fill("Names and dates of birth of two.")
    form.get_by_label("The unauthorized person").fill("A front desk member.")
    form.get_by_label("actually acquired or viewed").fill("Both records were opened.")
    form.get_by_label("has been mitigated").fill("Access removed the same day.")
    form.get_by_label("names, dates of birth").check()
    form.get_by_label("What happened").fill("Records opened without a visit.")
    form.get_by_label("Conclusion").select_option("breach")
    form.get_by_role("button", name="Save the assessment").click()
    expect(page.get_by_test_id("assessment-conclusion")).to_contain_text("Breach")

    page.get_by_role("button", name="Send the notice").click()
    expect(page.get_by_test_id("notice-queued")).to_be_visible()
    incident_url = page.url.split("?")[0]

    # The delivery job sends it; the incident shows when it was delivered and the
    # 24-hour clock is met.
    clock.advance(minutes=10)
    transport = transport_for(None, settings.data_dir / "incident-browser-mail")
    in_thread(lambda: with_db(target, lambda db: deliver_due(db, clock, transport)))
    page.goto(incident_url)
    delivered = clock.now().strftime("%Y-%m-%d %H:%M")
    expect(page.get_by_test_id("notice-delivered")).to_have_text(f"{delivered} UTC")
    expect(
        page.get_by_test_id("clock-practice_notice").get_by_test_id("clock-state")
    ).to_have_text("met")
    expect(page.get_by_test_id("incident-overdue-banner")).to_have_count(0)
    page.screenshot(path=str(settings.data_dir / "incident-notice.png"))

    # Sixty-one days later, with nobody having notified the individuals, the job
    # escalates that clock: once, however often it runs.
    clock.advance(days=61)
    origin = live

    def escalate() -> int:
        return with_db(target, lambda db: escalate_overdue(db, clock, origin))

    first, second = in_thread(escalate), in_thread(escalate)
    assert first >= 1
    assert second == 0
    mails = outbox(target, world.practice_id, "incident_overdue")
    assert {m[1] for m in mails} >= {owner}

    _sign_in(page, live, owner)  # the session ended while the clock moved on
    page.goto(incident_url)
    banner = page.get_by_test_id("incident-overdue-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Individuals notified (60 days")
    individuals = page.get_by_test_id("clock-individuals").get_by_test_id("clock-state")
    expect(individuals).to_contain_text("OVERDUE")
    expect(individuals).to_contain_text("escalated")
    page.screenshot(path=str(settings.data_dir / "incident-overdue.png"))
