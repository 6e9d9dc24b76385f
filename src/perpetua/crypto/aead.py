"""AES-256-GCM sealing with a versioned format and canonical associated data.

Guards two properties that every other module here relies on:

* a ciphertext names the format and the key version it was sealed with, so keys
  can be rotated while old ciphertexts stay readable;
* a ciphertext is bound to where it belongs (practice, table, column, row, ...)
  through associated data that is encoded without ambiguity, so it cannot be
  moved to another row or practice and still decrypt.

Sealed format (all integers big-endian):

    version (1 byte, 0x01) | key version (4) | nonce (12, random) | ct || tag (16)

The first five bytes are also authenticated, so a forged key version is caught.
"""

from __future__ import annotations

import os
import struct
import uuid
from datetime import date

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from perpetua.crypto.errors import DecryptionFailed

__all__ = [
    "FORMAT_VERSION",
    "KEY_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "AdField",
    "associated_data",
    "key_version_of",
    "open_sealed",
    "seal",
]

FORMAT_VERSION = 0x01
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16

_HEADER = struct.Struct(">BI")
OVERHEAD = _HEADER.size + NONCE_SIZE + TAG_SIZE

AdField = str | bytes | int | uuid.UUID | date | None


def _encode_field(field: AdField) -> bytes:
    # A type tag keeps `None` distinct from "" and an int row id distinct from
    # raw bytes that happen to spell the same digits.
    if field is None:
        return b"n"
    if isinstance(field, bytes):
        return b"b" + field
    if isinstance(field, bool):
        raise TypeError("booleans are not accepted as associated data")
    if isinstance(field, int):
        return b"i" + str(field).encode("ascii")
    if isinstance(field, uuid.UUID):
        return b"u" + field.bytes
    if isinstance(field, date):
        return b"d" + field.isoformat().encode("ascii")
    return b"s" + field.encode("utf-8")


def associated_data(label: str, *fields: AdField) -> bytes:
    """Encode a domain label and fields as length-prefixed, unambiguous bytes.

    ("ab", "c") and ("a", "bc") encode differently, as do the same fields under
    two labels, so no two contexts can ever share associated data.
    """
    parts = [label.encode("ascii"), *(_encode_field(f) for f in fields)]
    out = bytearray(struct.pack(">H", len(parts)))
    for part in parts:
        out += struct.pack(">I", len(part))
        out += part
    return bytes(out)


def seal(key: bytes, key_version: int, plaintext: bytes, ad: bytes) -> bytes:
    """Encrypt `plaintext` under `key`, recording `key_version` in the output."""
    if len(key) != KEY_SIZE:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    header = _HEADER.pack(FORMAT_VERSION, key_version)

    # Random nonces: safe for up to 2**32 messages per key; rotation keeps each
    # key version well below that (see docs/encryption.md).
    nonce = os.urandom(NONCE_SIZE)
    out = bytearray(len(header) + NONCE_SIZE + len(plaintext) + TAG_SIZE)
    out[: len(header)] = header
    out[len(header) : len(header) + NONCE_SIZE] = nonce
    body = memoryview(out)[len(header) + NONCE_SIZE :]
    AESGCM(key).encrypt_into(nonce, plaintext, header + ad, body)
    return bytes(out)


def key_version_of(sealed: bytes) -> int:
    """Return the key version a sealed value names, checking only its shape."""
    if len(sealed) < OVERHEAD:
        raise DecryptionFailed("ciphertext is too short", reason="format")
    version, key_version = _HEADER.unpack_from(sealed)
    if version != FORMAT_VERSION:
        raise DecryptionFailed(
            f"unsupported ciphertext format {version}", reason="format"
        )
    return int(key_version)


def open_sealed(key: bytes, sealed: bytes, ad: bytes) -> bytes:
    """Decrypt a value produced by `seal`, or raise `DecryptionFailed`."""
    key_version_of(sealed)
    header = sealed[: _HEADER.size]
    nonce = sealed[_HEADER.size : _HEADER.size + NONCE_SIZE]
    try:
        return AESGCM(key).decrypt(
            nonce, sealed[_HEADER.size + NONCE_SIZE :], header + ad
        )
    except InvalidTag:
        # Deliberately vague: wrong key, wrong context and tampering look the
        # same to an attacker and must look the same in logs.
        raise DecryptionFailed(
            "ciphertext did not authenticate (wrong key, wrong context or tampered)"
        ) from None
