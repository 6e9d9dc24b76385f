"""Sealing the audit log in the database: numbering, hashing and signing events.

This module guards the step that turns stored audit events into evidence. For each
practice, a sealing pass takes the committed events that have no index yet, gives
them the next gapless indices, hashes their canonical bytes into Merkle leaves,
extends the practice's frontier and signs a C2SP checkpoint over the new root, all
in one transaction through the ``audit_api.seal_*`` functions (migrations 0030,
0031 and 0077). A batch either lands whole, with its checkpoint, or not at all.

Events are sealed as version 3 (``canonical``): the database renders each
event's bytes and this module only hashes them, so no Python object is built
per event. Version 2 remains available (``Sealer(encoding=2)``) to compare the
two on the same data.

The signing key never reaches the database. Each practice's Ed25519 key is derived
from its ``audit_signing`` class key in the keystore (outside PostgreSQL), so a
database dump cannot forge a checkpoint, and the same keystore lets ``perpetua
audit verify`` re-derive the public key of every key version a checkpoint names.

Events are numbered in the order the sealer finds them committed, oldest event time
first within one pass. That is commit order up to one pass: an event that commits
late with an early timestamp is not skipped, it simply gets a later index.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from perpetua.access.claims import system_claims
from perpetua.audit.canonical import (
    AuditEvent,
    encode_event,
    make_event,
    make_event_v2,
    make_event_v3,
)
from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    key_id,
    sign_checkpoint,
)
from perpetua.audit.merkle import Frontier
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.crypto.keystore import ClassKey, DataClass, Keystore
from perpetua.db.pool import Database
from perpetua.observability.logging import get_logger
from perpetua.records.vault import Vault

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_ORIGIN_HOST",
    "Sealer",
    "event_from_row",
    "event_from_row_v2",
    "event_from_row_v3",
    "event_line",
    "open_keystore",
    "signer_for",
]

log = get_logger("perpetua.audit.sealing")

DEFAULT_ORIGIN_HOST = "perpetua.example"

# Events per transaction and per checkpoint. Large enough that signing and the
# round trips are a small share of the work, small enough that one transaction
# stays short (well under a second).
BATCH_SIZE = 20_000

# Binds the derived key to its use and to one log: the same class key can never
# yield the signing key of another origin or of another purpose.
_KDF_LABEL = b"perpetua audit checkpoint signing v1\n"


def open_keystore(data_dir: Path) -> Keystore:
    """The installation's keystore, where the records vault keeps it."""
    return Vault.open(data_dir).keystore


def signer_for(class_key: ClassKey, origin: str) -> NoteSigner:
    """The Ed25519 note signer of one log, derived from its class key version."""
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_KDF_LABEL + origin.encode("utf-8"),
    ).derive(class_key.secret)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return NoteSigner(origin, key_id(origin, public), private)


def event_from_row(practice_id: str, index: int, row: Mapping[str, Any]) -> AuditEvent:
    """The canonical event for one ``audit.events`` row at ``index``.

    The row's ``id`` and ``row_count`` are not part of the version 1 event.
    """
    actor_id = row["actor_id"]
    return make_event(
        practice_id=practice_id,
        index=index,
        time=row["occurred_at"],
        actor_kind=row["actor_kind"],
        actor_id=None if actor_id is None else str(actor_id),
        actor_role=row["actor_role"],
        action=row["action"],
        resource_type=row["resource_type"],
        outcome=row["outcome"],
        resource_ids=[str(r) for r in row["resource_ids"] or ()],
        patient_ids=[str(p) for p in row["patient_ids"] or ()],
        purpose_of_use=row["purpose_of_use"],
        reason=row["reason"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        request_id=row["request_id"],
    )


def _row_arguments(practice_id: str, index: int, row: Mapping[str, Any]) -> Any:
    actor_id = row["actor_id"]
    return {
        "event_id": str(row["id"]),
        "practice_id": practice_id,
        "index": index,
        "time": row["occurred_at"],
        "actor_kind": row["actor_kind"],
        "actor_id": None if actor_id is None else str(actor_id),
        "actor_role": row["actor_role"],
        "action": row["action"],
        "resource_type": row["resource_type"],
        "outcome": row["outcome"],
        "row_count": row["row_count"],
        "resource_ids": [str(r) for r in row["resource_ids"] or ()],
        "patient_ids": [str(p) for p in row["patient_ids"] or ()],
        "purpose_of_use": row["purpose_of_use"],
        "reason": row["reason"],
        "ip": row["ip"],
        "user_agent": row["user_agent"],
        "request_id": row["request_id"],
    }


def event_from_row_v2(
    practice_id: str, index: int, row: Mapping[str, Any]
) -> AuditEvent:
    """The version 2 event for one ``audit.events`` row at ``index``, in Python.

    The sealer let the database render this line; this is the same event built
    from the row's columns, for tests and for anyone checking the rendering.
    """
    return make_event_v2(**_row_arguments(practice_id, index, row))


def event_from_row_v3(
    practice_id: str, index: int, row: Mapping[str, Any]
) -> AuditEvent:
    """The version 3 event for one ``audit.events`` row at ``index``: the fields
    an archive line shows, from which ``event_bytes_v3`` rebuilds the bytes the
    database rendered when sealing. ``row["ip"]`` is the address as ``host()``
    writes it."""
    return make_event_v3(**_row_arguments(practice_id, index, row))


def event_line(practice_id: str, index: int, row: Mapping[str, Any]) -> bytes:
    """The archive line of one sealed event, in the version it was sealed under.

    ``row`` holds the event's columns, ``ip`` as ``host()`` writes it, the index
    row's ``encoding`` and, for version 2, the ``line`` the database rendered.
    Hash it with ``leaf_hash(leaf_input(line))``.
    """
    if row["encoding"] == 2:
        return bytes(row["line"])
    if row["encoding"] == 3:
        return encode_event(event_from_row_v3(practice_id, index, row))
    return encode_event(event_from_row(practice_id, index, row))


# The database functions that render and record a batch, per event version.
_SEAL_FUNCTIONS = {
    2: ("audit_api.seal_next", "audit_api.seal_commit"),
    3: ("audit_api.seal_next_v3", "audit_api.seal_commit_v3"),
}


@dataclass(frozen=True)
class _Position:
    """The last event a pass sealed: the next batch starts after it."""

    occurred_at: datetime
    event_id: uuid.UUID


def _hash_and_sign(
    size: int,
    frontier_bytes: bytes,
    lines: Sequence[bytes],
    signer: NoteSigner,
) -> tuple[list[bytes], Frontier, bytes, str, datetime]:
    frontier = Frontier.from_bytes(frontier_bytes)

    # The stored frontier must describe the stored size, or every root from here
    # on would be wrong: refuse rather than sign a tree nobody can reproduce.
    if frontier.size != size:
        raise RuntimeError("audit log state is inconsistent: frontier size differs")
    sha = hashlib.sha256
    leaves = [sha(b"\x00" + line).digest() for line in lines]
    frontier.extend(leaves)
    signed_at = datetime.now(UTC)
    root = frontier.root()
    note = sign_checkpoint(
        Checkpoint(signer.name, frontier.size, root, signed_at), signer
    )
    return leaves, frontier, root, note, signed_at


class Sealer:
    """Seals every practice's pending events; one ``run`` is one pass."""

    def __init__(
        self,
        db: Database,
        data_dir: Path | None = None,
        *,
        keystore: Keystore | None = None,
        origin_host: str = DEFAULT_ORIGIN_HOST,
        batch_size: int = BATCH_SIZE,
        encoding: int = 3,
    ) -> None:
        if keystore is None and data_dir is None:
            raise ValueError("a sealer needs a keystore or a data directory")
        if encoding not in _SEAL_FUNCTIONS:
            raise ValueError(f"events cannot be sealed as version {encoding}")
        self._next, self._commit = _SEAL_FUNCTIONS[encoding]
        self._db = db
        self._data_dir = data_dir
        self._keystore = keystore
        self.origin_host = origin_host
        self.batch_size = batch_size

    @property
    def keystore(self) -> Keystore:
        # Opened on first use, so building the job list touches no files.
        if self._keystore is None:
            assert self._data_dir is not None
            self._keystore = open_keystore(self._data_dir)
        return self._keystore

    async def run(self) -> int:
        """Seal everything pending now; returns the number of events sealed."""
        claims = system_claims("audit-seal")
        async with self._db.transaction(claims) as conn:
            # Next months' partitions exist before their first event arrives.
            await conn.execute("select audit_api.prepare_partitions()")
        async with self._db.transaction(claims) as conn:
            cur = await conn.execute("select audit_api.seal_pending() as practice_id")
            practices = [row["practice_id"] for row in await cur.fetchall()]
        total = 0
        for practice in practices:
            total += await self.seal_practice(practice)
        return total

    async def seal_practice(self, practice: uuid.UUID) -> int:
        total = 0
        after: _Position | None = None
        while True:
            sealed, after = await self._seal_batch(practice, after)
            total += sealed
            if sealed < self.batch_size:
                return total

    async def _seal_batch(
        self, practice: uuid.UUID, after: _Position | None
    ) -> tuple[int, _Position | None]:
        practice_id = str(practice)
        origin = practice_log_origin(practice_id, self.origin_host)
        claims = system_claims("audit-seal")
        async with self._db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from audit_api.seal_begin(%s)", (practice,)
            )
            state = await cur.fetchone()
            assert state is not None
            size = state["size"]

            # Binary results: each event's bytes arrive raw, ready to hash.
            cur = conn.cursor(binary=True)
            await cur.execute(
                f"select * from {self._next}(%s, %s, %s, %s, %s)",
                (
                    practice,
                    size,
                    None if after is None else after.occurred_at,
                    None if after is None else after.event_id,
                    self.batch_size,
                ),
            )
            rows = await cur.fetchall()
            if not rows:
                return 0, after
            event_ids = [row["id"] for row in rows]
            occurred_at = [row["occurred_at"] for row in rows]
            lines = [row["line"] for row in rows]

            # Hashing and signing a batch takes a moment of CPU; keep it off the
            # event loop that serves requests.
            class_key = self.keystore.current(practice, DataClass.AUDIT_SIGNING)
            signer = signer_for(class_key, origin)
            leaves, frontier, root, note, signed_at = await asyncio.to_thread(
                _hash_and_sign, size, bytes(state["frontier"]), lines, signer
            )
            await conn.execute(
                f"select {self._commit}(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    practice,
                    size,
                    event_ids,
                    occurred_at,
                    leaves,
                    frontier.to_bytes(),
                    root,
                    note,
                    class_key.version,
                    signed_at,
                ),
            )
        log.info("audit_sealed", events=len(rows), size=frontier.size)
        return len(rows), _Position(occurred_at[-1], event_ids[-1])
