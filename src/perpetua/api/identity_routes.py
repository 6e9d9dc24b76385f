"""JSON API for identity: two-step sign-in, sessions, passwords, second factors,
security history, members, invitations, the practice's security settings, its
outgoing mail and API tokens. Every route goes through `web/identity_flows.py` or
an `identity/` service, the same code the console uses."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from perpetua.api.identity_schemas import (
    AcceptedOut,
    CodeIn,
    ConfirmedOut,
    EndedOut,
    EnrolledOut,
    FactorsOut,
    InvitationAcceptIn,
    InvitationIn,
    InvitationOut,
    KeyRegisterIn,
    MailOut,
    MemberOut,
    PasswordChangeIn,
    ReauthIn,
    RecoveryCodesOut,
    ResetIn,
    ResetRequestIn,
    RoleIn,
    SecondFactorIn,
    SecondStepOut,
    SecurityEventOut,
    SecurityKeyOut,
    SecuritySettingsIn,
    SecuritySettingsOut,
    SessionItem,
    SignInOut,
    StaffEnrolIn,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    TotpStartOut,
    WebAuthnOptionsOut,
)
from perpetua.api.schemas import Problem
from perpetua.errors import Forbidden, InvalidInput, NotFound
from perpetua.identity import (
    history,
    invitations,
    members,
    mfa,
    password_reset,
    signin,
    tokens,
)
from perpetua.identity.sessions import (
    Principal,
    end_own_sessions,
    list_sessions,
    mark_fresh,
    require_recent_auth,
    start_session,
)
from perpetua.mail import outbox
from perpetua.web import identity_flows as flows
from perpetua.web.context import (
    api_enrolling_principal,
    api_pending_principal,
    api_principal,
    client_ip,
    scoped,
    services,
    user_agent,
)

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 410, 422, 429)
}

router = APIRouter(prefix="/api/v1", responses=_PROBLEMS)
Authed = Annotated[Principal, Depends(api_principal)]
Enrolling = Annotated[Principal, Depends(api_enrolling_principal)]
Pending = Annotated[Principal, Depends(api_pending_principal)]
MembersReader = Annotated[Principal, Depends(scoped("members:view"))]


def _proof(body: SecondFactorIn, purpose: str) -> mfa.SecondFactorProof:
    offered = [v for v in (body.code, body.recovery_code, body.credential) if v]
    if len(offered) != 1:
        raise InvalidInput("send exactly one of code, recovery_code, credential")
    return mfa.SecondFactorProof(
        totp_code=body.code,
        recovery_code=body.recovery_code,
        assertion=body.credential,
        challenge_purpose=purpose,
    )


def _in_practice(principal: Principal) -> uuid.UUID:
    if principal.practice_id is None or principal.role is None:
        raise NotFound("this session does not act in a practice")
    return principal.practice_id


def session_out(request: Request, token: str, state: str) -> SignInOut:
    policy = services(request).session_policy
    return SignInOut(
        token=token,
        state=state,  # type: ignore[arg-type]
        idle_timeout_seconds=int(policy.idle.total_seconds()),
        absolute_timeout_seconds=int(policy.absolute.total_seconds()),
    )


# Sessions


@router.post("/sessions/current/second-factor", tags=["sessions"])
async def second_factor(
    body: SecondFactorIn, principal: Pending, request: Request
) -> SecondStepOut:
    """Finish a two-step sign-in with a TOTP code, a recovery code or a security
    key; returns a new full session token (the pending one stops working)."""
    step = await flows.finish_sign_in(
        request, principal, _proof(body, flows.SIGNIN_CHALLENGE)
    )
    return SecondStepOut(
        token=step.token,
        method=step.method,
        recovery_codes_left=step.recovery_codes_left,
    )


@router.post("/sessions/current/webauthn-options", tags=["sessions"])
async def webauthn_options(principal: Pending, request: Request) -> WebAuthnOptionsOut:
    """Options for `navigator.credentials.get`, to sign in (pending session) or to
    confirm a sensitive action (full session) with a security key."""
    options = await flows.webauthn_signin_options(request, principal)
    return WebAuthnOptionsOut(options=json.loads(options))


@router.post("/sessions/current/reauthentication", status_code=204, tags=["sessions"])
async def reauthenticate(
    body: ReauthIn, principal: Authed, request: Request
) -> Response:
    """Prove the password again before a sensitive action."""
    svc = services(request)
    async with svc.db.transaction(flows.own_claims(request, principal)) as conn:
        cur = await conn.execute(
            "select email from app.users where id = %s", (principal.user_id,)
        )
        row = await cur.fetchone()
    assert row is not None
    await signin.authenticate(
        svc.db, svc.clock, str(row["email"]), body.password, flows.actor(request)
    )
    await mark_fresh(svc.db, svc.clock, principal, password=True)
    return Response(status_code=204)


@router.post("/sessions/current/second-factor-confirmation", tags=["sessions"])
async def confirm_second_factor(
    body: SecondFactorIn, principal: Authed, request: Request
) -> ConfirmedOut:
    """A fresh second-factor check, needed before removing the last factor or
    making new recovery codes."""
    used = await flows.confirm_second_factor(
        request, principal, _proof(body, flows.CONFIRM_CHALLENGE)
    )
    return ConfirmedOut(
        method=used.method, recovery_codes_left=used.recovery_codes_left
    )


@router.get("/sessions", tags=["sessions"])
async def sessions(principal: Authed, request: Request) -> list[SessionItem]:
    """Your active sessions, on every device."""
    svc = services(request)
    rows = await list_sessions(svc.db, svc.clock, principal)
    return [
        SessionItem(**{**row, "ip": str(row["ip"]) if row["ip"] else None})
        for row in rows
    ]


async def _end(
    request: Request, principal: Principal, session_id: uuid.UUID | None
) -> int:
    svc = services(request)
    ended = await end_own_sessions(svc.db, svc.clock, principal, session_id)
    if ended:
        await history.record(
            svc.db,
            svc.clock.now(),
            history.SESSION_REVOKED,
            flows.actor(request, principal),
            user_id=principal.user_id,
            detail={"sessions": ended, "all": session_id is None},
        )
    return ended


@router.delete("/sessions", tags=["sessions"])
async def sign_out_everywhere(principal: Authed, request: Request) -> EndedOut:
    """End every session of yours, this one included."""
    return EndedOut(ended=await _end(request, principal, None))


@router.delete("/sessions/{session_id}", tags=["sessions"])
async def end_one_session(
    session_id: uuid.UUID, principal: Authed, request: Request
) -> EndedOut:
    """End one of your sessions."""
    ended = await _end(request, principal, session_id)
    if not ended:
        raise NotFound("no such active session")
    return EndedOut(ended=ended)


# Passwords and staff enrolment


@router.post("/password/change", tags=["passwords"])
async def change_password(
    body: PasswordChangeIn, principal: Authed, request: Request
) -> SignInOut:
    """Change your password. Every session of yours ends; a new one is returned."""
    svc = services(request)
    await password_reset.change(
        svc.db,
        svc.clock,
        principal,
        flows.actor(request, principal),
        current=body.current_password,
        new_password=body.new_password,
    )
    token = await start_session(
        svc.db,
        svc.clock,
        svc.session_policy,
        user_id=principal.user_id,
        practice_id=principal.practice_id,
        ip=client_ip(request),
        user_agent=user_agent(request),
        mfa=principal.mfa_at is not None,
    )
    return session_out(request, token, "full")


@router.post("/password/reset-requests", status_code=202, tags=["passwords"])
async def request_reset(body: ResetRequestIn, request: Request) -> Response:
    """Email a reset link (30 minutes, single use) if the address has an account;
    the answer is the same either way."""
    svc = services(request)
    await password_reset.request_reset(
        svc.db, svc.clock, body.email, flows.origin(request), flows.actor(request)
    )
    return Response(status_code=202)


@router.post("/password/resets", status_code=204, tags=["passwords"])
async def reset_password(body: ResetIn, request: Request) -> Response:
    """Set a new password with the token from a reset link. Second factors stay."""
    svc = services(request)
    await password_reset.reset(
        svc.db, svc.clock, body.token, body.new_password, flows.actor(request)
    )
    return Response(status_code=204)


@router.post("/staff/enrolment", status_code=201, tags=["staff"])
async def staff_enrolment(body: StaffEnrolIn, request: Request) -> SignInOut:
    """Spend a staff enrolment link: choose a password and receive a session that
    can only enrol a second factor."""
    token = await flows.staff_enrol(request, body.token, body.password)
    return session_out(request, token, "mfa_enrolment")


# Second factors


@router.get("/mfa", tags=["mfa"])
async def factors(principal: Enrolling, request: Request) -> FactorsOut:
    """Your second factors and how many recovery codes are left."""
    svc = services(request)
    async with svc.db.transaction(flows.own_claims(request, principal)) as conn:
        found = await mfa.factors(conn, principal.user_id)
    return FactorsOut(
        totp=found.totp,
        security_keys=[SecurityKeyOut(**vars(key)) for key in found.keys],
        recovery_codes_left=found.recovery_codes_left,
    )


@router.post("/mfa/totp", tags=["mfa"])
async def start_totp(principal: Enrolling, request: Request) -> TotpStartOut:
    """Start setting up an authenticator app; confirm with a first code."""
    started = await flows.start_totp(request, principal)
    return TotpStartOut(secret=started.secret, otpauth_uri=started.uri)


@router.post("/mfa/totp/confirmation", tags=["mfa"])
async def confirm_totp(
    body: CodeIn, principal: Enrolling, request: Request
) -> EnrolledOut:
    """Confirm the authenticator app with its current code."""
    done = await flows.confirm_totp(request, principal, body.code)
    return EnrolledOut(token=done.token, recovery_codes=done.recovery_codes)


@router.delete("/mfa/totp", status_code=204, tags=["mfa"])
async def remove_totp(principal: Authed, request: Request) -> Response:
    """Remove the authenticator app (the last factor needs a fresh confirmation)."""
    await flows.remove_factor(request, principal, totp_factor=True, key_id=None)
    return Response(status_code=204)


@router.post("/mfa/security-keys/options", tags=["mfa"])
async def key_options(principal: Enrolling, request: Request) -> WebAuthnOptionsOut:
    """Options for `navigator.credentials.create`."""
    options = await flows.webauthn_registration_options(request, principal)
    return WebAuthnOptionsOut(options=json.loads(options))


@router.post("/mfa/security-keys", status_code=201, tags=["mfa"])
async def register_key(
    body: KeyRegisterIn, principal: Enrolling, request: Request
) -> EnrolledOut:
    """Register a security key or passkey under a name."""
    done = await flows.register_key(request, principal, body.name, body.credential)
    return EnrolledOut(token=done.token, recovery_codes=done.recovery_codes)


@router.delete("/mfa/security-keys/{key_id}", status_code=204, tags=["mfa"])
async def remove_key(
    key_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Remove a security key (the last factor needs a fresh confirmation)."""
    await flows.remove_factor(request, principal, totp_factor=False, key_id=key_id)
    return Response(status_code=204)


@router.post("/mfa/recovery-codes", tags=["mfa"])
async def new_recovery_codes(principal: Authed, request: Request) -> RecoveryCodesOut:
    """Replace your recovery codes with ten new ones, shown once."""
    codes = await flows.regenerate_recovery_codes(request, principal)
    return RecoveryCodesOut(recovery_codes=codes)


# Security history


@router.get("/me/security-events", tags=["security history"])
async def my_events(principal: Authed, request: Request) -> list[SecurityEventOut]:
    """Your own security history, newest first."""
    svc = services(request)
    async with svc.db.transaction(flows.own_claims(request, principal)) as conn:
        rows = await history.own_history(conn, principal.user_id)
    return [SecurityEventOut(**row) for row in rows]


@router.get("/practice/security-events", tags=["security history"])
async def practice_events(
    principal: Authed, request: Request
) -> list[SecurityEventOut]:
    """The practice's security history, members' sign-in attempts included
    (owners)."""
    practice_id = _in_practice(principal)
    if principal.role != "owner":
        raise Forbidden("only owners see the practice's security history")
    svc = services(request)
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        rows = await history.practice_history(conn, practice_id)
    return [SecurityEventOut(**row) for row in rows]


# Members and invitations


@router.get("/members", tags=["members"])
async def list_members(principal: MembersReader, request: Request) -> list[MemberOut]:
    """The practice's members and their roles."""
    practice_id = _in_practice(principal)
    svc = services(request)
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        rows = await members.list_members(conn, practice_id)
    return [MemberOut(**row) for row in rows]


@router.patch("/members/{user_id}", status_code=204, tags=["members"])
async def change_role(
    user_id: uuid.UUID, body: RoleIn, principal: Authed, request: Request
) -> Response:
    """Change a member's role (owners; a recent sign-in is needed). The member's
    sessions end."""
    _in_practice(principal)
    svc = services(request)
    require_recent_auth(principal, svc.clock)
    await members.change_role(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        user_id,
        body.role,
        body.provider_id,
    )
    return Response(status_code=204)


@router.delete("/members/{user_id}", status_code=204, tags=["members"])
async def remove_member(
    user_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Remove a member (owners; the last owner stays)."""
    _in_practice(principal)
    svc = services(request)
    require_recent_auth(principal, svc.clock)
    await members.remove_member(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        user_id,
    )
    return Response(status_code=204)


@router.get("/invitations", tags=["members"])
async def list_invitations(principal: Authed, request: Request) -> list[InvitationOut]:
    """Open invitations (owners and managers)."""
    practice_id = _in_practice(principal)
    svc = services(request)
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        rows = await invitations.list_open(conn, practice_id, svc.clock.now())
    return [InvitationOut(**row) for row in rows]


@router.post("/invitations", status_code=201, tags=["members"])
async def invite(
    body: InvitationIn, principal: Authed, request: Request
) -> InvitationOut:
    """Invite someone by email; the link works once, for 72 hours."""
    practice_id = _in_practice(principal)
    svc = services(request)
    invitation_id = await invitations.invite(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        email=body.email,
        role=body.role,
        origin=flows.origin(request),
        provider_id=body.provider_id,
    )
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        rows = await invitations.list_open(conn, practice_id, svc.clock.now())
    return next(InvitationOut(**r) for r in rows if r["id"] == invitation_id)


@router.delete("/invitations/{invitation_id}", status_code=204, tags=["members"])
async def revoke_invitation(
    invitation_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Revoke an open invitation."""
    _in_practice(principal)
    svc = services(request)
    done = await invitations.revoke(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        invitation_id,
    )
    if not done:
        raise NotFound("no such open invitation")
    return Response(status_code=204)


@router.post("/invitations/acceptance", status_code=201, tags=["members"])
async def accept_invitation(body: InvitationAcceptIn, request: Request) -> AcceptedOut:
    """Accept an invitation with its token: with your existing password, or with a
    name and a new password to create the account. Then sign in."""
    svc = services(request)
    accepted = await invitations.accept(
        svc.db,
        svc.clock,
        body.token,
        flows.actor(request),
        password=body.password,
        full_name=body.full_name,
    )
    return AcceptedOut(user_id=accepted.user_id, practice_id=accepted.practice_id)


# The practice's security settings, mail and API tokens


@router.get("/practice/security", tags=["practices"])
async def get_security(principal: Authed, request: Request) -> SecuritySettingsOut:
    """Whether MFA is required and the idle timeout, in minutes."""
    practice_id = _in_practice(principal)
    svc = services(request)
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        found = await members.security_settings(conn, practice_id)
    return SecuritySettingsOut(**found)


@router.patch("/practice/security", tags=["practices"])
async def set_security(
    body: SecuritySettingsIn, principal: Authed, request: Request
) -> SecuritySettingsOut:
    """Require MFA for every member, or change the idle timeout (owners)."""
    _in_practice(principal)
    svc = services(request)
    require_recent_auth(principal, svc.clock)
    found = await members.update_security_settings(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        require_mfa=body.require_mfa,
        session_idle_minutes=body.session_idle_minutes,
    )
    return SecuritySettingsOut(**found)


@router.get("/practice/mail", tags=["practices"])
async def practice_mail(principal: Authed, request: Request) -> list[MailOut]:
    """Delivery status of the practice's emails (owners and managers)."""
    practice_id = _in_practice(principal)
    svc = services(request)
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        rows = await outbox.practice_messages(conn, practice_id)
    return [MailOut(**row) for row in rows]


@router.get("/tokens", tags=["api tokens"])
async def list_api_tokens(principal: Authed, request: Request) -> list[TokenOut]:
    """The practice's API tokens (owners and managers); never the secrets."""
    practice_id = _in_practice(principal)
    svc = services(request)
    async with svc.db.transaction(flows.claims_of(request, principal)) as conn:
        rows = await tokens.list_tokens(conn, practice_id)
    return [TokenOut(**row) for row in rows]


@router.post("/tokens", status_code=201, tags=["api tokens"])
async def create_api_token(
    body: TokenIn, principal: Authed, request: Request
) -> TokenCreatedOut:
    """Create a token with a set of scopes; the secret is shown only here."""
    _in_practice(principal)
    svc = services(request)
    require_recent_auth(principal, svc.clock)
    made = await tokens.create(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        name=body.name,
        scopes=body.scopes,
    )
    return TokenCreatedOut(id=made.id, token=made.token)


@router.delete("/tokens/{token_id}", status_code=204, tags=["api tokens"])
async def revoke_api_token(
    token_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Revoke a token at once."""
    _in_practice(principal)
    svc = services(request)
    done = await tokens.revoke(
        svc.db,
        svc.clock,
        flows.claims_of(request, principal),
        flows.actor(request, principal),
        token_id,
    )
    if not done:
        raise NotFound("no such active token")
    return Response(status_code=204)
