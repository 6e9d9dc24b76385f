"""With "require MFA" on, a member without a second factor reaches only enrolment.

Every route of the application is enumerated from `app.routes`, so a route added
later is checked without touching this test. Routes that need no session at all,
and the few that finish a sign-in, are listed here by name: adding one to those
lists is a deliberate, reviewed decision.
"""

from __future__ import annotations

import re
import uuid

from fastapi.routing import APIRoute
from tests.functional.identity.helpers import bearer, last_mail_link, sign_in
from tests.support.factories import STRONG_PASSWORD, sign_up

# Reachable without any session (sign-up, sign-in, one-time links, health).
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/signup"),
    ("POST", "/api/v1/sessions"),
    ("POST", "/api/v1/password/reset-requests"),
    ("POST", "/api/v1/password/resets"),
    ("POST", "/api/v1/staff/enrolment"),
    ("POST", "/api/v1/invitations/acceptance"),
    # Telephony: authenticated by the provider's request signature, not a session.
    ("POST", "/api/v1/telephony/twilio/{practice_id}/voice"),
    ("GET", "/signup"),
    ("POST", "/signup"),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("GET", "/password/forgot"),
    ("POST", "/password/forgot"),
    ("GET", "/password/reset"),
    ("POST", "/password/reset"),
    ("GET", "/staff/enrol"),
    ("POST", "/staff/enrol"),
    ("GET", "/invitations/accept"),
    ("POST", "/invitations/accept"),
    ("GET", "/mail"),
}

# Reachable by a session that has not finished signing in: enrolment, the second
# step and signing out.
UNFINISHED = {
    ("DELETE", "/api/v1/sessions/current"),
    ("POST", "/api/v1/sessions/current/second-factor"),
    ("POST", "/api/v1/sessions/current/webauthn-options"),
    ("GET", "/api/v1/mfa"),
    ("POST", "/api/v1/mfa/totp"),
    ("POST", "/api/v1/mfa/totp/confirmation"),
    ("POST", "/api/v1/mfa/security-keys/options"),
    ("POST", "/api/v1/mfa/security-keys"),
    ("POST", "/signout"),
    ("GET", "/signin/mfa"),
    ("POST", "/signin/mfa"),
    ("POST", "/signin/mfa/webauthn/options"),
    ("POST", "/signin/mfa/webauthn"),
    ("GET", "/security/mfa"),
    ("POST", "/security/mfa/totp/start"),
    ("POST", "/security/mfa/totp/confirm"),
    ("POST", "/security/mfa/keys/options"),
    ("POST", "/security/mfa/keys"),
}

OPENAPI = ("GET", "/api/v1/openapi.json")


def all_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the application answers, included routers flattened.

    FastAPI 0.165 keeps included routers as `_IncludedRouter` entries, each of
    which lists its effective routes with their full paths.
    """
    found = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        entries = (
            [(c.path, c.original_route) for c in contexts()]
            if contexts
            else [(getattr(route, "path", ""), route)]
        )
        for path, original in entries:
            if isinstance(original, APIRoute) or path == OPENAPI[1]:
                methods = getattr(original, "methods", None) or {"GET"}
                found.extend((method, path) for method in methods)
    return sorted(set(found))


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)


def member_held_at_enrolment(client, target):
    owner = sign_up(client)
    email = f"frontdesk-{uuid.uuid4().hex[:8]}@example.test"
    invited = client.post(
        "/api/v1/invitations",
        json={"email": email, "role": "front_desk"},
        headers=owner["auth"],
    )
    assert invited.status_code == 201, invited.text
    accepted = client.post(
        "/api/v1/invitations/acceptance",
        json={
            "token": last_mail_link(target, email),
            "password": STRONG_PASSWORD,
            "full_name": "Front Desk Testperson",
        },
    )
    assert accepted.status_code == 201, accepted.text
    turned_on = client.patch(
        "/api/v1/practice/security", json={"require_mfa": True}, headers=owner["auth"]
    )
    assert turned_on.status_code == 200, turned_on.text
    return email


def test_member_without_mfa_reaches_only_enrolment_on_every_route(client, target):
    email = member_held_at_enrolment(client, target)

    signed_in = sign_in(client, email)
    assert signed_in.json()["state"] == "mfa_enrolment"
    api_headers = bearer(signed_in.json()["token"])

    client.get("/signin")
    csrf = client.cookies.get("__Host-perpetua-csrf")
    console = client.post(
        "/signin",
        data={"email": email, "password": STRONG_PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert console.headers["location"] == "/security/mfa"
    csrf = client.cookies.get("__Host-perpetua-csrf")

    routes = all_routes(client.app)
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC | UNFINISHED or path == OPENAPI[1]:
            continue
        url = concrete(path)
        if path.startswith("/api/"):
            response = client.request(method, url, headers=api_headers, json={})
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["code"] == "mfa_enrolment_required", (method, path)
        else:
            response = client.request(
                method,
                url,
                data={"csrf_token": csrf} if method != "GET" else None,
                headers={"x-csrf-token": csrf},
                follow_redirects=False,
            )
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"] == "/security/mfa", (method, path)
        checked += 1
    assert checked >= 30

    # What it can reach is enrolment itself.
    assert client.get("/api/v1/mfa", headers=api_headers).status_code == 200
    assert client.get("/security/mfa").status_code == 200


def test_listed_routes_exist_so_the_lists_do_not_go_stale(client):
    routes = set(all_routes(client.app))
    assert routes >= (PUBLIC | UNFINISHED)


def test_enrolling_lifts_the_hold_and_rotates_the_session(client, target, clock):
    import pyotp

    email = member_held_at_enrolment(client, target)
    held = bearer(sign_in(client, email).json()["token"])
    secret = client.post("/api/v1/mfa/totp", headers=held).json()["secret"]
    done = client.post(
        "/api/v1/mfa/totp/confirmation",
        json={"code": pyotp.TOTP(secret).at(clock.now())},
        headers=held,
    )
    assert done.status_code == 200
    full = bearer(done.json()["token"])
    assert client.get("/api/v1/me", headers=full).status_code == 200
    assert client.get("/api/v1/me", headers=held).status_code == 401


def test_turning_on_require_mfa_holds_sessions_already_open(client, target):
    owner = sign_up(client)
    email = f"biller-{uuid.uuid4().hex[:8]}@example.test"
    client.post(
        "/api/v1/invitations",
        json={"email": email, "role": "biller"},
        headers=owner["auth"],
    )
    client.post(
        "/api/v1/invitations/acceptance",
        json={
            "token": last_mail_link(target, email),
            "password": STRONG_PASSWORD,
            "full_name": "Biller Testperson",
        },
    )
    open_session = bearer(sign_in(client, email).json()["token"])
    assert client.get("/api/v1/me", headers=open_session).status_code == 200

    client.patch(
        "/api/v1/practice/security", json={"require_mfa": True}, headers=owner["auth"]
    )
    held = client.get("/api/v1/me", headers=open_session)
    assert held.status_code == 403
    assert held.json()["code"] == "mfa_enrolment_required"
