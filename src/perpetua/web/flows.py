"""Flows shared by the console and the API, so the two can never disagree: both
sign up and sign in through these functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request

from perpetua.access.claims import Claims
from perpetua.identity.sessions import start_session
from perpetua.practices import service as practices
from perpetua.practices.service import PracticeView
from perpetua.web import identity_flows
from perpetua.web.context import client_ip, request_id, services, user_agent


@dataclass(frozen=True)
class SignedUpSession:
    practice: PracticeView
    user_id: uuid.UUID
    token: str


async def sign_up_and_sign_in(
    request: Request, form: practices.SignUp
) -> SignedUpSession:
    svc = services(request)
    created = await practices.sign_up(
        svc.db, svc.clock, form, request_id=request_id(request)
    )
    token = await start_session(
        svc.db,
        svc.clock,
        svc.session_policy,
        user_id=created.user_id,
        practice_id=created.practice_id,
        ip=client_ip(request),
        user_agent=user_agent(request),
    )
    claims = Claims(
        actor_kind="user",
        actor_id=created.user_id,
        request_id=request_id(request),
        practice_id=created.practice_id,
        practice_role="owner",
    )
    async with svc.db.transaction(claims) as conn:
        view = await practices.get_practice(conn, created.practice_id)
    return SignedUpSession(practice=view, user_id=created.user_id, token=token)


async def sign_in(
    request: Request, email: str, password: str, practice_id: uuid.UUID | None
) -> identity_flows.SignInResult:
    """Check the password and open a session in the chosen practice (or the only
    one the user belongs to); see `identity_flows.sign_in` for the second step."""
    return await identity_flows.sign_in(request, email, password, practice_id)
