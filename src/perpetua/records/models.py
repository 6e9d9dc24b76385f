"""Plaintext records as the service hands them to callers, after decryption."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    id: uuid.UUID
    display_name: str
    npi: str | None


@dataclass(frozen=True)
class Patient:
    id: uuid.UUID
    name: str
    birth_date: dt.date
    phone: str | None
    ehr_ref: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class Appointment:
    id: uuid.UUID
    patient_id: uuid.UUID
    provider_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None
    status: str
    patient_name: str | None = None


@dataclass(frozen=True)
class Coverage:
    id: uuid.UUID
    patient_id: uuid.UUID
    payer: str
    member_id: str
    group_number: str | None
    plan_type: str | None
    copay_cents: int | None
    deductible_status: str | None
    last_verified_at: dt.datetime | None


@dataclass(frozen=True)
class Call:
    id: uuid.UUID
    direction: str
    caller_number: str | None
    started_at: dt.datetime
    duration_seconds: int
    patient_id: uuid.UUID | None


@dataclass(frozen=True)
class AccessEvent:
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: uuid.UUID
    actor_role: str | None
    action: str
    resource_type: str
    purpose_of_use: str
    reason: str | None
    outcome: str
    request_id: str
    client_ip: str | None = None
