"""The writing side of the stream format: whatever pieces a producer writes, the
result opens to exactly those bytes, has the segment layout `encrypt_stream`
gives the same plaintext, and a writer never closed leaves a stream that fails as
truncated."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.crypto.test_streaming import CONTEXT, DATA_KEY, SEGMENT, open_, seal

from perpetua.crypto.errors import StreamTruncated
from perpetua.crypto.streaming import SealingWriter


def _written(pieces: list[bytes], close: bool = True) -> bytes:
    out = io.BytesIO()
    writer = SealingWriter(DATA_KEY, out, segment_size=SEGMENT, **CONTEXT)
    for piece in pieces:
        assert writer.write(memoryview(piece)) == len(piece)
    if close:
        writer.close()
        writer.close()  # a second close seals nothing more
    assert writer.plaintext_bytes == sum(map(len, pieces))
    return out.getvalue()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=3 * SEGMENT), max_size=6))
def test_any_pieces_open_to_their_bytes_in_the_shape_encrypt_stream_gives(pieces):
    stored = _written(pieces)
    plaintext = b"".join(pieces)
    assert open_(stored) == plaintext
    assert len(stored) == len(seal(plaintext))


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
def test_segment_edges_open(size):
    plaintext = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    one_by_one = [plaintext[i : i + 1000] for i in range(0, size, 1000)]
    assert open_(_written([plaintext])) == plaintext
    assert open_(_written(one_by_one)) == plaintext


def test_a_writer_never_closed_leaves_a_truncated_stream():
    stored = _written([b"y" * (2 * SEGMENT + 10)], close=False)
    with pytest.raises(StreamTruncated):
        open_(stored)


def test_nothing_is_written_after_close():
    writer = SealingWriter(DATA_KEY, io.BytesIO(), segment_size=SEGMENT, **CONTEXT)
    writer.close()
    with pytest.raises(ValueError, match="sealed"):
        writer.write(b"late")
