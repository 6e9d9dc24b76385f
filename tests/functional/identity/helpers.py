"""Shared steps for identity tests: signing in through the API, reading the outbox
as the delivery job would, and an authenticator app built on pyotp."""

from __future__ import annotations

import json
import re
from typing import Any

import pyotp
from starlette.testclient import TestClient
from tests.conftest import owner_connection
from tests.support.factories import STRONG_PASSWORD

from perpetua.db.target import DatabaseTarget

SYSTEM = json.dumps(
    {
        "actor_kind": "system",
        "sub": "00000000-0000-0000-0000-000000000000",
        "request_id": "test",
    }
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(
    client: TestClient, email: str, password: str = STRONG_PASSWORD, **extra: Any
) -> Any:
    return client.post(
        "/api/v1/sessions", json={"email": email, "password": password}, **extra
    )


def last_mail_link(target: DatabaseTarget, to: str) -> str:
    """The one-time token in the newest queued message for `to`."""
    with owner_connection(target) as conn, conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true)", (SYSTEM,))
        row = conn.execute(
            "select body_text from app.mail_outbox where to_address = %s "
            "order by created_at desc limit 1",
            (to,),
        ).fetchone()
    assert row is not None
    match = re.search(r"#([A-Za-z0-9_\-]+)", str(row[0]))
    assert match
    return match.group(1)


def enrol_totp(client: TestClient, headers: dict[str, str], clock: Any) -> Any:
    """Set up an authenticator app; returns (pyotp.TOTP, response of confirm)."""
    started = client.post("/api/v1/mfa/totp", headers=headers)
    assert started.status_code == 200, started.text
    app = pyotp.TOTP(started.json()["secret"])
    confirmed = client.post(
        "/api/v1/mfa/totp/confirmation",
        json={"code": app.at(clock.now())},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    return app, confirmed.json()
