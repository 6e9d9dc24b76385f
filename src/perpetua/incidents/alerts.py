"""Triage of the alerts the detectors raise: the practice's owners and managers
list them, read their evidence (the audit events they name, through the audited
door of the audit log), and acknowledge, dismiss or escalate them into an
incident. The database's policies decide who sees which alert; the checks here
only make a refusal clear."""

from __future__ import annotations

import uuid
from typing import Literal

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.incidents.errors import AlertClosed, AlertNotFound, IncidentsForManagers
from perpetua.incidents.guards import refusals, require_manager
from perpetua.incidents.models import Alert, EvidenceEvent

Triage = Literal["acknowledge", "dismiss"]
# Which status each triage step leads to, and from which statuses it may start.
_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "acknowledge": ("acknowledged", ("open",)),
    "dismiss": ("dismissed", ("open", "acknowledged")),
}
_COLUMNS = (
    "id, practice_id, detector, severity, actor_kind, actor_id, patient_ids, "
    "event_ids, summary, first_event_at, last_event_at, detected_at, status, "
    "incident_id"
)


async def list_alerts(db: Database, claims: Claims, limit: int = 200) -> list[Alert]:
    """The practice's alerts: open and acknowledged first, newest first."""
    require_manager(claims)
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            f"select {_COLUMNS} from monitor.alerts "
            "where practice_id = %s "
            "order by status not in ('open', 'acknowledged'), detected_at desc "
            "limit %s",
            (claims.practice_id, limit),
        )
        rows = await cur.fetchall()
    return [Alert.from_row(r) for r in rows]


async def get_alert(db: Database, claims: Claims, alert_id: uuid.UUID) -> Alert:
    require_manager(claims)
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            f"select {_COLUMNS} from monitor.alerts where id = %s and practice_id = %s",
            (alert_id, claims.practice_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise AlertNotFound()
    return Alert.from_row(row)


async def evidence(
    db: Database, claims: Claims, alert_id: uuid.UUID
) -> list[EvidenceEvent]:
    """The audit events the alert names. Reading them is recorded as a view of
    the audit log, in the same round trip that returns them."""
    require_manager(claims)
    result = await db.read_once(
        claims, "select * from incidents_api.alert_evidence(%s)", (alert_id,)
    )
    if not result.rows and result.outcome == "denied":
        raise IncidentsForManagers()
    return [EvidenceEvent(**row) for row in result.rows]


async def triage(
    db: Database, claims: Claims, alert_id: uuid.UUID, step: Triage
) -> Alert:
    """Acknowledge or dismiss an alert. A dismissed or escalated alert keeps its
    decision; acknowledging twice is harmless."""
    require_manager(claims)
    target, allowed = _STEPS[step]
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select status from monitor.alerts where id = %s and practice_id = %s "
            "for update",
            (alert_id, claims.practice_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise AlertNotFound()
        if row["status"] != target:
            if row["status"] not in allowed:
                raise AlertClosed()
            await conn.execute(
                "update monitor.alerts set status = %s where id = %s",
                (target, alert_id),
            )
    return await get_alert(db, claims, alert_id)


async def escalate(
    db: Database, clock: Clock, claims: Claims, alert_id: uuid.UUID
) -> uuid.UUID:
    """Open the incident for an alert, or return the one already opened for it."""
    require_manager(claims)
    with refusals(AlertNotFound, AlertClosed):
        async with db.transaction(claims) as conn:
            cur = await conn.execute(
                "select incidents_api.open_from_alert(%s, %s, %s, %s) as id",
                (uuid.uuid4(), claims.practice_id, alert_id, clock.now()),
            )
            row = await cur.fetchone()
    assert row is not None
    made: uuid.UUID = row["id"]
    return made
