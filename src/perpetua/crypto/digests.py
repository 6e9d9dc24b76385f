"""Streams that hash and count the bytes passing through them.

Guards the claim "these are the bytes we recorded". A sealed blob, a database
backup and a termination export are each hashed on their way to storage and
again on their way back, and the sizes and SHA-256 recorded in between are
compared. One implementation serves all of them, so a short read or a partial
write is counted the same way everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from perpetua.crypto.streaming import BinaryReader, BinaryWriter, write_all

__all__ = ["DigestingReader", "DigestingWriter", "Progress"]

# Called with the number of bytes that just passed, for progress bars.
Progress = Callable[[int], None]


class _Tally:
    def __init__(self, progress: Progress | None) -> None:
        self.hash = hashlib.sha256()
        self.count = 0
        self._progress = progress

    def _saw(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.count += len(data)
        if self._progress is not None and len(data):
            self._progress(len(data))


class DigestingReader(_Tally):
    """Reads from `inner`, keeping the length and SHA-256 of what it hands on."""

    def __init__(self, inner: BinaryReader, progress: Progress | None = None) -> None:
        super().__init__(progress)
        self._inner = inner

    def readinto(self, buffer: memoryview, /) -> int:
        got = self._inner.readinto(buffer) or 0
        self._saw(buffer[:got])
        return got


class DigestingWriter(_Tally):
    """Writes everything to `inner` (or nowhere, when there is none), keeping the
    length and SHA-256 of what was written."""

    def __init__(
        self, inner: BinaryWriter | None = None, progress: Progress | None = None
    ) -> None:
        super().__init__(progress)
        self._inner = inner

    def write(self, data: bytes | memoryview, /) -> int:
        self._saw(data)
        if self._inner is not None:
            write_all(self._inner, memoryview(data))
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._inner, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        """Leaves `inner` open: closing it belongs to whoever opened it."""
