"""Through the blob store, a stored recording reads back only as itself: another
class key, another object, another practice, a flipped byte, a dropped or
swapped segment all fail with a clear, named error and return no data."""

from __future__ import annotations

import io
import shutil
import uuid

import pytest
from tests.conftest import admin_connection
from tests.functional.encryption.helpers import (
    MARCH,
    Blobs,
    make_practice,
    reader,
    run_with_store,
    synthetic_audio,
    system,
)

from perpetua.blobs import BlobUnreadable
from perpetua.crypto.keystore import DataClass
from perpetua.db.target import DatabaseTarget

SEGMENT = 4096
# magic, format, segment size, id length, id (36), salt, nonce prefix, commitment
HEADER = 4 + 1 + 4 + 2 + 36 + 32 + 7 + 32
SEALED = SEGMENT + 16


def _store_one(blob_target: DatabaseTarget, size: int = SEGMENT * 3 + 100):
    practice = make_practice(blob_target)
    data = synthetic_audio(size)
    object_id = uuid.uuid4()

    async def body(blobs: Blobs):
        ref = await blobs.store.put(
            system(practice), DataClass.RECORDINGS, object_id, reader(data), at=MARCH
        )
        return blobs, ref

    blobs, ref = run_with_store(blob_target, body)
    return practice, data, object_id, blobs, ref


def _read(
    blob_target: DatabaseTarget, blobs: Blobs, practice: uuid.UUID, oid: uuid.UUID
):
    async def body(inner: Blobs) -> bytes:
        sink = io.BytesIO()
        await inner.store.read_into(system(practice), oid, sink)
        return sink.getvalue()

    return run_with_store(blob_target, body, root=blobs.root, segment_size=SEGMENT)


def test_recording_round_trips_and_is_not_plaintext_on_disk(blob_target):
    practice, data, oid, blobs, ref = _store_one(blob_target, size=SEGMENT * 5 + 7)
    assert ref.size == len(data)
    assert ref.period == "2026-03"
    assert ref.key_bucket == "2026-03"
    stored = blobs.path(practice, "recordings", "2026-03", oid).read_bytes()
    assert len(stored) == ref.stored_size == HEADER + 5 * SEALED + 7 + 16
    assert data[:64] not in stored
    assert _read(blob_target, blobs, practice, oid) == data


def test_recording_relabelled_as_transcript_fails(blob_target):
    practice, _data, oid, blobs, _ref = _store_one(blob_target)
    blobs.keystore.current(practice, DataClass.TRANSCRIPTS, "2026-03")
    with admin_connection(blob_target) as conn:
        conn.execute(
            "update phi.blob_objects set data_class = 'transcripts' where id = %s",
            (oid,),
        )
    # The month's transcripts key cannot unwrap a recording's data key.
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason == "authentication"


def test_recording_under_the_transcripts_key_fails(blob_target):
    practice, _data, oid, blobs, ref = _store_one(blob_target)
    transcript_key = blobs.keystore.current(practice, DataClass.TRANSCRIPTS, "2026-03")
    recording_key = blobs.keystore.current(practice, DataClass.RECORDINGS, "2026-03")
    assert transcript_key.secret != recording_key.secret
    with admin_connection(blob_target) as conn:
        wrapped = conn.execute(
            "select wrapped_data_key from phi.blob_objects where id = %s", (oid,)
        ).fetchone()[0]
    data_key = blobs.keystore.unwrap_data_key(
        practice, DataClass.RECORDINGS, oid, wrapped, "2026-03"
    )
    # Rewrapped under the transcripts key, the data key still only opens a
    # stream sealed for recordings: the stream's own context rejects it.
    as_transcript = blobs.keystore.wrap_data_key(
        practice, DataClass.TRANSCRIPTS, oid, data_key, "2026-03"
    )
    with admin_connection(blob_target) as conn:
        conn.execute(
            "update phi.blob_objects set data_class = 'transcripts', "
            "wrapped_data_key = %s where id = %s",
            (as_transcript, oid),
        )
    shutil.copy(
        blobs.path(practice, "recordings", ref.period, oid),
        _mkdirs(blobs.path(practice, "transcripts", ref.period, oid)),
    )
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason == "wrong_key_or_context"


def _mkdirs(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_blob_moved_onto_another_object_fails(blob_target):
    practice, _data, oid, blobs, _ref = _store_one(blob_target)

    async def second(inner: Blobs):
        other = uuid.uuid4()
        await inner.store.put(
            system(practice),
            DataClass.RECORDINGS,
            other,
            reader(synthetic_audio(9000, seed=3)),
            at=MARCH,
        )
        return other

    other = run_with_store(blob_target, second, root=blobs.root)
    shutil.copy(
        blobs.path(practice, "recordings", "2026-03", oid),
        blobs.path(practice, "recordings", "2026-03", other),
    )
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, other)
    assert failure.value.reason == "wrong_object"


def test_blob_moved_to_another_practice_fails(blob_target):
    practice, _data, oid, blobs, _ref = _store_one(blob_target)
    thief = make_practice(blob_target)
    with admin_connection(blob_target) as conn:
        conn.execute(
            "update phi.blob_objects set practice_id = %s where id = %s",
            (thief, oid),
        )
    _mkdirs(blobs.path(thief, "recordings", "2026-03", oid))
    shutil.copy(
        blobs.path(practice, "recordings", "2026-03", oid),
        blobs.path(thief, "recordings", "2026-03", oid),
    )
    with pytest.raises(BlobUnreadable):
        _read(blob_target, blobs, thief, oid)


@pytest.mark.parametrize(
    "offset",
    [0, 20, HEADER - 1, HEADER + 5, HEADER + SEALED + 100, -1],
    ids=["magic", "object-id", "commitment", "first", "second", "last-byte"],
)
def test_flipping_any_byte_fails(blob_target, offset):
    practice, _data, oid, blobs, _ref = _store_one(blob_target)
    path = blobs.path(practice, "recordings", "2026-03", oid)
    stored = bytearray(path.read_bytes())
    stored[offset] ^= 0x01
    path.write_bytes(bytes(stored))
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason in {
        "format",
        "wrong_object",
        "wrong_key_or_context",
        "segment_authentication",
    }


def test_dropping_the_last_segment_fails_as_truncated(blob_target):
    practice, _data, oid, blobs, _ref = _store_one(blob_target, size=SEGMENT * 3 + 100)
    path = blobs.path(practice, "recordings", "2026-03", oid)
    stored = path.read_bytes()
    path.write_bytes(stored[: HEADER + 3 * SEALED])
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason == "truncated"


def test_swapping_two_segments_fails(blob_target):
    practice, _data, oid, blobs, _ref = _store_one(blob_target, size=SEGMENT * 3 + 100)
    path = blobs.path(practice, "recordings", "2026-03", oid)
    stored = path.read_bytes()
    first = stored[HEADER : HEADER + SEALED]
    second = stored[HEADER + SEALED : HEADER + 2 * SEALED]
    path.write_bytes(stored[:HEADER] + second + first + stored[HEADER + 2 * SEALED :])
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason == "segment_authentication"


def test_appended_bytes_and_a_missing_object_fail(blob_target):
    practice, _data, oid, blobs, _ref = _store_one(blob_target)
    path = blobs.path(practice, "recordings", "2026-03", oid)
    stored = path.read_bytes()
    path.write_bytes(stored + b"\0" * 16)
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason == "segment_authentication"
    path.unlink()
    with pytest.raises(BlobUnreadable) as failure:
        _read(blob_target, blobs, practice, oid)
    assert failure.value.reason == "missing"
