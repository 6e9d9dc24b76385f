"""JSON API version 1: sign-up, sessions and the current practice."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from perpetua.api.identity_routes import session_out
from perpetua.api.identity_schemas import SignInOut
from perpetua.api.schemas import (
    MembershipOut,
    MeOut,
    PracticeOut,
    PracticeRenameIn,
    Problem,
    SessionOut,
    SignedUpOut,
    SignInIn,
    SignUpIn,
)
from perpetua.errors import Forbidden, NotFound
from perpetua.identity.sessions import Principal, end_session
from perpetua.practices import service as practices
from perpetua.web import flows
from perpetua.web.context import (
    api_pending_principal,
    api_principal,
    client_ip,
    request_id,
    scoped,
    services,
    user_agent,
)

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", responses=_PROBLEMS)
Authed = Annotated[Principal, Depends(api_principal)]


def _session_out(request: Request, token: str) -> SessionOut:
    policy = services(request).session_policy
    return SessionOut(
        token=token,
        idle_timeout_seconds=int(policy.idle.total_seconds()),
        absolute_timeout_seconds=int(policy.absolute.total_seconds()),
    )


@router.post("/signup", status_code=201, tags=["practices"])
async def sign_up(body: SignUpIn, request: Request) -> SignedUpOut:
    """Sign a practice up for a 14-day free trial; the caller becomes its owner and
    receives a session."""
    result = await flows.sign_up_and_sign_in(
        request,
        practices.SignUp(
            practice_name=body.practice_name,
            owner_name=body.owner_name,
            email=body.email,
            password=body.password,
        ),
    )
    return SignedUpOut(
        practice=PracticeOut.of(result.practice, services(request).clock.now()),
        user_id=result.user_id,
        session=_session_out(request, result.token),
    )


@router.post("/sessions", status_code=201, tags=["sessions"])
async def sign_in(body: SignInIn, request: Request) -> SignInOut:
    """Exchange email and password for a session token. When a second factor is
    enrolled the session is `mfa_pending` until one is sent; see docs/identity.md."""
    result = await flows.sign_in(request, body.email, body.password, body.practice_id)
    return session_out(request, result.token, result.state)


@router.delete("/sessions/current", status_code=204, tags=["sessions"])
async def sign_out(
    principal: Annotated[Principal, Depends(api_pending_principal)], request: Request
) -> Response:
    """End the session this token belongs to, whatever its state."""
    svc = services(request)
    await end_session(svc.db, svc.clock, principal)
    return Response(status_code=204)


@router.get("/me", tags=["sessions"])
async def me(principal: Authed, request: Request) -> MeOut:
    """Who the token acts as, and the practices they belong to."""
    svc = services(request)
    claims = principal.claims(request_id(request), ip=client_ip(request))
    async with svc.db.transaction(claims) as conn:
        rows = await practices.list_memberships(conn, principal.user_id)
    return MeOut(
        user_id=principal.user_id,
        practice_id=principal.practice_id,
        role=principal.role,
        memberships=[MembershipOut(**row) for row in rows],  # type: ignore[arg-type]
    )


def _require_practice(principal: Principal) -> None:
    if principal.practice_id is None or principal.role is None:
        raise NotFound("this session does not act in a practice")


@router.get("/practice", tags=["practices"])
async def get_practice(
    principal: Annotated[Principal, Depends(scoped("practice:view"))],
    request: Request,
) -> PracticeOut:
    """The practice this session acts in, with its trial status."""
    _require_practice(principal)
    assert principal.practice_id is not None
    svc = services(request)
    claims = principal.claims(request_id(request), ip=client_ip(request))
    async with svc.db.transaction(claims) as conn:
        view = await practices.get_practice(conn, principal.practice_id)
    return PracticeOut.of(view, svc.clock.now())


@router.patch("/practice", tags=["practices"])
async def rename_practice(
    body: PracticeRenameIn, principal: Authed, request: Request
) -> PracticeOut:
    """Rename the practice (owners and managers)."""
    _require_practice(principal)
    assert principal.practice_id is not None
    if principal.role not in ("owner", "manager"):
        raise Forbidden("only owners and managers can rename the practice")
    svc = services(request)
    claims = principal.claims(
        request_id(request), ip=client_ip(request), user_agent=user_agent(request)
    )
    async with svc.db.transaction(claims) as conn:
        await practices.rename_practice(conn, principal.practice_id, body.name)
        view = await practices.get_practice(conn, principal.practice_id)
    return PracticeOut.of(view, svc.clock.now())
