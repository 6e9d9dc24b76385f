"""Specification of segmented blob encryption (recordings, transcripts, documents)."""

from __future__ import annotations

import io
import os
import secrets
import struct
from typing import TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpetua.crypto.errors import DecryptionFailed, KeyDestroyed, StreamTruncated
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.crypto.streaming import (
    MIN_SEGMENT_SIZE,
    BlobCipher,
    decrypt_stream,
    encrypt_stream,
    iter_decrypt,
)

PRACTICE = "practice-a"
SEGMENT = MIN_SEGMENT_SIZE
SEALED_SEGMENT = SEGMENT + 16
DATA_KEY = secrets.token_bytes(32)


class StreamContext(TypedDict):
    practice_id: str
    data_class: DataClass
    object_id: str


CONTEXT = StreamContext(
    practice_id=PRACTICE, data_class=DataClass.RECORDINGS, object_id="call-1"
)


def seal(plaintext: bytes, object_id: str = "call-1", key: bytes = DATA_KEY) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        key,
        io.BytesIO(plaintext),
        out,
        practice_id=PRACTICE,
        data_class=DataClass.RECORDINGS,
        object_id=object_id,
        segment_size=SEGMENT,
    )
    return out.getvalue()


def open_(
    stored: bytes,
    *,
    object_id: str = "call-1",
    data_class: DataClass = DataClass.RECORDINGS,
) -> bytes:
    out = io.BytesIO()
    decrypt_stream(
        DATA_KEY,
        io.BytesIO(stored),
        out,
        practice_id=PRACTICE,
        data_class=data_class,
        object_id=object_id,
    )
    return out.getvalue()


def split(stored: bytes) -> tuple[bytes, list[bytes]]:
    header_size = len(stored) - _body_size(stored)
    body = stored[header_size:]
    chunks = [body[i : i + SEALED_SEGMENT] for i in range(0, len(body), SEALED_SEGMENT)]
    return stored[:header_size], chunks


def _body_size(stored: bytes) -> int:
    id_length: int = struct.unpack_from(">H", stored, 9)[0]
    return len(stored) - (11 + id_length + 32 + 7 + 32)


@settings(max_examples=30, deadline=None)
@given(
    size=st.sampled_from(
        [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17]
    )
)
def test_blobs_of_any_size_round_trip(size: int) -> None:
    plaintext = os.urandom(size)

    assert open_(seal(plaintext)) == plaintext


def test_stored_stream_contains_no_plaintext() -> None:
    plaintext = b"patient said: my date of birth is 1990-02-03. " * 400

    assert b"date of birth" not in seal(plaintext)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_flipping_any_byte_of_a_stored_stream_fails(data: st.DataObject) -> None:
    stored = bytearray(seal(os.urandom(2 * SEGMENT + 100)))
    position = data.draw(st.integers(0, len(stored) - 1))
    stored[position] ^= data.draw(st.integers(1, 255))

    with pytest.raises(DecryptionFailed):
        open_(bytes(stored))


def test_dropping_the_last_chunk_of_a_stored_stream_fails_as_truncated() -> None:
    header, chunks = split(seal(os.urandom(3 * SEGMENT + 5)))

    with pytest.raises(StreamTruncated, match="truncated after segment 2"):
        open_(header + b"".join(chunks[:-1]))


def test_dropping_every_chunk_of_a_stored_stream_fails_as_truncated() -> None:
    header, _chunks = split(seal(os.urandom(SEGMENT)))

    with pytest.raises(StreamTruncated):
        open_(header)


def test_cutting_a_stored_stream_mid_segment_fails() -> None:
    stored = seal(os.urandom(3 * SEGMENT))

    with pytest.raises(DecryptionFailed):
        open_(stored[: len(stored) - SEGMENT // 2])


def test_swapping_two_chunks_of_a_stored_stream_fails() -> None:
    header, chunks = split(seal(os.urandom(3 * SEGMENT + 5)))
    chunks[0], chunks[1] = chunks[1], chunks[0]

    with pytest.raises(DecryptionFailed) as caught:
        open_(header + b"".join(chunks))

    assert caught.value.reason == "segment_authentication"
    assert "segment 0" in str(caught.value)


def test_appending_data_after_the_final_chunk_fails() -> None:
    stored = seal(os.urandom(SEGMENT + 10))

    with pytest.raises(DecryptionFailed):
        open_(stored + b"\x00" * 16)


def test_splicing_a_chunk_from_another_object_fails_even_under_one_data_key() -> None:
    header, chunks = split(seal(os.urandom(2 * SEGMENT + 5), object_id="call-1"))
    _other_header, other_chunks = split(
        seal(os.urandom(2 * SEGMENT + 5), object_id="call-2")
    )
    chunks[1] = other_chunks[1]

    with pytest.raises(DecryptionFailed, match="segment 1"):
        open_(header + b"".join(chunks))


def test_a_stream_presented_as_another_object_fails() -> None:
    stored = seal(b"recording")

    with pytest.raises(DecryptionFailed) as caught:
        open_(stored, object_id="call-2")

    assert caught.value.reason == "wrong_object"


def test_decrypting_a_recording_stream_as_a_transcript_fails() -> None:
    stored = seal(b"recording")

    with pytest.raises(DecryptionFailed) as caught:
        open_(stored, data_class=DataClass.TRANSCRIPTS)

    assert caught.value.reason == "wrong_key_or_context"


def test_decrypting_a_recording_with_the_transcripts_key_fails(
    keystore: Keystore,
) -> None:
    blobs = BlobCipher(keystore)
    stored = io.BytesIO()
    wrapped = blobs.encrypt(
        PRACTICE, DataClass.RECORDINGS, "call-1", io.BytesIO(b"audio"), stored,
        period="2026-12",
    )  # fmt: skip
    keystore.current(PRACTICE, DataClass.TRANSCRIPTS, "2026-12")

    with pytest.raises(DecryptionFailed):
        blobs.decrypt(
            PRACTICE, DataClass.TRANSCRIPTS, "call-1", wrapped,
            io.BytesIO(stored.getvalue()), io.BytesIO(), period="2026-12",
        )  # fmt: skip


def test_wrong_data_key_fails_at_the_header() -> None:
    stored = seal(b"recording", key=secrets.token_bytes(32))

    with pytest.raises(DecryptionFailed) as caught:
        open_(stored)

    assert caught.value.reason == "wrong_key_or_context"


def test_forged_segment_size_is_refused_before_allocating() -> None:
    stored = bytearray(seal(b"recording"))
    stored[5:9] = struct.pack(">I", 1 << 31)

    with pytest.raises(DecryptionFailed) as caught:
        open_(bytes(stored))

    assert caught.value.reason == "format"


def test_playback_iterator_yields_authentic_chunks_then_reports_truncation() -> None:
    plaintext = os.urandom(3 * SEGMENT + 5)
    header, chunks = split(seal(plaintext))
    stream = io.BytesIO(header + b"".join(chunks[:-1]))

    received: list[bytes] = []

    def play() -> None:
        for chunk in iter_decrypt(DATA_KEY, stream, **CONTEXT):
            received.append(chunk)

    with pytest.raises(StreamTruncated):
        play()

    # The segment that turned out to be the cut-off point is withheld too.
    assert b"".join(received) == plaintext[: 2 * SEGMENT]


class TricklingReader:
    """A reader that returns at most a few bytes per call, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._source = io.BytesIO(data)

    def readinto(self, buffer: memoryview) -> int:
        return self._source.readinto(buffer[:1000])


def test_short_reads_from_a_slow_source_are_handled() -> None:
    plaintext = os.urandom(2 * SEGMENT + 3)
    stored = io.BytesIO()
    encrypt_stream(
        DATA_KEY,
        TricklingReader(plaintext),
        stored,
        segment_size=SEGMENT,
        **CONTEXT,
    )

    out = io.BytesIO()
    decrypt_stream(DATA_KEY, TricklingReader(stored.getvalue()), out, **CONTEXT)

    assert out.getvalue() == plaintext


def test_destroying_the_month_key_crypto_shreds_that_months_recordings(
    keystore: Keystore,
) -> None:
    blobs = BlobCipher(keystore)
    december, january = io.BytesIO(), io.BytesIO()
    wrapped_december = blobs.encrypt(
        PRACTICE, DataClass.RECORDINGS, "call-1", io.BytesIO(b"dec"), december,
        period="2026-12",
    )  # fmt: skip
    wrapped_january = blobs.encrypt(
        PRACTICE, DataClass.RECORDINGS, "call-2", io.BytesIO(b"jan"), january,
        period="2027-01",
    )  # fmt: skip
    backup_copy = december.getvalue()

    keystore.destroy(
        PRACTICE, DataClass.RECORDINGS, "2026-12", reason="retention", actor="system"
    )

    with pytest.raises(KeyDestroyed):
        blobs.decrypt(
            PRACTICE, DataClass.RECORDINGS, "call-1", wrapped_december,
            io.BytesIO(backup_copy), io.BytesIO(), period="2026-12",
        )  # fmt: skip
    out = io.BytesIO()
    blobs.decrypt(
        PRACTICE, DataClass.RECORDINGS, "call-2", wrapped_january,
        io.BytesIO(january.getvalue()), out, period="2027-01",
    )  # fmt: skip
    assert out.getvalue() == b"jan"


def test_rewrap_after_rotation_leaves_the_blob_untouched(keystore: Keystore) -> None:
    blobs = BlobCipher(keystore)
    stored = io.BytesIO()
    wrapped = blobs.encrypt(
        PRACTICE, DataClass.DOCUMENTS, "doc-1", io.BytesIO(b"referral"), stored
    )
    blob = stored.getvalue()

    keystore.rotate(PRACTICE, DataClass.DOCUMENTS)
    rewrapped = keystore.rewrap_data_key(
        PRACTICE, DataClass.DOCUMENTS, "doc-1", wrapped
    )
    keystore.destroy(
        PRACTICE, DataClass.DOCUMENTS, reason="retire", actor="ops", versions=(1,)
    )

    chunks = blobs.iter_decrypt(
        PRACTICE, DataClass.DOCUMENTS, "doc-1", rewrapped, io.BytesIO(blob)
    )
    assert b"".join(chunks) == b"referral"
