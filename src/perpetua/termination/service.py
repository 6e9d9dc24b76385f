"""Terminating a practice's Business Associate Agreement: close the PHI gate, hand
the practice an encrypted export of everything it holds, destroy the keys of its
PHI (crypto-shredding), and certify the destruction.

The order is what makes it safe:

1. An owner, freshly re-authenticated (with the second factor when the practice
   requires one), types the practice's name. The termination row is written; its
   trigger closes the PHI gate for good, so nothing new arrives while we export.
2. The export is read through the records service (each read audited), sealed
   into `<data-dir>/exports/<practice>/<export id>.ppex` under a key Perpetua does
   not keep, and opened again to prove it decrypts. Fail closed: if any of this
   fails, no key is destroyed and the owner may retry.
3. Every PHI class key of the practice is destroyed in the keystore (fields,
   blind indexes, recordings, transcripts, backups); the keystore returns one
   deletion certificate per bucket. The `audit_signing` and `documents` keys stay,
   so the audit log still verifies and the BAA records stay readable.
4. The record is completed with the export's digest and the certificates, and the
   certificate of destruction (PDF, in the document store) goes to every owner.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread
from psycopg.types.json import Jsonb

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.contracts.documents import DocumentStore
from perpetua.contracts.service import owner_addresses
from perpetua.crypto import DataClass, DeletionCertificate, KeyNotFound
from perpetua.crypto.digests import DigestingReader, DigestingWriter
from perpetua.crypto.errors import CryptoError
from perpetua.db.pool import Conn, Database
from perpetua.identity.sessions import (
    Principal,
    require_fresh_second_factor,
    require_recent_auth,
)
from perpetua.mail import outbox
from perpetua.mail.attachments import Attachment
from perpetua.observability.logging import get_logger
from perpetua.records.service import Records
from perpetua.records.vault import UnreadableRecord
from perpetua.termination import archive, certificate
from perpetua.termination.errors import (
    AlreadyTerminated,
    ExportNotAvailable,
    ExportPassphraseInvalid,
    TerminationIncomplete,
    TerminationNotConfirmed,
    TerminationOwnerRequired,
)
from perpetua.termination.export import (
    CallMedia,
    ExportContents,
    ExportIncomplete,
    write_export,
)
from perpetua.termination.state import Termination, termination_of, termination_row

log = get_logger("perpetua.termination")

# The classes whose keys protect PHI. `documents` holds the BAA records and
# `audit_signing` the log's checkpoints: both outlive the termination.
PHI_CLASSES = (
    DataClass.FIELDS,
    DataClass.BLIND_INDEX,
    DataClass.RECORDINGS,
    DataClass.TRANSCRIPTS,
    DataClass.BACKUPS,
)
# Unbucketed PHI classes get a tombstone even if never used, so that no fresh
# key can be made for the practice afterwards (Keystore.current fails closed).
_TOMBSTONED_ALWAYS = (DataClass.FIELDS, DataClass.BLIND_INDEX, DataClass.BACKUPS)
CERTIFICATE_FILENAME = "certificate-of-destruction.pdf"


@dataclass(frozen=True)
class TerminationRequest:
    confirmation: str
    passphrase: str | None = None


@dataclass(frozen=True)
class Terminated:
    termination: Termination
    # The random export key, shown to the owner once and never stored.
    export_key: str | None


def _check_reopens(
    path: Path, key: archive.ExportKey, contents: ExportContents
) -> tuple[int, str]:
    """The sealed file's size and SHA-256, once it has been read back through the
    archive format to a ZIP of the very length and digest that was written."""
    reopened = DigestingWriter()
    with path.open("rb") as file:
        # One pass: the bytes that reopen are the bytes whose digest is recorded.
        sealed = DigestingReader(file)
        header = archive.ArchiveHeader.read(sealed)
        archive.open_with_key(header, key.key, sealed, reopened)
    if (reopened.count, reopened.hash.hexdigest()) != (
        contents.zip_bytes,
        contents.zip_sha256,
    ):
        raise ExportIncomplete("the archive did not reopen to its contents")
    return sealed.count, sealed.hash.hexdigest()


def _acting_owner(claims: Claims) -> uuid.UUID | None:
    """The practice of an owner acting in person; None for anyone else, tokens
    and agents included."""
    if claims.actor_kind != "user" or claims.practice_role != "owner":
        return None
    return claims.practice_id


def _same_name(typed: str, name: str) -> bool:
    return " ".join(typed.split()) == " ".join(name.split())


class Terminations:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        records: Records,
        store: DocumentStore,
        data_dir: Path,
        media: CallMedia | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.records = records
        self.media = media
        self.store = store
        self.keystore = store.keystore
        self.exports = data_dir / "exports"

    async def terminate(
        self, principal: Principal, claims: Claims, request: TerminationRequest
    ) -> Terminated:
        practice_id = _acting_owner(claims)
        if practice_id is None:
            raise TerminationOwnerRequired()
        passphrase = request.passphrase or None
        if passphrase is not None and len(passphrase) < archive.MIN_PASSPHRASE:
            raise ExportPassphraseInvalid()

        async with self.db.transaction(claims) as conn:
            practice = await self._practice(conn, practice_id)
        if not _same_name(request.confirmation, practice["name"]):
            raise TerminationNotConfirmed()

        # Destroying a practice's PHI is the most sensitive act there is: a
        # password (or factor) proven moments ago, the factor itself if required.
        if practice["require_mfa"]:
            require_fresh_second_factor(principal, self.clock)
        else:
            require_recent_auth(principal, self.clock)

        # Step 1: close the gate. A retry after a failed export resumes here.
        async with self.db.transaction(claims) as conn:
            await conn.execute(
                "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"baa-terminate:{practice_id}",),
            )
            existing = await termination_of(conn, practice_id)
            if existing is not None and existing.complete:
                raise AlreadyTerminated()
            if existing is None:
                await conn.execute(
                    "insert into app.practice_terminations (practice_id, "
                    "requested_by, requested_at, state) "
                    "values (%s, %s, %s, 'closing')",
                    (practice_id, claims.actor_id, self.clock.now()),
                )
        log.info("baa_termination_started", practice_id=str(practice_id))

        # Step 2: the export, proven to open before anything is destroyed.
        export_id = uuid.uuid4()
        if passphrase is not None:
            key = await to_thread.run_sync(
                lambda: archive.ExportKey.from_passphrase(
                    passphrase, practice_id, export_id
                )
            )
        else:
            key = archive.ExportKey.random(practice_id, export_id)
        try:
            contents, path, size, file_sha256 = await self._write_export(
                claims, practice, key
            )
        except (ExportIncomplete, UnreadableRecord, CryptoError, OSError) as exc:
            log.warning(
                "baa_termination_export_failed",
                practice_id=str(practice_id),
                error_type=type(exc).__name__,
            )
            raise TerminationIncomplete() from exc

        # Step 3: crypto-shredding.
        certificates = await to_thread.run_sync(
            lambda: self._shred(practice_id, claims.actor_id)
        )
        destroyed_at = self.clock.now()

        # Step 4: the record, the certificate, the owners' copies.
        async with self.db.transaction(claims) as conn:
            requested = await termination_of(conn, practice_id)
            assert requested is not None
            signer = await self._member_name(conn, requested.requested_by)
            facts = certificate.CertificateFacts(
                practice_id=str(practice_id),
                practice_name=practice["name"],
                requested_by=signer,
                requested_at=requested.requested_at,
                destroyed_at=destroyed_at,
                export_id=str(export_id),
                export_sha256=file_sha256,
                export_bytes=size,
                export_kdf="scrypt" if passphrase is not None else "random_key",
                media_included=contents.media_included,
                certificates=certificates,
            )
            document = certificate.render(facts)
            object_id = uuid.uuid4()
            wrapped = await to_thread.run_sync(
                lambda: self.store.put(practice_id, object_id, document)
            )
            try:
                await conn.execute(
                    "update app.practice_terminations set state = 'destroyed', "
                    "export_id = %s, export_kdf = %s, export_bytes = %s, "
                    "export_sha256 = %s, export_counts = %s, destroyed_at = %s, "
                    "certificates = %s, certificate_object_id = %s, "
                    "certificate_wrapped_key = %s, certificate_sha256 = %s "
                    "where practice_id = %s",
                    (
                        export_id,
                        facts.export_kdf,
                        size,
                        file_sha256,
                        Jsonb(contents.counts),
                        destroyed_at,
                        Jsonb(certificates),
                        object_id,
                        wrapped,
                        hashlib.sha256(document).hexdigest(),
                        practice_id,
                    ),
                )
                await self._notify_owners(conn, practice_id, facts, document)
                done = await termination_of(conn, practice_id)
            except BaseException:
                self.store.discard(practice_id, object_id)
                raise
        assert done is not None
        log.info(
            "baa_terminated",
            practice_id=str(practice_id),
            export_id=str(export_id),
            certificates=len(certificates),
            export_file=path.name,
        )
        return Terminated(done, key.shown)

    async def export_file(self, claims: Claims) -> tuple[Termination, Path]:
        """The encrypted archive, for an owner; Perpetua cannot read it."""
        if claims.practice_role != "owner" or claims.practice_id is None:
            raise ExportNotAvailable()
        async with self.db.transaction(claims) as conn:
            found = await termination_of(conn, claims.practice_id)
        if (
            found is None
            or found.export_id is None
            or found.export_deleted_at is not None
        ):
            raise ExportNotAvailable()
        path = self._export_path(claims.practice_id, found.export_id)
        if not path.is_file():
            raise ExportNotAvailable()
        return found, path

    async def delete_export(self, claims: Claims) -> Termination:
        """Delete the encrypted archive at an owner's request; the record keeps
        when and by whom, and the download answers 404 from then on."""
        practice_id = _acting_owner(claims)
        if practice_id is None:
            raise ExportNotAvailable()
        async with self.db.transaction(claims) as conn:
            found = await termination_of(conn, practice_id)
            if (
                found is None
                or not found.complete
                or found.export_id is None
                or found.export_deleted_at is not None
            ):
                raise ExportNotAvailable()
            await conn.execute(
                "update app.practice_terminations set export_deleted_at = %s, "
                "export_deleted_by = %s where practice_id = %s",
                (self.clock.now(), claims.actor_id, practice_id),
            )
            # Inside the transaction: if the file cannot go, the record still says
            # the export is there, and the owner can try again.
            path = self._export_path(practice_id, found.export_id)
            await to_thread.run_sync(lambda: path.unlink(missing_ok=True))
            done = await termination_of(conn, practice_id)
        assert done is not None
        log.info(
            "baa_termination_export_deleted",
            practice_id=str(practice_id),
            export_id=str(found.export_id),
        )
        return done

    async def certificate_pdf(self, claims: Claims) -> tuple[Termination, bytes]:
        """The certificate of destruction, for owners and managers."""
        if claims.practice_role not in ("owner", "manager") or not claims.practice_id:
            raise ExportNotAvailable()
        practice_id = claims.practice_id
        async with self.db.transaction(claims) as conn:
            found = await termination_row(conn, practice_id)
        if found is None or found[0].certificate_object_id is None or not found[1]:
            raise ExportNotAvailable()
        termination, wrapped = found
        object_id = termination.certificate_object_id
        assert object_id is not None
        assert wrapped is not None
        try:
            document = await to_thread.run_sync(
                lambda: self.store.get(practice_id, object_id, wrapped)
            )
        except (CryptoError, OSError) as exc:
            raise UnreadableRecord() from exc
        if hashlib.sha256(document).hexdigest() != termination.certificate_sha256:
            raise UnreadableRecord()
        return termination, document

    # Steps

    def _export_path(self, practice_id: uuid.UUID, export_id: uuid.UUID) -> Path:
        # Both parts are UUIDs the service made, never names a caller typed.
        return self.exports / str(practice_id) / f"{export_id}.ppex"

    async def _write_export(
        self, claims: Claims, practice: dict[str, Any], key: archive.ExportKey
    ) -> tuple[ExportContents, Path, int, str]:
        """Write the sealed archive as the records are read, then prove that the
        file reopens to exactly the ZIP that was written."""
        practice_id = practice["id"]
        path = self._export_path(practice_id, key.header.export_id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                sealer = archive.begin(key, out)
                contents = await write_export(
                    self.records, claims, practice, self.clock.now(), sealer, self.media
                )
                await to_thread.run_sync(sealer.close)
                out.flush()
                await to_thread.run_sync(os.fsync, out.fileno())
            size, file_sha256 = await to_thread.run_sync(
                lambda: _check_reopens(path, key, contents)
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return contents, path, size, file_sha256

    def _shred(self, practice_id: uuid.UUID, actor: uuid.UUID) -> list[dict[str, Any]]:
        reason = "Business Associate Agreement terminated by the practice"
        made: list[DeletionCertificate] = []
        buckets = {
            (info.data_class, info.period)
            for info in self.keystore.list(practice_id)
            if info.state == "active" and info.data_class in PHI_CLASSES
        }
        for data_class in _TOMBSTONED_ALWAYS:
            if (data_class, None) not in buckets:
                try:
                    self.keystore.current(practice_id, data_class)
                except CryptoError:
                    continue  # already destroyed: its tombstone stands
                buckets.add((data_class, None))
        for data_class, period in sorted(buckets, key=lambda b: (b[0], b[1] or "")):
            try:
                made.append(
                    self.keystore.destroy(
                        practice_id,
                        data_class,
                        period,
                        reason=reason,
                        actor=f"user:{actor}",
                    )
                )
            except KeyNotFound:
                continue  # destroyed by a concurrent sweep in the meantime
        return [c.as_dict() for c in made]

    async def _practice(self, conn: Conn, practice_id: uuid.UUID) -> dict[str, Any]:
        cur = await conn.execute(
            "select id, name, created_at, require_mfa from app.practices where id = %s",
            (practice_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise TerminationOwnerRequired()
        return dict(row)

    async def _member_name(self, conn: Conn, user_id: uuid.UUID) -> str:
        cur = await conn.execute(
            "select full_name from app.users where id = %s", (user_id,)
        )
        row = await cur.fetchone()
        return str(row["full_name"]) if row else str(user_id)

    async def _notify_owners(
        self,
        conn: Conn,
        practice_id: uuid.UUID,
        facts: certificate.CertificateFacts,
        document: bytes,
    ) -> None:
        body = (
            f"The Business Associate Agreement between {facts.practice_name} and "
            f"Perpetua was terminated by {facts.requested_by}. The practice's "
            "export was made and proven to open; then the keys of all of the "
            "practice's PHI were destroyed.\n\n"
            f"Export id: {facts.export_id}\n"
            f"Export file SHA-256: {facts.export_sha256}\n"
            f"Deletion certificates: {len(facts.certificates)}\n\n"
            f"The certificate of destruction is attached ({CERTIFICATE_FILENAME}). "
            "An owner can download the encrypted export from the agreement page; "
            "only the practice's passphrase or key opens it.\n"
        )
        attachment = Attachment(CERTIFICATE_FILENAME, "application/pdf", document)
        for address in await owner_addresses(conn, practice_id):
            await outbox.enqueue(
                conn,
                self.clock.now(),
                kind="baa_terminated",
                to=address,
                subject="Your practice's data at Perpetua was destroyed",
                body=body,
                practice_id=practice_id,
                attachments=(attachment,),
                keystore=self.keystore,
            )
