"""The calls service: one object the console, the API, the CLI and the retention
job share, so that every door applies the same rules.

Reads go through `phi_api` functions that record the access (the call list and
page as `view`, a transcript as `view`, a recording as `playback`) in the same
transaction, before the object id that opens the bytes comes back; the blob store
then streams the plaintext from memory, never from a file.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import SYSTEM_ACTOR, Claims
from perpetua.blobs import BlobShredded, BlobStore
from perpetua.calls import settings as call_settings
from perpetua.calls import transcripts
from perpetua.calls.errors import MediaDeleted
from perpetua.calls.fetch_review import REVIEW_ROLES, WAITING, FetchForReview
from perpetua.calls.ingest import ingest
from perpetua.calls.models import (
    CallDetail,
    CallSummary,
    Hold,
    IncomingCall,
    Ingested,
    StoredMedia,
)
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.errors import Forbidden, InvalidInput, NotFound
from perpetua.records.gate import RecordsGate, read
from perpetua.records.vault import Vault
from perpetua.redaction import ensure_no_card_number

HOLD_ROLES = ("owner", "manager")


def practice_system_claims(
    practice_id: uuid.UUID, request_id: str, actor_id: uuid.UUID = SYSTEM_ACTOR
) -> Claims:
    """Claims for telephony work in one practice, attributed to `actor_id`."""
    return Claims(
        actor_kind="system",
        actor_id=actor_id,
        request_id=request_id,
        practice_id=practice_id,
    )


@dataclass(frozen=True)
class Playback:
    content_type: str
    chunks: AsyncIterator[bytes]


class Calls:
    def __init__(
        self,
        db: Database,
        gate: RecordsGate,
        vault: Vault,
        store: BlobStore,
        clock: Clock,
    ) -> None:
        self.db = db
        self.gate = gate
        self.vault = vault
        self.store = store
        self.clock = clock

    # Ingestion

    async def ingest(self, claims: Claims, incoming: IncomingCall) -> Ingested:
        if claims.actor_kind not in ("system", "agent"):
            raise Forbidden("calls are recorded by telephony and agents only")
        return await ingest(
            self.db, self.vault, self.store, claims, incoming, self.clock.now()
        )

    # Reading

    def _caller(self, practice: uuid.UUID, row: dict[str, Any]) -> str | None:
        return self.vault.open_text(
            practice, "calls", "caller_number", row["id"], row["caller_number_ct"]
        )

    async def list_calls(
        self, claims: Claims, since: dt.datetime, until: dt.datetime
    ) -> list[CallSummary]:
        """Calls in a range, newest first (at most 500), with what is stored."""
        practice = _practice(claims)
        if until <= since:
            raise InvalidInput("the range must end after it starts")
        await self.gate.require(claims, "calls", "view", "call")
        fetched = await read(
            self.db,
            claims,
            "select * from phi_api.list_calls_media(%s, %s)",
            (since, until),
        )
        return [
            CallSummary(
                r["id"],
                r["direction"],
                self._caller(practice, r),
                r["started_at"],
                r["duration_seconds"],
                r["patient_id"],
                r["has_recording"],
                r["has_transcript"],
                r["on_hold"],
            )
            for r in fetched.ensure()
        ]

    async def call_detail(self, claims: Claims, call_id: uuid.UUID) -> CallDetail:
        """One call, what is stored for it and its legal hold (a view)."""
        practice = _practice(claims)
        await self.gate.require(claims, "calls", "view", "call", [call_id])
        fetched = await read(
            self.db, claims, "select * from phi_api.read_call_media(%s)", (call_id,)
        )
        rows = fetched.ensure()
        if not rows:
            raise NotFound()
        first = rows[0]
        media = tuple(
            StoredMedia(
                r["kind"],
                r["content_type"],
                r["redactions"],
                r["silenced"],
                r["stored_at"],
                r["deleted_at"],
                r["certificate_id"],
            )
            for r in rows
            if r["kind"] is not None
        )
        hold = None
        if first["hold_placed_at"] is not None:
            reason = self.vault.open_text(
                practice, "call_holds", "reason", call_id, first["hold_reason_ct"]
            )
            hold = Hold(first["hold_placed_at"], reason or "")
        return CallDetail(
            CallSummary(
                first["id"],
                first["direction"],
                self._caller(practice, first),
                first["started_at"],
                first["duration_seconds"],
                first["patient_id"],
                any(m.kind == "recording" and not m.deleted_at for m in media),
                any(m.kind == "transcript" and not m.deleted_at for m in media),
                hold is not None,
            ),
            media,
            hold,
        )

    async def _open(
        self, claims: Claims, call_id: uuid.UUID, kind: str
    ) -> tuple[uuid.UUID, str]:
        # The audit event (view or playback) commits before the id comes back.
        _practice(claims)
        action = "view"
        await self.gate.require(claims, "calls", action, f"call_{kind}", [call_id])
        fetched = await read(
            self.db,
            claims,
            "select * from phi_api.open_call_media(%s, %s)",
            (call_id, kind),
        )
        rows = fetched.ensure()
        if not rows:
            raise NotFound()
        if rows[0]["deleted_at"] is not None:
            raise MediaDeleted()
        return rows[0]["object_id"], rows[0]["content_type"]

    async def transcript(
        self, claims: Claims, call_id: uuid.UUID
    ) -> list[dict[str, object]]:
        """The redacted transcript's turns (recorded as a view)."""
        object_id, _ = await self._open(claims, call_id, "transcript")
        chunks = []
        try:
            async for chunk in self.store.iter_plaintext(claims, object_id):
                chunks.append(chunk)
        except BlobShredded:
            raise MediaDeleted() from None
        return transcripts.load_document(b"".join(chunks))

    async def playback(self, claims: Claims, call_id: uuid.UUID) -> Playback:
        """The recording as a stream of decrypted chunks (recorded as playback).

        The first chunk is read before this returns, so a refusal or a
        destroyed key is reported as an error instead of a broken stream."""
        object_id, content_type = await self._open(claims, call_id, "recording")
        chunks = self.store.iter_plaintext(claims, object_id)
        try:
            first = await anext(chunks, b"")
        except BlobShredded:
            raise MediaDeleted() from None

        async def stream() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk

        return Playback(content_type, stream())

    # Legal hold

    async def _hold_allowed(self, claims: Claims, call_id: uuid.UUID) -> None:
        if claims.actor_kind != "user" or claims.practice_role not in HOLD_ROLES:
            await self.gate.record_denied(
                claims, "update", "call_legal_hold", [call_id]
            )
            raise Forbidden("only owners and managers place or release legal holds")

    async def place_hold(self, claims: Claims, call_id: uuid.UUID, reason: str) -> None:
        """Suspend deletion of the call's recording and transcript."""
        practice = _practice(claims)
        await self._hold_allowed(claims, call_id)
        cleaned = " ".join(reason.split())
        if not 3 <= len(cleaned) <= 500:
            raise InvalidInput("give the reason for the hold in 3 to 500 characters")
        ensure_no_card_number(cleaned)
        sealed = self.vault.seal(practice, "call_holds", "reason", call_id, cleaned)
        async with self.gate.transaction(claims, "create", "call_legal_hold") as conn:
            cur = await conn.execute(
                "select phi_api.place_call_hold(%s, %s) as objects", (call_id, sealed)
            )
            row = await cur.fetchone()
        if row is None or row["objects"] is None:
            raise NotFound()

        # The hold is recorded; the blob store now keeps each object out of its
        # month's key, so destroying the month cannot take it.
        await self._apply_hold(practice, claims.request_id, row["objects"], True)

    async def release_hold(self, claims: Claims, call_id: uuid.UUID) -> None:
        practice = _practice(claims)
        await self._hold_allowed(claims, call_id)
        async with self.gate.transaction(claims, "update", "call_legal_hold") as conn:
            cur = await conn.execute(
                "select phi_api.release_call_hold(%s) as objects", (call_id,)
            )
            row = await cur.fetchone()
        if row is None or row["objects"] is None:
            raise NotFound("this call is not on legal hold")
        await self._apply_hold(practice, claims.request_id, row["objects"], False)

    async def _apply_hold(
        self,
        practice: uuid.UUID,
        request_id: str,
        objects: list[uuid.UUID],
        held: bool,
    ) -> None:
        # The member's hold was checked and recorded by the policies above; the
        # key work in the blob store is the system's, as the retention job's is.
        system = practice_system_claims(practice, request_id)
        for object_id in objects:
            try:
                await self.store.set_legal_hold(system, object_id, held=held)
            except BlobShredded:
                continue

    # Twilio recording fetches

    async def twilio_fetches_for_review(self, claims: Claims) -> list[FetchForReview]:
        """Twilio recordings left to the practice: given up, stopped by rejected
        credentials, or pending for over an hour (owners and managers; a view)."""
        _practice(claims)

        # Refused here for a clear answer; the database refuses (and records)
        # any other role too.
        if claims.actor_kind != "user" or claims.practice_role not in REVIEW_ROLES:
            await self.gate.record_denied(claims, "view", "twilio_recording", [])
            raise Forbidden("only owners and managers see Twilio recording fetches")
        fetched = await read(
            self.db,
            claims,
            "select * from phi_api.twilio_fetches_for_review(%s, %s)",
            (self.clock.now(), WAITING),
        )
        return [FetchForReview.from_row(r) for r in fetched.ensure()]

    # Settings

    async def settings(self, claims: Claims) -> call_settings.CallSettings:
        return await call_settings.get(self.db, claims)

    async def change_settings(
        self, claims: Claims, change: call_settings.SettingsChange
    ) -> call_settings.CallSettings:
        if claims.practice_role != "owner" or claims.actor_kind != "user":
            await self.gate.record_denied(claims, "update", "call_settings", [])
            raise Forbidden("only the practice's owners choose retention and telephony")
        return await call_settings.put(self.db, self.vault, claims, change)

    async def deletion_certificates(self, claims: Claims) -> list[dict[str, Any]]:
        """The practice's deletion certificates (owners)."""
        if claims.practice_role != "owner":
            await self.gate.record_denied(claims, "view", "deletion_certificate", [])
            raise Forbidden("only owners see deletion certificates")
        found = await self.store.list_certificates(claims)
        return [json.loads(json.dumps(c, default=str)) for c in found]


def _practice(claims: Claims) -> uuid.UUID:
    if claims.practice_id is None:
        raise NotFound("this session does not act in a practice")
    return claims.practice_id
