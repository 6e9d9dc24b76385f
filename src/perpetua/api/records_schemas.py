"""Bodies of the records API. Patient identifiers travel only in bodies, never in
URLs, where proxies and browsers would keep them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["booked", "confirmed", "cancelled", "no_show", "completed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderIn(Strict):
    display_name: str = Field(min_length=1, max_length=200)
    npi: str | None = Field(default=None, pattern=r"^[0-9]{10}$")


class ProviderOut(BaseModel):
    id: uuid.UUID
    display_name: str
    npi: str | None


class PatientIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    birth_date: dt.date
    phone: str | None = Field(default=None, max_length=40)
    ehr_ref: str | None = Field(default=None, max_length=100)


class PatientOut(BaseModel):
    id: uuid.UUID
    name: str
    birth_date: dt.date
    phone: str | None
    ehr_ref: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class PatientSearchIn(Strict):
    phone: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    birth_date: dt.date | None = None


class AppointmentIn(Strict):
    patient_id: uuid.UUID
    provider_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None = Field(default=None, max_length=500)
    status: Status = "booked"


class AppointmentPatch(Strict):
    provider_id: uuid.UUID | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    reason: str | None = Field(default=None, max_length=500)
    status: Status | None = None


class AppointmentOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    provider_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None
    status: str
    patient_name: str | None = None


class CoverageIn(Strict):
    payer: str = Field(min_length=1, max_length=200)
    member_id: str = Field(min_length=1, max_length=64)
    group_number: str | None = Field(default=None, max_length=64)
    plan_type: (
        Literal["HMO", "PPO", "EPO", "POS", "HDHP", "Medicare", "Medicaid", "other"]
        | None
    ) = None
    copay_cents: int | None = Field(default=None, ge=0, le=10_000_000)
    deductible_status: Literal["met", "not_met", "unknown"] | None = None
    last_verified_at: dt.datetime | None = None


class CoverageOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    payer: str
    member_id: str
    group_number: str | None
    plan_type: str | None
    copay_cents: int | None
    deductible_status: str | None
    last_verified_at: dt.datetime | None


class CoverageSearchIn(Strict):
    member_id: str = Field(min_length=1, max_length=64)


class CallIn(Strict):
    direction: Literal["inbound", "outbound"]
    started_at: dt.datetime
    duration_seconds: int = Field(default=0, ge=0, le=86_400)
    caller_number: str | None = Field(default=None, max_length=40)
    patient_id: uuid.UUID | None = None


class CallOut(BaseModel):
    id: uuid.UUID
    direction: str
    caller_number: str | None
    started_at: dt.datetime
    duration_seconds: int
    patient_id: uuid.UUID | None


class BreakGlassIn(Strict):
    reason: str = Field(min_length=10, max_length=500)
    minutes: int = Field(default=60, ge=1, le=240)


class BreakGlassOut(BaseModel):
    patient_id: uuid.UUID
    expires_at: dt.datetime
    purpose_of_use: str = "BTG"


class AccessEventOut(BaseModel):
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: uuid.UUID
    actor_name: str | None = None
    actor_role: str | None
    action: str
    resource_type: str
    purpose_of_use: str
    reason: str | None
    outcome: str
    request_id: str
    client_ip: str | None = None
