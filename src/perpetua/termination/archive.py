"""The encrypted export archive handed to a practice when its BAA ends.

Pure: bytes in, bytes out; no database, no keystore. The archive's key never
exists at Perpetua after the export is made: it is derived with scrypt from a
passphrase the owner types, or it is a random key shown to the owner once. So
the file Perpetua keeps for download is ciphertext that only the practice can
open, and opening it needs nothing but this module (`perpetua export open`).

File layout (integers big-endian)::

    magic "PPEX" | format 0x01 | kdf (1 = scrypt, 2 = random key)
    | scrypt log2(N) (1) | scrypt r (1) | scrypt p (1) | salt (16)
    | practice id (16) | export id (16)
    then one stream in Perpetua's segmented AES-256-GCM format (crypto/streaming.py)
    under the derived key, bound to the practice id, the data class `backups`
    and the object id `export/<export id>`; its plaintext is a ZIP file.

A wrong passphrase, a changed header byte or a cut file fails before any
plaintext is written (the stream header carries a key commitment) or at the
segment that was changed.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
import uuid
from dataclasses import dataclass

from perpetua.crypto.errors import CryptoError
from perpetua.crypto.keystore import DataClass
from perpetua.crypto.streaming import (
    BinaryReader,
    BinaryWriter,
    SealingWriter,
    decrypt_stream,
    encrypt_stream,
)

MAGIC = b"PPEX"
FORMAT = 1
KDF_SCRYPT = 1
KDF_RANDOM_KEY = 2
# OWASP's recommendation for scrypt: N = 2^17, r = 8, p = 1 (128 MiB, ~0.3 s).
SCRYPT_LOG2_N = 17
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSPHRASE = 12
RANDOM_KEY_PREFIX = "PPX1-"

_HEADER = struct.Struct(">4sBBBBB16s16s16s")


class ArchiveError(Exception):
    """The archive could not be opened: wrong key, not an archive, or damaged."""


class PassphraseTooShort(ValueError):
    pass


@dataclass(frozen=True)
class ArchiveHeader:
    kdf: int
    log2_n: int
    r: int
    p: int
    salt: bytes
    practice_id: uuid.UUID
    export_id: uuid.UUID

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            FORMAT,
            self.kdf,
            self.log2_n,
            self.r,
            self.p,
            self.salt,
            self.practice_id.bytes,
            self.export_id.bytes,
        )

    @classmethod
    def read(cls, reader: BinaryReader) -> ArchiveHeader:
        raw = bytearray(_HEADER.size)
        view = memoryview(raw)
        filled = 0
        while filled < len(raw):
            got = reader.readinto(view[filled:])
            if not got:
                raise ArchiveError("not a Perpetua export archive (too short)")
            filled += got
        magic, fmt, kdf, log2_n, r, p, salt, practice, export = _HEADER.unpack(raw)
        if magic != MAGIC or fmt != FORMAT:
            raise ArchiveError("not a Perpetua export archive")
        if kdf not in (KDF_SCRYPT, KDF_RANDOM_KEY):
            raise ArchiveError("unknown key derivation")
        # Bounds keep a crafted header from asking for gigabytes of memory.
        if kdf == KDF_SCRYPT and not (14 <= log2_n <= 20 and 1 <= r <= 16 and p == 1):
            raise ArchiveError("unsupported scrypt parameters")
        return cls(
            kdf, log2_n, r, p, salt, uuid.UUID(bytes=practice), uuid.UUID(bytes=export)
        )

    @property
    def object_id(self) -> str:
        return f"export/{self.export_id}"


@dataclass(frozen=True)
class ExportKey:
    """The secret an archive is sealed under, and how the owner proves it."""

    header: ArchiveHeader
    key: bytes
    shown: str | None = None  # the random key, to show the owner exactly once

    @classmethod
    def from_passphrase(
        cls, passphrase: str, practice_id: uuid.UUID, export_id: uuid.UUID
    ) -> ExportKey:
        if len(passphrase) < MIN_PASSPHRASE:
            raise PassphraseTooShort(
                f"the passphrase needs at least {MIN_PASSPHRASE} characters"
            )
        header = ArchiveHeader(
            KDF_SCRYPT,
            SCRYPT_LOG2_N,
            SCRYPT_R,
            SCRYPT_P,
            secrets.token_bytes(16),
            practice_id,
            export_id,
        )
        return cls(header, _scrypt(passphrase, header))

    @classmethod
    def random(cls, practice_id: uuid.UUID, export_id: uuid.UUID) -> ExportKey:
        key = secrets.token_bytes(32)
        header = ArchiveHeader(
            KDF_RANDOM_KEY, 0, 0, 0, bytes(16), practice_id, export_id
        )
        shown = RANDOM_KEY_PREFIX + base64.urlsafe_b64encode(key).decode().rstrip("=")
        return cls(header, key, shown)


def _scrypt(passphrase: str, header: ArchiveHeader) -> bytes:
    n = 1 << header.log2_n
    return hashlib.scrypt(
        passphrase.encode("utf-8"),
        salt=header.salt,
        n=n,
        r=header.r,
        p=header.p,
        maxmem=2 * 128 * n * header.r + (1 << 20),
        dklen=32,
    )


def key_for(header: ArchiveHeader, secret: str) -> bytes:
    """The archive key from what the owner types: passphrase or random key."""
    secret = secret.strip("\r\n")
    if header.kdf == KDF_SCRYPT:
        return _scrypt(secret, header)
    text = secret.strip()
    if not text.startswith(RANDOM_KEY_PREFIX):
        raise ArchiveError(
            f"this archive opens with a key starting {RANDOM_KEY_PREFIX}"
        )
    encoded = text[len(RANDOM_KEY_PREFIX) :]
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        raise ArchiveError("the key is not valid") from None
    if len(key) != 32:
        raise ArchiveError("the key is not valid")
    return key


def seal(key: ExportKey, reader: BinaryReader, writer: BinaryWriter) -> int:
    """Write the header and the encrypted ZIP; return the plaintext length."""
    writer.write(memoryview(key.header.pack()))
    return encrypt_stream(
        key.key,
        reader,
        writer,
        practice_id=key.header.practice_id,
        data_class=DataClass.BACKUPS,
        object_id=key.header.object_id,
    )


def begin(key: ExportKey, writer: BinaryWriter) -> SealingWriter:
    """Write the header and return the writer that seals the ZIP pushed into it;
    the archive is complete only once that writer is closed."""
    writer.write(memoryview(key.header.pack()))
    return SealingWriter(
        key.key,
        writer,
        practice_id=key.header.practice_id,
        data_class=DataClass.BACKUPS,
        object_id=key.header.object_id,
    )


def open_archive(
    reader: BinaryReader, writer: BinaryWriter, secret: str
) -> ArchiveHeader:
    """Decrypt an archive into `writer` (the ZIP); raise ArchiveError on any
    failure, after which the writer holds a prefix to discard."""
    header = ArchiveHeader.read(reader)
    return open_with_key(header, key_for(header, secret), reader, writer)


def open_with_key(
    header: ArchiveHeader, key: bytes, reader: BinaryReader, writer: BinaryWriter
) -> ArchiveHeader:
    try:
        decrypt_stream(
            key,
            reader,
            writer,
            practice_id=header.practice_id,
            data_class=DataClass.BACKUPS,
            object_id=header.object_id,
        )
    except CryptoError as exc:
        raise ArchiveError(
            "the archive did not open: wrong passphrase or key, or a damaged file"
        ) from exc
    return header
