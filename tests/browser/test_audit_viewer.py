"""The owner reviews the audit log in a real browser: opens /audit, filters by a
patient, opens an event proven by a signed checkpoint, downloads the filtered
view as CSV and opens the patient's access report. A real `perpetua serve` with
the demo practice, sealing every few seconds in the background."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser


def test_owner_reviews_a_patient_in_the_audit_log(browser: Browser, demo):
    server, details = demo
    sample = details["sample_patients"][0]
    owner = next(m for m in details["members"] if m["role"] == "owner")
    context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url + "/signin")
    page.get_by_label("Email").fill(owner["email"])
    page.get_by_label("Password").fill(owner["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")

    # Looking the patient up leaves events naming them.
    page.get_by_role("navigation").get_by_role("link", name="Patients").click()
    page.get_by_label("Phone").fill(sample["phone"])
    page.get_by_role("button", name="Search").click()
    page.get_by_test_id("patient-row").get_by_role("link", name=sample["name"]).click()
    expect(page.get_by_test_id("patient-name")).to_have_text(sample["name"])

    page.get_by_role("navigation").get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/audit")
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    # The page says which signed checkpoint last left Perpetua (none yet here).
    expect(page.get_by_test_id("audit-witness")).to_be_visible()
    page.get_by_test_id("audit-patient").filter(has_text=sample["name"]).first.click()
    page.wait_for_url("**/audit?patient=*")
    rows = page.get_by_test_id("audit-row")
    expect(rows.first).to_be_visible()
    for i in range(rows.count()):
        expect(rows.nth(i)).to_contain_text(sample["name"])

    # An event is proven once the background sealer has signed a checkpoint over
    # it (every five seconds); the page says so.
    rows.filter(has_text="view patient").last.get_by_test_id("audit-event-link").click()
    page.wait_for_url("**/audit/events/*")
    deadline = time.monotonic() + 30
    state = page.get_by_test_id("proof-state")
    while "Proven" not in state.inner_text() and time.monotonic() < deadline:
        time.sleep(2)
        page.reload()
    expect(state).to_contain_text("Proven in checkpoint of size")
    expect(page.get_by_test_id("proof-hashes")).to_be_visible()
    page.screenshot(path=str(server.data_dir.parent / "audit-event-proven.png"))
    page.go_back()

    with page.expect_download() as downloading:
        page.get_by_test_id("audit-csv").click()
    download = downloading.value
    assert download.suggested_filename == "audit-events.csv"
    text = download.path().read_text(encoding="utf-8")
    assert text.startswith("occurred_at,actor_name")
    assert sample["name"] in text

    page.get_by_test_id("audit-access-report").click()
    page.wait_for_url("**/access-report")
    expect(page.get_by_test_id("access-report")).to_be_visible()
    expect(page.get_by_test_id("access-row").first).to_be_visible()
    page.screenshot(path=str(server.data_dir.parent / "audit-access-report.png"))
    context.close()
