"""Witnessing: copies of the audit log's signed checkpoints that leave Perpetua.

A signed checkpoint proves the log only against a history that is not rewritten
by whoever holds both the signing key and the database: they could rewrite the
log and sign it anew. This module guards against that by sending each practice's
newest checkpoint, once a day, where Perpetua cannot take it back:

- by email to the practice's owners, through the outbox (``mail/outbox.py``),
  with the verifier key and how to check an exported archive against it;
- when configured, to an S3-compatible bucket under a compliance-mode Object
  Lock (``witness_store.py``).

Every copy that left is a row of ``audit.witnessings`` (migration 0072). A day is
claimed per practice and channel in the database before anything is sent, so
several service processes running the job send at most one copy per practice,
channel and day; a checkpoint already witnessed on a channel is not sent again.
Days are UTC days.

The message holds the signed note, the log's origin, the practice id and the
verifier key: no PHI. Logs name practices by id and failures by error type only.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpetua.access.claims import SYSTEM_ACTOR, Claims, system_claims
from perpetua.audit.checkpoint import (
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
)
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, open_keystore, signer_for
from perpetua.audit.witness_store import WitnessStore, WitnessStoreRefused
from perpetua.clock import Clock
from perpetua.contracts.service import owner_addresses
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.pool import Conn, Database
from perpetua.mail import outbox
from perpetua.observability.logging import get_logger

__all__ = [
    "EMAIL",
    "JOB_EVERY_SECONDS",
    "KIND",
    "OBJECT_STORE",
    "LastWitnessed",
    "WitnessReport",
    "Witnesses",
    "last_witnessed",
    "witness_email_body",
]

log = get_logger("perpetua.audit.witness")

KIND = "audit_witness"
EMAIL = "email"
OBJECT_STORE = "object_store"

# The job looks every ten minutes; the claims make all but the first look of the
# day (per practice and channel) a single cheap query.
JOB_EVERY_SECONDS = 600


@dataclass(frozen=True)
class WitnessReport:
    emailed: int = 0
    stored: int = 0
    without_owner: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return (
            f"emailed {self.emailed}, stored {self.stored}, "
            f"without owner {self.without_owner}, failed {self.failed}"
        )


@dataclass(frozen=True)
class _Claimed:
    size: int
    root: bytes
    note: str
    signed_at: dt.datetime


class _NoOwner(Exception):
    """Nobody to mail: the claim is rolled back so a later run can still send."""


def _practice_claims(practice_id: uuid.UUID) -> Claims:
    return Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id="audit-witness",
        practice_id=practice_id,
    )


def witness_email_body(
    *,
    practice_id: uuid.UUID,
    origin: str,
    verifier_key: str,
    size: int,
    signed_at: dt.datetime,
    note: str,
    console_origin: str,
) -> str:
    """The daily message: the signed checkpoint and how to use it. No PHI."""
    sealed = signed_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "This is your practice's daily audit log checkpoint from Perpetua. Keep "
        "this email: it lets you prove later that the audit log was not "
        "rewritten.\n\n"
        "WHAT IT IS\n"
        "Every access to patient information is recorded in your practice's "
        "audit log. Perpetua regularly signs a checkpoint: a short statement that "
        "the log held a number of events, with a fingerprint of all of them. This "
        "copy now sits in your mailbox, outside Perpetua. If anyone, Perpetua "
        "included, later changed, removed or reordered an event recorded before "
        "it, the log would no longer match this checkpoint, and the check below "
        "would fail.\n\n"
        f"Practice:       {practice_id}\n"
        f"Log origin:     {origin}\n"
        f"Events covered: {size}\n"
        f"Signed at:      {sealed}\n"
        f"Verifier key:   {verifier_key}\n\n"
        "The signed checkpoint follows between the two lines of dashes. To check "
        "an archive against it, save the lines in between, exactly as they are, "
        "in a file named checkpoint.txt.\n"
        "----------------------------------------\n"
        f"{note}"
        "----------------------------------------\n\n"
        "HOW TO CHECK\n"
        "1. Download your practice's audit log archive: in the console, Audit "
        f"log ({console_origin}/audit), or GET /api/v1/audit/archive with an "
        "owner's or manager's API token.\n"
        "2. Check the archive against the verifier key above, with Perpetua's "
        "open-source command (no network, no Perpetua account needed):\n"
        f"   perpetua audit verify --archive audit-log.jsonl --key '{verifier_key}'\n"
        "3. Check that it also contains this checkpoint:\n"
        f"   perpetua audit verify --archive audit-log.jsonl --key '{verifier_key}' "
        "--checkpoint checkpoint.txt\n"
        'Both should print "archive ok". Anything else means the archive does not '
        "match what was signed: keep this email and the archive, and contact your "
        "security officer.\n\n"
        "This email holds no patient information: only counts, fingerprints and "
        "a signature.\n"
    )


class Witnesses:
    """Sends each practice's newest checkpoint to its witnesses; one ``run`` is one
    pass over every practice with something new to witness today."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        console_origin: str,
        keystore: Keystore | None = None,
        data_dir: Path | None = None,
        store: WitnessStore | None = None,
        origin_host: str = DEFAULT_ORIGIN_HOST,
    ) -> None:
        if keystore is None and data_dir is None:
            raise ValueError("witnessing needs a keystore or a data directory")
        self._db = db
        self._clock = clock
        self._keystore = keystore
        self._data_dir = data_dir
        self.console_origin = console_origin.rstrip("/")
        self.store = store
        self.origin_host = origin_host

    @property
    def keystore(self) -> Keystore:
        # Opened on first use, so building the job list touches no files.
        if self._keystore is None:
            assert self._data_dir is not None
            self._keystore = open_keystore(self._data_dir)
        return self._keystore

    async def run(self, practice: uuid.UUID | None = None) -> WitnessReport:
        """Witness today's newest checkpoints: every practice, or just one."""
        now = self._clock.now()
        day = now.astimezone(dt.UTC).date()
        emailed = stored = without_owner = failed = 0

        for practice_id in await self._pending(EMAIL, day, practice):
            try:
                emailed += await self._email(practice_id, day, now)
            except _NoOwner:
                without_owner += 1
                log.warning("audit_witness_no_owner", practice_id=str(practice_id))
            except Exception as exc:
                # One practice's failure must not keep the others' copies back.
                failed += 1
                log.error(
                    "audit_witness_failed",
                    practice_id=str(practice_id),
                    channel=EMAIL,
                    error_type=type(exc).__name__,
                )

        if self.store is not None:
            pending = await self._pending(OBJECT_STORE, day, practice)
            if pending:
                # A bucket that could let a copy be deleted is refused before
                # anything is claimed or written.
                await asyncio.to_thread(self.store.check_object_lock)
            for practice_id in pending:
                try:
                    stored += await self._store(practice_id, day, now)
                except WitnessStoreRefused:
                    raise
                except Exception as exc:
                    failed += 1
                    log.error(
                        "audit_witness_failed",
                        practice_id=str(practice_id),
                        channel=OBJECT_STORE,
                        error_type=type(exc).__name__,
                    )

        return WitnessReport(emailed, stored, without_owner, failed)

    async def _pending(
        self, channel: str, day: dt.date, practice: uuid.UUID | None
    ) -> list[uuid.UUID]:
        async with self._db.transaction(system_claims("audit-witness")) as conn:
            cur = await conn.execute(
                "select audit_api.witness_pending(%s, %s) as practice_id",
                (channel, day),
            )
            found = [row["practice_id"] for row in await cur.fetchall()]
        return [p for p in found if practice is None or p == practice]

    async def _claim(
        self,
        conn: Conn,
        practice_id: uuid.UUID,
        channel: str,
        day: dt.date,
        now: dt.datetime,
    ) -> _Claimed | None:
        cur = await conn.execute(
            "select * from audit_api.witness_claim(%s, %s, %s, %s)",
            (practice_id, channel, day, now),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        return _Claimed(row["size"], bytes(row["root"]), row["note"], row["signed_at"])

    def _verifier(self, practice_id: uuid.UUID) -> tuple[str, NoteVerifier]:
        origin = practice_log_origin(str(practice_id), self.origin_host)
        class_key = self.keystore.current(practice_id, DataClass.AUDIT_SIGNING)
        return origin, signer_for(class_key, origin).verifier

    def _checked(self, practice_id: uuid.UUID, claimed: _Claimed) -> tuple[str, str]:
        # Never send a copy that would not verify against the key sent with it:
        # the practice would learn to ignore failures.
        origin, verifier = self._verifier(practice_id)
        opened = open_checkpoint(claimed.note, verifier, origin=origin)
        if opened.size != claimed.size or opened.root != claimed.root:
            raise RuntimeError("stored checkpoint row differs from its signed note")
        return origin, verifier.to_key()

    async def _email(
        self, practice_id: uuid.UUID, day: dt.date, now: dt.datetime
    ) -> int:
        async with self._db.transaction(_practice_claims(practice_id)) as conn:
            claimed = await self._claim(conn, practice_id, EMAIL, day, now)
            if claimed is None:
                return 0
            addresses = await owner_addresses(conn, practice_id)
            if not addresses:
                raise _NoOwner
            origin, verifier_key = self._checked(practice_id, claimed)
            body = witness_email_body(
                practice_id=practice_id,
                origin=origin,
                verifier_key=verifier_key,
                size=claimed.size,
                signed_at=claimed.signed_at,
                note=claimed.note,
                console_origin=self.console_origin,
            )
            subject = f"Audit log checkpoint {day.isoformat()}: keep this email"

            # The messages and their witnessing rows commit with the claim, or
            # none of them does.
            for address in addresses:
                await outbox.enqueue(
                    conn,
                    now,
                    kind=KIND,
                    to=address,
                    subject=subject,
                    body=body,
                    practice_id=practice_id,
                )
                await self._record(conn, practice_id, claimed, EMAIL, address, day, now)
        log.info(
            "audit_witness_emailed",
            practice_id=str(practice_id),
            size=claimed.size,
            recipients=len(addresses),
        )
        return 1

    async def _store(
        self, practice_id: uuid.UUID, day: dt.date, now: dt.datetime
    ) -> int:
        assert self.store is not None
        async with self._db.transaction(_practice_claims(practice_id)) as conn:
            claimed = await self._claim(conn, practice_id, OBJECT_STORE, day, now)
            if claimed is None:
                return 0
            self._checked(practice_id, claimed)

            # Written while the claim is held: if the write fails, the claim
            # rolls back and the next run tries again. A write that succeeded
            # before a failed commit leaves one more locked version of the same
            # key, which is harmless.
            destination = await asyncio.to_thread(
                self.store.put, practice_id, claimed.size, claimed.note, now
            )
            await self._record(
                conn, practice_id, claimed, OBJECT_STORE, destination, day, now
            )
        log.info(
            "audit_witness_stored", practice_id=str(practice_id), size=claimed.size
        )
        return 1

    async def _record(
        self,
        conn: Conn,
        practice_id: uuid.UUID,
        claimed: _Claimed,
        channel: str,
        destination: str,
        day: dt.date,
        now: dt.datetime,
    ) -> None:
        await conn.execute(
            "select audit_api.witness_record(%s, %s, %s, %s, %s, %s)",
            (practice_id, claimed.size, channel, destination, day, now),
        )


@dataclass(frozen=True)
class LastWitnessed:
    """The checkpoint last witnessed on one channel, and where it went."""

    channel: str
    size: int
    root: str
    checkpoint_time: dt.datetime | None
    note: str
    destinations: tuple[str, ...]
    witnessed_at: dt.datetime


async def last_witnessed(db: Database, claims: Claims) -> list[LastWitnessed]:
    """The last witnessing of each channel of the caller's practice (owners and
    managers; others get ``Forbidden`` from the database)."""
    async with db.transaction(claims) as conn:
        cur = await conn.execute("select * from audit_api.witnessed()")
        rows = list(await cur.fetchall())
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["channel"], []).append(row)
    found = []
    for channel, group in grouped.items():
        first = group[0]
        found.append(
            LastWitnessed(
                channel=channel,
                size=int(first["size"]),
                root=base64.b64encode(bytes(first["root"])).decode("ascii"),
                checkpoint_time=_note_time(first["note"]),
                note=first["note"],
                destinations=tuple(str(r["destination"]) for r in group),
                witnessed_at=first["witnessed_at"].astimezone(dt.UTC),
            )
        )
    return found


def _note_time(note: str) -> dt.datetime | None:
    # The signed note's own time line; the signature was checked when the copy
    # was sent, and the time is only shown here, not trusted.
    text = note.split("\n\n", 1)[0] + "\n"
    try:
        return parse_checkpoint(text).time
    except ValueError:
        return None
