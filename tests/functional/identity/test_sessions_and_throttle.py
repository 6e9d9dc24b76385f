"""Sessions that log off (per-practice idle timeout, listed and ended by their
holder) and throttling of failed sign-ins seen by the owner."""

from __future__ import annotations

import re
import time

from starlette.testclient import TestClient
from tests.functional.identity.helpers import bearer, sign_in
from tests.support.factories import sign_up


def test_idle_session_ends_after_the_practices_configured_time(client, clock):
    owner = sign_up(client)
    client.patch(
        "/api/v1/practice/security",
        json={"session_idle_minutes": 5},
        headers=owner["auth"],
    )
    token = bearer(sign_in(client, owner["input"]["email"]).json()["token"])

    clock.advance(minutes=4, seconds=59)
    assert client.get("/api/v1/me", headers=token).status_code == 200
    clock.advance(minutes=5)
    ended = client.get("/api/v1/me", headers=token)
    assert ended.status_code == 401
    assert ended.json()["code"] == "session_expired"


def test_sessions_are_listed_and_signed_out_everywhere(client):
    owner = sign_up(client)
    second = bearer(sign_in(client, owner["input"]["email"]).json()["token"])
    listed = client.get("/api/v1/sessions", headers=second).json()
    assert len(listed) == 2
    assert sum(s["current"] for s in listed) == 1

    other = next(s for s in listed if not s["current"])
    assert client.delete(f"/api/v1/sessions/{other['id']}", headers=second).json() == {
        "ended": 1
    }
    assert client.get("/api/v1/me", headers=owner["auth"]).status_code == 401

    assert client.delete("/api/v1/sessions", headers=second).json() == {"ended": 1}
    assert client.get("/api/v1/me", headers=second).status_code == 401


def test_fifty_wrong_passwords_from_several_ips_are_throttled_and_shown(client):
    owner = sign_up(client)
    email = owner["input"]["email"]
    # Five clients at five addresses (documentation range), taking turns.
    clients = [
        TestClient(
            client.app, base_url="https://testserver", client=(f"198.51.100.{n}", 4000)
        )
        for n in range(1, 6)
    ]
    answers = []
    started = time.perf_counter()
    for attempt in range(50):
        answers.append(
            clients[attempt % 5].post(
                "/api/v1/sessions",
                json={"email": email, "password": f"wrong guess number {attempt}"},
            )
        )
    elapsed = time.perf_counter() - started

    statuses = [a.status_code for a in answers]
    assert statuses[:4] == [401] * 4
    assert statuses.count(429) >= 45
    throttled = next(a for a in answers if a.status_code == 429)
    assert int(throttled.headers["retry-after"]) > 0
    assert throttled.json()["code"] == "too_many_attempts"
    # Locked attempts are refused before any password is hashed.
    assert elapsed < 20

    # The right password is refused too while the lock lasts.
    assert sign_in(client, email).status_code == 429

    events = client.get("/api/v1/practice/security-events", headers=owner["auth"])
    failures = [e for e in events.json() if e["kind"] == "account:signin:failure"]
    assert len(failures) >= 50
    assert {"wrong_password", "throttled"} <= {e["reason"] for e in failures}
    assert {f"198.51.100.{n}" for n in range(1, 6)} <= {e["ip"] for e in failures}


def test_owner_sees_failed_attempts_on_the_security_page(client):
    owner = sign_up(client)
    for _ in range(3):
        sign_in(client, owner["input"]["email"], "not the password at all")
    client.cookies.clear()
    client.get("/signin")
    csrf = client.cookies.get("__Host-perpetua-csrf")
    client.post(
        "/signin",
        data={
            "email": owner["input"]["email"],
            "password": owner["input"]["password"],
            "csrf_token": csrf,
        },
    )
    page = client.get("/settings/security")
    assert page.status_code == 200
    assert len(re.findall(r"account:signin:failure", page.text)) == 3
    assert "wrong_password" in page.text


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client):
    owner = sign_up(client)
    wrong = sign_in(client, owner["input"]["email"], "not the password at all")
    unknown = sign_in(client, "nobody-here@example.test", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
