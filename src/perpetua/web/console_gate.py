"""Who a console page serves, decided in one place: a signed-in member, or the
page to show instead (sign-in again, or patient data locked).

Every console module asks here, so an ended session is answered the same way
everywhere (its cookie dropped, "your session ended" on the sign-in page) and no
PHI page can forget the BAA check that the database would make anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from perpetua.errors import NotAuthenticated, SessionExpired
from perpetua.identity.sessions import Principal
from perpetua.incidents import service as incidents
from perpetua.incidents.models import overdue_clocks
from perpetua.practices.baa_status import baa_in_force
from perpetua.termination.state import locked_reason
from perpetua.web.context import (
    SESSION_COOKIE,
    client_ip,
    console_principal,
    request_id,
    services,
)

LOCKED = (
    "Patient data is locked until the owner signs the Business Associate Agreement."
)
NO_PRACTICE = "This account does not belong to a practice."


def to_signin(expired: bool = False) -> Response:
    target = "/signin?ended=1" if expired else "/signin"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True)
    return response


async def member_or_signin(
    request: Request,
    resolve: Callable[[Request], Awaitable[Principal]] = console_principal,
) -> Principal | Response:
    """The page's caller, or the redirect to sign in when there is none."""
    try:
        principal = await resolve(request)
    except SessionExpired:
        return to_signin(expired=True)
    except NotAuthenticated:
        return to_signin()
    await _note_overdue_clocks(request, principal)
    return principal


async def _note_overdue_clocks(request: Request, principal: Principal) -> None:
    """Remember the practice's overdue breach-notification clocks for the page.

    The layout shows them on every console page an owner or manager opens (see
    `console.page`), so a missed deadline is in front of them wherever they work,
    not only on the incident pages they may rarely visit.
    """
    if principal.is_staff or principal.role not in ("owner", "manager"):
        return
    svc = services(request)
    claims = principal.claims(request_id(request), ip=client_ip(request))
    found = await incidents.list_incidents(svc.db, claims)
    request.state.incident_alarm = overdue_clocks(found, svc.clock.now())


async def phi_lock(request: Request, principal: Principal) -> str | None:
    """Why patient data is locked for this member (no practice; no BAA in force;
    the BAA terminated), or None when it is open."""
    if principal.practice_id is None or principal.role is None:
        return NO_PRACTICE
    db = services(request).db
    claims = principal.claims(request_id(request), ip=client_ip(request))
    if await baa_in_force(db, claims):
        return None
    return await locked_reason(db, claims, LOCKED)
