"""Request and response bodies of the JSON API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from perpetua.practices.service import PracticeView


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUpIn(Strict):
    practice_name: str = Field(min_length=1, max_length=200)
    owner_name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class SignInIn(Strict):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    practice_id: uuid.UUID | None = Field(
        default=None,
        description="Practice to act in; defaults to the only one, if just one.",
    )


class PracticeRenameIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class PracticeOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    trial_ends_at: dt.datetime
    trial_days_left: int
    plan: str | None
    status: Literal["trial", "active", "read_only"]

    @classmethod
    def of(cls, view: PracticeView, now: dt.datetime) -> PracticeOut:
        return cls(
            id=view.id,
            name=view.name,
            created_at=view.created_at,
            trial_ends_at=view.trial_ends_at,
            trial_days_left=view.trial_days_left(now),
            plan=view.plan,
            status=view.status(now),  # type: ignore[arg-type]
        )


class SessionOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    idle_timeout_seconds: int
    absolute_timeout_seconds: int


class SignedUpOut(BaseModel):
    practice: PracticeOut
    user_id: uuid.UUID
    session: SessionOut


class MembershipOut(BaseModel):
    practice_id: uuid.UUID
    practice_name: str
    role: str


class MeOut(BaseModel):
    user_id: uuid.UUID
    practice_id: uuid.UUID | None
    role: str | None
    memberships: list[MembershipOut]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    request_id: str | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
