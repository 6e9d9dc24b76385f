"""Request and response bodies of the identity endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from perpetua.api.schemas import Strict


class SignInOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    state: Literal["full", "mfa_pending", "mfa_enrolment"] = Field(
        description="`full`: signed in. `mfa_pending`: send a second factor to "
        "/sessions/current/second-factor. `mfa_enrolment`: only /mfa endpoints "
        "are reachable until a factor is enrolled."
    )
    idle_timeout_seconds: int
    absolute_timeout_seconds: int


class SecondFactorIn(Strict):
    code: str | None = Field(default=None, max_length=20, description="TOTP code")
    recovery_code: str | None = Field(default=None, max_length=40)
    credential: dict[str, Any] | None = Field(
        default=None, description="PublicKeyCredential JSON from navigator.credentials"
    )


class SecondStepOut(BaseModel):
    token: str
    method: str
    recovery_codes_left: int | None = None


class ConfirmedOut(BaseModel):
    method: str
    recovery_codes_left: int | None = None


class WebAuthnOptionsOut(BaseModel):
    options: dict[str, Any]


class SessionItem(BaseModel):
    id: uuid.UUID
    practice_id: uuid.UUID | None
    state: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    ip: str | None
    user_agent: str | None
    current: bool


class EndedOut(BaseModel):
    ended: int


class ReauthIn(Strict):
    password: str = Field(min_length=1, max_length=1024)


class PasswordChangeIn(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class ResetRequestIn(Strict):
    email: str = Field(min_length=3, max_length=254)


class ResetIn(Strict):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=1024)


class StaffEnrolIn(Strict):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class SecurityKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


class FactorsOut(BaseModel):
    totp: bool
    security_keys: list[SecurityKeyOut]
    recovery_codes_left: int


class TotpStartOut(BaseModel):
    secret: str = Field(description="Shown once; enter it in an authenticator app.")
    otpauth_uri: str


class CodeIn(Strict):
    code: str = Field(min_length=1, max_length=20)


class EnrolledOut(BaseModel):
    token: str | None = Field(
        default=None,
        description="A new full session token when the session was held at "
        "enrolment; the old token no longer works.",
    )
    recovery_codes: list[str] | None = Field(
        default=None, description="Shown once, after the first factor."
    )


class KeyRegisterIn(Strict):
    name: str = Field(min_length=1, max_length=60)
    credential: dict[str, Any]


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class SecurityEventOut(BaseModel):
    id: int
    occurred_at: dt.datetime
    kind: str
    user_id: uuid.UUID | None
    user_name: str | None
    practice_id: uuid.UUID | None
    actor_kind: str
    actor_id: uuid.UUID | None
    reason: str | None
    ip: str | None
    user_agent: str | None
    detail: dict[str, Any]


class MemberOut(BaseModel):
    user_id: uuid.UUID
    full_name: str
    email: str
    role: str
    provider_id: uuid.UUID | None
    created_at: dt.datetime


class RoleIn(Strict):
    role: Literal["owner", "manager", "biller", "front_desk", "provider"]
    provider_id: uuid.UUID | None = None


class InvitationIn(Strict):
    email: str = Field(min_length=3, max_length=254)
    role: Literal["owner", "manager", "biller", "front_desk", "provider"]
    provider_id: uuid.UUID | None = None


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    created_at: dt.datetime
    expires_at: dt.datetime


class InvitationAcceptIn(Strict):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    full_name: str | None = Field(
        default=None, max_length=200, description="Needed when there is no account"
    )


class AcceptedOut(BaseModel):
    user_id: uuid.UUID
    practice_id: uuid.UUID


class SecuritySettingsIn(Strict):
    require_mfa: bool | None = None
    session_idle_minutes: int | None = Field(default=None, ge=1, le=240)


class SecuritySettingsOut(BaseModel):
    require_mfa: bool
    session_idle_minutes: int


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=80)
    scopes: list[str] = Field(min_length=1, max_length=40)


class TokenCreatedOut(BaseModel):
    id: uuid.UUID
    token: str = Field(description="Shown once. Send as `Authorization: Bearer`.")


class TokenOut(BaseModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    last_used_ip: str | None
    created_by_name: str | None


class MailOut(BaseModel):
    id: uuid.UUID
    kind: str
    to_address: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
