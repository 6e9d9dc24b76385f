"""Identity flows shared by the console and the API, so the two can never disagree:
two-step sign-in, second factors, sessions, passwords, members, invitations,
tokens and the practice's security settings. Each function translates a request
into calls to `identity/` services and nothing more."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from perpetua.access.claims import Claims
from perpetua.errors import Forbidden, InvalidInput, NotFound
from perpetua.identity import history, mfa, password_reset, signin, totp
from perpetua.identity import webauthn_ceremony as ceremony
from perpetua.identity.errors import (
    FreshSecondFactorRequired,
    StaffMfaNotEnrolled,
    WebAuthnVerificationFailed,
)
from perpetua.identity.sessions import (
    Principal,
    SessionState,
    mark_fresh,
    require_fresh_second_factor,
    require_recent_auth,
    rotate_session,
    set_challenge,
    start_session,
    take_challenge,
)
from perpetua.practices import service as practices
from perpetua.web.context import client_ip, request_id, services, user_agent

SIGNIN_CHALLENGE = "signin"
REGISTER_CHALLENGE = "register"
CONFIRM_CHALLENGE = "confirm"


def actor(request: Request, principal: Principal | None = None) -> history.Actor:
    if principal is None:
        return history.Actor("anonymous", None, client_ip(request), user_agent(request))
    kind = {"staff": "staff", "api_token": "api_token"}.get(principal.user_kind, "user")
    return history.Actor(
        kind, principal.user_id, client_ip(request), user_agent(request)
    )


def claims_of(request: Request, principal: Principal) -> Claims:
    return principal.claims(
        request_id(request), ip=client_ip(request), user_agent=user_agent(request)
    )


def own_claims(request: Request, principal: Principal) -> Claims:
    """The user's claims without a practice: for their own factors and history,
    which a half-signed-in session may also need."""
    kind: Any = "staff" if principal.is_staff else "user"
    return Claims(
        actor_kind=kind, actor_id=principal.user_id, request_id=request_id(request)
    )


def relying_party(request: Request) -> mfa.RelyingParty:
    return mfa.RelyingParty.for_origin(services(request).settings.origin)


def origin(request: Request) -> str:
    return services(request).settings.origin


@dataclass(frozen=True)
class SignInResult:
    token: str
    state: SessionState


async def _has_factor(request: Request, user_id: uuid.UUID) -> bool:
    svc = services(request)
    async with svc.db.transaction(None) as conn:
        cur = await conn.execute("select app.has_second_factor(%s) as f", (user_id,))
        row = await cur.fetchone()
    return bool(row and row["f"])


async def sign_in(
    request: Request, email: str, password: str, practice_id: uuid.UUID | None
) -> SignInResult:
    """The first step: the password. Returns a session that is `full` only when no
    second factor is enrolled or required; otherwise the second step must follow."""
    svc = services(request)
    who = actor(request)
    account = await signin.authenticate(svc.db, svc.clock, email, password, who)
    has_factor = await _has_factor(request, account.user_id)

    if account.kind == "staff":
        if not has_factor:
            await history.record(
                svc.db,
                svc.clock.now(),
                history.SIGNIN_FAILED,
                who,
                user_id=account.user_id,
                reason="staff_mfa_not_enrolled",
            )
            raise StaffMfaNotEnrolled()
        practice_id, require_mfa = None, True
    else:
        claims = Claims(
            actor_kind="user", actor_id=account.user_id, request_id=request_id(request)
        )
        async with svc.db.transaction(claims) as conn:
            memberships = await practices.list_memberships(conn, account.user_id)
            ids = [row["practice_id"] for row in memberships]
            if practice_id is None and len(ids) == 1:
                practice_id = ids[0]  # type: ignore[assignment]
            elif practice_id is not None and practice_id not in ids:
                raise Forbidden("you are not a member of that practice")
            elif practice_id is None and len(ids) > 1:
                raise InvalidInput("choose a practice: you belong to more than one")
            require_mfa = False
            if practice_id is not None:
                cur = await conn.execute(
                    "select require_mfa from app.practices where id = %s",
                    (practice_id,),
                )
                row = await cur.fetchone()
                require_mfa = bool(row and row["require_mfa"])

    state: SessionState = "full"
    if has_factor:
        state = "mfa_pending"
    elif require_mfa:
        state = "mfa_enrolment"
    token = await start_session(
        svc.db,
        svc.clock,
        svc.session_policy,
        user_id=account.user_id,
        practice_id=practice_id,
        ip=client_ip(request),
        user_agent=user_agent(request),
        state=state,
    )
    if state != "mfa_pending":
        await history.record(
            svc.db,
            svc.clock.now(),
            history.SIGNIN_SUCCEEDED,
            history.Actor(
                "staff" if account.kind == "staff" else "user",
                account.user_id,
                who.ip,
                who.user_agent,
            ),
            user_id=account.user_id,
            practice_id=practice_id,
            reason="password",
        )
    return SignInResult(token=token, state=state)


@dataclass(frozen=True)
class SecondStep:
    token: str
    method: str
    recovery_codes_left: int | None


async def _check_second_factor(
    request: Request, principal: Principal, proof: mfa.SecondFactorProof
) -> mfa.SecondFactorUsed:
    svc = services(request)
    if proof.assertion is not None:
        challenge = await _take(request, principal, proof.challenge_purpose)
        proof = mfa.SecondFactorProof(assertion=proof.assertion, challenge=challenge)
    return await mfa.use_second_factor(
        svc.db,
        svc.clock,
        own_claims(request, principal),
        principal.user_id,
        proof,
        actor(request, principal),
        relying_party(request),
    )


async def _take(request: Request, principal: Principal, purpose: str | None) -> bytes:
    svc = services(request)
    challenge = await take_challenge(
        svc.db, svc.clock, principal, purpose or SIGNIN_CHALLENGE
    )
    if challenge is None:
        raise WebAuthnVerificationFailed("no challenge was issued to this session")
    return challenge


async def finish_sign_in(
    request: Request, principal: Principal, proof: mfa.SecondFactorProof
) -> SecondStep:
    """The second step: a code, a recovery code or a security key. On success the
    pending session is replaced by a full one under a new id."""
    if principal.state != "mfa_pending":
        raise InvalidInput("this session is not waiting for a second factor")
    used = await _check_second_factor(request, principal, proof)
    svc = services(request)
    token = await rotate_session(
        svc.db,
        svc.clock,
        svc.session_policy,
        principal,
        ip=client_ip(request),
        user_agent=user_agent(request),
        state="full",
        mfa=True,
    )
    await history.record(
        svc.db,
        svc.clock.now(),
        history.SIGNIN_SUCCEEDED,
        actor(request, principal),
        user_id=principal.user_id,
        practice_id=principal.practice_id,
        reason=used.method,
    )
    return SecondStep(token, used.method, used.recovery_codes_left)


async def confirm_second_factor(
    request: Request, principal: Principal, proof: mfa.SecondFactorProof
) -> mfa.SecondFactorUsed:
    """A fresh second-factor check inside a full session (before removing the last
    factor, for one)."""
    used = await _check_second_factor(request, principal, proof)
    svc = services(request)
    await mark_fresh(svc.db, svc.clock, principal, mfa=True)
    return used


async def webauthn_signin_options(request: Request, principal: Principal) -> str:
    svc = services(request)
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        known = await mfa.known_credentials(conn, principal.user_id)
    if not known:
        raise NotFound("no security key is registered to this account")
    options = ceremony.authentication_options(
        rp_id=relying_party(request).id, allowed_credentials=known
    )
    purpose = (
        SIGNIN_CHALLENGE if principal.state == "mfa_pending" else CONFIRM_CHALLENGE
    )
    await set_challenge(svc.db, svc.clock, principal, purpose, options.challenge)
    return options.options_json


# Enrolment


@dataclass(frozen=True)
class TotpStart:
    secret: str
    uri: str
    qr_svg: str


async def start_totp(request: Request, principal: Principal) -> TotpStart:
    svc = services(request)
    _may_change_factors(request, principal)
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        secret = await mfa.start_totp(conn, principal.user_id, svc.clock.now())
        _handle, email, _name = await mfa.user_handle(conn, principal.user_id)
    uri = totp.provisioning_uri(secret, email)
    return TotpStart(secret=secret, uri=uri, qr_svg=totp.qr_svg(uri))


def _may_change_factors(request: Request, principal: Principal) -> None:
    # Adding a factor to a session that is mid-enrolment is the point of that
    # session; in a full one it is a sensitive change that needs a recent sign-in.
    if principal.state == "full":
        require_recent_auth(principal, services(request).clock)


@dataclass(frozen=True)
class Enrolled:
    token: str | None
    recovery_codes: list[str] | None


async def _after_enrolment(
    request: Request, principal: Principal, first: bool, kind: str
) -> Enrolled:
    svc = services(request)
    codes: list[str] | None = None
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        if first:
            codes = await mfa.issue_recovery_codes(
                conn, principal.user_id, svc.clock.now()
            )
        await history.record_in(
            conn,
            svc.clock.now(),
            history.MFA_ADDED,
            actor(request, principal),
            user_id=principal.user_id,
            practice_id=principal.practice_id,
            reason=kind,
        )
        if codes:
            await history.record_in(
                conn,
                svc.clock.now(),
                history.RECOVERY_CODES_ISSUED,
                actor(request, principal),
                user_id=principal.user_id,
            )

    # A session that was held at enrolment steps up now: new id, full state.
    token = None
    if principal.state != "full":
        token = await rotate_session(
            svc.db,
            svc.clock,
            svc.session_policy,
            principal,
            ip=client_ip(request),
            user_agent=user_agent(request),
            state="full",
            mfa=True,
        )
    return Enrolled(token=token, recovery_codes=codes)


async def confirm_totp(request: Request, principal: Principal, code: str) -> Enrolled:
    svc = services(request)
    _may_change_factors(request, principal)
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        before = await mfa.factors(conn, principal.user_id)
        await mfa.confirm_totp(conn, principal.user_id, code, svc.clock.now())
    return await _after_enrolment(request, principal, not before.enrolled, "totp")


async def webauthn_registration_options(request: Request, principal: Principal) -> str:
    svc = services(request)
    _may_change_factors(request, principal)
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        handle, email, name = await mfa.user_handle(conn, principal.user_id)
        known = await mfa.known_credentials(conn, principal.user_id)
    rp = relying_party(request)
    options = ceremony.registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=handle,
        user_name=email,
        user_display_name=name,
        existing_credentials=known,
    )
    await set_challenge(
        svc.db, svc.clock, principal, REGISTER_CHALLENGE, options.challenge
    )
    return options.options_json


async def register_key(
    request: Request, principal: Principal, name: str, credential: dict[str, Any]
) -> Enrolled:
    svc = services(request)
    _may_change_factors(request, principal)
    challenge = await _take(request, principal, REGISTER_CHALLENGE)
    rp = relying_party(request)
    registered = ceremony.verify_registration(
        response=credential,
        expected_challenge=challenge,
        expected_origin=rp.origin,
        expected_rp_id=rp.id,
    )
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        before = await mfa.factors(conn, principal.user_id)
        await mfa.add_key(conn, principal.user_id, registered, name, svc.clock.now())
    return await _after_enrolment(request, principal, not before.enrolled, "webauthn")


async def remove_factor(
    request: Request,
    principal: Principal,
    *,
    totp_factor: bool,
    key_id: uuid.UUID | None,
) -> None:
    """Remove a factor. Removing the last one needs a second-factor check made in
    the last few minutes, and is refused outright where MFA is required."""
    svc = services(request)
    _may_change_factors(request, principal)
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        current = await mfa.factors(conn, principal.user_id)
    last = current.count <= 1
    if last:
        require_fresh_second_factor(principal, svc.clock)
        if principal.is_staff:
            raise Forbidden("staff accounts keep at least one second factor")
        if principal.practice_id is not None:
            async with svc.db.transaction(claims_of(request, principal)) as conn:
                cur = await conn.execute(
                    "select require_mfa from app.practices where id = %s",
                    (principal.practice_id,),
                )
                row = await cur.fetchone()
            if row and row["require_mfa"]:
                raise Forbidden("this practice requires a second factor")
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        if totp_factor:
            removed = await mfa.remove_totp(conn, principal.user_id)
        else:
            assert key_id is not None
            removed = await mfa.remove_key(conn, principal.user_id, key_id)
        if not removed:
            raise NotFound("no such factor")
        if last:
            await conn.execute(
                "delete from app.recovery_codes where user_id = %s",
                (principal.user_id,),
            )
        await history.record_in(
            conn,
            svc.clock.now(),
            history.MFA_REMOVED,
            actor(request, principal),
            user_id=principal.user_id,
            reason="totp" if totp_factor else "webauthn",
        )


async def regenerate_recovery_codes(
    request: Request, principal: Principal
) -> list[str]:
    svc = services(request)
    require_fresh_second_factor(principal, svc.clock)
    async with svc.db.transaction(own_claims(request, principal)) as conn:
        current = await mfa.factors(conn, principal.user_id)
        if not current.enrolled:
            raise FreshSecondFactorRequired()
        codes = await mfa.issue_recovery_codes(conn, principal.user_id, svc.clock.now())
        await history.record_in(
            conn,
            svc.clock.now(),
            history.RECOVERY_CODES_ISSUED,
            actor(request, principal),
            user_id=principal.user_id,
        )
    return codes


async def staff_enrol(request: Request, token: str, password: str) -> str:
    """Spend a staff enrolment link: set the password and open a session that can
    only enrol a second factor."""
    svc = services(request)
    user_id = await password_reset.reset(
        svc.db, svc.clock, token, password, actor(request), purpose="staff_enrolment"
    )
    return await start_session(
        svc.db,
        svc.clock,
        svc.session_policy,
        user_id=user_id,
        practice_id=None,
        ip=client_ip(request),
        user_agent=user_agent(request),
        state="mfa_enrolment",
    )


def parse_credential(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInput("the security key's answer could not be read") from None
    if not isinstance(value, dict):
        raise InvalidInput("the security key's answer could not be read")
    return value
