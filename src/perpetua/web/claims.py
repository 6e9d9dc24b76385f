"""Claims for one request: the principal's identity plus the purpose of use and
reason the request states (API headers; console forms for exports and break-glass).
"""

from __future__ import annotations

import dataclasses

from fastapi import Request

from perpetua.access.claims import Claims, SessionClaims
from perpetua.errors import InvalidInput, NotAuthenticated
from perpetua.identity import tokens
from perpetua.identity.errors import ApiTokenNotAllowed
from perpetua.identity.sessions import Principal, token_hash
from perpetua.redaction import ensure_no_card_number
from perpetua.web.context import (
    bearer_token,
    client_ip,
    request_id,
    services,
    user_agent,
)

PURPOSES = ("TREAT", "HPAYMT", "HOPERAT", "ETREAT", "BTG")
PURPOSE_HEADER = "x-purpose-of-use"
REASON_HEADER = "x-access-reason"
# Longer bearer values are refused unread, as resolve_session does.
_TOKEN_LIMIT = 200


def _stated(
    request: Request, purpose: str | None, reason: str | None
) -> tuple[str | None, str | None]:
    """The purpose of use and reason a request states, checked."""
    purpose = purpose or request.headers.get(PURPOSE_HEADER)
    reason = reason or request.headers.get(REASON_HEADER)
    if purpose is not None and purpose not in PURPOSES:
        raise InvalidInput(f"purpose of use must be one of {', '.join(PURPOSES)}")
    if reason is not None:
        reason = " ".join(reason.split())[:500] or None
        if reason:
            ensure_no_card_number(reason)
    return purpose, reason


def request_claims(
    request: Request,
    principal: Principal,
    *,
    purpose: str | None = None,
    reason: str | None = None,
) -> Claims:
    purpose, reason = _stated(request, purpose, reason)
    base = principal.claims(
        request_id(request), ip=client_ip(request), user_agent=user_agent(request)
    )
    return dataclasses.replace(base, purpose_of_use=purpose, reason=reason)


async def api_session_reader(request: Request) -> SessionClaims:
    """The caller of an API read, for the database to resolve in the read's own
    transaction: the same session rules as `api_principal` (a full session only;
    no API tokens), decided by `app.session_claims` instead of a separate query."""
    token = bearer_token(request)
    if tokens.looks_like_token(token):
        raise ApiTokenNotAllowed()
    if not token or len(token) > _TOKEN_LIMIT:
        raise NotAuthenticated()
    purpose, reason = _stated(request, None, None)
    return SessionClaims(
        token_hash=token_hash(token),
        now=services(request).clock.now(),
        request_id=request_id(request),
        purpose_of_use=purpose,
        reason=reason,
        client_ip=client_ip(request),
        user_agent=user_agent(request),
    )
