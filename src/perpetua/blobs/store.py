"""The blob store service: encrypted objects recorded in `phi.blob_objects`.

Guards blob access the way the records services guard rows: every read and
write runs in a transaction carrying the caller's claims, row-level security
decides what is visible, and the audit event is written before any byte is
decrypted. Streaming work (encryption, decryption, storage I/O) runs in a
worker thread so the event loop never blocks; memory stays at a few segments
whatever the object's size.

Shredding order, chosen so that a crash at any step loses no held object and
leaves nothing readable that should not be: (1) rewrap held objects into the
`hold` bucket, (2) destroy the period's class key (tombstone first), (3) drop
the wrapped data keys and record the certificate in the database, (4) delete
the ciphertext. Rerunning the sweep finishes an interrupted one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import SYSTEM_ACTOR, Claims
from perpetua.blobs import sealing
from perpetua.blobs.errors import (
    BlobError,
    BlobNotFound,
    BlobOnHold,
    BlobShredded,
    BlobUnreadable,
)
from perpetua.blobs.objects import ObjectStore, open_objects
from perpetua.config import Settings
from perpetua.crypto.digests import Progress
from perpetua.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    KeyDestroyed,
    KeyNotFound,
)
from perpetua.crypto.keystore import (
    BUCKETED_CLASSES,
    HOLD_PERIOD,
    DataClass,
    DeletionCertificate,
    Keystore,
    period_of,
)
from perpetua.crypto.streaming import DEFAULT_SEGMENT_SIZE, BinaryReader, BinaryWriter
from perpetua.db.pool import Conn, Database
from perpetua.errors import Forbidden, NoValidClaims

__all__ = ["BLOB_CLASSES", "BlobRef", "BlobStore"]

BLOB_CLASSES = frozenset(
    {DataClass.RECORDINGS, DataClass.TRANSCRIPTS, DataClass.DOCUMENTS}
)
_NO_BUCKET = "_"
_BATCH = 200


@dataclass(frozen=True)
class BlobRef:
    """What the database knows about one stored object; no key material."""

    object_id: uuid.UUID
    data_class: DataClass
    period: str
    key_bucket: str
    key_version: int
    size: int
    stored_size: int
    sha256: str
    legal_hold: bool
    created_at: dt.datetime
    patient_id: uuid.UUID | None = None
    shredded_at: dt.datetime | None = None
    certificate_id: uuid.UUID | None = None


@dataclass(frozen=True)
class _Row:
    ref: BlobRef
    practice_id: uuid.UUID
    wrapped: bytes | None

    @property
    def storage_key(self) -> str:
        ref = self.ref
        return _storage_key(self.practice_id, ref.data_class, ref.period, ref.object_id)


def _storage_key(
    practice_id: uuid.UUID, data_class: DataClass, period: str, object_id: uuid.UUID
) -> str:
    return f"{practice_id}/{data_class}/{period}/{object_id}"


def _key_period(bucket: str) -> str | None:
    return None if bucket == _NO_BUCKET else bucket


def _period_end(period: str, months: int) -> dt.datetime:
    """The first instant after `period` plus `months` months, in UTC."""
    year, month = (int(part) for part in period.split("-"))
    index = year * 12 + (month - 1) + 1 + months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def _system_claims(practice_id: uuid.UUID, request_id: str) -> Claims:
    return Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id=request_id,
        practice_id=practice_id,
    )


def _unreadable(exc: CryptoError) -> BlobUnreadable:
    if isinstance(exc, KeyDestroyed):
        return BlobUnreadable(
            "key_destroyed",
            "The stored object's key was destroyed (crypto-shredded); "
            f"certificate {exc.certificate_id}",
        )
    if isinstance(exc, DecryptionFailed):
        return BlobUnreadable(exc.reason, f"{BlobUnreadable.title}: {exc}")
    if isinstance(exc, KeyNotFound):
        return BlobUnreadable("key_missing", f"{BlobUnreadable.title}: {exc}")
    return BlobUnreadable("crypto", f"{BlobUnreadable.title}: {exc}")


class BlobStore:
    """Encrypted objects for every practice; see the package docstring."""

    def __init__(
        self,
        objects: ObjectStore,
        keystore: Keystore,
        db: Database,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.objects = objects
        self.keystore = keystore
        self.db = db
        self._segment_size = segment_size

    @classmethod
    def open(cls, settings: Settings, keystore: Keystore, db: Database) -> BlobStore:
        """The store the settings name: `<data-dir>/blobs` or an S3 bucket."""
        return cls(open_objects(settings, "blobs"), keystore, db)

    # Writing

    async def put(
        self,
        claims: Claims,
        data_class: DataClass,
        object_id: uuid.UUID,
        reader: BinaryReader,
        *,
        at: dt.datetime,
        patient_id: uuid.UUID | None = None,
    ) -> BlobRef:
        """Encrypt and store everything `reader` yields, as object `object_id`.

        `reader` is read in a worker thread and must not spool plaintext to disk.
        `at` (timezone-aware) picks the retention period.
        """
        practice = _practice(claims)
        data_class = _blob_class(data_class)
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware")
        period = period_of(at.astimezone(dt.UTC))
        bucket = period if data_class in BUCKETED_CLASSES else _NO_BUCKET
        key = _storage_key(practice, data_class, period, object_id)

        try:
            sealed = await asyncio.to_thread(
                sealing.seal_object,
                self.keystore,
                self.objects,
                key,
                practice_id=practice,
                data_class=data_class,
                object_id=object_id,
                key_period=_key_period(bucket),
                reader=reader,
                segment_size=self._segment_size,
            )
        except KeyDestroyed:
            # Never write into a shredded month: nobody could ever read it.
            raise BlobShredded(
                "The retention period of this time was already destroyed"
            ) from None

        # The row is what makes the object exist; without it the ciphertext is
        # an orphan nobody can open, so remove it.
        try:
            async with self.db.transaction(claims) as conn:
                await conn.execute(
                    "select phi_api.record_blob("
                    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        object_id, patient_id, str(data_class), period, bucket,
                        sealed.key_version, sealed.wrapped_data_key, sealed.size,
                        sealed.stored_size, sealed.sha256, at,
                    ),
                )  # fmt: skip
        except BaseException:
            await asyncio.to_thread(self.objects.delete, key)
            raise
        return BlobRef(
            object_id=object_id,
            data_class=data_class,
            period=period,
            key_bucket=bucket,
            key_version=sealed.key_version,
            size=sealed.size,
            stored_size=sealed.stored_size,
            sha256=sealed.sha256,
            legal_hold=False,
            created_at=at,
            patient_id=patient_id,
        )

    # Reading

    async def describe(self, claims: Claims, object_id: uuid.UUID) -> BlobRef:
        """The object's metadata (audited as a view)."""
        return (await self._read_row(claims, object_id, "view")).ref

    async def read_into(
        self,
        claims: Claims,
        object_id: uuid.UUID,
        writer: BinaryWriter,
        *,
        progress: Progress | None = None,
    ) -> int:
        """Decrypt the object into `writer`; return its size.

        On an error `writer` holds a prefix that must be discarded.
        """
        row = await self._readable_row(claims, object_id)
        try:
            return await asyncio.to_thread(
                sealing.unseal_object,
                self.keystore,
                self.objects,
                row.storage_key,
                writer,
                **self._context(row),
                progress=progress,
            )
        except CryptoError as exc:
            raise _unreadable(exc) from exc
        except FileNotFoundError:
            raise BlobUnreadable("missing", "The stored object is missing") from None

    async def iter_plaintext(
        self, claims: Claims, object_id: uuid.UUID
    ) -> AsyncIterator[bytes]:
        """Yield authenticated plaintext chunks, for streaming responses.

        Truncation is only known at the end: a consumer must treat an error
        after some chunks as a failed transfer.
        """
        row = await self._readable_row(claims, object_id)
        chunks: Generator[bytes, None, None] = sealing.iter_unsealed(
            self.keystore, self.objects, row.storage_key, **self._context(row)
        )
        done = object()
        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(next, chunks, done)
                except CryptoError as exc:
                    raise _unreadable(exc) from exc
                except FileNotFoundError:
                    raise BlobUnreadable(
                        "missing", "The stored object is missing"
                    ) from None
                if chunk is done:
                    return
                assert isinstance(chunk, bytes)
                yield chunk
        finally:
            await asyncio.to_thread(chunks.close)

    # Legal hold and deletion

    async def set_legal_hold(
        self, claims: Claims, object_id: uuid.UUID, *, held: bool
    ) -> BlobRef:
        """Place or lift a legal hold. A held recording or transcript has its data
        key rewrapped into the practice's `hold` bucket at once, so destroying its
        month's key leaves it readable."""
        for _attempt in range(3):
            row = await self._read_row(claims, object_id, "view")
            ref = row.ref
            if ref.shredded_at is not None:
                raise BlobShredded()
            assert row.wrapped is not None
            bucket, version, wrapped = ref.key_bucket, ref.key_version, row.wrapped
            bucketed = ref.data_class in BUCKETED_CLASSES
            if bucketed and held and ref.key_bucket != HOLD_PERIOD:
                bucket = HOLD_PERIOD
            elif bucketed and not held and ref.key_bucket == HOLD_PERIOD:
                bucket = ref.period
            if bucket != ref.key_bucket:
                try:
                    wrapped, version = await asyncio.to_thread(
                        self.keystore.move_data_key,
                        row.practice_id,
                        ref.data_class,
                        object_id,
                        row.wrapped,
                        from_period=_key_period(ref.key_bucket),
                        to_period=_key_period(bucket),
                    )
                except KeyDestroyed as exc:
                    if held:
                        raise _unreadable(exc) from exc
                    # Lifted after its month was shredded: the object goes alone,
                    # as it would have gone with its month.
                    await self._write_hold(claims, row, held, ref.key_bucket,
                                           ref.key_version, row.wrapped)  # fmt: skip
                    await self.delete(
                        claims,
                        object_id,
                        reason="legal hold lifted after its retention period ended",
                    )
                    return (await self._read_row(claims, object_id, "view")).ref
            if await self._write_hold(claims, row, held, bucket, version, wrapped):
                return BlobRef(
                    **{
                        **ref.__dict__,
                        "legal_hold": held,
                        "key_bucket": bucket,
                        "key_version": version,
                    }
                )
        raise BlobError("the object changed while its legal hold was being set")

    async def _write_hold(
        self,
        claims: Claims,
        row: _Row,
        held: bool,
        bucket: str,
        version: int,
        wrapped: bytes,
    ) -> bool:
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select phi_api.set_blob_legal_hold(%s, %s, %s, %s, %s, %s, %s) as ok",
                (
                    row.ref.object_id, held, row.ref.key_bucket, row.ref.key_version,
                    bucket, version, wrapped,
                ),
            )  # fmt: skip
            result = await cur.fetchone()
            outcome = await _outcome(conn)
        if outcome == "denied":
            raise Forbidden()
        return bool(result and result["ok"])

    async def delete(
        self, claims: Claims, object_id: uuid.UUID, *, reason: str
    ) -> DeletionCertificate:
        """Destroy one object alone: its wrapped data key is dropped from the
        database and its ciphertext deleted, with a deletion certificate.

        Limitation: a database backup taken earlier still holds the wrapped
        data key; such a copy is shredded only when the object's class key
        bucket is destroyed (the month, for recordings and transcripts).
        """
        row = await self._read_row(claims, object_id, "view")
        if row.ref.shredded_at is not None:
            raise BlobShredded()
        if row.ref.legal_hold:
            raise BlobOnHold()
        certificate = DeletionCertificate(
            certificate_id=str(uuid.uuid4()),
            practice_id=str(row.practice_id),
            data_class=row.ref.data_class,
            period=row.ref.period,
            key_versions=(),
            destroyed_at=dt.datetime.now(dt.UTC).isoformat(),
            reason=reason,
            actor=f"{claims.actor_kind}:{claims.actor_id}",
            kek_id=self.keystore.kek_id,
            method="wrapped data key removed from the database and ciphertext "
            "deleted from the blob store",
        )
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from phi_api.delete_blob(%s, %s)",
                (object_id, certificate.certificate_id),
            )
            deleted = await cur.fetchall()
            outcome = await _outcome(conn)
            if deleted:
                await _record_certificate(conn, certificate, [object_id], 1)
        # Raised after the commit, so that a recorded denial is kept.
        if not deleted:
            if outcome == "denied":
                raise Forbidden()
            raise BlobOnHold()
        await asyncio.to_thread(self.objects.delete, row.storage_key)
        return certificate

    async def list_certificates(self, claims: Claims) -> list[dict[str, Any]]:
        """The practice's deletion certificates, newest first (owners only)."""
        if claims.actor_kind != "system" and claims.practice_role != "owner":
            raise Forbidden()
        _practice(claims)
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from phi_api.list_deletion_certificates()"
            )
            return list(await cur.fetchall())

    # Retention

    async def shred_expired_periods(
        self,
        practice_id: uuid.UUID,
        data_class: DataClass,
        *,
        retention_months: int,
        now: dt.datetime,
        actor: str,
        reason: str,
    ) -> list[DeletionCertificate]:
        """Destroy the class key of every period whose retention has ended.

        A period `YYYY-MM` ends `retention_months` months after the month's
        last day. Objects under legal hold are moved to the `hold` bucket first.
        """
        data_class = DataClass(data_class)
        if data_class not in BUCKETED_CLASSES:
            raise ValueError(f"{data_class} keys are not bucketed by period")
        if retention_months < 0:
            raise ValueError("retention_months must not be negative")
        claims = _system_claims(practice_id, "retention-shred")

        buckets: dict[str, set[str]] = {}
        for info in self.keystore.list(practice_id):
            if info.data_class == data_class and info.period not in (None, HOLD_PERIOD):
                assert info.period is not None
                buckets.setdefault(info.period, set()).add(info.state)

        certificates = []
        for period in sorted(buckets):
            if _period_end(period, retention_months) > now:
                continue
            if "active" in buckets[period]:
                await self._move_held(claims, practice_id, data_class, period)
                certificate = await asyncio.to_thread(
                    self.keystore.destroy,
                    practice_id,
                    data_class,
                    period,
                    reason=reason,
                    actor=actor,
                )
            else:
                found = self.keystore.certificate(practice_id, data_class, period)
                if found is None:
                    continue
                certificate = found
            shredded = await self._record_shred(claims, data_class, period, certificate)
            if shredded is None:
                continue
            for object_id in shredded:
                await asyncio.to_thread(
                    self.objects.delete,
                    _storage_key(practice_id, data_class, period, object_id),
                )
            certificates.append(certificate)
        return certificates

    async def _move_held(
        self,
        claims: Claims,
        practice_id: uuid.UUID,
        data_class: DataClass,
        period: str,
    ) -> None:
        while True:
            rows = await self._bucket_rows(claims, data_class, period, None, True)
            if not rows:
                return
            for object_id, version, wrapped in rows:
                moved, new_version = await asyncio.to_thread(
                    self.keystore.move_data_key,
                    practice_id,
                    data_class,
                    object_id,
                    wrapped,
                    from_period=period,
                    to_period=HOLD_PERIOD,
                )
                await self._swap_key(
                    claims, object_id, period, version, HOLD_PERIOD, new_version, moved
                )

    async def _record_shred(
        self,
        claims: Claims,
        data_class: DataClass,
        period: str,
        certificate: DeletionCertificate,
    ) -> list[uuid.UUID] | None:
        # None when this certificate was recorded before (a finished sweep).
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select id from phi_api.shred_blob_bucket(%s, %s, %s)",
                (str(data_class), period, certificate.certificate_id),
            )
            ids = [row["id"] for row in await cur.fetchall()]
            listed = await conn.execute(
                "select 1 from phi_api.list_deletion_certificates() where id = %s",
                (certificate.certificate_id,),
            )
            if await listed.fetchone() is not None and not ids:
                return None
            await _record_certificate(conn, certificate, [], len(ids))
        return ids

    # Rotation

    async def rewrap(
        self,
        practice_id: uuid.UUID,
        data_class: DataClass | None = None,
        *,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        batch: int = _BATCH,
    ) -> int:
        """Rewrap every data key of a practice under its bucket's newest class
        key version; blobs are untouched. Each batch commits on its own, so an
        interrupted run resumes where it stopped. Returns keys rewrapped."""
        claims = _system_claims(practice_id, "keys-rewrap")
        work: list[tuple[DataClass, str, int, int]] = []
        for data_class_, bucket in self._active_buckets(practice_id, data_class):
            newest = self.keystore.current(
                practice_id, data_class_, _key_period(bucket)
            ).version
            async with self.db.transaction(claims) as conn:
                cur = await conn.execute(
                    "select phi_api.count_blob_keys(%s, %s, %s) as n",
                    (str(data_class_), bucket, newest),
                )
                counted = await cur.fetchone()
            pending = int(counted["n"]) if counted else 0
            if pending:
                work.append((data_class_, bucket, newest, pending))
        if on_total is not None:
            on_total(sum(item[3] for item in work))

        done = 0
        for data_class_, bucket, newest, _pending in work:
            while True:
                rows = await self._bucket_rows(
                    claims, data_class_, bucket, newest, False, batch
                )
                if not rows:
                    break
                async with self.db.transaction(claims) as conn:
                    for object_id, version, wrapped in rows:
                        rewrapped = self.keystore.rewrap_data_key(
                            practice_id,
                            data_class_,
                            object_id,
                            wrapped,
                            _key_period(bucket),
                        )
                        await conn.execute(
                            "select phi_api.rewrap_blob(%s, %s, %s, %s, %s, %s)",
                            (object_id, bucket, version, bucket, newest, rewrapped),
                        )
                done += len(rows)
                if on_progress is not None:
                    on_progress(len(rows))
        return done

    def _active_buckets(
        self, practice_id: uuid.UUID, data_class: DataClass | None
    ) -> list[tuple[DataClass, str]]:
        seen: set[tuple[DataClass, str]] = set()
        for info in self.keystore.list(practice_id):
            if info.data_class not in BLOB_CLASSES or info.state != "active":
                continue
            if data_class is not None and info.data_class != data_class:
                continue
            seen.add((info.data_class, info.period or _NO_BUCKET))
        return sorted(seen)

    # Internals

    async def _bucket_rows(
        self,
        claims: Claims,
        data_class: DataClass,
        bucket: str,
        below_version: int | None,
        held_only: bool,
        limit: int = _BATCH,
    ) -> list[tuple[uuid.UUID, int, bytes]]:
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from phi_api.blob_keys(%s, %s, %s, %s, %s)",
                (str(data_class), bucket, below_version, held_only, limit),
            )
            rows = await cur.fetchall()
        return [
            (row["id"], row["key_version"], bytes(row["wrapped_data_key"]))
            for row in rows
        ]

    async def _swap_key(
        self,
        claims: Claims,
        object_id: uuid.UUID,
        from_bucket: str,
        from_version: int,
        bucket: str,
        version: int,
        wrapped: bytes,
    ) -> None:
        async with self.db.transaction(claims) as conn:
            await conn.execute(
                "select phi_api.rewrap_blob(%s, %s, %s, %s, %s, %s)",
                (object_id, from_bucket, from_version, bucket, version, wrapped),
            )

    async def _read_row(
        self, claims: Claims, object_id: uuid.UUID, action: str
    ) -> _Row:
        practice = _practice(claims)
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from phi_api.read_blob(%s, %s)", (object_id, action)
            )
            rows = await cur.fetchall()
            outcome = await _outcome(conn)
        # Past the commit: the audit event is durable before anything is used.
        if outcome == "denied":
            raise Forbidden()
        if not rows:
            raise BlobNotFound()
        row = rows[0]
        ref = BlobRef(
            object_id=row["id"],
            data_class=DataClass(row["data_class"]),
            period=row["period"],
            key_bucket=row["key_bucket"],
            key_version=row["key_version"],
            size=row["size"],
            stored_size=row["stored_size"],
            sha256=row["sha256"],
            legal_hold=row["legal_hold"],
            created_at=row["created_at"],
            patient_id=row["patient_id"],
            shredded_at=row["shredded_at"],
            certificate_id=row["certificate_id"],
        )
        wrapped = row["wrapped_data_key"]
        return _Row(ref, practice, bytes(wrapped) if wrapped is not None else None)

    async def _readable_row(self, claims: Claims, object_id: uuid.UUID) -> _Row:
        # Audited as `playback` for a recording, `view` otherwise.
        row = await self._read_row(claims, object_id, "read")
        if row.ref.shredded_at is not None or row.wrapped is None:
            raise BlobShredded()
        return row

    def _context(self, row: _Row) -> dict[str, Any]:
        assert row.wrapped is not None
        return {
            "practice_id": row.practice_id,
            "data_class": row.ref.data_class,
            "object_id": row.ref.object_id,
            "key_period": _key_period(row.ref.key_bucket),
            "wrapped_data_key": row.wrapped,
            "sha256": row.ref.sha256,
        }


def _practice(claims: Claims) -> uuid.UUID:
    if claims.practice_id is None:
        raise NoValidClaims()
    return claims.practice_id


def _blob_class(data_class: DataClass) -> DataClass:
    data_class = DataClass(data_class)
    if data_class not in BLOB_CLASSES:
        raise ValueError("blobs are recordings, transcripts or documents")
    return data_class


async def _outcome(conn: Conn) -> str | None:
    cur = await conn.execute(
        "select current_setting('perpetua.outcome', true) as outcome"
    )
    row = await cur.fetchone()
    return (row or {}).get("outcome") or None


async def _record_certificate(
    conn: Conn,
    certificate: DeletionCertificate,
    object_ids: list[uuid.UUID],
    count: int,
) -> None:
    await conn.execute(
        "select phi_api.record_deletion_certificate("
        "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            certificate.certificate_id, str(certificate.data_class),
            certificate.period, list(certificate.key_versions), object_ids, count,
            certificate.destroyed_at, certificate.reason, certificate.actor,
            certificate.kek_id, certificate.method,
        ),
    )  # fmt: skip
