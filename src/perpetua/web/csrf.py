"""CSRF defence for console forms: a random token in a `__Host-` cookie that must be
echoed in the form, and an Origin check, so another site cannot post on a signed-in
user's behalf (or sign them into an attacker's account)."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from perpetua.errors import CsrfFailed

CSRF_COOKIE = "__Host-perpetua-csrf"
CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The token for forms on this page; made on first use and set by
    `remember_csrf` on the response."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 100:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


def remember_csrf(request: Request, response: Response) -> None:
    token = getattr(request.state, "new_csrf", None)
    if token:
        response.set_cookie(
            CSRF_COOKIE, token, secure=True, httponly=True, samesite="strict", path="/"
        )


def rotate_csrf(request: Request) -> None:
    request.state.new_csrf = secrets.token_urlsafe(32)


def check_csrf(request: Request, submitted: str | None) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise CsrfFailed()
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        raise CsrfFailed()
