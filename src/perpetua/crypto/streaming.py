"""Segmented AEAD for blobs of any size: recordings, transcripts, documents.

Guards stored blobs in constant memory. The plaintext is cut into fixed-size
segments, each sealed with AES-256-GCM under a key derived for this object
alone, with a nonce made of a random prefix, the segment index and a
final-segment flag, and with the whole stream header as associated data.
Hence, on decryption:

* a flipped byte anywhere fails (the header is committed to, segments carry
  tags);
* reordered or duplicated segments fail (the index is in the nonce);
* a segment spliced from another object fails (another derived key and header);
* a stream cut at a segment boundary fails with `StreamTruncated` (the last
  remaining segment was not sealed as final), and trailing junk fails too.

Stream layout (integers big-endian)::

    magic "PPSB" | format 0x01 | segment size (4) | object id length (2)
    | object id (UTF-8) | salt (32) | nonce prefix (7) | key commitment (32)
    then segments: ciphertext || tag (16), every one full except the last

    segment key, commitment = HKDF-SHA256(data key, salt,
        info = practice, data class, header up to the commitment)
    nonce(i) = nonce prefix (7) | i (4) | 1 if last else 0 (1)

The commitment makes a wrong data key or wrong context fail at the header with
a clear error, before any segment is tried, and makes the whole header
tamper-evident. The data key itself is not in the stream: it is wrapped in the
keystore's class key and stored by the caller, so it can be rewrapped without
rewriting the blob.
"""

from __future__ import annotations

import hmac
import secrets
import struct
import uuid
from collections.abc import Iterator
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from perpetua.crypto import aead
from perpetua.crypto.errors import DecryptionFailed, StreamTruncated
from perpetua.crypto.keystore import DataClass, Keystore

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "BinaryReader",
    "BinaryWriter",
    "BlobCipher",
    "SealingWriter",
    "decrypt_stream",
    "encrypt_stream",
    "iter_decrypt",
    "write_all",
]

# 1 MiB: measured by bench/crypto.py, it keeps per-segment overhead negligible
# (streaming runs at the one-shot AES-GCM limit) while memory stays ~3 MiB.
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 4 << 10
MAX_SEGMENT_SIZE = 16 << 20

_MAGIC = b"PPSB"
_FORMAT = 0x01
_FIXED = struct.Struct(">4sBIH")
_SALT_SIZE = 32
_PREFIX_SIZE = 7
_COMMIT_SIZE = 32
_MAX_OBJECT_ID = 1024
_MAX_SEGMENTS = 1 << 32


class BinaryReader(Protocol):
    """Anything with `readinto`, such as a file opened with `"rb"`."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class BinaryWriter(Protocol):
    """Anything with `write`, such as a file opened with `"wb"`."""

    def write(self, data: memoryview, /) -> int | None: ...


def _read_full(reader: BinaryReader, view: memoryview) -> int:
    # Pipes and sockets return short reads; only an empty read means EOF.
    filled = 0
    while filled < len(view):
        got = reader.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def write_all(writer: BinaryWriter, view: memoryview) -> None:
    # Raw files may accept fewer bytes than offered; buffered ones return all.
    while view:
        written = writer.write(view)
        if written is None or written >= len(view):
            return
        view = view[written:]


def _derive(
    data_key: bytes,
    salt: bytes,
    practice_id: str,
    data_class: DataClass,
    header_body: bytes,
) -> tuple[AESGCM, bytes]:
    info = aead.associated_data(
        "perpetua/stream/v1", practice_id, str(data_class), header_body
    )
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=aead.KEY_SIZE + _COMMIT_SIZE,
        salt=salt,
        info=info,
    ).derive(data_key)
    return AESGCM(okm[: aead.KEY_SIZE]), okm[aead.KEY_SIZE :]


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def _check_key(data_key: bytes) -> None:
    if len(data_key) != aead.KEY_SIZE:
        raise ValueError("a data key is 32 bytes")


def _begin(
    data_key: bytes,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
    segment_size: int,
) -> tuple[AESGCM, bytes, bytes]:
    """The segment cipher, the stream header and the nonce prefix of a new stream."""
    _check_key(data_key)
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError("segment size must be between 4 KiB and 16 MiB")
    object_bytes = str(object_id).encode("utf-8")
    if not 0 < len(object_bytes) <= _MAX_OBJECT_ID:
        raise ValueError("object id must be 1-1024 bytes of UTF-8")

    salt = secrets.token_bytes(_SALT_SIZE)
    prefix = secrets.token_bytes(_PREFIX_SIZE)
    header_body = (
        _FIXED.pack(_MAGIC, _FORMAT, segment_size, len(object_bytes))
        + object_bytes
        + salt
        + prefix
    )
    cipher, commitment = _derive(
        data_key, salt, str(practice_id), data_class, header_body
    )
    return cipher, header_body + commitment, prefix


def encrypt_stream(
    data_key: bytes,
    reader: BinaryReader,
    writer: BinaryWriter,
    *,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> int:
    """Encrypt everything `reader` yields into `writer`; return plaintext bytes."""
    cipher, header, prefix = _begin(
        data_key, practice_id, data_class, object_id, segment_size
    )
    write_all(writer, memoryview(header))

    # Two input buffers: the look-ahead read tells whether the current segment
    # is the last one before it is sealed. One output buffer, reused.
    inputs = (bytearray(segment_size), bytearray(segment_size))
    views = (memoryview(inputs[0]), memoryview(inputs[1]))
    out_view = memoryview(bytearray(segment_size + aead.TAG_SIZE))

    current = 0
    filled = _read_full(reader, views[current])
    total = 0
    index = 0
    while True:
        if index >= _MAX_SEGMENTS:
            raise ValueError("stream too long for a 32-bit segment counter")
        if filled < segment_size:
            next_filled, final = 0, True
        else:
            next_filled = _read_full(reader, views[1 - current])
            final = next_filled == 0
        # The output view must be exactly plaintext + tag long.
        sealed = out_view[: filled + aead.TAG_SIZE]
        cipher.encrypt_into(
            _nonce(prefix, index, final), views[current][:filled], header, sealed
        )
        write_all(writer, sealed)
        total += filled
        if final:
            return total
        current, filled, index = 1 - current, next_filled, index + 1


class SealingWriter:
    """The writing side of `encrypt_stream`, for producers that push bytes.

    A ZIP being built, for one, writes its entries piece by piece and cannot be
    read from. Bytes written in pieces of any size come out in exactly the stream
    format `decrypt_stream` reads, holding at most one segment and one piece in
    memory. `close` seals the last segment; a writer dropped without it leaves a
    stream that fails as truncated, never one that passes for complete.
    """

    def __init__(
        self,
        data_key: bytes,
        writer: BinaryWriter,
        *,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self._cipher, self._header, self._prefix = _begin(
            data_key, practice_id, data_class, object_id, segment_size
        )
        self._writer = writer
        self._size = segment_size
        self._pending = bytearray()
        self._index = 0
        self._closed = False
        self.plaintext_bytes = 0
        write_all(writer, memoryview(self._header))

    def _seal(self, final: bool) -> None:
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("stream too long for a 32-bit segment counter")
        take = min(len(self._pending), self._size)
        sealed = self._cipher.encrypt(
            _nonce(self._prefix, self._index, final),
            bytes(self._pending[:take]),
            self._header,
        )
        del self._pending[:take]
        write_all(self._writer, memoryview(sealed))
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._closed:
            raise ValueError("the stream is already sealed")
        self._pending += data
        # A full segment waits until a byte after it exists: only the last
        # segment carries the final flag, and only `close` knows which that is.
        while len(self._pending) > self._size:
            self._seal(final=False)
        written = len(data) if not isinstance(data, memoryview) else data.nbytes
        self.plaintext_bytes += written
        return written

    def flush(self) -> None:
        """Nothing is held back but the segment that may be the last."""

    def close(self) -> None:
        if not self._closed:
            self._seal(final=True)
            self._closed = True


def _read_header(
    data_key: bytes,
    reader: BinaryReader,
    practice_id: str,
    data_class: DataClass,
    object_id: str,
) -> tuple[AESGCM, bytes, bytes, int]:
    fixed = bytearray(_FIXED.size)
    if _read_full(reader, memoryview(fixed)) < _FIXED.size:
        raise StreamTruncated("stream ends inside its header")
    magic, version, segment_size, id_length = _FIXED.unpack(fixed)
    if magic != _MAGIC:
        raise DecryptionFailed("not a Perpetua encrypted stream", "format")
    if version != _FORMAT:
        raise DecryptionFailed(f"unsupported stream format {version}", "format")

    # Bounds first: a forged header must not make us allocate gigabytes.
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise DecryptionFailed("stream header has an invalid segment size", "format")
    if not 0 < id_length <= _MAX_OBJECT_ID:
        raise DecryptionFailed("stream header has an invalid object id", "format")

    rest = bytearray(id_length + _SALT_SIZE + _PREFIX_SIZE + _COMMIT_SIZE)
    if _read_full(reader, memoryview(rest)) < len(rest):
        raise StreamTruncated("stream ends inside its header")
    if bytes(rest[:id_length]) != object_id.encode("utf-8"):
        raise DecryptionFailed(
            "stream belongs to another object", reason="wrong_object"
        )
    salt = bytes(rest[id_length : id_length + _SALT_SIZE])
    prefix = bytes(rest[id_length + _SALT_SIZE : -_COMMIT_SIZE])
    stored_commitment = bytes(rest[-_COMMIT_SIZE:])
    header_body = bytes(fixed) + bytes(rest[:-_COMMIT_SIZE])

    cipher, commitment = _derive(data_key, salt, practice_id, data_class, header_body)
    if not hmac.compare_digest(commitment, stored_commitment):
        raise DecryptionFailed(
            "stream header does not match this data key and context (wrong key, "
            "wrong practice or data class, or tampered header)",
            reason="wrong_key_or_context",
        )
    return cipher, header_body + stored_commitment, prefix, segment_size


def _segments(
    data_key: bytes,
    reader: BinaryReader,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
) -> Iterator[memoryview]:
    # Yields views into one reused buffer: each is valid until the next one.
    _check_key(data_key)
    cipher, header, prefix, segment_size = _read_header(
        data_key, reader, str(practice_id), data_class, str(object_id)
    )
    sealed_size = segment_size + aead.TAG_SIZE
    inputs = (bytearray(sealed_size), bytearray(sealed_size))
    views = (memoryview(inputs[0]), memoryview(inputs[1]))
    out_view = memoryview(bytearray(segment_size))

    current = 0
    filled = _read_full(reader, views[current])
    if filled == 0:
        raise StreamTruncated("stream has a header but no segments")
    index = 0
    while True:
        if filled < sealed_size:
            next_filled, final = 0, True
        else:
            next_filled = _read_full(reader, views[1 - current])
            final = next_filled == 0
        sealed = views[current][:filled]
        try:
            if filled < aead.TAG_SIZE:
                raise InvalidTag
            size = filled - aead.TAG_SIZE
            cipher.decrypt_into(
                _nonce(prefix, index, final), sealed, header, out_view[:size]
            )
        except InvalidTag:
            raise _segment_error(cipher, prefix, index, final, sealed, header) from None
        yield out_view[:size]
        if final:
            return
        current, filled, index = 1 - current, next_filled, index + 1


def _segment_error(
    cipher: AESGCM,
    prefix: bytes,
    index: int,
    final: bool,
    sealed: memoryview,
    header: bytes,
) -> DecryptionFailed:
    # Only on the failure path: tell truncation apart from corruption by
    # checking whether the "last" segment was in fact sealed as a middle one.
    if final and len(sealed) >= aead.TAG_SIZE:
        try:
            cipher.decrypt(_nonce(prefix, index, False), sealed, header)
        except InvalidTag:
            pass
        else:
            return StreamTruncated(
                f"stream was truncated after segment {index}: its final "
                "segment is missing"
            )
    return DecryptionFailed(
        f"segment {index} failed authentication (corrupted, truncated, reordered "
        "or taken from another stream)",
        reason="segment_authentication",
    )


def decrypt_stream(
    data_key: bytes,
    reader: BinaryReader,
    writer: BinaryWriter,
    *,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
) -> int:
    """Decrypt a stream into `writer`; return plaintext bytes.

    Segments are written as they authenticate: if this raises, the writer
    already holds a prefix that must be discarded.
    """
    total = 0
    for view in _segments(data_key, reader, practice_id, data_class, object_id):
        write_all(writer, view)
        total += len(view)
    return total


def iter_decrypt(
    data_key: bytes,
    reader: BinaryReader,
    *,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
) -> Iterator[bytes]:
    """Yield authenticated plaintext segments, for streaming playback.

    Every chunk yielded is authentic; truncation is only known at the end, so
    a consumer must treat an exception after some chunks as a failed stream.
    """
    for view in _segments(data_key, reader, practice_id, data_class, object_id):
        yield bytes(view)


class BlobCipher:
    """Envelope encryption of blobs: a fresh data key per object."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore

    def encrypt(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        reader: BinaryReader,
        writer: BinaryWriter,
        *,
        period: str | None = None,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> bytes:
        """Encrypt a blob; return the wrapped data key the caller must store."""
        data_key = self._keystore.new_data_key()
        wrapped = self._keystore.wrap_data_key(
            practice_id, data_class, object_id, data_key, period
        )
        encrypt_stream(
            data_key,
            reader,
            writer,
            practice_id=practice_id,
            data_class=data_class,
            object_id=object_id,
            segment_size=segment_size,
        )
        return wrapped

    def decrypt(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        wrapped_key: bytes,
        reader: BinaryReader,
        writer: BinaryWriter,
        *,
        period: str | None = None,
    ) -> int:
        """Decrypt a blob into `writer`; return plaintext bytes."""
        data_key = self._keystore.unwrap_data_key(
            practice_id, data_class, object_id, wrapped_key, period
        )
        return decrypt_stream(
            data_key,
            reader,
            writer,
            practice_id=practice_id,
            data_class=data_class,
            object_id=object_id,
        )

    def iter_decrypt(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        wrapped_key: bytes,
        reader: BinaryReader,
        *,
        period: str | None = None,
    ) -> Iterator[bytes]:
        """Yield authenticated plaintext chunks of a blob."""
        data_key = self._keystore.unwrap_data_key(
            practice_id, data_class, object_id, wrapped_key, period
        )
        return iter_decrypt(
            data_key,
            reader,
            practice_id=practice_id,
            data_class=data_class,
            object_id=object_id,
        )
