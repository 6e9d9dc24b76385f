"""Synthetic people and practices for tests. No real names, emails or numbers."""

from __future__ import annotations

import itertools
from typing import Any

from starlette.testclient import TestClient

_counter = itertools.count(1)

STRONG_PASSWORD = "violet tractor measures quietly"


def signup_body(**overrides: str) -> dict[str, str]:
    n = next(_counter)
    body = {
        "practice_name": f"Synthetic Family Practice {n}",
        "owner_name": f"Owner Testperson {n}",
        "email": f"owner{n}@example.test",
        "password": STRONG_PASSWORD,
    }
    body.update(overrides)
    return body


def sign_up(client: TestClient, **overrides: str) -> dict[str, Any]:
    """Sign a practice up through the API; returns the response plus the inputs."""
    body = signup_body(**overrides)
    response = client.post("/api/v1/signup", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    result["input"] = body
    result["auth"] = {"Authorization": f"Bearer {result['session']['token']}"}
    return result
