"""A blob store wired to the test's own database, with a keystore and an object
folder of its own, and practices with an executed BAA. Synthetic data only."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.conftest import admin_connection, scratch_dir

from perpetua.access.claims import SYSTEM_ACTOR, Claims, Role
from perpetua.blobs import BlobStore, LocalObjects
from perpetua.crypto.kek import LocalKek
from perpetua.crypto.keystore import Keystore
from perpetua.db.pool import Database
from perpetua.db.target import DatabaseTarget

T = TypeVar("T")


def make_practice(target: DatabaseTarget) -> uuid.UUID:
    """A paying practice with an executed BAA, made as the cluster's superuser."""
    practice = uuid.uuid4()
    with admin_connection(target) as conn:
        conn.execute(
            "insert into app.practices (id, name, trial_ends_at, plan) "
            "values (%s, 'Synthetic Clinic', now() + interval '30 days', "
            "'standard')",
            (practice,),
        )
        conn.execute(
            "insert into app.baa_executions (practice_id, version, document_sha256) "
            "values (%s, 'test', %s)",
            (practice, "0" * 64),
        )
    return practice


def system(practice: uuid.UUID) -> Claims:
    return Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id="test",
        practice_id=practice,
    )


def member(practice: uuid.UUID, role: Role) -> Claims:
    return Claims(
        actor_kind="user",
        actor_id=uuid.uuid4(),
        request_id="test",
        practice_id=practice,
        practice_role=role,
        purpose_of_use="TREAT",
    )


@dataclass
class Blobs:
    store: BlobStore
    keystore: Keystore
    objects: LocalObjects
    root: Path

    def path(
        self, practice: uuid.UUID, data_class: str, period: str, oid: uuid.UUID
    ) -> Path:
        return self.objects.root / str(practice) / data_class / period / str(oid)


def new_keystore(root: Path) -> Keystore:
    return Keystore(root / "keystore", LocalKek.load_or_create(root))


def run_with_store(
    target: DatabaseTarget,
    body: Callable[[Blobs], Awaitable[T]],
    *,
    root: Path | None = None,
    segment_size: int = 4096,
) -> T:
    """Run `body` with a blob store on the test database, in a fresh event loop."""
    base = root or scratch_dir("perpetua-blobs-")
    keystore = new_keystore(base / "keys")
    objects = LocalObjects(base / "blobs")

    async def main() -> T:
        db = Database(target.conninfo("service"), min_size=1, max_size=2)
        await db.open()
        try:
            store = BlobStore(objects, keystore, db, segment_size=segment_size)
            return await body(Blobs(store, keystore, objects, base))
        finally:
            await db.close()

    return asyncio.run(main())


def synthetic_audio(size: int, seed: int = 7) -> bytes:
    """Deterministic bytes standing in for a recording; no real audio."""
    pattern = bytes((seed * 31 + i * 17) % 251 for i in range(4096))
    return (pattern * (size // len(pattern) + 1))[:size]


def reader(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


MARCH = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
