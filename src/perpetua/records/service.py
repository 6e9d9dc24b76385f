"""The records service: every read and write of PHI goes through these methods.

Values are sealed and indexed before they reach PostgreSQL, and opened only after
the transaction that wrote the audit event has committed. Free text is refused if it
holds a payment card number, before it reaches any row or log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from perpetua.access.claims import Claims, ReadCaller
from perpetua.crypto.errors import NormalizationError
from perpetua.db.pool import Conn
from perpetua.errors import InvalidInput, NotFound
from perpetua.mail import outbox
from perpetua.monitoring.tags import tag_patient_name
from perpetua.records.gate import RecordsGate, read
from perpetua.records.models import (
    AccessEvent,
    Appointment,
    Call,
    Coverage,
    Patient,
    Provider,
)
from perpetua.records.vault import Vault
from perpetua.redaction import ensure_no_card_number

STATUSES = ("booked", "confirmed", "cancelled", "no_show", "completed")


def _practice(claims: Claims) -> uuid.UUID:
    if claims.practice_id is None:
        raise NotFound("this session does not act in a practice")
    return claims.practice_id


def _acting(caller: ReadCaller) -> None:
    """Refuse early a caller known to act in no practice; a session the database
    resolves is refused there (app.session_claims) for the same reason."""
    if isinstance(caller, Claims):
        _practice(caller)


def _free_text(value: str | None, field: str, limit: int = 500) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters")
    ensure_no_card_number(cleaned)
    return cleaned or None


@dataclass(frozen=True)
class NewPatient:
    name: str
    birth_date: dt.date
    phone: str | None = None
    ehr_ref: str | None = None


@dataclass(frozen=True)
class NewAppointment:
    patient_id: uuid.UUID
    provider_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None = None
    status: str = "booked"


@dataclass(frozen=True)
class CoverageInput:
    payer: str
    member_id: str
    group_number: str | None = None
    plan_type: str | None = None
    copay_cents: int | None = None
    deductible_status: str | None = None
    last_verified_at: dt.datetime | None = None


@dataclass(frozen=True)
class NewCall:
    direction: str
    started_at: dt.datetime
    duration_seconds: int = 0
    caller_number: str | None = None
    patient_id: uuid.UUID | None = None


class Records:
    def __init__(self, gate: RecordsGate, vault: Vault) -> None:
        self.gate = gate
        self.vault = vault

    # -- providers -------------------------------------------------------------------

    async def create_provider(
        self, claims: Claims, name: str, npi: str | None
    ) -> Provider:
        _practice(claims)
        provider_id = uuid.uuid4()
        async with self.gate.transaction(claims, "create", "provider") as conn:
            await conn.execute(
                "select phi_api.create_provider(%s, %s, %s)",
                (provider_id, name.strip(), npi),
            )
        return Provider(provider_id, name.strip(), npi)

    async def list_providers(self, claims: Claims) -> list[Provider]:
        _practice(claims)
        async with self.gate.db.transaction(claims) as conn:
            cur = await conn.execute("select * from phi_api.list_providers()")
            rows = await cur.fetchall()
        return [Provider(r["id"], r["display_name"], r["npi"]) for r in rows]

    # -- patients --------------------------------------------------------------------

    def _patient_columns(
        self, practice: uuid.UUID, patient_id: uuid.UUID, data: NewPatient
    ) -> tuple[Any, ...]:
        name = " ".join(data.name.split())
        if not 1 <= len(name) <= 200:
            raise InvalidInput("name must be between 1 and 200 characters")
        ehr = _free_text(data.ehr_ref, "EHR reference", 100)
        seal = self.vault.seal
        try:
            phone_bidx = (
                self.vault.index.phone(practice, data.phone) if data.phone else None
            )
        except NormalizationError:
            raise InvalidInput("phone must be a valid phone number") from None
        return (
            patient_id,
            seal(practice, "patients", "name", patient_id, name),
            seal(
                practice,
                "patients",
                "birth_date",
                patient_id,
                data.birth_date.isoformat(),
            ),
            self.vault.seal_optional(
                practice, "patients", "phone", patient_id, data.phone
            ),
            self.vault.seal_optional(practice, "patients", "ehr_ref", patient_id, ehr),
            phone_bidx,
            self.vault.name_dob_index(practice, name, data.birth_date),
        )

    async def create_patient(self, claims: Claims, data: NewPatient) -> Patient:
        practice = _practice(claims)
        await self.gate.require(claims, "demographics", "create", "patient")
        patient_id = uuid.uuid4()
        columns = self._patient_columns(practice, patient_id, data)
        async with self.gate.transaction(claims, "create", "patient") as conn:
            await conn.execute(
                "select phi_api.create_patient(%s, %s, %s, %s, %s, %s, %s)", columns
            )
        await self._tag_name(claims, practice, patient_id, data.name)
        return (await self.read_patients(claims, [patient_id]))[0]

    async def update_patient(
        self, claims: Claims, patient_id: uuid.UUID, data: NewPatient
    ) -> Patient:
        practice = _practice(claims)
        await self.gate.require(
            claims, "demographics", "update", "patient", [patient_id]
        )
        columns = self._patient_columns(practice, patient_id, data)
        async with self.gate.transaction(claims, "update", "patient") as conn:
            cur = await conn.execute(
                "select phi_api.update_patient(%s, %s, %s, %s, %s, %s, %s) as ok",
                columns,
            )
            row = await cur.fetchone()
        if not row or not row["ok"]:
            raise NotFound()
        await self._tag_name(claims, practice, patient_id, data.name)
        return (await self.read_patients(claims, [patient_id]))[0]

    async def _tag_name(
        self, claims: Claims, practice: uuid.UUID, patient_id: uuid.UUID, name: str
    ) -> None:
        await tag_patient_name(
            self.gate.db,
            self.vault.index,
            practice,
            patient_id,
            " ".join(name.split()),
            claims.request_id,
        )

    def _open_patient(self, practice: uuid.UUID, row: dict[str, Any]) -> Patient:
        pid = row["id"]
        opened = self.vault.open_text
        birth = opened(practice, "patients", "birth_date", pid, row["birth_date_ct"])
        return Patient(
            id=pid,
            name=opened(practice, "patients", "name", pid, row["name_ct"]) or "",
            birth_date=dt.date.fromisoformat(birth or ""),
            phone=opened(practice, "patients", "phone", pid, row["phone_ct"]),
            ehr_ref=opened(practice, "patients", "ehr_ref", pid, row["ehr_ref_ct"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def read_patients(
        self, claims: ReadCaller, ids: list[uuid.UUID], *, action: str = "view"
    ) -> list[Patient]:
        _acting(claims)
        await self.gate.require(claims, "demographics", action, "patient", ids)
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.read_patients(%s, %s)",
            (ids, action),
        )
        rows = fetched.ensure(expect=len(set(ids)))
        return [self._open_patient(fetched.practice(), row) for row in rows]

    async def get_patient(self, claims: ReadCaller, patient_id: uuid.UUID) -> Patient:
        return (await self.read_patients(claims, [patient_id]))[0]

    async def search_patients(
        self,
        claims: Claims,
        *,
        phone: str | None = None,
        name: str | None = None,
        birth_date: dt.date | None = None,
    ) -> list[Patient]:
        practice = _practice(claims)
        if not phone and not (name and birth_date):
            raise InvalidInput("search by phone, or by name and date of birth")
        await self.gate.require(claims, "demographics", "view", "patient")
        try:
            phone_tag = self.vault.index.phone(practice, phone) if phone else None
        except NormalizationError:
            raise InvalidInput("phone must be a valid phone number") from None
        name_tag = (
            self.vault.name_dob_index(practice, name, birth_date)
            if name and birth_date
            else None
        )
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.find_patients(%s, %s)",
            (phone_tag, name_tag),
        )
        rows = fetched.ensure()
        return [self._open_patient(practice, row) for row in rows]

    # -- appointments ----------------------------------------------------------------

    def _check_times(self, starts: dt.datetime, ends: dt.datetime) -> None:
        if starts.tzinfo is None or ends.tzinfo is None:
            raise InvalidInput("times must include a UTC offset")
        if ends <= starts:
            raise InvalidInput("an appointment must end after it starts")
        if ends - starts > dt.timedelta(hours=12):
            raise InvalidInput("an appointment may last at most 12 hours")

    async def create_appointment(
        self, claims: Claims, data: NewAppointment
    ) -> Appointment:
        practice = _practice(claims)
        self._check_times(data.starts_at, data.ends_at)
        if data.status not in STATUSES:
            raise InvalidInput("unknown appointment status")
        reason = _free_text(data.reason, "reason for visit")
        await self.gate.require(claims, "schedule", "create", "appointment")
        appointment_id = uuid.uuid4()
        async with self.gate.transaction(claims, "create", "appointment") as conn:
            await conn.execute(
                "select phi_api.create_appointment(%s, %s, %s, %s, %s, %s, %s)",
                (
                    appointment_id,
                    data.patient_id,
                    data.provider_id,
                    data.starts_at,
                    data.ends_at,
                    self.vault.seal_optional(
                        practice, "appointments", "reason", appointment_id, reason
                    ),
                    data.status,
                ),
            )
        return await self.get_appointment(claims, appointment_id)

    async def update_appointment(
        self,
        claims: Claims,
        appointment_id: uuid.UUID,
        changes: dict[str, Any],
    ) -> Appointment:
        practice = _practice(claims)
        await self.gate.require(
            claims, "schedule", "update", "appointment", [appointment_id]
        )
        current = await self.get_appointment(claims, appointment_id)
        starts = changes.get("starts_at", current.starts_at)
        ends = changes.get("ends_at", current.ends_at)
        self._check_times(starts, ends)
        status = changes.get("status", current.status)
        if status not in STATUSES:
            raise InvalidInput("unknown appointment status")
        reason = (
            _free_text(changes["reason"], "reason for visit")
            if "reason" in changes
            else current.reason
        )
        async with self.gate.transaction(claims, "update", "appointment") as conn:
            cur = await conn.execute(
                "select phi_api.update_appointment(%s, %s, %s, %s, %s, %s) as ok",
                (
                    appointment_id,
                    changes.get("provider_id", current.provider_id),
                    starts,
                    ends,
                    self.vault.seal_optional(
                        practice, "appointments", "reason", appointment_id, reason
                    ),
                    status,
                ),
            )
            row = await cur.fetchone()
        if not row or not row["ok"]:
            raise NotFound()
        return await self.get_appointment(claims, appointment_id)

    def _open_appointment(
        self, practice: uuid.UUID, row: dict[str, Any]
    ) -> Appointment:
        aid = row["id"]
        name_ct = row.get("patient_name_ct")
        return Appointment(
            id=aid,
            patient_id=row["patient_id"],
            provider_id=row["provider_id"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            reason=self.vault.open_text(
                practice, "appointments", "reason", aid, row["reason_ct"]
            ),
            status=row["status"],
            patient_name=self.vault.open_text(
                practice, "patients", "name", row["patient_id"], name_ct
            )
            if name_ct is not None
            else None,
        )

    async def get_appointment(
        self, claims: ReadCaller, appointment_id: uuid.UUID
    ) -> Appointment:
        _acting(claims)
        await self.gate.require(
            claims, "schedule", "view", "appointment", [appointment_id]
        )
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.read_appointments(%s)",
            ([appointment_id],),
        )
        row = fetched.ensure(expect=1)[0]
        return self._open_appointment(fetched.practice(), row)

    async def schedule(
        self,
        claims: ReadCaller,
        *,
        provider_id: uuid.UUID | None,
        day: dt.date,
        days: int = 1,
        export: bool = False,
        tz: dt.tzinfo = dt.UTC,
    ) -> list[Appointment]:
        _acting(claims)
        if not 1 <= days <= 93:
            raise InvalidInput("a schedule covers 1 to 93 days")
        action = "export" if export else "view"
        await self.gate.require(claims, "schedule", action, "schedule")
        start = dt.datetime.combine(day, dt.time(0), tz)
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.schedule(%s, %s, %s, %s)",
            (provider_id, start, start + dt.timedelta(days=days), export),
        )
        rows = fetched.ensure()
        return [self._open_appointment(fetched.practice(), r) for r in rows]

    # -- coverage --------------------------------------------------------------------

    async def put_coverage(
        self, claims: Claims, patient_id: uuid.UUID, data: CoverageInput
    ) -> Coverage:
        practice = _practice(claims)
        member = data.member_id.strip()
        if not 1 <= len(member) <= 64:
            raise InvalidInput("member ID must be between 1 and 64 characters")
        group = _free_text(data.group_number, "group number", 64)
        existing = await self.coverages(claims, patient_id=patient_id)
        if not existing:
            await self.gate.require(
                claims, "insurance", "create", "coverage", [patient_id]
            )
        else:
            await self.gate.require(
                claims, "insurance", "update", "coverage", [patient_id]
            )
        coverage_id = existing[0].id if existing else uuid.uuid4()
        try:
            member_tag = self.vault.index.member_id(practice, member)
        except NormalizationError:
            raise InvalidInput("member ID has no letters or digits") from None
        async with self.gate.transaction(claims, "update", "coverage") as conn:
            await conn.execute(
                "select phi_api.upsert_coverage("
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    coverage_id,
                    patient_id,
                    data.payer.strip(),
                    self.vault.seal(
                        practice, "coverages", "member_id", coverage_id, member
                    ),
                    member_tag,
                    self.vault.seal_optional(
                        practice, "coverages", "group_number", coverage_id, group
                    ),
                    data.plan_type,
                    data.copay_cents,
                    data.deductible_status,
                    data.last_verified_at,
                ),
            )
        return (await self.coverages(claims, patient_id=patient_id))[0]

    async def coverages(
        self,
        claims: ReadCaller,
        *,
        patient_id: uuid.UUID | None = None,
        member_id: str | None = None,
    ) -> list[Coverage]:
        _acting(claims)
        await self.gate.require(claims, "insurance", "view", "coverage")
        member_tag = None
        if member_id:
            # A blind index is keyed by practice, so this search needs the
            # practice before the read.
            if not isinstance(claims, Claims):
                raise InvalidInput("search by member ID needs a resolved caller")
            practice = _practice(claims)
            try:
                member_tag = self.vault.index.member_id(practice, member_id)
            except NormalizationError:
                raise InvalidInput("member ID has no letters or digits") from None
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.read_coverages(%s, %s)",
            (patient_id, member_tag),
        )
        rows = fetched.ensure()
        return [self._open_coverage(fetched.practice(), row) for row in rows]

    def _open_coverage(self, practice: uuid.UUID, row: dict[str, Any]) -> Coverage:
        cid = row["id"]
        return Coverage(
            id=cid,
            patient_id=row["patient_id"],
            payer=row["payer"],
            member_id=self.vault.open_text(
                practice, "coverages", "member_id", cid, row["member_id_ct"]
            )
            or "",
            group_number=self.vault.open_text(
                practice,
                "coverages",
                "group_number",
                cid,
                row["group_number_ct"],
            ),
            plan_type=row["plan_type"],
            copay_cents=row["copay_cents"],
            deductible_status=row["deductible_status"],
            last_verified_at=row["last_verified_at"],
        )

    # -- calls -----------------------------------------------------------------------

    async def create_call(self, claims: Claims, data: NewCall) -> Call:
        practice = _practice(claims)
        if data.direction not in ("inbound", "outbound"):
            raise InvalidInput("direction is inbound or outbound")
        call_id = uuid.uuid4()
        try:
            caller_tag = (
                self.vault.index.phone(practice, data.caller_number)
                if data.caller_number
                else None
            )
        except NormalizationError:
            raise InvalidInput("caller number must be a phone number") from None
        async with self.gate.transaction(claims, "create", "call") as conn:
            await conn.execute(
                "select phi_api.create_call(%s, %s, %s, %s, %s, %s, %s)",
                (
                    call_id,
                    data.direction,
                    self.vault.seal_optional(
                        practice, "calls", "caller_number", call_id, data.caller_number
                    ),
                    caller_tag,
                    data.started_at,
                    data.duration_seconds,
                    data.patient_id,
                ),
            )
        return Call(
            call_id,
            data.direction,
            data.caller_number,
            data.started_at,
            data.duration_seconds,
            data.patient_id,
        )

    async def calls(
        self,
        claims: ReadCaller,
        *,
        ids: list[uuid.UUID] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[Call]:
        _acting(claims)
        await self.gate.require(claims, "calls", "view", "call", ids)
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.read_calls(%s, %s, %s)",
            (ids, since, until),
        )
        rows = fetched.ensure(expect=len(ids) if ids else None)
        return [self._open_call(fetched.practice(), r) for r in rows]

    def _open_call(self, practice: uuid.UUID, r: dict[str, Any]) -> Call:
        return Call(
            r["id"],
            r["direction"],
            self.vault.open_text(
                practice, "calls", "caller_number", r["id"], r["caller_number_ct"]
            ),
            r["started_at"],
            r["duration_seconds"],
            r["patient_id"],
        )

    # -- break-glass and the access report -------------------------------------------

    async def open_break_glass(
        self, claims: Claims, patient_id: uuid.UUID, reason: str, minutes: int = 60
    ) -> dt.datetime:
        _practice(claims)
        cleaned = _free_text(reason, "reason")
        if not cleaned or len(cleaned) < 10:
            raise InvalidInput("give the emergency reason in at least 10 characters")
        async with self.gate.transaction(claims, "break_glass", "patient") as conn:
            cur = await conn.execute(
                "select * from phi_api.open_break_glass(%s, %s, %s)",
                (patient_id, cleaned, minutes),
            )
            row = await cur.fetchone()
            assert row is not None
            expires: dt.datetime = row["expires_at"]
            # The owners are told at once, in the same transaction: no grant
            # exists without its notice. The message names no patient and quotes
            # no reason (either may be PHI); the console shows both to owners.
            await self._tell_owners_of_break_glass(conn, claims, patient_id, expires)
        return expires

    async def _tell_owners_of_break_glass(
        self, conn: Conn, claims: Claims, patient_id: uuid.UUID, expires: dt.datetime
    ) -> None:
        cur = await conn.execute(
            "select u.email, coalesce(me.full_name, 'A member') as actor "
            "from app.memberships m join app.users u on u.id = m.user_id "
            "left join app.users me on me.id = %s "
            "where m.practice_id = %s and m.role = 'owner'",
            (claims.actor_id, claims.practice_id),
        )
        for owner in await cur.fetchall():
            await outbox.enqueue(
                conn,
                dt.datetime.now(dt.UTC),
                kind="break_glass",
                to=owner["email"],
                subject="Emergency access to a patient record was opened",
                body=(
                    f"{owner['actor']} opened emergency (break-glass) access to a "
                    f"patient record at your practice, until "
                    f"{expires:%Y-%m-%d %H:%M} UTC.\n\n"
                    f"Record reference: {patient_id}\n\n"
                    "Review the reason and every access in Perpetua: open the "
                    "patient's access report from the patient page. Break-glass "
                    "access is time-limited and recorded with purpose BTG."
                ),
                practice_id=claims.practice_id,
            )

    async def access_report(
        self,
        claims: Claims,
        patient_id: uuid.UUID,
        access: Literal["view", "export"] = "view",
    ) -> list[AccessEvent]:
        """Every recorded access to one patient, newest first; reading it is
        recorded as a view of the audit log, downloading it as an export."""
        _practice(claims)
        await self.gate.require(claims, "audit_log", access, "audit_log", [patient_id])
        fetched = await read(
            self.gate.db,
            claims,
            "select * from audit_api.patient_access_report(%s, %s)",
            (patient_id, access),
        )
        return [
            AccessEvent(
                occurred_at=r["occurred_at"],
                actor_kind=r["actor_kind"],
                actor_id=r["actor_id"],
                actor_role=r["actor_role"],
                action=r["action"],
                resource_type=r["resource_type"],
                purpose_of_use=r["purpose_of_use"],
                reason=r["reason"],
                outcome=r["outcome"],
                request_id=r["request_id"],
                client_ip=str(r["client_ip"]) if r["client_ip"] else None,
            )
            for r in fetched.ensure()
        ]

    # -- deletions and exports -------------------------------------------------------

    async def delete(
        self, claims: Claims, category: str, resource_type: str, record_id: uuid.UUID
    ) -> None:
        _practice(claims)
        await self.gate.require(claims, category, "delete", resource_type, [record_id])
        async with self.gate.transaction(claims, "delete", resource_type) as conn:
            cur = await conn.execute(
                "select phi_api.delete_record(%s, %s) as ok", (resource_type, record_id)
            )
            row = await cur.fetchone()
        if not row or not row["ok"]:
            raise NotFound()

    async def export_patients(self, claims: Claims) -> list[Patient]:
        practice = _practice(claims)
        await self.gate.require(claims, "demographics", "export", "patient")
        fetched = await read(
            self.gate.db, claims, "select * from phi_api.export_patients()", ()
        )
        return [self._open_patient(practice, r) for r in fetched.ensure()]

    async def export_coverages(self, claims: Claims) -> list[Coverage]:
        practice = _practice(claims)
        await self.gate.require(claims, "insurance", "export", "coverage")
        fetched = await read(
            self.gate.db, claims, "select * from phi_api.export_coverages()", ()
        )
        return [self._open_coverage(practice, r) for r in fetched.ensure()]

    async def export_calls(
        self, claims: Claims, since: dt.datetime, until: dt.datetime
    ) -> list[Call]:
        practice = _practice(claims)
        await self.gate.require(claims, "calls", "export", "call")
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.export_calls(%s, %s)",
            (since, until),
        )
        return [self._open_call(practice, r) for r in fetched.ensure()]

    async def audit_events(
        self,
        claims: Claims,
        since: dt.datetime,
        until: dt.datetime,
        *,
        export: bool = False,
    ) -> list[dict[str, Any]]:
        _practice(claims)
        action = "export" if export else "view"
        await self.gate.require(claims, "audit_log", action, "audit_log")
        fetched = await read(
            self.gate.db,
            claims,
            "select * from audit_api.events(%s, %s, %s)",
            (since, until, export),
        )
        return fetched.ensure()

    async def clinical_documents(
        self, claims: Claims, patient_id: uuid.UUID
    ) -> list[dict[str, Any]]:
        practice = _practice(claims)
        await self.gate.require(
            claims, "clinical", "view", "clinical_document", [patient_id]
        )
        fetched = await read(
            self.gate.db,
            claims,
            "select * from phi_api.read_clinical_documents(%s)",
            (patient_id,),
        )
        return [
            {
                "id": r["id"],
                "kind": r["kind"],
                "body": self.vault.open_text(
                    practice, "clinical_documents", "body", r["id"], r["body_ct"]
                ),
                "created_at": r["created_at"],
            }
            for r in fetched.ensure()
        ]
