"""Driving the console as a member of a test world: the world's API sessions are
ordinary sessions, so the same token works as the console's session cookie."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from perpetua.web.context import SESSION_COOKIE
from tests.support.world import World

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in_console(world: World, role: str) -> TestClient:
    """Make the world's client act in the console as the member with `role`."""
    token = world.headers[role]["Authorization"].split(" ", 1)[1]
    world.client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/")
    return world.client


def csrf_of(client: TestClient, path: str = "/patients") -> str:
    page = client.get(path)
    found = CSRF.search(page.text)
    assert found, f"no form on {path} ({page.status_code})"
    return found.group(1)


def post_form(client: TestClient, path: str, data: dict[str, Any], **kw: Any) -> Any:
    """POST a console form with a fresh CSRF token, as a browser would."""
    token = csrf_of(client)
    return client.post(path, data={**data, "csrf_token": token}, **kw)
