"""Fetching Twilio recordings: the durable queue the webhook fills, and the worker
that empties it (the `calls.fetch_twilio` job inside `perpetua serve`, and
`perpetua calls fetch-twilio`).

For each queued recording, in this order:

1. the practice's retention decides first: with recordings opted out (0 days), or
   the call older than what is kept, nothing is requested from Twilio and
   nothing is written;
2. the call must be recorded (its status callback may come after the
   recording's): until then the fetch waits, with backoff;
3. the audio is downloaded from the practice's own Twilio account (`twilio.py`)
   and handed to ingestion like an upload: card-number spans known from the
   call's stored transcript are silenced, and a recording that cannot be made
   safe is refused;
4. when the practice chose so (the default), the recording is deleted at
   Twilio, so that audio with card numbers spoken in it does not stay there.

Each request to Twilio is recorded as an audit event with its outcome, in the
same transaction as the new state of the queue row. A 404 gives up; 5xx,
rate limits and network failures are retried with exponential backoff for a
bounded number of attempts; a 401 stops the practice's fetches until its owner
saves new credentials, and the calls settings say so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import Claims, system_claims
from perpetua.access.permissions import load_permissions
from perpetua.blobs import BlobShredded, BlobStore
from perpetua.calls import settings as call_settings
from perpetua.calls.errors import RecordingNotSilenceable, UnsupportedMedia
from perpetua.calls.models import IncomingCall
from perpetua.calls.service import Calls, practice_system_claims
from perpetua.calls.twilio import (
    Account,
    CredentialsRejected,
    RecordingGone,
    TwilioRecordings,
    TwilioRequestFailed,
)
from perpetua.calls.webhook import RecordingReady
from perpetua.clock import Clock
from perpetua.config import Settings
from perpetua.db.pool import Database
from perpetua.errors import InvalidInput, PerpetuaError
from perpetua.observability.logging import get_logger
from perpetua.records.gate import RecordsGate
from perpetua.records.vault import Vault
from perpetua.redaction import CARD_MARKER, SECURITY_CODE_MARKER, AudioSpan, SpanKind

log = get_logger("perpetua.calls.fetch")

MAX_ATTEMPTS = 8
FIRST_BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=6)
# Long enough for the largest download; a worker that stops leaves the fetch due
# again when it ends.
LEASE = dt.timedelta(minutes=10)
JOB_EVERY_SECONDS = 60
JOB_BATCH = 50
_MARKERS = {
    CARD_MARKER: SpanKind.CARD_NUMBER,
    SECURITY_CODE_MARKER: SpanKind.SECURITY_CODE,
}

Progress = Callable[[int, int], None]


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: 1, 2, 4... minutes."""
    wait: dt.timedelta = FIRST_BACKOFF * (2 ** max(0, attempts - 1))
    return min(wait, MAX_BACKOFF)


async def queue_recording(calls: Calls, claims: Claims, ready: RecordingReady) -> bool:
    """Queue a completed recording announced by a verified callback."""
    if claims.practice_id is None:
        raise InvalidInput("no practice to fetch the recording for")
    async with calls.db.transaction(claims) as conn:
        chosen = await call_settings.load(conn, claims.practice_id)
        stored = (chosen.twilio_account_sid or "").lower()
        if ready.account_sid is not None and ready.account_sid.lower() != stored:
            raise InvalidInput("the callback names another Twilio account")
        cur = await conn.execute(
            "select phi_api.queue_twilio_recording(%s, %s, %s, %s, %s) as queued",
            (
                ready.call_id,
                ready.recording_sid,
                ready.channels,
                ready.duration_seconds,
                calls.clock.now(),
            ),
        )
        row = await cur.fetchone()
    return bool(row and row["queued"])


@dataclass
class FetchReport:
    stored: int = 0
    deleted_at_twilio: int = 0
    not_stored: int = 0
    gone: int = 0
    refused: int = 0
    retrying: int = 0
    failed: int = 0
    credentials_rejected: int = 0

    def __str__(self) -> str:
        return (
            f"{self.stored} recordings stored, {self.deleted_at_twilio} deleted at "
            f"Twilio, {self.not_stored} not kept (retention), {self.gone} gone at "
            f"Twilio, {self.refused} refused, {self.retrying} to retry, "
            f"{self.failed} failed, {self.credentials_rejected} waiting for "
            "credentials"
        )


def spans_from_document(document: bytes, redactions: int) -> tuple[AudioSpan, ...]:
    """The seconds to silence, from the marker words of a stored transcript.

    Raises RecordingNotSilenceable when the transcript replaced more card numbers
    than it placed in time (it had no word timings for them)."""
    body = json.loads(document.decode("utf-8"))
    spans: list[AudioSpan] = []
    for turn in body.get("turns", []) if isinstance(body, dict) else []:
        for word in turn.get("words", []) if isinstance(turn, dict) else []:
            text = word.get("text") if isinstance(word, dict) else None
            kind = _MARKERS.get(text) if isinstance(text, str) else None
            if kind is not None:
                spans.append(AudioSpan(float(word["start"]), float(word["end"]), kind))
    if len(spans) < redactions:
        raise RecordingNotSilenceable()
    return tuple(spans)


class TwilioFetcher:
    """Works the fetch queue with the calls service's database, keys and clock."""

    def __init__(self, calls: Calls, api_base: str) -> None:
        self.calls = calls
        self.api_base = api_base

    async def due(self, practice: uuid.UUID | None, limit: int) -> list[Any]:
        async with self.calls.db.transaction(system_claims("twilio-fetch")) as conn:
            cur = await conn.execute(
                "select * from phi_api.twilio_fetches_due(%s, %s, %s)",
                (self.calls.clock.now(), practice, limit),
            )
            return list(await cur.fetchall())

    async def run(
        self,
        practice: uuid.UUID | None = None,
        *,
        limit: int = JOB_BATCH,
        progress: Progress | None = None,
    ) -> FetchReport:
        """One pass over the fetches due now (at most `limit`)."""
        report = FetchReport()
        found = await self.due(practice, limit)
        for done, row in enumerate(found, start=1):
            await self.fetch_one(row["id"], row["practice_id"], report)
            if progress is not None:
                progress(done, len(found))
        if found:
            log.info("twilio_recordings_fetched", report=str(report))
        return report

    async def _settle(
        self,
        claims: Claims,
        fetch_id: uuid.UUID,
        status: str,
        *,
        error: str | None = None,
        retry_at: dt.datetime | None = None,
        attempted: bool = False,
        request: str | None = None,
        outcome: str | None = None,
    ) -> None:
        async with self.calls.db.transaction(claims) as conn:
            await conn.execute(
                "select phi_api.settle_twilio_fetch(%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    fetch_id,
                    status,
                    error,
                    retry_at,
                    attempted,
                    request,
                    outcome,
                    self.calls.clock.now(),
                ),
            )

    async def _retry_or_fail(
        self,
        claims: Claims,
        fetch_id: uuid.UUID,
        row: Any,
        error: str,
        report: FetchReport,
    ) -> None:
        attempts = row["attempts"] + 1
        if attempts >= MAX_ATTEMPTS:
            await self._settle(claims, fetch_id, "failed", error=error, attempted=True)
            report.failed += 1
            return
        await self._settle(
            claims,
            fetch_id,
            row["status"],
            error=error,
            retry_at=self.calls.clock.now() + backoff(attempts),
            attempted=True,
        )
        report.retrying += 1

    async def _transcript_spans(
        self, claims: Claims, call_id: uuid.UUID
    ) -> tuple[AudioSpan, ...]:
        async with self.calls.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from phi_api.call_transcript_for_silencing(%s)", (call_id,)
            )
            found = await cur.fetchone()
        if found is None or found["redactions"] == 0:
            return ()
        chunks = []
        try:
            async for chunk in self.calls.store.iter_plaintext(
                claims, found["object_id"]
            ):
                chunks.append(chunk)
        except BlobShredded:
            return ()
        return spans_from_document(b"".join(chunks), found["redactions"])

    async def fetch_one(
        self, fetch_id: uuid.UUID, practice: uuid.UUID, report: FetchReport
    ) -> None:
        """Take one due fetch and carry it as far as it goes now."""
        claims = practice_system_claims(practice, f"twilio-fetch-{fetch_id}")
        now = self.calls.clock.now()
        async with self.calls.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from phi_api.take_twilio_fetch(%s, %s, %s)",
                (fetch_id, now, LEASE),
            )
            row = await cur.fetchone()
            if row is None:
                return
            chosen = await call_settings.load(conn, practice)
            token = await call_settings.twilio_token(conn, self.calls.vault, practice)

        if not chosen.twilio_account_sid or not token:
            await self._settle(
                claims, fetch_id, "credentials_rejected", error="twilio_not_configured"
            )
            report.credentials_rejected += 1
            return
        api = TwilioRecordings(self.api_base, Account(chosen.twilio_account_sid, token))
        if row["status"] == "delete_pending":
            if chosen.twilio_delete_after_fetch:
                await self._delete(claims, fetch_id, row, api, report)
            else:
                await self._settle(claims, fetch_id, "done")
            return

        # The opt-out is honoured before any request: what may not be kept is
        # not even downloaded.
        started = row["call_started_at"]
        days = chosen.recording_retention_days
        if days == 0 or (
            started is not None and started + dt.timedelta(days=days) <= now
        ):
            await self._settle(claims, fetch_id, "opted_out", error="not_retained")
            report.not_stored += 1
            return
        if started is None:
            # The call's own status callback has not arrived yet.
            await self._retry_or_fail(
                claims, fetch_id, row, "call_not_recorded", report
            )
            return

        try:
            audio = await asyncio.to_thread(
                api.download,
                row["recording_sid"],
                row["duration_seconds"],
                row["channels"],
            )
        except CredentialsRejected as exc:
            await self._settle(
                claims,
                fetch_id,
                "credentials_rejected",
                error=exc.code,
                request="api_call",
                outcome="denied",
            )
            report.credentials_rejected += 1
            return
        except RecordingGone as exc:
            await self._settle(
                claims,
                fetch_id,
                "gone",
                error=exc.code,
                request="api_call",
                outcome="not_found",
            )
            report.gone += 1
            return
        except TwilioRequestFailed as exc:
            if exc.retry:
                await self._retry_or_fail(claims, fetch_id, row, exc.code, report)
            else:
                await self._settle(
                    claims, fetch_id, "failed", error=exc.code, attempted=True
                )
                report.failed += 1
            return

        # The bytes are in memory only; ingestion checks, silences and stores
        # them exactly as it does an upload.
        try:
            spans = await self._transcript_spans(claims, row["call_id"])
            made = await self.calls.ingest(
                claims,
                IncomingCall(
                    direction=row["call_direction"],
                    started_at=started,
                    duration_seconds=row["call_duration_seconds"],
                    recording=audio,
                    call_id=row["call_id"],
                    known_spans=spans,
                ),
            )
        except (RecordingNotSilenceable, UnsupportedMedia) as exc:
            # Kept at Twilio: it is the only copy, and the practice decides.
            await self._settle(
                claims,
                fetch_id,
                "refused",
                error=exc.code,
                request="api_call",
                outcome="success",
            )
            report.refused += 1
            return
        except PerpetuaError as exc:
            await self._retry_or_fail(claims, fetch_id, row, exc.code, report)
            return

        next_status = "delete_pending" if chosen.twilio_delete_after_fetch else "done"
        await self._settle(
            claims,
            fetch_id,
            next_status,
            retry_at=now,
            request="api_call",
            outcome="success",
        )
        report.stored += made.recording_stored
        if next_status == "delete_pending":
            refreshed = dict(row)
            refreshed["status"] = "delete_pending"
            await self._delete(claims, fetch_id, refreshed, api, report)

    async def _delete(
        self,
        claims: Claims,
        fetch_id: uuid.UUID,
        row: Any,
        api: TwilioRecordings,
        report: FetchReport,
    ) -> None:
        try:
            deleted = await asyncio.to_thread(api.delete, row["recording_sid"])
        except CredentialsRejected as exc:
            await self._settle(
                claims,
                fetch_id,
                "credentials_rejected",
                error=exc.code,
                request="delete",
                outcome="denied",
            )
            report.credentials_rejected += 1
            return
        except TwilioRequestFailed as exc:
            await self._retry_or_fail(claims, fetch_id, row, exc.code, report)
            return
        await self._settle(
            claims,
            fetch_id,
            "done",
            request="delete",
            outcome="success" if deleted else "not_found",
        )
        report.deleted_at_twilio += 1


async def open_calls(db: Database, settings: Settings, clock: Clock) -> Calls:
    """The calls service with the installation's keys, for the job and the CLI."""
    vault = Vault.open(settings.data_dir)
    return Calls(
        db,
        RecordsGate(db, await load_permissions(db)),
        vault,
        BlobStore.open(settings, vault.keystore, db),
        clock,
    )


async def run_job(
    db: Database, settings: Settings, clock: Clock, api_base: str
) -> FetchReport:
    """The background job: one batch of due fetches, every minute."""
    return await TwilioFetcher(await open_calls(db, settings, clock), api_base).run()
