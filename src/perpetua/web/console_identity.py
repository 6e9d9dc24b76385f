"""Console pages for identity: the second sign-in step, the Security page (sessions,
second factors, history), passwords, members and invitations, the practice's
security settings, API tokens, staff enrolment and the local mail folder.

Pages resolve their caller through `web/context.py`, which holds back any session
that has not finished signing in; only the pages that finish it (second step,
enrolment) ask for the narrower principals. Every form is CSRF-checked; the few
JSON calls made by /static/webauthn.js send the CSRF token in a header.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import uuid
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from perpetua.errors import NotFound, PerpetuaError
from perpetua.identity import (
    history,
    invitations,
    members,
    mfa,
    password_reset,
    signin,
    tokens,
)
from perpetua.identity.scopes import SCOPES
from perpetua.identity.sessions import (
    Principal,
    end_own_sessions,
    list_sessions,
    mark_fresh,
    require_recent_auth,
    start_session,
)
from perpetua.mail import outbox
from perpetua.mail.transport import local_messages
from perpetua.web import identity_flows as flows
from perpetua.web.console import page
from perpetua.web.console_gate import member_or_signin
from perpetua.web.context import (
    SESSION_COOKIE,
    client_ip,
    console_enrolling_principal,
    console_pending_principal,
    console_principal,
    services,
    user_agent,
)
from perpetua.web.csrf import check_csrf, remember_csrf, rotate_csrf

router = APIRouter(include_in_schema=False)
CSRF_HEADER = "x-csrf-token"


def _with_session(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(
        SESSION_COOKIE, token, secure=True, httponly=True, samesite="lax", path="/"
    )
    rotate_csrf(request)
    remember_csrf(request, response)
    return response


async def _who(
    request: Request, resolve: Any = console_principal
) -> Principal | Response:
    return await member_or_signin(request, resolve)


def _json_csrf(request: Request) -> None:
    check_csrf(request, request.headers.get(CSRF_HEADER))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


# The second sign-in step


@router.get("/signin/mfa")
async def second_step_form(request: Request) -> Response:
    who = await _who(request, console_pending_principal)
    if isinstance(who, Response):
        return who
    if who.state != "mfa_pending":
        return RedirectResponse("/dashboard", 303)
    async with services(request).db.transaction(flows.own_claims(request, who)) as c:
        found = await mfa.factors(c, who.user_id)
    return page(request, "signin_mfa.html", factors=found)


@router.post("/signin/mfa")
async def second_step_submit(
    request: Request,
    code: str = Form(""),
    recovery_code: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request, console_pending_principal)
    if isinstance(who, Response):
        return who
    proof = mfa.SecondFactorProof(
        totp_code=code or None,
        recovery_code=None if code else (recovery_code or None),
    )
    try:
        step = await flows.finish_sign_in(request, who, proof)
    except PerpetuaError as exc:
        async with services(request).db.transaction(
            flows.own_claims(request, who)
        ) as c:
            found = await mfa.factors(c, who.user_id)
        return page(
            request, "signin_mfa.html", exc.status, factors=found, error=exc.detail
        )
    target = "/dashboard"
    if step.recovery_codes_left is not None:
        target = f"/security?recovery_left={step.recovery_codes_left}"
    return _with_session(RedirectResponse(target, 303), request, step.token)


@router.post("/signin/mfa/webauthn/options")
async def second_step_key_options(request: Request) -> Response:
    _json_csrf(request)
    who = await console_pending_principal(request)
    return Response(
        '{"options": ' + await flows.webauthn_signin_options(request, who) + "}",
        media_type="application/json",
    )


@router.post("/signin/mfa/webauthn")
async def second_step_key(request: Request) -> Response:
    # Called by /static/webauthn.js, which shows the refusal's title.
    try:
        return await _second_step_key(request)
    except PerpetuaError as exc:
        if getattr(exc, "console_redirect", None):
            raise
        return JSONResponse({"title": exc.title, "code": exc.code}, exc.status)


async def _second_step_key(request: Request) -> Response:
    _json_csrf(request)
    who = await console_pending_principal(request)
    body = await _json_body(request)
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return JSONResponse({"title": "No security key answer"}, 422)
    if who.state == "mfa_pending":
        step = await flows.finish_sign_in(
            request,
            who,
            mfa.SecondFactorProof(
                assertion=credential, challenge_purpose=flows.SIGNIN_CHALLENGE
            ),
        )
        response = JSONResponse({"redirect": "/dashboard"})
        return _with_session(response, request, step.token)
    await flows.confirm_second_factor(
        request,
        who,
        mfa.SecondFactorProof(
            assertion=credential, challenge_purpose=flows.CONFIRM_CHALLENGE
        ),
    )
    return JSONResponse({"redirect": "/security/mfa?confirmed=1"})


# The Security page: sessions, factors, own history


async def _security_context(request: Request, who: Principal) -> dict[str, Any]:
    svc = services(request)
    async with svc.db.transaction(flows.own_claims(request, who)) as conn:
        found = await mfa.factors(conn, who.user_id)
        events = await history.own_history(conn, who.user_id, 100)
    return {
        "principal": who,
        "factors": found,
        "sessions": await list_sessions(svc.db, svc.clock, who),
        "events": events,
    }


@router.get("/security")
async def security_page(request: Request, recovery_left: int | None = None) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    context = await _security_context(request, who)
    return page(request, "security.html", recovery_left=recovery_left, **context)


@router.post("/security/sessions/end")
async def end_sessions(
    request: Request,
    session_id: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    target = uuid.UUID(session_id) if session_id else None
    ended = await end_own_sessions(svc.db, svc.clock, who, target)
    if ended:
        await history.record(
            svc.db,
            svc.clock.now(),
            history.SESSION_REVOKED,
            flows.actor(request, who),
            user_id=who.user_id,
            detail={"sessions": ended, "all": target is None},
        )
    return RedirectResponse("/security", 303)


# Second factors


async def _mfa_page(
    request: Request, who: Principal, status: int = 200, **extra: Any
) -> Response:
    svc = services(request)
    async with svc.db.transaction(flows.own_claims(request, who)) as conn:
        found = await mfa.factors(conn, who.user_id)
    return page(
        request, "security_mfa.html", status, principal=who, factors=found, **extra
    )


@router.get("/security/mfa")
async def mfa_page(request: Request, confirmed: int = 0) -> Response:
    who = await _who(request, console_enrolling_principal)
    if isinstance(who, Response):
        return who
    return await _mfa_page(request, who, confirmed=bool(confirmed))


@router.post("/security/mfa/totp/start")
async def totp_start(
    request: Request, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request, console_enrolling_principal)
    if isinstance(who, Response):
        return who
    started = await flows.start_totp(request, who)
    return await _mfa_page(request, who, totp_setup=started)


@router.post("/security/mfa/totp/confirm")
async def totp_confirm(
    request: Request, code: str = Form(""), csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request, console_enrolling_principal)
    if isinstance(who, Response):
        return who
    try:
        done = await flows.confirm_totp(request, who, code)
    except PerpetuaError as exc:
        return await _mfa_page(request, who, exc.status, error=exc.detail)
    response = page(
        request,
        "recovery_codes.html",
        principal=who,
        codes=done.recovery_codes,
        added="authenticator app",
    )
    return _with_session(response, request, done.token) if done.token else response


@router.post("/security/mfa/totp/remove")
async def totp_remove(
    request: Request, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    await flows.remove_factor(request, who, totp_factor=True, key_id=None)
    return RedirectResponse("/security/mfa", 303)


@router.post("/security/mfa/keys/options")
async def key_options(request: Request) -> Response:
    _json_csrf(request)
    who = await console_enrolling_principal(request)
    options = await flows.webauthn_registration_options(request, who)
    return Response('{"options": ' + options + "}", media_type="application/json")


@router.post("/security/mfa/keys")
async def key_register(request: Request) -> Response:
    try:
        return await _key_register(request)
    except PerpetuaError as exc:
        if getattr(exc, "console_redirect", None):
            raise
        return JSONResponse({"title": exc.title, "code": exc.code}, exc.status)


async def _key_register(request: Request) -> Response:
    _json_csrf(request)
    who = await console_enrolling_principal(request)
    body = await _json_body(request)
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return JSONResponse({"title": "No security key answer"}, 422)
    done = await flows.register_key(
        request, who, str(body.get("name") or ""), credential
    )
    response = JSONResponse(
        {"redirect": "/security/mfa", "recovery_codes": done.recovery_codes}
    )
    return _with_session(response, request, done.token) if done.token else response


@router.post("/security/mfa/keys/{key_id}/remove")
async def key_remove(
    request: Request, key_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    await flows.remove_factor(request, who, totp_factor=False, key_id=key_id)
    return RedirectResponse("/security/mfa", 303)


@router.post("/security/mfa/recovery-codes")
async def recovery_regenerate(
    request: Request, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    codes = await flows.regenerate_recovery_codes(request, who)
    return page(request, "recovery_codes.html", principal=who, codes=codes, added=None)


# Confirming before a sensitive action


@router.get("/security/confirm")
async def confirm_page(request: Request) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    return await _confirm_page(request, who)


async def _confirm_page(
    request: Request, who: Principal, status: int = 200, error: str | None = None
) -> Response:
    svc = services(request)
    async with svc.db.transaction(flows.own_claims(request, who)) as conn:
        found = await mfa.factors(conn, who.user_id)
    return page(
        request,
        "security_confirm.html",
        status,
        principal=who,
        factors=found,
        error=error,
    )


@router.post("/security/confirm")
async def confirm_submit(
    request: Request,
    password: str = Form(""),
    code: str = Form(""),
    recovery_code: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    try:
        if password:
            async with svc.db.transaction(flows.own_claims(request, who)) as conn:
                cur = await conn.execute(
                    "select email from app.users where id = %s", (who.user_id,)
                )
                row = await cur.fetchone()
            assert row is not None
            await signin.authenticate(
                svc.db, svc.clock, str(row["email"]), password, flows.actor(request)
            )
            await mark_fresh(svc.db, svc.clock, who, password=True)
        else:
            await flows.confirm_second_factor(
                request,
                who,
                mfa.SecondFactorProof(
                    totp_code=code or None,
                    recovery_code=None if code else (recovery_code or None),
                ),
            )
    except PerpetuaError as exc:
        return await _confirm_page(request, who, exc.status, exc.detail)
    return RedirectResponse("/security?confirmed=1", 303)


# Passwords


@router.get("/security/password")
async def password_page(request: Request) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    return page(request, "password_change.html", principal=who)


@router.post("/security/password")
async def password_submit(
    request: Request,
    current_password: str = Form(""),
    new_password: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    try:
        await password_reset.change(
            svc.db,
            svc.clock,
            who,
            flows.actor(request, who),
            current=current_password,
            new_password=new_password,
        )
    except PerpetuaError as exc:
        return page(
            request, "password_change.html", exc.status, principal=who, error=exc.detail
        )
    token = await start_session(
        svc.db,
        svc.clock,
        svc.session_policy,
        user_id=who.user_id,
        practice_id=who.practice_id,
        ip=client_ip(request),
        user_agent=user_agent(request),
        mfa=who.mfa_at is not None,
    )
    return _with_session(RedirectResponse("/security", 303), request, token)


@router.get("/password/forgot")
async def forgot_page(request: Request) -> Response:
    return page(request, "password_forgot.html")


@router.post("/password/forgot")
async def forgot_submit(
    request: Request, email: str = Form(""), csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    svc = services(request)
    await password_reset.request_reset(
        svc.db, svc.clock, email, flows.origin(request), flows.actor(request)
    )
    # The same words whether or not the address has an account.
    return page(
        request,
        "password_forgot.html",
        notice="If this address has an account, a reset link is on its way.",
    )


@router.get("/password/reset")
async def reset_page(request: Request) -> Response:
    return page(request, "password_reset.html")


@router.post("/password/reset")
async def reset_submit(
    request: Request,
    token: str = Form(""),
    new_password: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    svc = services(request)
    try:
        await password_reset.reset(
            svc.db, svc.clock, token, new_password, flows.actor(request)
        )
    except PerpetuaError as exc:
        return page(request, "password_reset.html", exc.status, error=exc.detail)
    return page(
        request, "signin.html", form={}, notice="Password changed. Sign in again."
    )


# Staff enrolment and invitations


@router.get("/staff/enrol")
async def staff_enrol_page(request: Request) -> Response:
    return page(request, "staff_enrol.html")


@router.post("/staff/enrol")
async def staff_enrol_submit(
    request: Request,
    token: str = Form(""),
    password: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    try:
        session = await flows.staff_enrol(request, token, password)
    except PerpetuaError as exc:
        return page(request, "staff_enrol.html", exc.status, error=exc.detail)
    return _with_session(RedirectResponse("/security/mfa", 303), request, session)


@router.get("/invitations/accept")
async def accept_page(request: Request) -> Response:
    return page(request, "invitation_accept.html")


@router.post("/invitations/accept")
async def accept_submit(
    request: Request,
    token: str = Form(""),
    full_name: str = Form(""),
    password: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    svc = services(request)
    try:
        await invitations.accept(
            svc.db,
            svc.clock,
            token,
            flows.actor(request),
            password=password,
            full_name=full_name or None,
        )
    except PerpetuaError as exc:
        return page(request, "invitation_accept.html", exc.status, error=exc.detail)
    return page(
        request, "signin.html", form={}, notice="You have joined the practice. Sign in."
    )


# Members


async def _members_page(
    request: Request, who: Principal, status: int = 200, **extra: Any
) -> Response:
    svc = services(request)
    if who.practice_id is None:
        raise NotFound("this session does not act in a practice")
    async with svc.db.transaction(flows.claims_of(request, who)) as conn:
        people = await members.list_members(conn, who.practice_id)
        open_invitations = (
            await invitations.list_open(conn, who.practice_id, svc.clock.now())
            if who.role in ("owner", "manager")
            else []
        )
    return page(
        request,
        "members.html",
        status,
        principal=who,
        members=people,
        invitations=open_invitations,
        **extra,
    )


@router.get("/members")
async def members_page(request: Request, sent: int = 0) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    return await _members_page(request, who, sent=bool(sent))


@router.post("/members/invite")
async def members_invite(
    request: Request,
    email: str = Form(""),
    role: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    try:
        await invitations.invite(
            svc.db,
            svc.clock,
            flows.claims_of(request, who),
            flows.actor(request, who),
            email=email,
            role=role,
            origin=flows.origin(request),
        )
    except PerpetuaError as exc:
        return await _members_page(request, who, exc.status, error=exc.detail)
    return RedirectResponse("/members?sent=1", 303)


@router.post("/members/{user_id}/role")
async def members_role(
    request: Request,
    user_id: uuid.UUID,
    role: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    require_recent_auth(who, svc.clock)
    try:
        await members.change_role(
            svc.db,
            svc.clock,
            flows.claims_of(request, who),
            flows.actor(request, who),
            user_id,
            role,
        )
    except PerpetuaError as exc:
        return await _members_page(request, who, exc.status, error=exc.detail)
    return RedirectResponse("/members", 303)


@router.post("/members/{user_id}/remove")
async def members_remove(
    request: Request, user_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    require_recent_auth(who, svc.clock)
    try:
        await members.remove_member(
            svc.db,
            svc.clock,
            flows.claims_of(request, who),
            flows.actor(request, who),
            user_id,
        )
    except PerpetuaError as exc:
        return await _members_page(request, who, exc.status, error=exc.detail)
    return RedirectResponse("/members", 303)


@router.post("/members/invitations/{invitation_id}/revoke")
async def members_revoke_invitation(
    request: Request, invitation_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    await invitations.revoke(
        svc.db,
        svc.clock,
        flows.claims_of(request, who),
        flows.actor(request, who),
        invitation_id,
    )
    return RedirectResponse("/members", 303)


# The practice's security settings, history and mail


async def _practice_security_page(
    request: Request, who: Principal, status: int = 200, **extra: Any
) -> Response:
    svc = services(request)
    if who.practice_id is None or who.role not in ("owner", "manager"):
        raise NotFound("only owners and managers see the practice's security")
    async with svc.db.transaction(flows.claims_of(request, who)) as conn:
        settings = await members.security_settings(conn, who.practice_id)
        events = (
            await history.practice_history(conn, who.practice_id, 300)
            if who.role == "owner"
            else []
        )
        mail = await outbox.practice_messages(conn, who.practice_id, 20)
    return page(
        request,
        "practice_security.html",
        status,
        principal=who,
        settings=settings,
        events=events,
        mail=mail,
        **extra,
    )


@router.get("/settings/security")
async def practice_security(request: Request, saved: int = 0) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    return await _practice_security_page(request, who, saved=bool(saved))


@router.post("/settings/security")
async def practice_security_submit(
    request: Request,
    require_mfa: str = Form(""),
    session_idle_minutes: int = Form(15),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    require_recent_auth(who, svc.clock)
    try:
        await members.update_security_settings(
            svc.db,
            svc.clock,
            flows.claims_of(request, who),
            flows.actor(request, who),
            require_mfa=require_mfa == "on",
            session_idle_minutes=session_idle_minutes,
        )
    except PerpetuaError as exc:
        return await _practice_security_page(request, who, exc.status, error=exc.detail)
    return RedirectResponse("/settings/security?saved=1", 303)


# API tokens


async def _tokens_page(
    request: Request, who: Principal, status: int = 200, **extra: Any
) -> Response:
    svc = services(request)
    if who.practice_id is None or who.role not in ("owner", "manager"):
        raise NotFound("only owners and managers manage API tokens")
    async with svc.db.transaction(flows.claims_of(request, who)) as conn:
        found = await tokens.list_tokens(conn, who.practice_id)
    return page(
        request,
        "api_tokens.html",
        status,
        principal=who,
        tokens=found,
        scopes=SCOPES,
        **extra,
    )


@router.get("/settings/tokens")
async def tokens_page(request: Request) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    return await _tokens_page(request, who)


@router.post("/settings/tokens")
async def tokens_create(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    require_recent_auth(who, svc.clock)
    try:
        made = await tokens.create(
            svc.db,
            svc.clock,
            flows.claims_of(request, who),
            flows.actor(request, who),
            name=str(form.get("name") or ""),
            scopes=[str(s) for s in form.getlist("scopes")],
        )
    except PerpetuaError as exc:
        return await _tokens_page(request, who, exc.status, error=exc.detail)
    return await _tokens_page(request, who, created=made)


@router.post("/settings/tokens/{token_id}/revoke")
async def tokens_revoke(
    request: Request, token_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    who = await _who(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    await tokens.revoke(
        svc.db,
        svc.clock,
        flows.claims_of(request, who),
        flows.actor(request, who),
        token_id,
    )
    return RedirectResponse("/settings/tokens", 303)


# The local mail folder


def _from_this_machine(request: Request) -> bool:
    ip = client_ip(request)
    return ip is not None and ipaddress.ip_address(ip).is_loopback


@router.get("/mail")
async def local_mail(request: Request) -> Response:
    """Messages written to the local mail folder, for running Perpetua on one's own
    machine without a mail server. Served only when no SMTP server is configured
    and only to a browser on this machine: the messages hold one-time links."""
    svc = services(request)
    if svc.settings.smtp_url or not _from_this_machine(request):
        raise NotFound()
    shown = []
    for path in local_messages(svc.settings.data_dir / "mail"):
        message = email.message_from_bytes(
            path.read_bytes(), policy=email.policy.default
        )
        body = message.get_body(preferencelist=("plain",))
        shown.append(
            {
                "to": str(message["To"]),
                "subject": str(message["Subject"]),
                "date": str(message["Date"]),
                "body": body.get_content() if body else "",
            }
        )
    return page(request, "local_mail.html", messages=shown)
