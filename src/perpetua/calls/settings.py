"""The practice's choices for calls: how long recordings and transcripts are kept,
the Twilio credentials its webhook is verified with and its recordings fetched
with, and whether a fetched recording is then deleted at Twilio.

Retention is counted in days from the start of the call, separately for
recordings and transcripts; 0 means the practice opted out and nothing of that
kind is ever written. The Twilio auth token is a secret shared with Twilio: it is
sealed under the practice's field key (bound to this table, column and practice)
before it reaches the database, and opened only in memory to check a signature or
to authenticate to Twilio's API.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from perpetua.access.claims import Claims
from perpetua.db.pool import Conn, Database
from perpetua.errors import Forbidden, InvalidInput
from perpetua.records.vault import Vault

DEFAULT_DAYS = 365
MAX_DAYS = 3650
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_AUTH_TOKEN = re.compile(r"[0-9A-Za-z]{16,128}")


@dataclass(frozen=True)
class CallSettings:
    practice_id: uuid.UUID
    recording_retention_days: int = DEFAULT_DAYS
    transcript_retention_days: int = DEFAULT_DAYS
    twilio_account_sid: str | None = None
    twilio_configured: bool = False
    updated_at: dt.datetime | None = None
    # Delete each recording at Twilio once Perpetua stored it.
    twilio_delete_after_fetch: bool = True
    # Twilio refused the stored credentials since they were last saved (shown
    # to owners only; the database answers False to anyone else).
    twilio_credentials_rejected: bool = False

    def days(self, kind: str) -> int:
        if kind == "recording":
            return self.recording_retention_days
        return self.transcript_retention_days


@dataclass(frozen=True)
class SettingsChange:
    recording_retention_days: int
    transcript_retention_days: int
    twilio_account_sid: str | None = None
    # None keeps the stored token; "" removes it.
    twilio_auth_token: str | None = None
    twilio_delete_after_fetch: bool = True


def _check_days(value: int, what: str) -> int:
    if not 0 <= value <= MAX_DAYS:
        raise InvalidInput(f"{what} must be between 0 and {MAX_DAYS} days")
    return value


async def load(conn: Conn, practice_id: uuid.UUID) -> CallSettings:
    """The practice's settings (defaults when it never chose)."""
    cur = await conn.execute(
        """
        select recording_retention_days, transcript_retention_days,
          twilio_account_sid, twilio_auth_token_ct is not null as configured,
          updated_at, twilio_delete_after_fetch,
          phi_api.twilio_credentials_rejected() as rejected
        from (select 1) one
        left join app.call_settings on practice_id = %s
        """,
        (practice_id,),
    )
    row = await cur.fetchone()
    if row is None or row["updated_at"] is None:
        return CallSettings(
            practice_id, twilio_credentials_rejected=bool(row and row["rejected"])
        )
    return CallSettings(
        practice_id,
        row["recording_retention_days"],
        row["transcript_retention_days"],
        row["twilio_account_sid"],
        row["configured"],
        row["updated_at"],
        row["twilio_delete_after_fetch"],
        row["rejected"],
    )


async def get(db: Database, claims: Claims) -> CallSettings:
    if claims.practice_id is None:
        raise Forbidden("this session does not act in a practice")
    async with db.transaction(claims) as conn:
        return await load(conn, claims.practice_id)


async def put(
    db: Database, vault: Vault, claims: Claims, change: SettingsChange
) -> CallSettings:
    """Save the practice's choices (owners; the policies refuse anyone else)."""
    practice = claims.practice_id
    if practice is None or claims.practice_role != "owner":
        raise Forbidden("only the practice's owners choose retention and telephony")
    recording = _check_days(change.recording_retention_days, "recording retention")
    transcript = _check_days(change.transcript_retention_days, "transcript retention")
    sid = (change.twilio_account_sid or "").strip() or None
    if sid is not None and not _ACCOUNT_SID.fullmatch(sid):
        raise InvalidInput("the Twilio account SID is AC followed by 32 hex digits")
    token = change.twilio_auth_token
    sealed: bytes | None = None
    if token:
        token = token.strip()
        if not _AUTH_TOKEN.fullmatch(token):
            raise InvalidInput("the Twilio auth token is 16 to 128 letters and digits")
        sealed = vault.seal(
            practice, "call_settings", "twilio_auth_token", practice, token
        )

    async with db.transaction(claims) as conn:
        # One statement: insert the first choice, or change the existing row;
        # the token column changes only when a new token (or "") was given.
        await conn.execute(
            "insert into app.call_settings as s (practice_id, "
            "recording_retention_days, transcript_retention_days, "
            "twilio_account_sid, twilio_auth_token_ct, twilio_delete_after_fetch, "
            "updated_at, updated_by) "
            "values (%(p)s, %(r)s, %(t)s, %(sid)s, %(tok)s, %(del)s, now(), %(by)s) "
            "on conflict (practice_id) do update set "
            "recording_retention_days = excluded.recording_retention_days, "
            "transcript_retention_days = excluded.transcript_retention_days, "
            "twilio_account_sid = excluded.twilio_account_sid, "
            "twilio_delete_after_fetch = excluded.twilio_delete_after_fetch, "
            "twilio_auth_token_ct = case when %(keep)s then s.twilio_auth_token_ct "
            "else excluded.twilio_auth_token_ct end, "
            "updated_at = now(), updated_by = excluded.updated_by",
            {
                "p": practice,
                "r": recording,
                "t": transcript,
                "sid": sid,
                "tok": sealed,
                "by": claims.actor_id,
                "keep": token is None,
                "del": change.twilio_delete_after_fetch,
            },
        )
        return await load(conn, practice)


async def twilio_token(conn: Conn, vault: Vault, practice_id: uuid.UUID) -> str | None:
    """The practice's Twilio auth token, opened in memory; None when not set."""
    cur = await conn.execute(
        "select twilio_auth_token_ct from app.call_settings where practice_id = %s",
        (practice_id,),
    )
    row = await cur.fetchone()
    if row is None or row["twilio_auth_token_ct"] is None:
        return None
    return vault.open_text(
        practice_id,
        "call_settings",
        "twilio_auth_token",
        practice_id,
        bytes(row["twilio_auth_token_ct"]),
    )
