"""Who may read, hold and delete stored objects: the practice's roles decide,
another practice sees nothing, every read is audited before any byte leaves,
and an object under legal hold cannot be deleted."""

from __future__ import annotations

import io
import uuid

import pytest
from tests.conftest import admin_connection
from tests.functional.encryption.helpers import (
    MARCH,
    Blobs,
    make_practice,
    member,
    reader,
    run_with_store,
    system,
)

from perpetua.blobs import BlobNotFound, BlobShredded
from perpetua.blobs.errors import BlobOnHold
from perpetua.crypto.keystore import DataClass
from perpetua.errors import Forbidden


async def _put(blobs: Blobs, practice: uuid.UUID, data: bytes = b"a" * 5000):
    oid = uuid.uuid4()
    await blobs.store.put(
        system(practice), DataClass.RECORDINGS, oid, reader(data), at=MARCH
    )
    return oid


def test_front_desk_plays_a_recording_and_the_playback_is_audited(blob_target):
    practice = make_practice(blob_target)

    async def body(blobs: Blobs):
        oid = await _put(blobs, practice)
        chunks = [
            chunk
            async for chunk in blobs.store.iter_plaintext(
                member(practice, "front_desk"), oid
            )
        ]
        return oid, b"".join(chunks)

    oid, played = run_with_store(blob_target, body)
    assert played == b"a" * 5000
    with admin_connection(blob_target) as conn:
        actions = conn.execute(
            "select action, resource_type, outcome from audit.events "
            "where %s = any (resource_ids) order by occurred_at",
            (oid,),
        ).fetchall()
    assert ("playback", "recording", "success") in actions
    assert ("create", "recording", "success") in actions


def test_biller_cannot_read_a_recording_and_the_denial_is_recorded(blob_target):
    practice = make_practice(blob_target)

    async def body(blobs: Blobs):
        oid = await _put(blobs, practice)
        with pytest.raises(Forbidden):
            await blobs.store.read_into(member(practice, "biller"), oid, io.BytesIO())
        return oid

    oid = run_with_store(blob_target, body)
    with admin_connection(blob_target) as conn:
        denied = conn.execute(
            "select count(*) from audit.events "
            "where %s = any (resource_ids) and outcome = 'denied'",
            (oid,),
        ).fetchone()
    assert denied == (1,)


def test_other_practice_cannot_see_the_object(blob_target):
    practice = make_practice(blob_target)
    other = make_practice(blob_target)

    async def body(blobs: Blobs):
        oid = await _put(blobs, practice)
        for claims in (member(other, "owner"), system(other)):
            with pytest.raises(BlobNotFound):
                await blobs.store.describe(claims, oid)
            with pytest.raises(BlobNotFound):
                await blobs.store.delete(claims, oid, reason="not theirs")
        # Still there for its own practice.
        return (await blobs.store.describe(member(practice, "manager"), oid)).size

    assert run_with_store(blob_target, body) == 5000


def test_only_the_owner_deletes_and_never_under_legal_hold(blob_target):
    practice = make_practice(blob_target)

    async def body(blobs: Blobs):
        oid = await _put(blobs, practice)
        with pytest.raises(Forbidden):
            await blobs.store.delete(member(practice, "manager"), oid, reason="tidy")
        with pytest.raises(Forbidden):
            await blobs.store.set_legal_hold(
                member(practice, "front_desk"), oid, held=True
            )
        owner = member(practice, "owner")
        await blobs.store.set_legal_hold(owner, oid, held=True)
        with pytest.raises(BlobOnHold):
            await blobs.store.delete(owner, oid, reason="tidy")
        await blobs.store.set_legal_hold(owner, oid, held=False)
        certificate = await blobs.store.delete(owner, oid, reason="patient request")
        with pytest.raises(BlobShredded):
            await blobs.store.read_into(owner, oid, io.BytesIO())
        return oid, certificate, await blobs.store.list_certificates(owner)

    oid, certificate, listed = run_with_store(blob_target, body)
    assert [row["object_ids"] for row in listed] == [[oid]]
    with admin_connection(blob_target) as conn:
        denials = conn.execute(
            "select action from audit.events "
            "where %s = any (resource_ids) and outcome = 'denied' order by action",
            (oid,),
        ).fetchall()
    assert denials == [("delete",), ("update",)]
    assert listed[0]["reason"] == "patient request"
    assert certificate.key_versions == ()
    with admin_connection(blob_target) as conn:
        row = conn.execute(
            "select wrapped_data_key, shredded_at is not null from phi.blob_objects "
            "where id = %s",
            (oid,),
        ).fetchone()
    assert row == (None, True)


def test_objects_need_a_signed_baa(blob_target):
    practice = make_practice(blob_target)
    with admin_connection(blob_target) as conn:
        conn.execute(
            "update app.baa_executions set terminated_at = now() "
            "where practice_id = %s",
            (practice,),
        )

    async def body(blobs: Blobs):
        from perpetua.errors import BaaNotSigned

        with pytest.raises(BaaNotSigned):
            await _put(blobs, practice)
        # Nothing is left behind in the blob folder either.
        return list(blobs.objects.keys(""))

    assert run_with_store(blob_target, body) == []
