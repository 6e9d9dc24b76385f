"""Claims for one request: the principal's identity plus the purpose of use and
reason the request states (API headers; console forms for exports and break-glass).
"""

from __future__ import annotations

import dataclasses

from fastapi import Request

from perpetua.access.claims import Claims
from perpetua.errors import InvalidInput
from perpetua.identity.sessions import Principal
from perpetua.redaction import ensure_no_card_number
from perpetua.web.context import client_ip, request_id, user_agent

PURPOSES = ("TREAT", "HPAYMT", "HOPERAT", "ETREAT", "BTG")
PURPOSE_HEADER = "x-purpose-of-use"
REASON_HEADER = "x-access-reason"


def request_claims(
    request: Request,
    principal: Principal,
    *,
    purpose: str | None = None,
    reason: str | None = None,
) -> Claims:
    purpose = purpose or request.headers.get(PURPOSE_HEADER)
    reason = reason or request.headers.get(REASON_HEADER)
    if purpose is not None and purpose not in PURPOSES:
        raise InvalidInput(f"purpose of use must be one of {', '.join(PURPOSES)}")
    if reason is not None:
        reason = " ".join(reason.split())[:500] or None
        if reason:
            ensure_no_card_number(reason)
    base = principal.claims(
        request_id(request), ip=client_ip(request), user_agent=user_agent(request)
    )
    return dataclasses.replace(base, purpose_of_use=purpose, reason=reason)
