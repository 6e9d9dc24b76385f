"""Perpetua staff: made on the command line, no session of any kind until a second
factor is enrolled, and no practice (so no PHI) in their claims."""

from __future__ import annotations

import pyotp
from tests.conftest import owner_connection
from tests.functional.identity.helpers import bearer, sign_in
from tests.support.factories import STRONG_PASSWORD

from perpetua.identity.staff import create_staff


def make_staff(target, email="staff-one@perpetua.example"):
    with owner_connection(target) as conn, conn.transaction():
        _user, link = create_staff(
            conn, email, "Staff Testperson", "https://testserver"
        )
    return link.split("#", 1)[1]


def test_staff_without_mfa_cannot_obtain_a_session_by_any_route(client, target):
    token = make_staff(target)

    # Password sign-in: no password is known yet, and after choosing one through
    # the enrolment link a password alone still opens nothing.
    assert sign_in(client, "staff-one@perpetua.example").status_code == 401
    enrolment = client.post(
        "/api/v1/staff/enrolment", json={"token": token, "password": STRONG_PASSWORD}
    )
    assert enrolment.status_code == 201
    assert enrolment.json()["state"] == "mfa_enrolment"
    held = bearer(enrolment.json()["token"])

    refused = sign_in(client, "staff-one@perpetua.example")
    assert refused.status_code == 403
    assert refused.json()["code"] == "staff_mfa_not_enrolled"
    assert "token" not in refused.json()

    client.get("/signin")
    console = client.post(
        "/signin",
        data={
            "email": "staff-one@perpetua.example",
            "password": STRONG_PASSWORD,
            "csrf_token": client.cookies.get("__Host-perpetua-csrf"),
        },
        follow_redirects=False,
    )
    assert console.status_code == 403
    assert "perpetua-session" not in console.headers.get("set-cookie", "")

    # The enrolment session reaches nothing but enrolment.
    for path in ("/api/v1/me", "/api/v1/sessions", "/api/v1/me/security-events"):
        answer = client.get(path, headers=held)
        assert answer.status_code == 403
        assert answer.json()["code"] == "mfa_enrolment_required"

    # The link is single use.
    again = client.post(
        "/api/v1/staff/enrolment", json={"token": token, "password": STRONG_PASSWORD}
    )
    assert again.status_code == 410


def test_staff_with_mfa_sign_in_in_two_steps_and_carry_no_practice(
    client, target, clock
):
    token = make_staff(target, "staff-two@perpetua.example")
    held = bearer(
        client.post(
            "/api/v1/staff/enrolment",
            json={"token": token, "password": STRONG_PASSWORD},
        ).json()["token"]
    )
    secret = client.post("/api/v1/mfa/totp", headers=held).json()["secret"]
    app = pyotp.TOTP(secret)
    client.post(
        "/api/v1/mfa/totp/confirmation",
        json={"code": app.at(clock.now())},
        headers=held,
    )

    clock.advance(seconds=30)
    pending = sign_in(client, "staff-two@perpetua.example")
    assert pending.json()["state"] == "mfa_pending"
    full = client.post(
        "/api/v1/sessions/current/second-factor",
        json={"code": app.at(clock.now())},
        headers=bearer(pending.json()["token"]),
    )
    me = client.get("/api/v1/me", headers=bearer(full.json()["token"])).json()
    assert me["practice_id"] is None
    assert me["role"] is None
    assert me["memberships"] == []
