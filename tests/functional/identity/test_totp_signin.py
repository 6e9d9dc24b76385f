"""Signing in in two steps with an authenticator app (codes from pyotp), recovery
codes, and refusal of a code used twice."""

from __future__ import annotations

from tests.functional.identity.helpers import bearer, enrol_totp, sign_in
from tests.support.factories import sign_up


def test_signin_with_totp_takes_two_steps_and_rotates_the_session(client, clock):
    owner = sign_up(client)
    app, enrolled = enrol_totp(client, owner["auth"], clock)
    assert len(enrolled["recovery_codes"]) == 10

    first = sign_in(client, owner["input"]["email"])
    assert first.status_code == 201
    assert first.json()["state"] == "mfa_pending"
    pending = bearer(first.json()["token"])
    assert client.get("/api/v1/me", headers=pending).json()["code"] == "mfa_required"

    clock.advance(seconds=30)
    second = client.post(
        "/api/v1/sessions/current/second-factor",
        json={"code": app.at(clock.now())},
        headers=pending,
    )
    assert second.status_code == 200, second.text
    full = bearer(second.json()["token"])
    assert second.json()["token"] != first.json()["token"]
    assert client.get("/api/v1/me", headers=full).status_code == 200
    # The pending token was ended by the rotation.
    assert client.get("/api/v1/me", headers=pending).status_code == 401


def test_a_totp_code_used_once_is_refused_the_second_time(client, clock):
    owner = sign_up(client)
    app, _ = enrol_totp(client, owner["auth"], clock)
    clock.advance(seconds=30)
    code = app.at(clock.now())

    pending = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    ok = client.post(
        "/api/v1/sessions/current/second-factor", json={"code": code}, headers=pending
    )
    assert ok.status_code == 200

    again = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    replay = client.post(
        "/api/v1/sessions/current/second-factor", json={"code": code}, headers=again
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "totp_replayed"


def test_recovery_code_signs_in_once_and_the_remaining_count_is_shown(client, clock):
    owner = sign_up(client)
    _, enrolled = enrol_totp(client, owner["auth"], clock)
    code = enrolled["recovery_codes"][0]

    pending = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    used = client.post(
        "/api/v1/sessions/current/second-factor",
        json={"recovery_code": code},
        headers=pending,
    )
    assert used.status_code == 200, used.text
    assert used.json()["recovery_codes_left"] == 9
    full = bearer(used.json()["token"])
    kinds = [
        e["kind"] for e in client.get("/api/v1/me/security-events", headers=full).json()
    ]
    assert "account:recovery_code:used" in kinds

    pending = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    reused = client.post(
        "/api/v1/sessions/current/second-factor",
        json={"recovery_code": code},
        headers=pending,
    )
    assert reused.status_code == 401
    assert reused.json()["code"] == "recovery_code_invalid"


def test_wrong_codes_are_throttled_with_retry_after(client, clock):
    owner = sign_up(client)
    enrol_totp(client, owner["auth"], clock)
    pending = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    answers = [
        client.post(
            "/api/v1/sessions/current/second-factor",
            json={"code": "000000"},
            headers=pending,
        )
        for _ in range(6)
    ]
    assert answers[-1].status_code == 429
    assert int(answers[-1].headers["retry-after"]) > 0


def test_removing_the_last_factor_needs_a_fresh_second_factor_check(client, clock):
    owner = sign_up(client)
    app, _ = enrol_totp(client, owner["auth"], clock)
    clock.advance(seconds=30)
    pending = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    full = bearer(
        client.post(
            "/api/v1/sessions/current/second-factor",
            json={"code": app.at(clock.now())},
            headers=pending,
        ).json()["token"]
    )
    clock.advance(minutes=11)
    refused = client.delete("/api/v1/mfa/totp", headers=full)
    assert refused.status_code == 403
    assert refused.json()["code"] in (
        "fresh_second_factor_required",
        "reauthentication_required",
    )

    confirm = client.post(
        "/api/v1/sessions/current/second-factor-confirmation",
        json={"code": app.at(clock.now())},
        headers=full,
    )
    assert confirm.status_code == 200, confirm.text
    assert client.delete("/api/v1/mfa/totp", headers=full).status_code == 204
    assert client.get("/api/v1/mfa", headers=full).json()["totp"] is False
