"""The front desk finds a patient, books a visit and sees it on the day's schedule;
the owner then opens that patient's access report and sees the front desk's
accesses. A real browser against a real `perpetua serve` with the demo practice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.server import Server

pytestmark = pytest.mark.browser


def _sign_in(browser: Browser, server: Server, details: dict[str, Any], role: str):
    member = next(m for m in details["members"] if m["role"] == role)
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(server.url + "/signin")
    page.get_by_label("Email").fill(member["email"])
    page.get_by_label("Password").fill(member["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")
    return context, page


def _find_by_phone(page: Page, phone: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Patients").click()
    page.get_by_label("Phone").fill(phone)
    page.get_by_role("button", name="Search").click()


def test_front_desk_books_and_owner_sees_the_access(browser: Browser, demo):
    server, details = demo
    # Not the first sample: the audit-log test in the same served practice uses it.
    sample = details["sample_patients"][1]
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)

    context, page = _sign_in(browser, server, details, "front_desk")
    _find_by_phone(page, sample["phone"])
    row = page.get_by_test_id("patient-row").filter(has_text=sample["name"])
    expect(row).to_have_count(1)
    assert sample["name"] not in page.url
    row.get_by_role("link", name="Book appointment").click()

    expect(page.get_by_test_id("book-patient")).to_have_text(sample["name"])
    page.get_by_label("Date").fill(day.isoformat())
    page.get_by_label("Start (UTC)").fill("08:15")
    page.get_by_label("Reason for visit").fill("Blood pressure check")
    page.get_by_role("button", name="Book", exact=True).click()

    page.wait_for_url(f"**/schedule?day={day.isoformat()}&provider_id=*")
    booked = page.get_by_test_id("appointment-row").filter(has_text=sample["name"])
    expect(booked).to_contain_text("08:15–08:45")
    expect(booked).to_contain_text("Blood pressure check")
    expect(page.get_by_test_id("schedule-export")).to_have_count(0)
    page.screenshot(path=str(server.data_dir.parent / "records-schedule.png"))
    context.close()

    context, page = _sign_in(browser, server, details, "owner")
    _find_by_phone(page, sample["phone"])
    page.get_by_test_id("patient-row").get_by_role("link", name=sample["name"]).click()
    expect(page.get_by_test_id("patient-name")).to_have_text(sample["name"])
    page.get_by_role("link", name="Access report").click()

    rows = page.get_by_test_id("access-row").filter(has_text="Demo Front Desk")
    expect(rows.filter(has_text="search patient")).not_to_have_count(0)
    expect(rows.filter(has_text="view patient")).not_to_have_count(0)
    expect(rows.filter(has_text="create appointment")).not_to_have_count(0)
    page.screenshot(path=str(server.data_dir.parent / "records-access-report.png"))
    context.close()
