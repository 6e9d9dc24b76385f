"""Guards how a suspicion becomes an alert: one row in `monitor.alerts` per finding
(idempotent by its dedup key, so a window scanned twice alerts once) and one email
to each owner and manager of the practice, queued in the same transaction.

An alert names a detector, a severity, ids, counts and times. It never carries PHI,
and neither does its email: the reader follows it to the console, where the audit
log's own door decides what they may see.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.mail.outbox import enqueue

SEVERITIES = ("low", "medium", "high", "critical")

# What an owner reads in the email subject, per detector. Kept short and free of
# any value a detector saw.
DETECTOR_TITLES: dict[str, str] = {
    "unexplained_access": "patient access with no explaining relationship",
    "shared_identity": "member opened a patient sharing their surname, address "
    "or phone",
    "coworker_record": "member opened a co-worker's record",
    "volume_spike": "unusual number of patients opened",
    "unusual_hours": "patient access at unusual hours",
    "bulk_access": "bulk export or unusually large result",
    "break_glass": "break-glass access",
    "repeated_denied": "repeated denied access",
    "cross_practice": "attempt on another practice's data",
    "failed_signins": "burst of failed sign-ins",
    "network_hop": "sign-ins from distant networks in a short time",
    "new_signin_network": "sign-in from a new network or device",
    "token_new_network": "API token used from a new network",
    "revoked_token": "revoked API token presented",
}


@dataclass(frozen=True)
class NewAlert:
    practice_id: uuid.UUID
    detector: str
    severity: str
    summary: str
    first_event_at: dt.datetime
    last_event_at: dt.datetime
    dedup_key: str
    actor_kind: str | None = None
    actor_id: uuid.UUID | None = None
    patient_ids: tuple[uuid.UUID, ...] = field(default_factory=tuple)
    event_ids: tuple[uuid.UUID, ...] = field(default_factory=tuple)

    @classmethod
    def from_finding(cls, row: dict[str, Any]) -> NewAlert:
        """A row of `monitor.finding`, as the detectors return it."""
        return cls(
            practice_id=row["practice_id"],
            detector=row["detector"],
            severity=row["severity"],
            summary=row["summary"],
            first_event_at=row["first_event_at"],
            last_event_at=row["last_event_at"],
            dedup_key=row["dedup_key"],
            actor_kind=row["actor_kind"],
            actor_id=row["actor_id"],
            patient_ids=tuple(row["patient_ids"] or ()),
            event_ids=tuple(row["event_ids"] or ()),
        )


async def raise_alert(
    db: Database, alert: NewAlert, clock: Clock | None = None
) -> uuid.UUID | None:
    """Record the alert and queue its emails; None when it was already raised."""
    now = (clock or Clock()).now()
    async with db.transaction(system_claims("monitor-alert")) as conn:
        return await raise_alert_in(conn, alert, now)


async def act_for_practice(conn: Conn, practice_id: uuid.UUID, request_id: str) -> None:
    """Narrow the transaction's system claims to one practice: the outbox accepts
    a practice's email only from claims naming that practice."""
    claims = replace(system_claims(request_id), practice_id=practice_id)
    await conn.execute(
        "select set_config('request.jwt.claims', %s, true)",
        (json.dumps(claims.as_json()),),
    )


async def raise_alert_in(
    conn: Conn, alert: NewAlert, now: dt.datetime
) -> uuid.UUID | None:
    """Like `raise_alert`, inside a transaction with system claims, so the alert
    and its emails commit with the detector run that found it."""
    if alert.severity not in SEVERITIES:
        raise ValueError("unknown severity")
    await act_for_practice(conn, alert.practice_id, "monitor-alert")
    cur = await conn.execute(
        "insert into monitor.alerts (practice_id, detector, severity, actor_kind, "
        "actor_id, patient_ids, event_ids, summary, first_event_at, last_event_at, "
        "detected_at, dedup_key) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "on conflict (practice_id, dedup_key) do nothing returning id",
        (
            alert.practice_id,
            alert.detector,
            alert.severity,
            alert.actor_kind,
            alert.actor_id,
            list(alert.patient_ids),
            list(alert.event_ids),
            alert.summary[:500],
            alert.first_event_at,
            alert.last_event_at,
            now,
            alert.dedup_key[:300],
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    alert_id: uuid.UUID = row["id"]
    await _queue_emails(conn, alert, alert_id, now)
    return alert_id


async def _queue_emails(
    conn: Conn, alert: NewAlert, alert_id: uuid.UUID, now: dt.datetime
) -> None:
    cur = await conn.execute(
        "select email from monitor.alert_recipients(%s)", (alert.practice_id,)
    )
    recipients = [str(r["email"]) for r in await cur.fetchall()]
    title = DETECTOR_TITLES.get(alert.detector, alert.detector.replace("_", " "))
    subject = f"[Perpetua] {alert.severity} alert: {title}"
    body = (
        f"Perpetua's monitoring raised a {alert.severity} alert for your practice.\n"
        f"\nDetector: {alert.detector}\nAlert id: {alert_id}\n"
        f"Events between {alert.first_event_at:%Y-%m-%d %H:%M} and "
        f"{alert.last_event_at:%Y-%m-%d %H:%M} UTC; "
        f"{len(alert.event_ids)} audit event(s), "
        f"{len(alert.patient_ids)} patient(s) as evidence.\n"
        f"\nSign in to the Perpetua console and open Alerts (/alerts/{alert_id}) "
        "to review it. This "
        "email carries no patient information on purpose.\n"
    )
    for address in recipients:
        await enqueue(
            conn,
            now,
            kind="monitoring_alert",
            to=address,
            subject=subject,
            body=body,
            practice_id=alert.practice_id,
        )
