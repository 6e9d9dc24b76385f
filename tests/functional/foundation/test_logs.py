"""Logs never hold passwords, tokens, email addresses or request bodies."""

from __future__ import annotations

import json

from tests.support.factories import STRONG_PASSWORD, signup_body

from perpetua.observability.logging import configure_logging, scrub


def test_sign_up_and_sign_in_leave_no_secret_in_the_logs(client, capfd):
    configure_logging("json")
    body = signup_body(practice_name="Sentinel Practice Qzx")
    signed = client.post("/api/v1/signup", json=body).json()
    token = signed["session"]["token"]
    client.post(
        "/api/v1/sessions", json={"email": body["email"], "password": "wrong password!"}
    )
    client.post(
        "/api/v1/sessions", json={"email": body["email"], "password": STRONG_PASSWORD}
    )
    client.get("/api/v1/practice", headers={"Authorization": f"Bearer {token}"})
    client.post("/api/v1/signup", content=b"{broken " + body["email"].encode())

    out, err = capfd.readouterr()
    logs = out + err
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert len([line for line in lines if line["event"] == "request"]) >= 5
    for secret in (STRONG_PASSWORD, token, body["email"], "Sentinel Practice Qzx"):
        assert secret not in logs
    assert "broken" not in logs


def test_scrubber_masks_what_callers_should_never_have_logged():
    event = scrub(
        None,
        "info",
        {
            "event": "oops user someone@example.test said hi",
            "password": "hunter2hunter2",
            "detail": "Bearer abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "session_token": "x",
        },
    )
    assert "someone@example.test" not in event["event"]
    assert event["password"] == "[removed]"
    assert event["session_token"] == "[removed]"
    assert "abcdefghijklmnopqrstuvwxyz" not in event["detail"]
