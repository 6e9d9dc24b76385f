"""Guards the account's security history: every sign-in, second-factor change,
password change, role change, revoked session and invitation becomes a row in
`app.security_events`, with who acted, when, from which address and browser.

These facts are data, never log lines. Rows are only ever added (through a
database function), so a member cannot erase what happened; what each reader may
see is decided by the table's row-level policy: their own history, and for an owner
the practice's.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from perpetua.db.pool import Conn, Database

# Kinds are colon-shaped tags, so that they group and filter naturally.
SIGNIN_SUCCEEDED = "account:signin:success"
SIGNIN_FAILED = "account:signin:failure"
MFA_FAILED = "account:mfa:failure"
MFA_USED = "account:mfa:used"
MFA_ADDED = "account:mfa:added"
MFA_REMOVED = "account:mfa:removed"
RECOVERY_CODE_USED = "account:recovery_code:used"
RECOVERY_CODES_ISSUED = "account:recovery_code:issued"
PASSWORD_CHANGED = "account:password:changed"  # noqa: S105 - an event kind
PASSWORD_RESET_REQUESTED = "account:password:reset_requested"  # noqa: S105 - an event kind
PASSWORD_RESET = "account:password:reset"  # noqa: S105 - an event kind
SESSION_REVOKED = "account:session:revoked"
ROLE_CHANGED = "practice:member:role_changed"
MEMBER_REMOVED = "practice:member:removed"
INVITATION_SENT = "practice:invitation:sent"
INVITATION_ACCEPTED = "practice:invitation:accepted"
INVITATION_REVOKED = "practice:invitation:revoked"
SECURITY_SETTINGS_CHANGED = "practice:security:settings_changed"
API_TOKEN_CREATED = "practice:api_token:created"  # noqa: S105 - an event kind
API_TOKEN_REVOKED = "practice:api_token:revoked"  # noqa: S105 - an event kind
STAFF_CREATED = "staff:account:created"


@dataclass(frozen=True)
class Actor:
    """Who did it and from where; `kind` is 'anonymous' before anyone is known."""

    kind: str
    id: uuid.UUID | None
    ip: str | None
    user_agent: str | None


async def record(
    db: Database,
    at: dt.datetime,
    kind: str,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    practice_id: uuid.UUID | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one row. `detail` carries ids and names of things, never secrets."""
    async with db.transaction(None) as conn:
        await record_in(
            conn,
            at,
            kind,
            actor,
            user_id=user_id,
            practice_id=practice_id,
            reason=reason,
            detail=detail,
        )


async def record_in(
    conn: Conn,
    at: dt.datetime,
    kind: str,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    practice_id: uuid.UUID | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Like `record`, inside the caller's transaction, so the row commits (or not)
    with the change it describes."""
    await conn.execute(
        "select app.record_security_event(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            at,
            kind,
            user_id,
            practice_id,
            actor.kind,
            actor.id,
            reason,
            actor.ip,
            actor.user_agent,
            json.dumps(detail or {}),
        ),
    )


_COLUMNS = """
  e.id, e.occurred_at, e.kind, e.user_id, u.full_name as user_name, e.practice_id,
  e.actor_kind, e.actor_id, e.reason, host(e.ip) as ip, e.user_agent, e.detail
"""


async def own_history(conn: Conn, user_id: uuid.UUID, limit: int = 200) -> list[Any]:
    cur = await conn.execute(
        f"select {_COLUMNS} from app.security_events e "
        "left join app.users u on u.id = e.user_id "
        "where e.user_id = %s order by e.occurred_at desc, e.id desc limit %s",
        (user_id, limit),
    )
    return list(await cur.fetchall())


async def practice_history(
    conn: Conn, practice_id: uuid.UUID, limit: int = 500
) -> list[Any]:
    """The practice's rows and its members' account rows; the policy lets only
    owners see them."""
    cur = await conn.execute(
        f"select {_COLUMNS} from app.security_events e "
        "left join app.users u on u.id = e.user_id "
        "where e.practice_id = %s or e.user_id in ("
        "  select m.user_id from app.memberships m where m.practice_id = %s"
        ") order by e.occurred_at desc, e.id desc limit %s",
        (practice_id, practice_id, limit),
    )
    return list(await cur.fetchall())
