"""Where the practice does not require MFA it is still encouraged: the dashboard
asks every member without a second factor to set one up, until they have."""

from __future__ import annotations

from tests.functional.identity.helpers import enrol_totp
from tests.support.factories import sign_up

from perpetua.web.context import SESSION_COOKIE

PROMPT = 'data-testid="mfa-prompt"'


def open_dashboard(client, token: str):
    client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/")
    return client.get("/dashboard")


def test_dashboard_asks_a_member_without_a_second_factor_to_set_one_up(client):
    owner = sign_up(client)

    page = open_dashboard(client, owner["session"]["token"])

    assert page.status_code == 200
    assert PROMPT in page.text
    assert 'href="/security/mfa"' in page.text


def test_dashboard_stops_asking_once_an_authenticator_app_is_enrolled(client, clock):
    owner = sign_up(client)
    _, enrolled = enrol_totp(client, owner["auth"], clock)

    # Enrolling from a full session keeps that session; a held one is replaced.
    page = open_dashboard(client, enrolled["token"] or owner["session"]["token"])

    assert page.status_code == 200
    assert "<h1>" in page.text
    assert PROMPT not in page.text
