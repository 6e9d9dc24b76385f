"""The retention sweep: crypto-shreds recordings and transcripts whose retention
ended, keeps every call on legal hold, and leaves deletion certificates.

Each practice, each run:

1. every object whose call started more than its retention (days, per kind) ago
   and whose call is not on hold is deleted alone through the blob store: its
   wrapped data key is dropped and its ciphertext deleted, with a certificate;
2. objects of calls on hold are (again) moved to the blob store's hold bucket,
   so that step 3 cannot take them even if placing the hold was interrupted;
3. whole month keys are destroyed once every object of the month has expired,
   through `BlobStore.shred_expired_periods`, which certifies each.

The audit log is never touched: it is kept seven years whatever the practice
chose for recordings and transcripts.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from perpetua.access.claims import system_claims
from perpetua.blobs import BlobNotFound, BlobShredded, BlobStore
from perpetua.blobs.errors import BlobOnHold
from perpetua.calls import settings as call_settings
from perpetua.calls.service import practice_system_claims
from perpetua.clock import Clock
from perpetua.config import Settings
from perpetua.crypto.keystore import DataClass
from perpetua.db.pool import Database
from perpetua.observability.logging import get_logger
from perpetua.records.vault import Vault

log = get_logger("perpetua.calls.retention")

ACTOR = "retention-sweep"
REASON = "the practice's retention period for call data ended"
_CLASSES = {"recording": DataClass.RECORDINGS, "transcript": DataClass.TRANSCRIPTS}


def months_covering(days: int) -> int:
    """Whole months that surely cover `days` (a month has at least 28 days), so a
    month's key is destroyed only after its last object expired."""
    return math.ceil(days / 28)


@dataclass
class SweepReport:
    practices: int = 0
    objects_deleted: int = 0
    periods_destroyed: int = 0
    kept_on_hold: int = 0
    certificates: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.objects_deleted} objects deleted, "
            f"{self.periods_destroyed} month keys destroyed, "
            f"{self.kept_on_hold} held objects kept, "
            f"{self.practices} practices swept"
        )


Progress = Callable[[int, int], None]


async def sweep(
    db: Database,
    store: BlobStore,
    clock: Clock,
    *,
    progress: Progress | None = None,
) -> SweepReport:
    """One pass over every practice that stored call objects."""
    now = clock.now()
    report = SweepReport()
    async with db.transaction(system_claims("retention-sweep")) as conn:
        cur = await conn.execute(
            "select phi_api.call_retention_practices() as practice_id"
        )
        practices = [row["practice_id"] for row in await cur.fetchall()]
    for done, practice in enumerate(practices, start=1):
        await sweep_practice(db, store, practice, now, report)
        report.practices += 1
        if progress is not None:
            progress(done, len(practices))
    if report.objects_deleted or report.periods_destroyed:
        log.info(
            "retention_swept",
            objects=report.objects_deleted,
            periods=report.periods_destroyed,
            practices=report.practices,
        )
    return report


async def sweep_practice(
    db: Database,
    store: BlobStore,
    practice: uuid.UUID,
    now: dt.datetime,
    report: SweepReport,
) -> None:
    claims = practice_system_claims(practice, "retention-sweep")

    # 1. Expired objects, one by one.
    async with db.transaction(claims) as conn:
        cur = await conn.execute("select * from phi_api.call_media_due(%s)", (now,))
        due = list(await cur.fetchall())
        chosen = await call_settings.load(conn, practice)
    for row in due:
        object_id = row["object_id"]
        certificate: str | None = None
        try:
            made = await store.delete(claims, object_id, reason=REASON)
            certificate = made.certificate_id
        except BlobOnHold:
            report.kept_on_hold += 1
            continue
        except (BlobShredded, BlobNotFound):
            # Already gone with its month's key, or an earlier run stopped
            # between the two steps: only the link is left to retire.
            certificate = None
        async with db.transaction(claims) as conn:
            await conn.execute(
                "select phi_api.retire_call_media(%s, %s, %s)",
                (object_id, certificate, now),
            )
        report.objects_deleted += 1
        if certificate:
            report.certificates.append(certificate)

    # 2. Held objects stay out of their month's key whatever happened before.
    async with db.transaction(claims) as conn:
        cur = await conn.execute("select phi_api.held_call_objects() as object_id")
        held = [row["object_id"] for row in await cur.fetchall()]
    for object_id in held:
        try:
            await store.set_legal_hold(claims, object_id, held=True)
        except (BlobShredded, BlobNotFound):
            continue
    report.kept_on_hold += len(held)

    # 3. Whole months whose every object has expired.
    for kind, data_class in _CLASSES.items():
        made_certificates = await store.shred_expired_periods(
            practice,
            data_class,
            retention_months=months_covering(chosen.days(kind)),
            now=now,
            actor=ACTOR,
            reason=REASON,
        )
        report.periods_destroyed += len(made_certificates)
        report.certificates.extend(c.certificate_id for c in made_certificates)


async def run_job(db: Database, settings: Settings, clock: Clock) -> SweepReport:
    """The hourly background job: one sweep with the service's own keys."""
    keystore = Vault.open(settings.data_dir).keystore
    return await sweep(db, BlobStore.open(settings, keystore, db), clock)
