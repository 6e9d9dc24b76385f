"""Resetting a password by emailed link: the link works once, for 30 minutes,
ends every session of the account, and never touches its second factors."""

from __future__ import annotations

from tests.functional.identity.helpers import (
    bearer,
    enrol_totp,
    last_mail_link,
    sign_in,
)
from tests.support.factories import sign_up

NEW_PASSWORD = "granite orchard whistles twice"


def request_reset(client, email: str):
    return client.post("/api/v1/password/reset-requests", json={"email": email})


def reset(client, token: str, password: str = NEW_PASSWORD):
    return client.post(
        "/api/v1/password/resets", json={"token": token, "new_password": password}
    )


def test_reset_link_sets_a_new_password_once(client, target):
    owner = sign_up(client)
    email = owner["input"]["email"]
    assert request_reset(client, email).status_code == 202
    token = last_mail_link(target, email)

    assert reset(client, token).status_code == 204
    again = reset(client, token, "another brand new phrase")

    assert again.status_code == 410
    assert again.json()["code"] == "link_invalid"
    assert sign_in(client, email, NEW_PASSWORD).status_code == 201
    assert sign_in(client, email, "another brand new phrase").status_code == 401


def test_reset_link_expires_after_30_minutes(client, target, clock):
    owner = sign_up(client)
    email = owner["input"]["email"]
    request_reset(client, email)
    token = last_mail_link(target, email)

    clock.advance(minutes=30)

    assert reset(client, token).status_code == 410
    assert sign_in(client, email, NEW_PASSWORD).status_code == 401
    assert sign_in(client, email).status_code == 201


def test_reset_link_still_works_just_before_30_minutes(client, target, clock):
    owner = sign_up(client)
    request_reset(client, owner["input"]["email"])
    token = last_mail_link(target, owner["input"]["email"])

    clock.advance(minutes=29, seconds=59)

    assert reset(client, token).status_code == 204


def test_a_newer_reset_link_does_not_revive_an_older_one(client, target):
    owner = sign_up(client)
    email = owner["input"]["email"]
    request_reset(client, email)
    first = last_mail_link(target, email)
    request_reset(client, email)
    second = last_mail_link(target, email)

    assert reset(client, second).status_code == 204
    assert reset(client, first, "another brand new phrase").status_code == 410


def test_reset_ends_every_session_of_the_account(client, target):
    owner = sign_up(client)
    request_reset(client, owner["input"]["email"])

    reset(client, last_mail_link(target, owner["input"]["email"]))

    assert client.get("/api/v1/me", headers=owner["auth"]).status_code == 401


def test_reset_never_disables_the_second_factor(client, target, clock):
    owner = sign_up(client)
    email = owner["input"]["email"]
    app, _ = enrol_totp(client, owner["auth"], clock)
    request_reset(client, email)

    assert reset(client, last_mail_link(target, email)).status_code == 204

    pending = sign_in(client, email, NEW_PASSWORD)
    assert pending.status_code == 201
    assert pending.json()["state"] == "mfa_pending"
    held = bearer(pending.json()["token"])
    assert client.get("/api/v1/me", headers=held).json()["code"] == "mfa_required"
    clock.advance(seconds=30)
    full = client.post(
        "/api/v1/sessions/current/second-factor",
        json={"code": app.at(clock.now())},
        headers=held,
    )
    assert full.status_code == 200
    factors = client.get("/api/v1/mfa", headers=bearer(full.json()["token"])).json()
    assert factors["totp"] is True
    assert factors["recovery_codes_left"] == 10


def test_reset_request_answers_the_same_for_an_unknown_address(client, target):
    owner = sign_up(client)

    known = request_reset(client, owner["input"]["email"])
    unknown = request_reset(client, "nobody-here@example.test")

    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content


def test_reset_link_is_never_sent_in_a_url_a_server_logs(client, target):
    owner = sign_up(client)
    request_reset(client, owner["input"]["email"])
    token = last_mail_link(target, owner["input"]["email"])

    page = client.get("/password/reset")

    assert page.status_code == 200
    assert token not in page.text
