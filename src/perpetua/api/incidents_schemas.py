"""Request and response bodies of the alert and incident API. The staff bodies
have no field that could carry PHI."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from perpetua.api.schemas import Strict
from perpetua.incidents.clocks import ClockName, ClockState, Deadline

PhiKind = Literal[
    "demographics", "contact", "insurance", "appointments", "calls", "clinical"
]


class AlertOut(BaseModel):
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


class EvidenceOut(BaseModel):
    id: uuid.UUID
    occurred_at: dt.datetime
    actor_kind: str
    actor_role: str | None
    action: str
    resource_type: str
    outcome: str
    patient_count: int


class AlertDetailOut(AlertOut):
    evidence: list[EvidenceOut]


class ClockOut(BaseModel):
    clock: ClockName
    label: str
    applies: bool
    due_at: dt.datetime
    done_at: dt.datetime | None
    state: ClockState

    @classmethod
    def of(cls, deadline: Deadline, now: dt.datetime) -> ClockOut:
        return cls(
            clock=deadline.clock,
            label=deadline.label,
            applies=deadline.applies,
            due_at=deadline.due_at,
            done_at=deadline.done_at,
            state=deadline.state(now),
        )


class IncidentOut(BaseModel):
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
    phi_kinds: list[str]
    affected_count: int
    affected_patient_ids: list[uuid.UUID]
    affected_computed_at: dt.datetime | None
    largest_state_count: int | None
    nature_extent: str | None
    unauthorized_person: str | None
    acquired_or_viewed: str | None
    mitigation: str | None
    conclusion: str | None
    assessed_at: dt.datetime | None
    contact: str | None
    notice_queued_at: dt.datetime | None
    notice_delivered_at: dt.datetime | None
    escalated: list[str]
    clocks: list[ClockOut]


class IncidentIn(Strict):
    discovered_at: dt.datetime
    description: str | None = Field(default=None, max_length=4000)
    suspect_actor_id: uuid.UUID | None = None
    window_from: dt.datetime | None = None
    window_to: dt.datetime | None = None


class AssessmentIn(Strict):
    nature_extent: str = Field(max_length=2000)
    unauthorized_person: str = Field(max_length=2000)
    acquired_or_viewed: str = Field(max_length=2000)
    mitigation: str = Field(max_length=2000)
    conclusion: Literal["breach", "low_probability"]
    phi_kinds: list[PhiKind] = Field(default_factory=list, max_length=6)
    description: str | None = Field(default=None, max_length=4000)
    contact: str | None = Field(default=None, max_length=500)
    largest_state_count: int | None = Field(default=None, ge=0, le=10_000_000)


class AffectedIn(Strict):
    window_from: dt.datetime | None = None
    window_to: dt.datetime | None = None


class ClockDoneIn(Strict):
    done_at: dt.datetime | None = None


class NoticeOut(BaseModel):
    notice_id: uuid.UUID
    recipients: int
    affected_count: int


class AffectedPatientOut(BaseModel):
    id: uuid.UUID
    name: str


class StaffAlertOut(BaseModel):
    alert_id: uuid.UUID
    practice_id: uuid.UUID
    detector: str
    severity: str
    status: str
    patient_count: int
    event_count: int
    detected_at: dt.datetime


class StaffIncidentOut(BaseModel):
    id: uuid.UUID
    practice_id: uuid.UUID
    alert_id: uuid.UUID | None
    detector: str
    status: str
    discovered_at: dt.datetime
    opened_at: dt.datetime
    affected_count: int
    conclusion: str | None
    notice_queued_at: dt.datetime | None
    notice_delivered_at: dt.datetime | None
    escalated: list[str]
    clocks: list[ClockOut]


class StaffIncidentIn(Strict):
    practice_id: uuid.UUID
    alert_id: uuid.UUID | None = None
    discovered_at: dt.datetime | None = None
