"""A second, independent reading of the C2SP signed-note and tlog-checkpoint specs.

Written for the tests from the specifications (https://c2sp.org/signed-note,
https://c2sp.org/tlog-checkpoint), importing nothing from ``perpetua``, so that a
checkpoint Perpetua signs is checked by code that shares none of its bugs. It is
deliberately minimal: Ed25519 keys only, no limits, no error taxonomy.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# The signature line starts with an em dash (U+2014) and a space.
SIGNATURE_PREFIX = "\u2014 "
ED25519 = 0x01


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes


def compute_key_id(name: str, public_key: bytes) -> bytes:
    """Key id: the first four bytes of SHA-256(name || "\\n" || 0x01 || key)."""
    digest = hashlib.sha256(
        name.encode() + b"\n" + bytes([ED25519]) + public_key
    ).digest()
    return digest[:4]


def parse_verifier_key(text: str) -> VerifierKey:
    """``<name>+<hex key id>+<base64(type || key)>``, checked against its id."""
    # Names and ids hold no "+"; the base64 key may.
    name, hex_id, encoded = text.split("+", 2)
    raw = base64.b64decode(encoded, validate=True)
    assert raw[0] == ED25519
    assert len(raw) == 33
    key_id = bytes.fromhex(hex_id)
    assert len(key_id) == 4
    assert compute_key_id(name, raw[1:]) == key_id, "key id does not match the key"
    return VerifierKey(name, key_id, raw[1:])


def open_signed_note(note: str, key: VerifierKey) -> str:
    """Return the note's text if a signature by ``key`` verifies over it."""
    text, separator, signatures = note.rpartition("\n\n")
    assert separator, "a note has a blank line before its signatures"
    text += "\n"
    assert signatures.endswith("\n")
    verified = False
    for line in signatures[:-1].split("\n"):
        assert line.startswith(SIGNATURE_PREFIX)
        name, encoded = line[len(SIGNATURE_PREFIX) :].split(" ")
        blob = base64.b64decode(encoded, validate=True)
        if name != key.name or blob[:4] != key.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(
                blob[4:], text.encode()
            )
        except InvalidSignature:
            return ""
        verified = True
    assert verified, "no signature by the expected key"
    return text


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes
    extensions: list[str]


def parse_checkpoint_body(text: str) -> CheckpointBody:
    """Origin line, decimal tree size, base64 root hash, then extension lines."""
    lines = text.split("\n")
    assert lines[-1] == "", "the body ends with a newline"
    origin, size, root, *extensions = lines[:-1]
    assert origin
    assert size.isdigit()
    assert size == "0" or not size.startswith("0")
    return CheckpointBody(
        origin, int(size), base64.b64decode(root, validate=True), extensions
    )
