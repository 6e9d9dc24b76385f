"""Signing the Business Associate Agreement, reading its status and downloading the
executed PDF. The console and the API call these same methods.

Signing happens in one transaction: the signature row (which the database lets
only an owner write, and which creates the execution that opens the PHI gate),
and one outbox message per owner with the executed PDF attached (encrypted in
the outbox like in the document store). The encrypted PDF is written just
before; if the transaction does not commit, the file is removed, so no document
exists without its record. Signing the same version again returns the first
signature and changes nothing.

When a new version is released, the version already signed stays in force and
the status names the new one as awaiting signature; every executed version stays
listed and downloadable. A terminated practice signs nothing again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.contracts import pdf
from perpetua.contracts.agreements import Agreement, Library
from perpetua.contracts.documents import DocumentStore
from perpetua.contracts.errors import (
    AgreementTerminated,
    AgreementVersionStale,
    ConsentRequired,
    ExecutedAgreementNotFound,
    OwnerSignatureRequired,
    SignerDetailsInvalid,
)
from perpetua.crypto.errors import CryptoError
from perpetua.db.pool import Conn, Database
from perpetua.errors import Forbidden
from perpetua.mail import outbox
from perpetua.mail.attachments import Attachment
from perpetua.observability.logging import get_logger
from perpetua.practices.baa_status import baa_in_force
from perpetua.records.vault import UnreadableRecord, Vault
from perpetua.termination.state import Termination, termination_of

log = get_logger("perpetua.contracts")

COUNTERSIGNER = "Perpetua, by automatic countersignature"
# Who may download an executed agreement: those who run the practice.
READERS = ("owner", "manager")

_COLUMNS = """
    id, version, document_sha256, signer_user_id, signer_name, signer_title,
    signed_at, countersigner, countersigned_at, pdf_object_id, pdf_sha256
"""


@dataclass(frozen=True)
class Signature:
    id: uuid.UUID
    version: str
    document_sha256: str
    signer_user_id: uuid.UUID
    signer_name: str
    signer_title: str
    signed_at: dt.datetime
    countersigner: str
    countersigned_at: dt.datetime
    pdf_object_id: uuid.UUID
    pdf_sha256: str


@dataclass(frozen=True)
class Status:
    in_force: bool
    current: Agreement
    signatures: list[Signature]
    termination: Termination | None = None

    @property
    def current_signature(self) -> Signature | None:
        return next(
            (s for s in self.signatures if s.version == self.current.version), None
        )

    @property
    def terminated(self) -> bool:
        return self.termination is not None

    @property
    def awaiting_signature(self) -> bool:
        """A newer version is released while an older one keeps PHI open."""
        return self.in_force and self.current_signature is None and not self.terminated


@dataclass(frozen=True)
class SignRequest:
    full_name: str
    title: str
    consent: bool
    version: str
    document_sha256: str | None = None


@dataclass(frozen=True)
class Signed:
    signature: Signature
    created: bool


def _signature(row: dict[str, Any]) -> Signature:
    return Signature(**{k: row[k] for k in Signature.__dataclass_fields__})


def _clean(value: str) -> str:
    cleaned = " ".join(value.split())
    if not 2 <= len(cleaned) <= 200:
        raise SignerDetailsInvalid()
    return cleaned


class Contracts:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        store: DocumentStore,
        origin: str,
        library: Library | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.store = store
        self.origin = origin
        self.library = library or Library()

    @classmethod
    def open(cls, db: Database, clock: Clock, data_dir: Path, origin: str) -> Contracts:
        # The same keys the records service uses, under the `documents` class.
        keystore = Vault.open(data_dir).keystore
        return cls(db, clock, DocumentStore(data_dir / "documents", keystore), origin)

    async def status(self, claims: Claims) -> Status:
        in_force = await baa_in_force(self.db, claims)
        signatures: list[Signature] = []
        termination: Termination | None = None
        if claims.practice_id is not None:
            async with self.db.transaction(claims) as conn:
                cur = await conn.execute(
                    f"select {_COLUMNS} from app.baa_signatures "
                    "where practice_id = %s order by signed_at desc",
                    (claims.practice_id,),
                )
                signatures = [_signature(r) for r in await cur.fetchall()]
                termination = await termination_of(conn, claims.practice_id)
        return Status(
            in_force=in_force,
            current=self.library.current(),
            signatures=signatures,
            termination=termination,
        )

    async def sign(self, claims: Claims, request: SignRequest) -> Signed:
        """Sign the current version for the claimed practice, or return the
        signature already made for it."""
        if (
            claims.actor_kind != "user"
            or claims.practice_role != "owner"
            or claims.practice_id is None
        ):
            raise OwnerSignatureRequired()
        practice_id = claims.practice_id
        if request.consent is not True:
            raise ConsentRequired()
        name, title = _clean(request.full_name), _clean(request.title)

        # The signer agrees to the text they were shown, never to a newer one.
        agreement = self.library.current()
        if request.version != agreement.version or (
            request.document_sha256 is not None
            and request.document_sha256 != agreement.sha256
        ):
            raise AgreementVersionStale()

        object_id: uuid.UUID | None = None
        try:
            async with self.db.transaction(claims) as conn:
                # Two clicks at once must not make two signatures or two emails.
                await conn.execute(
                    "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (f"baa-sign:{practice_id}",),
                )
                existing = await self._find(conn, practice_id, agreement.version)
                if existing is not None:
                    return Signed(existing, created=False)
                if await termination_of(conn, practice_id) is not None:
                    raise AgreementTerminated()

                now = self.clock.now()
                signature_id, object_id = uuid.uuid4(), uuid.uuid4()
                document = pdf.render(
                    agreement,
                    pdf.SignaturePage(
                        practice_name=await self._practice_name(conn, practice_id),
                        signer_name=name,
                        signer_title=title,
                        signer_ip=claims.client_ip,
                        signer_user_agent=claims.user_agent,
                        signed_at=now,
                        countersigner=COUNTERSIGNER,
                        countersigned_at=now,
                    ),
                )
                digest = hashlib.sha256(document).hexdigest()
                stored_id = object_id
                wrapped = await to_thread.run_sync(
                    lambda: self.store.put(practice_id, stored_id, document)
                )

                await conn.execute(
                    "insert into app.baa_signatures (id, practice_id, version, "
                    "document_sha256, signer_user_id, signer_name, signer_title, "
                    "signer_ip, signer_user_agent, consented, signed_at, "
                    "countersigner, countersigned_at, pdf_object_id, "
                    "pdf_wrapped_key, pdf_sha256) values (%s, %s, %s, %s, %s, %s, "
                    "%s, %s::inet, %s, true, %s, %s, %s, %s, %s, %s)",
                    (
                        signature_id,
                        practice_id,
                        agreement.version,
                        agreement.sha256,
                        claims.actor_id,
                        name,
                        title,
                        claims.client_ip,
                        claims.user_agent,
                        now,
                        COUNTERSIGNER,
                        now,
                        object_id,
                        wrapped,
                        digest,
                    ),
                )
                made = await self._find(conn, practice_id, agreement.version)
                assert made is not None
                await self._notify_owners(conn, practice_id, made, now, document)
        except BaseException:
            if object_id is not None:
                self.store.discard(practice_id, object_id)
            raise
        # Ids only: the signature row is the record, the log is for operators.
        log.info(
            "baa_signed",
            signature_id=str(made.id),
            practice_id=str(practice_id),
            version=made.version,
        )
        return Signed(made, created=True)

    async def executed_pdf(
        self, claims: Claims, signature_id: uuid.UUID
    ) -> tuple[Signature, bytes]:
        """The executed agreement's PDF, decrypted and checked against its digest."""
        if claims.practice_id is None:
            raise ExecutedAgreementNotFound()
        if claims.practice_role not in READERS:
            raise Forbidden("executed agreements are for owners and managers")
        practice_id = claims.practice_id
        async with self.db.transaction(claims) as conn:
            cur = await conn.execute(
                f"select {_COLUMNS}, pdf_wrapped_key from app.baa_signatures "
                "where id = %s and practice_id = %s",
                (signature_id, practice_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise ExecutedAgreementNotFound()
        signature = _signature(row)
        wrapped = bytes(row["pdf_wrapped_key"])
        try:
            document = await to_thread.run_sync(
                lambda: self.store.get(practice_id, signature.pdf_object_id, wrapped)
            )
        except (CryptoError, OSError) as exc:
            raise UnreadableRecord() from exc

        # Fail closed: a file that is not the one recorded is never served.
        if hashlib.sha256(document).hexdigest() != signature.pdf_sha256:
            raise UnreadableRecord()
        return signature, document

    async def _find(
        self, conn: Conn, practice_id: uuid.UUID, version: str
    ) -> Signature | None:
        cur = await conn.execute(
            f"select {_COLUMNS} from app.baa_signatures "
            "where practice_id = %s and version = %s",
            (practice_id, version),
        )
        row = await cur.fetchone()
        return _signature(row) if row else None

    async def _practice_name(self, conn: Conn, practice_id: uuid.UUID) -> str:
        cur = await conn.execute(
            "select name from app.practices where id = %s", (practice_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        return str(row["name"])

    async def _notify_owners(
        self,
        conn: Conn,
        practice_id: uuid.UUID,
        signed: Signature,
        now: dt.datetime,
        document: bytes,
    ) -> None:
        """One message per owner with the PDF attached, in the signing
        transaction: all or none."""
        owners = await owner_addresses(conn, practice_id)
        practice = await self._practice_name(conn, practice_id)
        link = f"{self.origin}/agreement/executed/{signed.id}.pdf"
        body = (
            f"The Business Associate Agreement between {practice} and Perpetua is "
            f"in force. It was signed by {signed.signer_name} "
            f"({signed.signer_title}) on "
            f"{signed.signed_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC and "
            "countersigned by Perpetua at the same time.\n\n"
            f"Version: {signed.version}\n"
            f"Text SHA-256: {signed.document_sha256}\n"
            f"PDF SHA-256: {signed.pdf_sha256}\n\n"
            f"The executed agreement is attached ({pdf_filename(signed)}). It can "
            f"also be downloaded at any time (sign-in required):\n{link}\n\n"
            "Patient features are now available to your practice.\n"
        )
        attachment = Attachment(pdf_filename(signed), "application/pdf", document)
        for address in owners:
            await outbox.enqueue(
                conn,
                now,
                kind="baa_executed",
                to=address,
                subject="Your Business Associate Agreement with Perpetua is signed",
                body=body,
                practice_id=practice_id,
                attachments=(attachment,),
                keystore=self.store.keystore,
            )


def pdf_filename(signature: Signature) -> str:
    return f"baa-{signature.version}.pdf"


async def owner_addresses(conn: Conn, practice_id: uuid.UUID) -> list[str]:
    """Every owner's address, read under the claims of the transaction."""
    cur = await conn.execute(
        "select u.email from app.memberships m "
        "join app.users u on u.id = m.user_id "
        "where m.practice_id = %s and m.role = 'owner' order by u.email",
        (practice_id,),
    )
    return [str(r["email"]) for r in await cur.fetchall()]
