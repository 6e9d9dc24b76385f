"""A security key enrolled through Chromium's virtual authenticator signs the owner
in; a key whose signature counter went backwards is refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from tests.support.factories import STRONG_PASSWORD, signup_body
from tests.support.server import Server

pytestmark = pytest.mark.browser


def origin(server: Server) -> str:
    # WebAuthn needs a domain, not an IP address; the service's origin is localhost.
    return f"https://localhost:{server.port}"


def test_owner_enrols_a_security_key_and_signs_in_with_it(page: Page, server: Server):
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]

    body = signup_body()
    page.goto(origin(server) + "/signup")
    page.get_by_label("Practice name").fill(body["practice_name"])
    page.get_by_label("Your full name").fill(body["owner_name"])
    page.get_by_label("Work email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create practice").click()
    page.wait_for_url("**/dashboard?welcome=1")

    page.goto(origin(server) + "/security/mfa")
    page.get_by_label("Name for a new key").fill("Desk key")
    page.get_by_role("button", name="Add security key").click()
    expect(page.get_by_test_id("new-recovery-codes")).to_be_visible()
    page.goto(origin(server) + "/security/mfa")
    expect(page.get_by_test_id("security-key")).to_contain_text("Desk key")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/signin/mfa")
    page.get_by_role("button", name="Use security key").click()
    page.wait_for_url("**/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text(body["practice_name"])

    # Turn the key's counter back, as a cloned key would report it.
    credential = cdp.send(
        "WebAuthn.getCredentials", {"authenticatorId": authenticator}
    )["credentials"][0]
    cdp.send(
        "WebAuthn.removeCredential",
        {"authenticatorId": authenticator, "credentialId": credential["credentialId"]},
    )
    cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": authenticator,
            "credential": {**credential, "signCount": 0},
        },
    )
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill(body["email"])
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/signin/mfa")
    page.get_by_role("button", name="Use security key").click()
    expect(page.get_by_test_id("webauthn-status")).to_contain_text("unexpected state")
    assert page.url.endswith("/signin/mfa")
