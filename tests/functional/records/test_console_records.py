"""The console's PHI pages: they call the records service the API calls, offer only
what the member's role may do, keep patient identifiers out of URLs, show refusals
as calm sentences, and lock every page until the practice has signed a BAA."""

from __future__ import annotations

import csv
import io
import uuid

from tests.conftest import admin_connection
from tests.support.console import post_form, sign_in_console
from tests.support.world import World, build_world

from perpetua.web.console_records import BTG_COOKIE, LOCKED


def _world(client, target) -> World:
    return build_world(client, target)


def test_front_desk_finds_a_patient_by_phone_with_the_terms_in_the_body(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "front_desk")

    page = console.get("/patients")
    assert page.status_code == 200
    assert 'method="post" action="/patients/search"' in page.text
    found = post_form(console, "/patients/search", {"phone": made["phone"]})

    assert found.status_code == 200
    assert made["name"] in found.text
    assert f'href="/patients/{made["id"]}"' in found.text
    assert found.headers["cache-control"] == "no-store"
    assert "?" not in str(found.request.url)


def test_search_by_name_needs_the_date_of_birth(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "front_desk")

    alone = post_form(console, "/patients/search", {"name": made["name"]})
    assert alone.status_code == 422
    assert "search by phone, or by name and date of birth" in alone.text

    both = post_form(
        console,
        "/patients/search",
        {"name": made["name"], "birth_date": made["birth_date"]},
    )
    assert made["name"] in both.text


def test_search_without_csrf_token_is_refused(client, target):
    world = _world(client, target)
    console = sign_in_console(world, "front_desk")
    console.get("/patients")
    refused = console.post("/patients/search", data={"phone": "+1 555 0100 000"})
    assert refused.status_code == 403


def test_front_desk_registers_a_patient_and_adds_coverage(client, target):
    world = _world(client, target)
    console = sign_in_console(world, "front_desk")

    made = post_form(
        console,
        "/patients/new",
        {"name": "Consolia Testperson", "birth_date": "1975-06-01", "phone": ""},
        follow_redirects=False,
    )
    assert made.status_code == 303
    location = made.headers["location"]
    assert location.startswith("/patients/")
    assert "Consolia" not in location

    patient_id = location.split("/")[2].split("?")[0]
    saved = post_form(
        console,
        f"/patients/{patient_id}/coverage",
        {"payer": "Imaginary Mutual", "member_id": "SYN424242", "copay": "25"},
    )
    assert saved.status_code == 200
    assert "Consolia Testperson" in saved.text
    assert "SYN424242" in saved.text
    assert "$25.00" in saved.text
    assert "Edit demographics" in saved.text


def test_biller_is_not_offered_registration_or_demographic_edits(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "biller")

    listing = console.get("/patients")
    assert 'href="/patients/new"' not in listing.text
    page = console.get(f"/patients/{made['id']}")
    assert page.status_code == 200
    assert "Edit demographics" not in page.text
    assert "Add coverage" in page.text
    assert "Access report" not in page.text
    assert "Book appointment" not in page.text


def test_a_refused_write_is_a_calm_message(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "biller")

    refused = post_form(
        console,
        f"/patients/{made['id']}",
        {"name": "Changed Name", "birth_date": "1980-02-29"},
    )
    assert refused.status_code == 403
    assert "Not available to your role" in refused.text
    assert made["name"] in refused.text


def test_front_desk_books_an_appointment_and_sees_it_on_the_day(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "front_desk")

    form = console.get(f"/schedule/book?patient_id={made['id']}")
    assert made["name"] in form.text
    booked = post_form(
        console,
        "/schedule/book",
        {
            "patient_id": made["id"],
            "provider_id": world.provider_id,
            "day": "2026-03-03",
            "start": "09:30",
            "duration": "30",
            "reason": "Follow-up visit",
        },
        follow_redirects=False,
    )
    assert booked.status_code == 303
    assert booked.headers["location"] == (
        f"/schedule?day=2026-03-03&provider_id={world.provider_id}"
    )

    day = console.get(booked.headers["location"])
    assert made["name"] in day.text
    assert "09:30–10:00" in day.text
    assert "Follow-up visit" in day.text
    assert console.get("/schedule?day=2026-03-04").text.count(made["name"]) == 0


def test_a_card_number_in_the_visit_reason_is_refused_calmly(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "front_desk")

    refused = post_form(
        console,
        "/schedule/book",
        {
            "patient_id": made["id"],
            "provider_id": world.provider_id,
            "day": "2026-03-03",
            "start": "09:30",
            "duration": "30",
            "reason": "pays with 4111 1111 1111 1111",
        },
    )
    assert refused.status_code == 422
    assert "Remove the payment card number" in refused.text
    assert "4111" not in refused.text


def test_status_changes_from_the_schedule(client, target):
    world = _world(client, target)
    made = world.patient()
    visit = world.appointment(made["id"])
    console = sign_in_console(world, "front_desk")

    changed = post_form(
        console,
        f"/schedule/appointments/{visit['id']}/status",
        {"status": "confirmed", "day": "2026-03-02", "provider_id": ""},
    )
    assert changed.status_code == 200
    got = world.api("front_desk", "GET", f"/api/v1/appointments/{visit['id']}")
    assert got.json()["status"] == "confirmed"


def test_export_states_its_reason_and_is_recorded_as_an_export(client, target):
    world = _world(client, target)
    made = world.patient()
    world.appointment(made["id"])
    console = sign_in_console(world, "owner")

    page = console.get("/schedule?day=2026-03-02")
    assert 'action="/schedule/export"' in page.text
    missing = post_form(console, "/schedule/export", {"day": "2026-03-02"})
    assert missing.status_code == 422
    assert "give the reason for this export" in missing.text

    exported = post_form(
        console,
        "/schedule/export",
        {"day": "2026-03-02", "reason": "Move to the new scheduling system"},
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[1][5] == made["name"]
    with admin_connection(target) as conn:
        reasons = conn.execute(
            "select reason from audit.events "
            "where action = 'export' and practice_id = %s",
            (world.practice_id,),
        ).fetchall()
    assert reasons == [("Move to the new scheduling system",)]


def test_front_desk_is_not_offered_export_and_a_forced_one_is_refused(client, target):
    world = _world(client, target)
    console = sign_in_console(world, "front_desk")

    assert 'action="/schedule/export"' not in console.get("/schedule").text
    refused = post_form(
        console, "/schedule/export", {"day": "2026-03-02", "reason": "curious"}
    )
    assert refused.status_code == 403
    assert "Not available to your role" in refused.text


def test_owner_sees_the_front_desk_in_the_access_report(client, target):
    world = _world(client, target)
    made = world.patient()
    console = sign_in_console(world, "front_desk")
    console.get(f"/patients/{made['id']}")
    refused = console.get(f"/patients/{made['id']}/access-report")
    assert refused.status_code == 403
    assert "Not available to your role" in refused.text

    console = sign_in_console(world, "owner")
    patient_page = console.get(f"/patients/{made['id']}")
    assert f'href="/patients/{made["id"]}/access-report"' in patient_page.text
    report = console.get(f"/patients/{made['id']}/access-report")
    assert report.status_code == 200
    assert "Test front_desk" in report.text
    assert "view patient" in report.text
    assert "create patient" in report.text


def test_every_records_page_is_locked_before_a_baa(client, target):
    world = build_world(client, target, baa=False)
    console = sign_in_console(world, "owner")
    for path in ("/patients", "/patients/new", "/schedule", "/schedule/book"):
        page = console.get(path)
        assert page.status_code == 200, path
        assert LOCKED in page.text, path
    locked = post_form(console, "/patients/search", {"phone": "+1 555 0100 000"})
    assert LOCKED in locked.text


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/patients", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


def test_unknown_patient_is_a_calm_not_found(client, target):
    world = _world(client, target)
    console = sign_in_console(world, "front_desk")
    response = console.get(f"/patients/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "There is no record here that you may see." in response.text


def _break_glass_as_provider(world: World) -> tuple[dict[str, str], object]:
    stranger = world.patient()
    world.api(
        "front_desk",
        "PUT",
        f"/api/v1/patients/{stranger['id']}/coverage",
        json={"payer": "Synthetic Health Plan", "member_id": "SYN777"},
    )
    console = sign_in_console(world, "provider")
    opened = post_form(
        console,
        f"/patients/{stranger['id']}/break-glass",
        {"reason": "Patient collapsed in the waiting room"},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    return stranger, opened


def test_break_glass_is_offered_outside_the_role_and_needs_a_reason(client, target):
    world = _world(client, target)
    stranger = world.patient()
    console = sign_in_console(world, "provider")

    closed = console.get(f"/patients/{stranger['id']}")
    assert closed.status_code == 404
    assert "Open emergency access" in closed.text
    assert stranger["name"] not in closed.text

    short = post_form(
        console, f"/patients/{stranger['id']}/break-glass", {"reason": "urgent"}
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    assert BTG_COOKIE not in short.headers.get("set-cookie", "")


def test_break_glass_cookie_names_only_the_record_and_the_member(client, target):
    world = _world(client, target)
    stranger, opened = _break_glass_as_provider(world)

    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(
        f"{BTG_COOKIE}={stranger['id']}.{world.user_ids['provider']};"
    )
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Max-Age=", "Path=/"):
        assert flag in cookie
    assert stranger["name"].split()[1] not in cookie


def test_views_under_break_glass_state_purpose_btg(client, target):
    world = _world(client, target)
    stranger, _ = _break_glass_as_provider(world)

    page = world.client.get(f"/patients/{stranger['id']}")
    assert "Emergency access" in page.text
    assert "SYN777" in page.text
    assert "Edit coverage" not in page.text
    with admin_connection(target) as conn:
        purposes = conn.execute(
            "select distinct purpose_of_use from audit.events "
            "where actor_id = %s and resource_type = 'coverage' "
            "and outcome = 'success'",
            (world.user_ids["provider"],),
        ).fetchall()
    assert purposes == [("BTG",)]


def test_break_glass_shows_demographics_to_a_provider(client, target):
    world = _world(client, target)
    stranger, _ = _break_glass_as_provider(world)
    page = world.client.get(f"/patients/{stranger['id']}")
    assert stranger["name"] in page.text
