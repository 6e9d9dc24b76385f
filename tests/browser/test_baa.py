"""A new practice's owner signs the Business Associate Agreement in the browser:
patient features are locked until then, the executed PDF is announced to the
owner through the outbox and matches the digest on record, and the first patient
can be registered right after. A real browser against a real `perpetua serve`."""

from __future__ import annotations

import hashlib
import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from tests.support.factories import STRONG_PASSWORD, signup_body
from tests.support.server import Server

pytestmark = pytest.mark.browser

SUBJECT = "Your Business Associate Agreement with Perpetua is signed"
LINK = re.compile(r"https://\S+/agreement/executed/[0-9a-f-]+\.pdf")


def _owner_message(page: Page, server: Server, email: str) -> str:
    """The body of the owner's message once the delivery job has sent it."""
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        page.goto(server.url + "/mail")
        found = (
            page.get_by_test_id("local-message")
            .filter(has_text=SUBJECT)
            .filter(has_text=email)
        )
        if found.count():
            return found.locator("pre").inner_text()
        time.sleep(2)
    raise AssertionError("the signed agreement never reached the owner's mail")


def test_owner_signs_the_baa_and_patient_features_open(page: Page, server: Server):
    body = signup_body()
    page.goto(server.url + "/signup")
    page.get_by_label("Practice name").fill(body["practice_name"])
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Work email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create practice").click()
    page.wait_for_url("**/dashboard?welcome=1")

    page.get_by_role("navigation").get_by_role("link", name="Patients").click()
    expect(page.get_by_test_id("records-locked")).to_be_visible()
    page.goto(server.url + "/patients/new")
    expect(page.get_by_test_id("records-locked")).to_be_visible()
    expect(page.get_by_test_id("new-patient")).to_have_count(0)

    page.get_by_role("link", name="Review and sign the agreement").click()
    page.wait_for_url("**/agreement")
    expect(page.get_by_test_id("baa-not-in-force")).to_be_visible()
    expect(page.get_by_test_id("baa-text")).to_contain_text("within 24 hours")
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Your title").fill("Practice owner")
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Sign the agreement").click()

    page.wait_for_url("**/agreement?signed=1")
    expect(page.get_by_test_id("baa-in-force")).to_be_visible()
    recorded = page.get_by_test_id("baa-pdf-sha256").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", recorded)
    page.screenshot(path=str(server.data_dir.parent / "baa-signed.png"))

    message = _owner_message(page, server, body["email"])
    assert f"PDF SHA-256: {recorded}" in message
    link = LINK.search(message)
    assert link, "no download link in the message"
    # The link names the configured origin; fetch its path from this server.
    downloaded = page.request.get(server.url + urlsplit(link.group(0)).path)
    assert downloaded.status == 200
    assert downloaded.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(downloaded.body()).hexdigest() == recorded

    page.goto(server.url + "/patients/new")
    page.get_by_label("Full name").fill("Testpatient Firstday")
    page.get_by_label("Date of birth").fill("1975-06-15")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_test_id("patient-name")).to_have_text("Testpatient Firstday")
