"""What every request handler needs: the services, the caller's identity and the
request's id, IP and user agent, resolved once per request.

This is also where a half-finished sign-in is held back. `api_principal` and
`console_principal`, which every route uses to learn who is calling, accept only
a session in state `full`: a session still waiting for its second factor, or one
that must enrol a factor first (staff, or a practice that requires MFA), is
refused here, so a route added later is covered without doing anything. Only the
few routes that complete sign-in or enrolment ask for the narrower principals
below. API tokens are refused too, unless a route names the scope it serves
(`scoped`), so an integration reaches nothing by default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from jinja2 import Environment

from perpetua.clock import Clock
from perpetua.config import Settings
from perpetua.db.pool import Database
from perpetua.identity import tokens
from perpetua.identity.errors import (
    ApiTokenNotAllowed,
    MfaEnrolmentRequired,
    ScopeMissing,
    SecondFactorRequired,
)
from perpetua.identity.sessions import Principal, SessionPolicy, resolve_session
from perpetua.records.service import Records

SESSION_COOKIE = "__Host-perpetua-session"
BEARER = "bearer "


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    session_policy: SessionPolicy
    templates_env: Environment | None = None
    records: Records | None = None


def services(request: Request) -> Services:
    svc = request.app.state.services
    assert isinstance(svc, Services)
    return svc


def request_id(request: Request) -> str:
    return str(request.state.request_id)


def client_ip(request: Request) -> str | None:
    """The peer's address, or None when the transport gives no IP address."""
    if not request.client:
        return None
    try:
        return str(ipaddress.ip_address(request.client.host))
    except ValueError:
        return None


def user_agent(request: Request) -> str | None:
    value = request.headers.get("user-agent")
    return value[:400] if value else None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[: len(BEARER)].lower() == BEARER:
        return header[len(BEARER) :].strip()
    return None


def _full_only(principal: Principal) -> Principal:
    if principal.state == "mfa_pending":
        raise SecondFactorRequired()
    if principal.state == "mfa_enrolment":
        raise MfaEnrolmentRequired()
    return principal


async def _api_session(request: Request) -> Principal:
    token = bearer_token(request)
    if tokens.looks_like_token(token):
        raise ApiTokenNotAllowed()
    svc = services(request)
    return await resolve_session(svc.db, svc.clock, token)


async def _console_session(request: Request) -> Principal:
    svc = services(request)
    return await resolve_session(svc.db, svc.clock, request.cookies.get(SESSION_COOKIE))


async def api_principal(request: Request) -> Principal:
    """The API authenticates with a bearer token, never an ambient cookie, so it
    needs no CSRF defence. Only a fully signed-in session passes."""
    return _full_only(await _api_session(request))


async def console_principal(request: Request) -> Principal:
    """The console's caller; only a fully signed-in session passes."""
    return _full_only(await _console_session(request))


def scoped(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency for API routes that integrations may call: a session as with
    `api_principal`, or an API token that carries `scope`."""

    async def principal_with_scope(request: Request) -> Principal:
        token = bearer_token(request)
        if not tokens.looks_like_token(token):
            return await api_principal(request)
        svc = services(request)
        assert token is not None
        principal = await tokens.resolve(svc.db, svc.clock, token, client_ip(request))
        if scope not in (principal.scopes or ()):
            raise ScopeMissing()
        return principal

    return principal_with_scope


# The narrower principals, for the routes that finish a sign-in.


async def api_enrolling_principal(request: Request) -> Principal:
    """A full session, or one that may do nothing but enrol a second factor."""
    principal = await _api_session(request)
    if principal.state == "mfa_pending":
        raise SecondFactorRequired()
    return principal


async def console_enrolling_principal(request: Request) -> Principal:
    principal = await _console_session(request)
    if principal.state == "mfa_pending":
        raise SecondFactorRequired()
    return principal


async def api_pending_principal(request: Request) -> Principal:
    """A session whose password was right and whose second factor is awaited."""
    return await _api_session(request)


async def console_pending_principal(request: Request) -> Principal:
    return await _console_session(request)
