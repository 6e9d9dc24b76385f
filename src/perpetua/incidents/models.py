"""Alerts and incidents as the service hands them to callers.

`StaffIncident` is a separate type on purpose: it has no field that could hold
PHI (no description, assessment text or patient ids), so a staff page cannot show
what it was never given.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from perpetua.incidents.clocks import ClockFacts, Deadline, deadlines

PHI_KINDS: dict[str, str] = {
    "demographics": "names, dates of birth",
    "contact": "phone numbers",
    "insurance": "insurance details",
    "appointments": "appointments and visit reasons",
    "calls": "call records",
    "clinical": "clinical documents",
}
FACTORS = ("nature_extent", "unauthorized_person", "acquired_or_viewed", "mitigation")
CONCLUSIONS = {
    "breach": "Breach: notification is required",
    "low_probability": "Low probability that the PHI has been compromised",
}


@dataclass(frozen=True)
class Alert:
    id: uuid.UUID
    practice_id: uuid.UUID
    detector: str
    severity: str
    actor_kind: str | None
    actor_id: uuid.UUID | None
    patient_count: int
    event_count: int
    summary: str
    first_event_at: dt.datetime
    last_event_at: dt.datetime
    detected_at: dt.datetime
    status: str
    incident_id: uuid.UUID | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        return cls(
            id=row["id"],
            practice_id=row["practice_id"],
            detector=row["detector"],
            severity=row["severity"],
            actor_kind=row["actor_kind"],
            actor_id=row["actor_id"],
            patient_count=len(row["patient_ids"] or ()),
            event_count=len(row["event_ids"] or ()),
            summary=row["summary"],
            first_event_at=row["first_event_at"],
            last_event_at=row["last_event_at"],
            detected_at=row["detected_at"],
            status=row["status"],
            incident_id=row["incident_id"],
        )


@dataclass(frozen=True)
class EvidenceEvent:
    id: uuid.UUID
    occurred_at: dt.datetime
    actor_kind: str
    actor_role: str | None
    action: str
    resource_type: str
    outcome: str
    patient_count: int


@dataclass(frozen=True)
class Incident:
    """An incident as its practice's owners and managers see it."""

    id: uuid.UUID
    practice_id: uuid.UUID
    alert_id: uuid.UUID | None
    detector: str
    suspect_actor_kind: str | None
    suspect_actor_id: uuid.UUID | None
    window_from: dt.datetime | None
    window_to: dt.datetime | None
    discovered_at: dt.datetime
    opened_at: dt.datetime
    opened_by_kind: str
    status: str
    closed_at: dt.datetime | None
    description: str | None
    phi_kinds: tuple[str, ...]
    affected_patient_ids: tuple[uuid.UUID, ...]
    affected_computed_at: dt.datetime | None
    largest_state_count: int | None
    nature_extent: str | None
    unauthorized_person: str | None
    acquired_or_viewed: str | None
    mitigation: str | None
    conclusion: str | None
    assessed_at: dt.datetime | None
    contact: str | None
    individuals_notified_at: dt.datetime | None
    hhs_notified_at: dt.datetime | None
    media_notified_at: dt.datetime | None
    hhs_logged_at: dt.datetime | None
    notice_queued_at: dt.datetime | None
    notice_delivered_at: dt.datetime | None
    escalated: tuple[str, ...]

    @property
    def affected_count(self) -> int:
        return len(self.affected_patient_ids)

    def facts(self) -> ClockFacts:
        return ClockFacts(
            discovered_at=self.discovered_at,
            affected_count=self.affected_count,
            largest_state_count=self.largest_state_count,
            conclusion=self.conclusion,
            practice_notified_at=self.notice_delivered_at,
            individuals_notified_at=self.individuals_notified_at,
            hhs_notified_at=self.hhs_notified_at,
            media_notified_at=self.media_notified_at,
            hhs_logged_at=self.hhs_logged_at,
        )

    def deadlines(self) -> list[Deadline]:
        return deadlines(self.facts())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Incident:
        fields = {name: row[name] for name in cls.__dataclass_fields__}
        fields["phi_kinds"] = tuple(row["phi_kinds"] or ())
        fields["affected_patient_ids"] = tuple(row["affected_patient_ids"] or ())
        fields["escalated"] = tuple(row["escalated"] or ())
        return cls(**fields)


@dataclass(frozen=True)
class StaffIncident:
    """An incident in Perpetua's staff queue: ids, counts, dates, no PHI."""

    id: uuid.UUID
    practice_id: uuid.UUID
    alert_id: uuid.UUID | None
    detector: str
    status: str
    discovered_at: dt.datetime
    opened_at: dt.datetime
    affected_count: int
    largest_state_count: int | None
    conclusion: str | None
    notice_queued_at: dt.datetime | None
    notice_delivered_at: dt.datetime | None
    individuals_notified_at: dt.datetime | None
    hhs_notified_at: dt.datetime | None
    media_notified_at: dt.datetime | None
    hhs_logged_at: dt.datetime | None
    escalated: tuple[str, ...]

    def facts(self) -> ClockFacts:
        return ClockFacts(
            discovered_at=self.discovered_at,
            affected_count=self.affected_count,
            largest_state_count=self.largest_state_count,
            conclusion=self.conclusion,
            practice_notified_at=self.notice_delivered_at,
            individuals_notified_at=self.individuals_notified_at,
            hhs_notified_at=self.hhs_notified_at,
            media_notified_at=self.media_notified_at,
            hhs_logged_at=self.hhs_logged_at,
        )

    def deadlines(self) -> list[Deadline]:
        return deadlines(self.facts())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StaffIncident:
        fields = {name: row[name] for name in cls.__dataclass_fields__}
        fields["escalated"] = tuple(row["escalated"] or ())
        return cls(**fields)


@dataclass(frozen=True)
class StaffAlert:
    """An alert in the staff queue (from monitor.staff_queue): counts, no ids."""

    alert_id: uuid.UUID
    practice_id: uuid.UUID
    detector: str
    severity: str
    status: str
    patient_count: int
    event_count: int
    detected_at: dt.datetime


@dataclass(frozen=True)
class Overdue:
    """One overdue clock, for the console's banner."""

    incident_id: uuid.UUID
    label: str
    due_at: dt.datetime


def overdue_clocks(
    incidents: list[Incident] | list[StaffIncident], now: dt.datetime
) -> list[Overdue]:
    found = []
    for incident in incidents:
        if incident.status != "open":
            continue
        for deadline in incident.deadlines():
            if deadline.state(now) == "overdue":
                found.append(Overdue(incident.id, deadline.label, deadline.due_at))
    return found
