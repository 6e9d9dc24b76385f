"""The claims a transaction carries: the only identity PostgreSQL's policies see.

Shaped like PostgREST's `request.jwt.claims`; `practice_role` is not called `role`
because PostgREST would switch database roles on that key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ActorKind = Literal["user", "agent", "api_token", "staff", "system"]
Role = Literal["owner", "manager", "biller", "front_desk", "provider"]
ROLES: tuple[Role, ...] = ("owner", "manager", "biller", "front_desk", "provider")

# The actor id background jobs act under, so their work is attributable.
SYSTEM_ACTOR = uuid.UUID("00000000-0000-0000-0000-000000000000")


@dataclass(frozen=True)
class Claims:
    actor_kind: ActorKind
    actor_id: uuid.UUID
    request_id: str
    practice_id: uuid.UUID | None = None
    practice_role: Role | None = None
    purpose_of_use: str | None = None
    reason: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    # API tokens and agents: what the role is narrowed to (identity/scopes.py).
    scopes: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, str | list[str]]:
        out: dict[str, str | list[str]] = {
            "actor_kind": self.actor_kind,
            "sub": str(self.actor_id),
            "request_id": self.request_id,
        }
        optional = {
            "practice_id": str(self.practice_id) if self.practice_id else None,
            "practice_role": self.practice_role,
            "purpose_of_use": self.purpose_of_use,
            "reason": self.reason,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.scopes is not None:
            out["scopes"] = list(self.scopes)
        return out


def system_claims(request_id: str) -> Claims:
    return Claims(actor_kind="system", actor_id=SYSTEM_ACTOR, request_id=request_id)


@dataclass(frozen=True)
class SessionClaims:
    """A read's caller named by session token, for the database to resolve.

    The claims are derived in the reading transaction itself
    (`app.session_claims`): one round trip checks the session, sets the claims,
    writes the audit event and returns the rows. Only what describes the request
    travels from here; who the caller is, which practice and which role come from
    the session row alone.
    """

    token_hash: bytes = field(repr=False)
    now: datetime
    request_id: str
    purpose_of_use: str | None = None
    reason: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None

    def request_json(self) -> dict[str, str]:
        fields = {
            "request_id": self.request_id,
            "purpose_of_use": self.purpose_of_use,
            "reason": self.reason,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
        }
        return {k: v for k, v in fields.items() if v is not None}


# Who a PHI read may name: claims set by the service, or a session the database
# resolves itself.
ReadCaller = Claims | SessionClaims
