"""What every request handler needs: the services, the caller's identity and the
request's id, IP and user agent, resolved once per request."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fastapi import Request
from jinja2 import Environment

from perpetua.clock import Clock
from perpetua.config import Settings
from perpetua.db.pool import Database
from perpetua.identity.sessions import Principal, SessionPolicy, resolve_session

SESSION_COOKIE = "__Host-perpetua-session"
BEARER = "bearer "


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    session_policy: SessionPolicy
    templates_env: Environment | None = None


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


async def api_principal(request: Request) -> Principal:
    """The API authenticates with a bearer token, never an ambient cookie, so it
    needs no CSRF defence."""
    svc = services(request)
    return await resolve_session(svc.db, svc.clock, bearer_token(request))


async def console_principal(request: Request) -> Principal:
    svc = services(request)
    return await resolve_session(svc.db, svc.clock, request.cookies.get(SESSION_COOKIE))
