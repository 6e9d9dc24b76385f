"""A practice signs up in the browser and sees its 14-day trial."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Page, expect
from tests.support.factories import STRONG_PASSWORD, signup_body
from tests.support.server import Server

pytestmark = pytest.mark.browser


def test_practice_signs_up_and_sees_a_fourteen_day_trial(page: Page, server: Server):
    body = signup_body()
    page.goto(server.url + "/signup")
    page.get_by_label("Practice name").fill(body["practice_name"])
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Work email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create practice").click()

    page.wait_for_url("**/dashboard?welcome=1")
    expect(page.get_by_role("heading", level=1)).to_have_text(body["practice_name"])
    expect(page.get_by_test_id("trial-status")).to_contain_text("14 days left")
    ends = dt.datetime.fromisoformat(
        page.get_by_test_id("trial-ends").get_attribute("datetime") or ""
    )
    delta = ends - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=13, hours=23) < delta <= dt.timedelta(days=14)
    page.screenshot(path=str(server.data_dir.parent / "dashboard.png"))


def test_weak_password_is_explained_in_the_form(page: Page, server: Server):
    body = signup_body()
    page.goto(server.url + "/signup")
    page.get_by_label("Practice name").fill(body["practice_name"])
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Work email").fill(body["email"])
    page.get_by_label("Password").fill("password1234")
    page.get_by_role("button", name="Create practice").click()
    expect(page.get_by_test_id("form-error")).to_be_visible()
    expect(page.get_by_label("Practice name")).to_have_value(body["practice_name"])
    expect(page.get_by_label("Password")).to_have_value("")


def test_owner_signs_out_and_back_in(page: Page, server: Server):
    body = signup_body()
    page.goto(server.url + "/signup")
    page.get_by_label("Practice name").fill(body["practice_name"])
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Work email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create practice").click()
    page.wait_for_url("**/dashboard?welcome=1")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    page.get_by_label("Email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text(body["practice_name"])
