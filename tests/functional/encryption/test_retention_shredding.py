"""Crypto-shredding by retention period, with a controllable clock: once a month's
recordings key is destroyed, that month's recordings cannot be decrypted even
from a copy of the blob store and a database backup taken before; a recording
of the same month under legal hold still can, and every destruction leaves a
certificate the practice owner can list."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import uuid

import pytest
from tests.conftest import Cluster, scratch_dir
from tests.functional.encryption.helpers import (
    Blobs,
    make_practice,
    member,
    reader,
    run_with_store,
    synthetic_audio,
    system,
)

from perpetua.backup import create_backup, restore_backup
from perpetua.blobs import BlobShredded, BlobUnreadable, LocalObjects
from perpetua.crypto.keystore import DataClass
from perpetua.db.embedded import ADMIN_ROLE
from perpetua.db.target import DatabaseTarget, ensure_database
from perpetua.errors import Forbidden

RECORDINGS = DataClass.RECORDINGS


def _admin(blob_target: DatabaseTarget, dbname: str | None = None) -> dict[str, str]:
    assert blob_target.embedded is not None
    info = {
        **blob_target.owner,
        "user": ADMIN_ROLE,
        "password": blob_target.embedded.admin_password(),
    }
    return {**info, "dbname": dbname} if dbname else info


async def _read(blobs: Blobs, practice: uuid.UUID, oid: uuid.UUID) -> bytes:
    sink = io.BytesIO()
    await blobs.store.read_into(system(practice), oid, sink)
    return sink.getvalue()


def test_shredded_month_is_unreadable_from_earlier_copies_but_held_survives(
    blob_target, cluster: Cluster, clock
):
    practice = make_practice(blob_target)
    root = scratch_dir("perpetua-shred-")
    plain, held, february = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    audio = {
        oid: synthetic_audio(10_000, seed=n)
        for n, oid in enumerate((plain, held, february))
    }

    clock.current = dt.datetime(2026, 1, 20, 9, 30, tzinfo=dt.UTC)

    async def record(blobs: Blobs) -> None:
        for oid in (plain, held):
            await blobs.store.put(
                system(practice), RECORDINGS, oid, reader(audio[oid]), at=clock.now()
            )
        clock.advance(days=20)
        await blobs.store.put(
            system(practice), RECORDINGS, february, reader(audio[february]),
            at=clock.now(),
        )  # fmt: skip
        ref = await blobs.store.set_legal_hold(
            member(practice, "owner"), held, held=True
        )
        assert (ref.legal_hold, ref.key_bucket) == (True, "hold")

    run_with_store(blob_target, record, root=root)

    # Copies an attacker or an old backup set would hold, taken before the end.
    blob_copy = scratch_dir("perpetua-blob-copy-")
    shutil.copytree(root / "blobs", blob_copy / "blobs")
    backups = LocalObjects(scratch_dir("perpetua-shred-backups-"))
    keystore_for_backups = run_with_store(
        blob_target, lambda blobs: _keystore(blobs), root=root
    )
    manifest = create_backup(
        backups, keystore_for_backups, _admin(blob_target), embedded=True
    )

    # Retention of one month: January's key goes on March 1st, February's stays.
    clock.current = dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC)

    async def shred(blobs: Blobs):
        certificates = await blobs.store.shred_expired_periods(
            practice, RECORDINGS, retention_months=1, now=clock.now(),
            actor="retention-test", reason="retention period ended",
        )  # fmt: skip
        again = await blobs.store.shred_expired_periods(
            practice, RECORDINGS, retention_months=1, now=clock.now(),
            actor="retention-test", reason="retention period ended",
        )  # fmt: skip
        with pytest.raises(BlobShredded):
            await _read(blobs, practice, plain)
        assert await _read(blobs, practice, held) == audio[held]
        assert await _read(blobs, practice, february) == audio[february]
        listed = await blobs.store.list_certificates(member(practice, "owner"))
        with pytest.raises(Forbidden):
            await blobs.store.list_certificates(member(practice, "front_desk"))
        return certificates, again, listed

    certificates, again, listed = run_with_store(blob_target, shred, root=root)
    assert [c.period for c in certificates] == ["2026-01"]
    assert again == []
    assert certificates[0].key_versions == (1,)
    assert certificates[0].actor == "retention-test"
    assert [str(row["id"]) for row in listed] == [certificates[0].certificate_id]
    assert listed[0]["object_count"] == 1
    assert not (
        root / "blobs" / str(practice) / "recordings" / "2026-01" / str(plain)
    ).exists()

    # The earlier copies: the backup restored into a new database, the blob
    # folder copy, and the same keystore (which no longer has January's key).
    name = "shredded_" + uuid.uuid4().hex[:12]
    with cluster.admin() as conn, conn.cursor() as cur:
        ensure_database(cur, name)  # type: ignore[arg-type]
    try:
        restore_backup(
            backups, keystore_for_backups, manifest.backup_id,
            _admin(blob_target, name), embedded=True,
        )  # fmt: skip
        shutil.copytree(root / "keys", blob_copy / "keys")

        async def from_copies(blobs: Blobs) -> None:
            with pytest.raises(BlobUnreadable) as failure:
                await _read(blobs, practice, plain)
            assert failure.value.reason == "key_destroyed"
            assert await _read(blobs, practice, february) == audio[february]

        run_with_store(cluster.target(name), from_copies, root=blob_copy)
    finally:
        cluster.drop(name)


async def _keystore(blobs: Blobs):
    return blobs.keystore


def test_no_new_object_lands_in_a_shredded_month(blob_target):
    practice = make_practice(blob_target)
    january = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)

    async def body(blobs: Blobs) -> None:
        await blobs.store.put(
            system(practice), RECORDINGS, uuid.uuid4(), reader(b"x" * 100), at=january
        )
        await blobs.store.shred_expired_periods(
            practice, RECORDINGS, retention_months=0,
            now=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), actor="t", reason="test",
        )  # fmt: skip
        with pytest.raises(BlobShredded):
            await blobs.store.put(
                system(practice), RECORDINGS, uuid.uuid4(), reader(b"y"), at=january
            )

    run_with_store(blob_target, body)


def test_lifting_a_hold_after_its_month_was_shredded_deletes_the_object(blob_target):
    practice = make_practice(blob_target)
    oid = uuid.uuid4()
    january = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    owner = member(practice, "owner")

    async def body(blobs: Blobs):
        await blobs.store.put(
            system(practice), RECORDINGS, oid, reader(b"z" * 5000), at=january
        )
        await blobs.store.set_legal_hold(owner, oid, held=True)
        await blobs.store.shred_expired_periods(
            practice, RECORDINGS, retention_months=0,
            now=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), actor="t", reason="test",
        )  # fmt: skip
        assert await _read(blobs, practice, oid) == b"z" * 5000
        ref = await blobs.store.set_legal_hold(owner, oid, held=False)
        assert ref.shredded_at is not None
        with pytest.raises(BlobShredded):
            await _read(blobs, practice, oid)
        return await blobs.store.list_certificates(owner)

    listed = run_with_store(blob_target, body)
    assert [row["object_ids"] for row in listed if row["object_ids"]] == [[oid]]
    assert len(listed) == 2
