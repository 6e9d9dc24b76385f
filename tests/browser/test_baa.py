"""A new practice's owner signs the Business Associate Agreement in the browser:
patient features are locked until then, the executed PDF reaches the owner as an
attachment through the outbox and matches the digest on record, and the first
patient can be registered right after. A real browser against a real
`perpetua serve`, whose own mail job delivers into its local mail folder."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
import time
from email.message import EmailMessage

import pytest
from playwright.sync_api import Page, expect
from tests.support.factories import STRONG_PASSWORD, signup_body
from tests.support.server import Server

pytestmark = pytest.mark.browser

SUBJECT = "Your Business Associate Agreement with Perpetua is signed"


def _owner_message(server: Server, address: str) -> EmailMessage:
    """The owner's message, once the server's delivery job has written it."""
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        for path in (server.data_dir / "mail").glob("*.eml"):
            message = email.message_from_bytes(
                path.read_bytes(), policy=email.policy.default
            )
            assert isinstance(message, EmailMessage)
            if message["Subject"] == SUBJECT and message["To"] == address:
                return message
        time.sleep(2)
    raise AssertionError("the signed agreement never reached the owner's mail")


def _pdf_attachment(message: EmailMessage) -> tuple[str, bytes]:
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        if part.get_content_type() == "application/pdf":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return str(part.get_filename()), payload
    raise AssertionError("the message carries no PDF attachment")


def test_owner_signs_the_baa_and_patient_features_open(page: Page, server: Server):
    body = signup_body()
    page.goto(server.url + "/signup")
    page.get_by_label("Practice name").fill(body["practice_name"])
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Work email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create practice").click()
    page.wait_for_url("**/dashboard?welcome=1")

    # Every PHI page is locked, says why, and links to the agreement.
    for path in ("/patients", "/patients/new", "/schedule", "/calls"):
        page.goto(server.url + path)
        expect(page.get_by_test_id("records-locked")).to_be_visible()
        expect(page.get_by_test_id("baa-link")).to_be_visible()
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

    # The PDF arrives as an attachment, and it is the document on record.
    message = _owner_message(server, body["email"])
    filename, document = _pdf_attachment(message)
    assert filename.startswith("baa-")
    assert document.startswith(b"%PDF-")
    assert hashlib.sha256(document).hexdigest() == recorded
    body_text = message.get_body(preferencelist=("plain",))
    assert body_text is not None
    assert f"PDF SHA-256: {recorded}" in body_text.get_content()

    page.goto(server.url + "/patients/new")
    page.get_by_label("Full name").fill("Testpatient Firstday")
    page.get_by_label("Date of birth").fill("1975-06-15")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_test_id("patient-name")).to_have_text("Testpatient Firstday")
