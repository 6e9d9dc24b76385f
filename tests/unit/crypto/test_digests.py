"""Hashing streams count and hash exactly the bytes that pass, whatever the size
of the reads and writes underneath, and report progress only for real bytes."""

from __future__ import annotations

import hashlib
import io

from perpetua.crypto.digests import DigestingReader, DigestingWriter

DATA = bytes(range(256)) * 40


class _Stingy:
    """A raw writer that takes at most three bytes per call."""

    def __init__(self) -> None:
        self.got = bytearray()

    def write(self, data: memoryview, /) -> int:
        self.got += data[:3]
        return min(3, len(data))


def test_a_writer_passes_every_byte_on_through_partial_writes():
    inner = _Stingy()
    seen: list[int] = []
    writer = DigestingWriter(inner, seen.append)
    for first in range(0, len(DATA), 1000):
        piece = DATA[first : first + 1000]
        assert writer.write(piece) == len(piece)
    writer.write(b"")
    assert bytes(inner.got) == DATA
    assert (writer.count, writer.hash.digest()) == (
        len(DATA),
        hashlib.sha256(DATA).digest(),
    )
    assert sum(seen) == len(DATA)
    assert 0 not in seen


def test_a_writer_without_inner_only_tallies():
    writer = DigestingWriter()
    writer.write(memoryview(DATA))
    writer.flush()
    assert writer.hash.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_a_reader_tallies_what_it_hands_on():
    reader = DigestingReader(io.BytesIO(DATA))
    buffer = memoryview(bytearray(777))
    out = bytearray()
    while got := reader.readinto(buffer):
        out += buffer[:got]
    assert bytes(out) == DATA
    assert (reader.count, reader.hash.digest()) == (
        len(DATA),
        hashlib.sha256(DATA).digest(),
    )
