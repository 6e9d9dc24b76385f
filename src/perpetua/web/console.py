"""The console: server-rendered pages for sign-up, sign-in, the dashboard and the
practice's settings. Every form is CSRF-checked; every page is `no-store`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from perpetua.errors import (
    NotAuthenticated,
    PerpetuaError,
    PracticeReadOnly,
    SessionExpired,
)
from perpetua.identity import mfa
from perpetua.identity.sessions import Principal, end_session
from perpetua.practices import service as practices
from perpetua.web import flows
from perpetua.web.console_gate import member_or_signin, to_signin
from perpetua.web.context import (
    SESSION_COOKIE,
    client_ip,
    console_pending_principal,
    console_principal,
    request_id,
    services,
    user_agent,
)
from perpetua.web.csrf import check_csrf, csrf_token, remember_csrf, rotate_csrf

router = APIRouter(include_in_schema=False)


def page(
    request: Request, template: str, http_status: int = 200, **context: Any
) -> Response:
    templates = request.app.state.templates
    context.setdefault("csrf_token", csrf_token(request))
    # Noted by member_or_signin for owners and managers; the layout shows it.
    context.setdefault("incident_alarm", getattr(request.state, "incident_alarm", []))
    response: Response = templates.TemplateResponse(
        request, template, context, status_code=http_status
    )
    remember_csrf(request, response)
    return response


def _set_session(response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, secure=True, httponly=True, samesite="lax", path="/"
    )


async def _principal_or_none(request: Request) -> Principal | None:
    try:
        return await console_principal(request)
    except (NotAuthenticated, SessionExpired):
        return None


@router.get("/")
async def home(request: Request) -> Response:
    principal = await _principal_or_none(request)
    return RedirectResponse("/dashboard" if principal else "/signin", 303)


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    return page(request, "signup.html", form={})


@router.post("/signup")
async def signup_submit(
    request: Request,
    practice_name: str = Form(""),
    owner_name: str = Form(""),
    email: str = Form(""),
    password: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    kept = {"practice_name": practice_name, "owner_name": owner_name, "email": email}
    try:
        result = await flows.sign_up_and_sign_in(
            request,
            practices.SignUp(
                practice_name=practice_name,
                owner_name=owner_name,
                email=email,
                password=password,
            ),
        )
    except PerpetuaError as exc:
        return page(request, "signup.html", exc.status, form=kept, error=exc.detail)
    response = RedirectResponse("/dashboard?welcome=1", status_code=303)
    _set_session(response, result.token)
    rotate_csrf(request)
    remember_csrf(request, response)
    return response


@router.get("/signin")
async def signin_form(request: Request, ended: int = 0) -> Response:
    notice = "Your session ended. Please sign in again." if ended else None
    return page(request, "signin.html", form={}, notice=notice)


@router.post("/signin")
async def signin_submit(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    try:
        result = await flows.sign_in(request, email, password, None)
    except PerpetuaError as exc:
        return page(
            request, "signin.html", exc.status, form={"email": email}, error=exc.detail
        )
    # A second factor or its enrolment comes next when the session is not full.
    target = {"mfa_pending": "/signin/mfa", "mfa_enrolment": "/security/mfa"}
    response = RedirectResponse(target.get(result.state, "/dashboard"), 303)
    _set_session(response, result.token)
    rotate_csrf(request)
    remember_csrf(request, response)
    return response


@router.post("/signout")
async def signout(
    request: Request, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    # Any session may sign out, including one still waiting for its second factor.
    try:
        principal: Principal | None = await console_pending_principal(request)
    except (NotAuthenticated, SessionExpired):
        principal = None
    if principal:
        svc = services(request)
        await end_session(svc.db, svc.clock, principal)
    return to_signin()


async def _practice_context(request: Request, principal: Principal) -> dict[str, Any]:
    svc = services(request)
    claims = principal.claims(request_id(request), ip=client_ip(request))
    async with svc.db.transaction(claims) as conn:
        memberships = await practices.list_memberships(conn, principal.user_id)
        practice = (
            await practices.get_practice(conn, principal.practice_id)
            if principal.practice_id and principal.role
            else None
        )
    now = svc.clock.now()
    return {
        "principal": principal,
        "practice": practice,
        "memberships": memberships,
        "days_left": practice.trial_days_left(now) if practice else None,
        "read_only": practice.read_only(now) if practice else False,
        "plan_status": practice.status(now) if practice else None,
    }


@router.get("/dashboard")
async def dashboard(request: Request, welcome: int = 0) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    context = await _practice_context(request, principal)

    # MFA is encouraged where the practice does not require it: the dashboard
    # asks until the member has a factor.
    svc = services(request)
    async with svc.db.transaction(
        principal.claims(request_id(request), ip=client_ip(request))
    ) as conn:
        has_factor = await mfa.has_second_factor(conn, principal.user_id)
    return page(
        request,
        "dashboard.html",
        welcome=bool(welcome),
        suggest_mfa=not has_factor,
        **context,
    )


@router.get("/settings/practice")
async def practice_settings(request: Request, saved: int = 0) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    context = await _practice_context(request, principal)
    return page(request, "practice_settings.html", saved=bool(saved), **context)


@router.post("/settings/practice")
async def practice_settings_submit(
    request: Request,
    name: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    svc = services(request)
    error: str | None = None
    status = 200
    if principal.practice_id is None or principal.role not in ("owner", "manager"):
        error, status = "Only owners and managers can rename the practice.", 403
    else:
        claims = principal.claims(
            request_id(request), ip=client_ip(request), user_agent=user_agent(request)
        )
        try:
            async with svc.db.transaction(claims) as conn:
                await practices.rename_practice(conn, principal.practice_id, name)
        except (PracticeReadOnly, PerpetuaError) as exc:
            error, status = exc.detail, exc.status
    if error is None:
        return RedirectResponse("/settings/practice?saved=1", status_code=303)
    context = await _practice_context(request, principal)
    return page(request, "practice_settings.html", status, error=error, **context)
