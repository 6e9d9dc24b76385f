"""Console pages for PHI records: finding and registering patients, a patient's
demographics and coverage, the day's schedule, booking and status changes, the
schedule export, break-glass and the patient access report.

Each handler is as thin as its API twin: it calls the same records-service method,
so the console and the API cannot disagree, and the database decides every access.
Pages offer only what the member's role may do, read from the same permission
matrix the policies use; a refusal the service still makes is shown as a calm
sentence on the page. Nothing that identifies a patient travels in a URL: searches
are POSTed, and links carry only record ids. Every form is CSRF-checked and every
page is `no-store` (web/headers.py).

Break-glass state lives in a short-lived cookie, not in hidden form fields, because
the views it covers are ordinary GET page loads and links. The cookie names the
patient's record id and the member's user id, never a name; it is `__Host-`,
HttpOnly, Secure and SameSite=Strict, and expires with the grant. It only states
the purpose of use (BTG) for views of that one patient: the database admits the
reads only while a grant for this member and patient is open, so a copied or stale
cookie opens nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from perpetua.access.permissions import Permissions
from perpetua.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PerpetuaError,
    StillReferenced,
)
from perpetua.identity import members
from perpetua.identity.sessions import Principal
from perpetua.records import service as records
from perpetua.records.models import Appointment, Patient
from perpetua.records.service import STATUSES, Records
from perpetua.redaction.errors import CardNumberInText
from perpetua.web.claims import request_claims
from perpetua.web.console import page
from perpetua.web.console_gate import LOCKED, member_or_signin, phi_lock
from perpetua.web.context import (
    client_ip,
    request_id,
    services,
)
from perpetua.web.csrf import check_csrf
from perpetua.web.csv_export import SCHEDULE_COLUMNS, csv_response, schedule_rows

router = APIRouter(include_in_schema=False)

BTG_COOKIE = "__Host-perpetua-btg"
BTG_MINUTES = 60
PLAN_TYPES = ("HMO", "PPO", "EPO", "POS", "HDHP", "Medicare", "Medicaid", "other")
DEDUCTIBLE = ("met", "not_met", "unknown")
STATUS_ACTIONS = (
    ("confirmed", "Confirm"),
    ("cancelled", "Cancel"),
    ("no_show", "No-show"),
    ("completed", "Complete"),
)
DURATIONS = (15, 30, 45, 60, 90)
PURPOSES = {
    "TREAT": "treatment",
    "HPAYMT": "payment",
    "HOPERAT": "operations",
    "ETREAT": "emergency treatment",
    "BTG": "break-glass",
}


@dataclass(frozen=True)
class Desk:
    """The signed-in member at the front desk, and what their role may do."""

    principal: Principal
    records: Records
    permissions: Permissions

    def can(self, category: str, action: str) -> bool:
        return self.permissions.allows(self.principal.role, category, action)


def _calm(exc: PerpetuaError) -> str:
    """A sentence for the page; details are safe to show, they never hold values."""
    if exc.code == "baa_not_signed":
        return LOCKED
    if exc.code == "not_found":
        return "There is no record here that you may see."
    if exc.code == "forbidden" and exc.detail != exc.title:
        return f"Not available to your role: {exc.detail}."
    if exc.code == "forbidden":
        return "Not available to your role. An owner or manager can help."
    return exc.detail


def _render(
    request: Request, desk: Desk, template: str, http_status: int = 200, **ctx: Any
) -> Response:
    return page(
        request,
        template,
        http_status,
        principal=desk.principal,
        can=desk.can,
        **ctx,
    )


async def _desk(request: Request) -> Desk | Response:
    """The caller, or the page to show instead: sign-in, or the locked feature."""
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    svc = services(request)
    assert svc.records is not None
    desk = Desk(principal, svc.records, svc.records.gate.permissions)
    # Without a BAA in force the database refuses all PHI work; say so up front.
    reason = await phi_lock(request, principal)
    if reason is not None:
        return _render(request, desk, "records_locked.html", reason=reason)
    return desk


def _date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field} must be a date (YYYY-MM-DD)") from None


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("unknown record") from None


def _btg_patient(request: Request, principal: Principal) -> uuid.UUID | None:
    """The patient this member opened break-glass for in this browser, if any."""
    patient, _, user = request.cookies.get(BTG_COOKIE, "").partition(".")
    if user != str(principal.user_id):
        return None
    try:
        return uuid.UUID(patient)
    except ValueError:
        return None


# Patients


@router.get("/patients")
async def patients(request: Request) -> Response:
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    return _render(request, desk, "records_patients.html", form={}, results=None)


@router.post("/patients/search")
async def search_patients(
    request: Request,
    phone: str = Form(""),
    name: str = Form(""),
    birth_date: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    # The terms go back only into this no-store page, for the person who typed them.
    form = {"phone": phone, "name": name, "birth_date": birth_date}
    try:
        found = await desk.records.search_patients(
            request_claims(request, desk.principal),
            phone=phone.strip() or None,
            name=name.strip() or None,
            birth_date=_date(birth_date, "date of birth") if birth_date else None,
        )
    except PerpetuaError as exc:
        return _render(
            request,
            desk,
            "records_patients.html",
            exc.status,
            form=form,
            results=None,
            error=_calm(exc),
        )
    return _render(request, desk, "records_patients.html", form=form, results=found)


@router.get("/patients/new")
async def new_patient_form(request: Request) -> Response:
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    return _render(request, desk, "records_patient_new.html", form={})


@router.post("/patients/new")
async def new_patient(
    request: Request,
    name: str = Form(""),
    birth_date: str = Form(""),
    phone: str = Form(""),
    ehr_ref: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    form = {"name": name, "birth_date": birth_date, "phone": phone, "ehr_ref": ehr_ref}
    try:
        made = await desk.records.create_patient(
            request_claims(request, desk.principal),
            records.NewPatient(
                name=name,
                birth_date=_date(birth_date, "date of birth"),
                phone=phone.strip() or None,
                ehr_ref=ehr_ref.strip() or None,
            ),
        )
    except PerpetuaError as exc:
        return _render(
            request,
            desk,
            "records_patient_new.html",
            exc.status,
            form=form,
            error=_calm(exc),
        )
    return RedirectResponse(f"/patients/{made.id}?saved=1", 303)


async def _patient_page(
    request: Request,
    desk: Desk,
    patient_id: uuid.UUID,
    *,
    error: str | None = None,
    http_status: int = 200,
    notice: str | None = None,
) -> Response:
    btg = _btg_patient(request, desk.principal) == patient_id
    claims = request_claims(request, desk.principal, purpose="BTG" if btg else None)
    patient: Patient | None = None
    demographics_error = None
    coverage = None
    coverage_error = None

    try:
        patient = await desk.records.get_patient(claims, patient_id)
    except (NotFound, Forbidden) as exc:
        if not btg:
            # Outside the role's view: offer break-glass rather than a dead end.
            return _render(
                request,
                desk,
                "records_patient.html",
                http_status if error else exc.status,
                patient=None,
                patient_id=patient_id,
                btg=False,
                btg_minutes=BTG_MINUTES,
                error=error or _calm(exc),
            )
        # Under break-glass, show whatever the database does admit.
        demographics_error = _calm(exc)

    # Coverage only when the role may see it (or break-glass is open), so the
    # page does not leave a needless refusal in the audit log.
    if btg or desk.can("insurance", "view"):
        try:
            found = await desk.records.coverages(claims, patient_id=patient_id)
            coverage = found[0] if found else None
        except PerpetuaError as exc:
            coverage_error = _calm(exc)
    return _render(
        request,
        desk,
        "records_patient.html",
        http_status,
        patient=patient,
        patient_id=patient_id,
        coverage=coverage,
        coverage_error=coverage_error,
        demographics_error=demographics_error,
        btg=btg,
        error=error,
        notice=notice,
        plan_types=PLAN_TYPES,
        deductible=DEDUCTIBLE,
    )


@router.get("/patients/{patient_id}")
async def patient(request: Request, patient_id: uuid.UUID, saved: int = 0) -> Response:
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    return await _patient_page(
        request, desk, patient_id, notice="Saved." if saved else None
    )


@router.post("/patients/{patient_id}")
async def update_patient(
    request: Request,
    patient_id: uuid.UUID,
    name: str = Form(""),
    birth_date: str = Form(""),
    phone: str = Form(""),
    ehr_ref: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    try:
        await desk.records.update_patient(
            request_claims(request, desk.principal),
            patient_id,
            records.NewPatient(
                name=name,
                birth_date=_date(birth_date, "date of birth"),
                phone=phone.strip() or None,
                ehr_ref=ehr_ref.strip() or None,
            ),
        )
    except PerpetuaError as exc:
        return await _patient_page(
            request, desk, patient_id, error=_calm(exc), http_status=exc.status
        )
    return RedirectResponse(f"/patients/{patient_id}?saved=1", 303)


def _coverage_input(
    payer: str,
    member_id: str,
    group_number: str,
    plan_type: str,
    copay: str,
    deductible_status: str,
) -> records.CoverageInput:
    # The database's check constraints would refuse these too, but as a failure
    # the page could not explain; the API's schema makes the same checks.
    if not 1 <= len(payer.strip()) <= 200:
        raise InvalidInput("payer must be between 1 and 200 characters")
    if plan_type and plan_type not in PLAN_TYPES:
        raise InvalidInput("unknown plan type")
    if deductible_status and deductible_status not in DEDUCTIBLE:
        raise InvalidInput("unknown deductible status")
    copay_cents = None
    if copay.strip():
        try:
            copay_cents = round(float(copay.strip().lstrip("$")) * 100)
        except ValueError:
            raise InvalidInput("copay must be an amount such as 25.00") from None
        if not 0 <= copay_cents <= 10_000_000:
            raise InvalidInput("copay must be between 0 and 100000.00")
    return records.CoverageInput(
        payer=payer,
        member_id=member_id,
        group_number=group_number.strip() or None,
        plan_type=plan_type or None,
        copay_cents=copay_cents,
        deductible_status=deductible_status or None,
    )


@router.post("/patients/{patient_id}/coverage")
async def put_coverage(
    request: Request,
    patient_id: uuid.UUID,
    payer: str = Form(""),
    member_id: str = Form(""),
    group_number: str = Form(""),
    plan_type: str = Form(""),
    copay: str = Form(""),
    deductible_status: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    try:
        await desk.records.put_coverage(
            request_claims(request, desk.principal),
            patient_id,
            _coverage_input(
                payer, member_id, group_number, plan_type, copay, deductible_status
            ),
        )
    except PerpetuaError as exc:
        return await _patient_page(
            request, desk, patient_id, error=_calm(exc), http_status=exc.status
        )
    return RedirectResponse(f"/patients/{patient_id}?saved=1", 303)


@router.post("/patients/{patient_id}/break-glass")
async def break_glass(
    request: Request,
    patient_id: uuid.UUID,
    reason: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    try:
        expires = await desk.records.open_break_glass(
            request_claims(request, desk.principal, reason=reason),
            patient_id,
            reason,
            BTG_MINUTES,
        )
    except StillReferenced:
        # The grant refers to the patient; an unknown id fails that reference.
        return await _patient_page(
            request, desk, patient_id, error=_calm(NotFound()), http_status=404
        )
    except PerpetuaError as exc:
        return await _patient_page(
            request, desk, patient_id, error=_calm(exc), http_status=exc.status
        )
    response = RedirectResponse(f"/patients/{patient_id}", 303)
    seconds = int((expires - services(request).clock.now()).total_seconds())
    response.set_cookie(
        BTG_COOKIE,
        f"{patient_id}.{desk.principal.user_id}",
        max_age=max(seconds, 1),
        secure=True,
        httponly=True,
        samesite="strict",
        path="/",
    )
    return response


@router.get("/patients/{patient_id}/access-report")
async def access_report(request: Request, patient_id: uuid.UUID) -> Response:
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk

    # The service is asked even when the role lacks the report, so that the
    # attempt is refused and recorded by the database rather than hidden here.
    try:
        events = await desk.records.access_report(
            request_claims(request, desk.principal), patient_id
        )
    except PerpetuaError as exc:
        return _render(
            request,
            desk,
            "records_access_report.html",
            exc.status,
            patient_id=patient_id,
            events=[],
            names={},
            error=_calm(exc),
        )

    # Names for the "who" column; member ids alone mean nothing to a reviewer.
    practice_id = desk.principal.practice_id
    assert practice_id is not None
    claims = desk.principal.claims(request_id(request), ip=client_ip(request))
    async with services(request).db.transaction(claims) as conn:
        listed = await members.list_members(conn, practice_id)
    names = {m["user_id"]: m["full_name"] for m in listed}
    return _render(
        request,
        desk,
        "records_access_report.html",
        patient_id=patient_id,
        events=events,
        names=names,
        purposes=PURPOSES,
    )


# Schedule


async def _schedule_page(
    request: Request,
    desk: Desk,
    day: dt.date,
    provider_id: uuid.UUID | None,
    *,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    claims = request_claims(request, desk.principal)
    providers = await desk.records.list_providers(claims)
    appointments: list[Appointment] = []
    try:
        appointments = await desk.records.schedule(
            claims, provider_id=provider_id, day=day
        )
    except PerpetuaError as exc:
        error, http_status = error or _calm(exc), exc.status
    names = {p.id: p.display_name for p in providers}
    return _render(
        request,
        desk,
        "records_schedule.html",
        http_status,
        day=day,
        previous=day - dt.timedelta(days=1),
        following=day + dt.timedelta(days=1),
        provider_id=provider_id,
        providers=providers,
        provider_names=names,
        appointments=appointments,
        status_actions=STATUS_ACTIONS,
        error=error,
    )


@router.get("/schedule")
async def schedule(request: Request, day: str = "", provider_id: str = "") -> Response:
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    today = services(request).clock.now().astimezone(dt.UTC).date()
    try:
        chosen = _date(day, "day") if day else today
        provider = _uuid(provider_id)
    except InvalidInput as exc:
        return await _schedule_page(
            request, desk, today, None, error=_calm(exc), http_status=exc.status
        )
    return await _schedule_page(request, desk, chosen, provider)


def _schedule_url(day: dt.date, provider_id: uuid.UUID | None) -> str:
    # Dates and provider ids are practice configuration, not PHI.
    url = f"/schedule?day={day.isoformat()}"
    return f"{url}&provider_id={provider_id}" if provider_id else url


@router.post("/schedule/appointments/{appointment_id}/status")
async def change_status(
    request: Request,
    appointment_id: uuid.UUID,
    status: str = Form(""),
    day: str = Form(""),
    provider_id: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    shown_day = services(request).clock.now().astimezone(dt.UTC).date()
    shown_provider = None
    try:
        shown_day = _date(day, "day")
        shown_provider = _uuid(provider_id)
        if status not in STATUSES:
            raise InvalidInput("unknown appointment status")
        await desk.records.update_appointment(
            request_claims(request, desk.principal),
            appointment_id,
            {"status": status},
        )
    except PerpetuaError as exc:
        return await _schedule_page(
            request,
            desk,
            shown_day,
            shown_provider,
            error=_calm(exc),
            http_status=exc.status,
        )
    return RedirectResponse(_schedule_url(shown_day, shown_provider), 303)


@router.post("/schedule/export")
async def export_schedule(
    request: Request,
    day: str = Form(""),
    provider_id: str = Form(""),
    reason: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    today = services(request).clock.now().astimezone(dt.UTC).date()
    chosen, provider = today, None
    try:
        chosen = _date(day, "day")
        provider = _uuid(provider_id)
        # Bulk PHI leaves the practice only with a stated reason, kept in the audit.
        if not reason.strip():
            raise InvalidInput("give the reason for this export")
        found = await desk.records.schedule(
            request_claims(request, desk.principal, reason=reason),
            provider_id=provider,
            day=chosen,
            export=True,
        )
    except PerpetuaError as exc:
        return await _schedule_page(
            request, desk, chosen, provider, error=_calm(exc), http_status=exc.status
        )
    return csv_response(
        SCHEDULE_COLUMNS, schedule_rows(found), f"schedule-{chosen}.csv"
    )


@router.get("/schedule/book")
async def book_form(request: Request, patient_id: str = "") -> Response:
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    return await _book_page(request, desk, patient_id, form={})


async def _book_page(
    request: Request,
    desk: Desk,
    patient_id: str,
    *,
    form: dict[str, str],
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    claims = request_claims(request, desk.principal)
    providers = await desk.records.list_providers(claims)
    chosen: Patient | None = None
    try:
        pid = _uuid(patient_id)
        if pid is not None:
            chosen = await desk.records.get_patient(claims, pid)
    except PerpetuaError as exc:
        error, http_status = error or _calm(exc), exc.status
    today = services(request).clock.now().astimezone(dt.UTC).date()
    return _render(
        request,
        desk,
        "records_book.html",
        http_status,
        patient=chosen,
        providers=providers,
        durations=DURATIONS,
        form={"day": today.isoformat(), "duration": "30", **form},
        error=error,
    )


@router.post("/schedule/book")
async def book(
    request: Request,
    patient_id: str = Form(""),
    provider_id: str = Form(""),
    day: str = Form(""),
    start: str = Form(""),
    duration: str = Form("30"),
    reason: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    desk = await _desk(request)
    if isinstance(desk, Response):
        return desk
    form = {
        "provider_id": provider_id,
        "day": day,
        "start": start,
        "duration": duration,
        "reason": reason,
    }
    try:
        patient = _uuid(patient_id)
        provider = _uuid(provider_id)
        if patient is None or provider is None:
            raise InvalidInput("choose a patient and a provider")
        when = _date(day, "date")
        try:
            begins = dt.datetime.combine(when, dt.time.fromisoformat(start), dt.UTC)
            minutes = int(duration)
        except ValueError:
            raise InvalidInput("start must be a time such as 09:30") from None
        if minutes not in DURATIONS:
            raise InvalidInput("choose one of the offered lengths")
        made = await desk.records.create_appointment(
            request_claims(request, desk.principal),
            records.NewAppointment(
                patient_id=patient,
                provider_id=provider,
                starts_at=begins,
                ends_at=begins + dt.timedelta(minutes=minutes),
                reason=reason.strip() or None,
            ),
        )
    except PerpetuaError as exc:
        # A refused card number must not come back in the page it was typed into.
        if isinstance(exc, CardNumberInText):
            form["reason"] = ""
        return await _book_page(
            request,
            desk,
            patient_id,
            form=form,
            error=_calm(exc),
            http_status=exc.status,
        )
    return RedirectResponse(
        _schedule_url(made.starts_at.astimezone(dt.UTC).date(), made.provider_id), 303
    )
