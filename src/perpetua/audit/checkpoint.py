"""Signed checkpoints: the log's signed promise about its size and root hash.

This module guards the signature that turns a Merkle root into evidence. A
checkpoint is a C2SP tlog-checkpoint (origin, tree size, base64 root hash) carried
in a C2SP signed note and signed with Ed25519, so it can be checked by any tool
that speaks the format used by the Go checksum database and transparency logs.

Keys are written as in the Go ``golang.org/x/mod/sumdb/note`` package:

- verifier key ``<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>``
- signer key ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>``

with key id = the first four bytes of SHA-256(name || 0x0A || 0x01 || public key).

Parsing is deliberately stricter than the specification demands where leniency
would allow two byte strings to carry the same signature: base64 must be in its
one canonical form, and sizes and lines have hard limits. A note is accepted only
when at least one signature from a known key verifies and none from a known key
fails; signatures from unknown keys (witnesses, rotated keys) are ignored.

Perpetua records the sealing time as one extension line, ``time <RFC 3339>``.
Extension lines are opaque to standard checkpoint verifiers, which skip them, and
they are covered by our Ed25519 signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from perpetua.audit.canonical import MalformedEvent, format_time, parse_time
from perpetua.audit.merkle import HASH_SIZE

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "InvalidNoteSignature",
    "MalformedCheckpoint",
    "MalformedKey",
    "MalformedNote",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "UnverifiedNote",
    "format_checkpoint",
    "generate_key",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01

_EM_DASH_PREFIX = "\u2014 "
_TIME_EXTENSION = "time "

# Limits that keep a hostile note from costing much to parse. The signed-note
# specification asks verifiers to accept at least 16 signatures.
_MAX_NOTE_BYTES = 1 << 20
_MAX_LINE_BYTES = 8192
_MAX_SIGNATURES = 100


class NoteError(ValueError):
    """Base class for everything that makes a note or key unusable."""


class MalformedNote(NoteError):
    """The bytes are not a well-formed signed note."""


class MalformedKey(NoteError):
    """A verifier or signer key string is not well formed or not self-consistent."""


class InvalidNoteSignature(NoteError):
    """A signature from a known key does not verify: the note is rejected whole."""


class UnverifiedNote(NoteError):
    """The note carries no signature from any known key."""


class MalformedCheckpoint(NoteError):
    """The note text is not a tlog-checkpoint, or not the one expected."""


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64decode(text: str) -> bytes:
    """Standard base64 in its canonical form only (padding and zero tail bits)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> int:
    """The 32-bit key id of a named key, per the signed-note recommendation."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def _split_key(text: str, parts: int) -> list[str]:
    pieces = text.split("+", parts - 1)
    if len(pieces) != parts:
        raise MalformedKey("key has too few '+'-separated parts")
    return pieces


def _parse_key_body(name: str, hex_id: str, key64: str) -> tuple[int, bytes]:
    if not _valid_name(name):
        raise MalformedKey("key name is empty or holds a space or '+'")
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise MalformedKey("key id must be 8 lowercase hex digits")
    try:
        raw = _b64decode(key64)
    except ValueError as exc:
        raise MalformedKey("key material is not canonical base64") from exc
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise MalformedKey("only Ed25519 keys (type 0x01, 32 bytes) are supported")
    return int(hex_id, 16), raw[1:]


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A named Ed25519 public key that can check note signatures."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_key(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex id>+<base64 key>`` and check the id matches."""
        name, hex_id, key64 = _split_key(vkey, 3)
        kid, public = _parse_key_body(name, hex_id, key64)

        # The id is derived from name and key; a mismatch means a typo or a
        # spliced key string, never something to guess past.
        if key_id(name, public) != kid:
            raise MalformedKey("key id does not match the key name and material")
        return cls(name, kid, public)

    def to_key(self) -> str:
        body = _b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{body}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, message
            )
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True, repr=False)
class NoteSigner:
    """A named Ed25519 private key; ``repr`` never shows the seed."""

    name: str
    key_id: int
    _private: Ed25519PrivateKey

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id:08x})"

    @classmethod
    def from_key(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64 seed>``."""
        private, key, name, hex_id, seed64 = _split_key(skey, 5)
        if private != "PRIVATE" or key != "KEY":
            raise MalformedKey("signer key must start with PRIVATE+KEY+")
        kid, seed = _parse_key_body(name, hex_id, seed64)
        secret = Ed25519PrivateKey.from_private_bytes(seed)
        if key_id(name, _public_bytes(secret)) != kid:
            raise MalformedKey("key id does not match the key name and seed")
        return cls(name, kid, secret)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, _public_bytes(self._private))

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def _public_bytes(secret: Ed25519PrivateKey) -> bytes:
    return secret.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def generate_key(name: str) -> tuple[str, str]:
    """A fresh key pair as ``(signer key, verifier key)`` strings."""
    if not _valid_name(name):
        raise MalformedKey("key name is empty or holds a space or '+'")
    secret = Ed25519PrivateKey.generate()
    seed = secret.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = _public_bytes(secret)
    kid = key_id(name, public)
    skey = f"PRIVATE+KEY+{name}+{kid:08x}+{_b64encode(bytes([ALG_ED25519]) + seed)}"
    return skey, NoteVerifier(name, kid, public).to_key()


# Signed notes.


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: int
    base64: str


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text, the signatures that verified, and the rest."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = field(default=())


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNote("note text holds a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedNote("note text is not valid Unicode") from exc
    if any(len(line.encode()) > _MAX_LINE_BYTES for line in text.split("\n")):
        raise MalformedNote("note line too long")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """The signed note for ``text``, one signature line per signer, in order."""
    _check_note_text(text)
    if not signers:
        raise MalformedNote("a note needs at least one signer")
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        raw = signer.key_id.to_bytes(4, "big") + signer.sign(message)
        lines.append(f"{_EM_DASH_PREFIX}{signer.name} {_b64encode(raw)}\n")
    return text + "\n" + "".join(lines)


def open_note(message: str | bytes, verifiers: Iterable[NoteVerifier]) -> Note:
    """Parse a signed note and check it against the known verifier keys."""
    if isinstance(message, bytes):
        if len(message) > _MAX_NOTE_BYTES:
            raise MalformedNote("note is too large")
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNote("note is not UTF-8") from exc
    if len(message.encode("utf-8", "surrogatepass")) > _MAX_NOTE_BYTES:
        raise MalformedNote("note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in message):
        raise MalformedNote("note holds a control character")

    # The signature block follows the last blank line; text keeps its newline.
    split = message.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    _check_note_text(text)
    if not block.endswith("\n"):
        raise MalformedNote("signature block must end with a newline")
    sig_lines = block[:-1].split("\n")
    if len(sig_lines) > _MAX_SIGNATURES:
        raise MalformedNote("note has too many signatures")

    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        known[(verifier.name, verifier.key_id)] = verifier

    payload = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for line in sig_lines:
        if len(line.encode("utf-8")) > _MAX_LINE_BYTES:
            raise MalformedNote("signature line too long")
        if not line.startswith(_EM_DASH_PREFIX):
            raise MalformedNote("signature line must start with an em dash")
        name, sep, sig64 = line[len(_EM_DASH_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name):
            raise MalformedNote("signature line has a bad key name")
        try:
            raw = _b64decode(sig64)
        except ValueError as exc:
            raise MalformedNote("signature is not canonical base64") from exc
        if len(raw) < 5:
            raise MalformedNote("signature is too short")
        kid = int.from_bytes(raw[:4], "big")
        signature = NoteSignature(name, kid, sig64)

        known_key = known.get((name, kid))
        if known_key is None:
            # Unknown keys are witnesses or retired keys: ignore, never trust.
            if signature not in unverified:
                unverified.append(signature)
            continue
        if (name, kid) in seen:
            continue
        seen.add((name, kid))
        if not known_key.verify(payload, raw[4:]):
            raise InvalidNoteSignature(f"invalid signature for key {name}+{kid:08x}")
        verified.append(signature)

    if not verified:
        raise UnverifiedNote("note has no verifiable signature from a known key")
    return Note(text, tuple(verified), tuple(unverified))


# Checkpoints.


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A Merkle tree head: the log ``origin`` had ``size`` leaves with ``root``."""

    origin: str
    size: int
    root: bytes
    time: datetime | None = None
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedCheckpoint("origin must be one non-empty line")
        if self.size < 0:
            raise MalformedCheckpoint("tree size cannot be negative")
        if len(self.root) != HASH_SIZE:
            raise MalformedCheckpoint("root hash must be 32 bytes")
        for line in self.extensions:
            if not line or "\n" in line:
                raise MalformedCheckpoint("extension lines must be non-empty lines")
            if line.startswith(_TIME_EXTENSION):
                raise MalformedCheckpoint("the time line is set through `time`")


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The note text of a checkpoint, ending in a newline."""
    lines = [checkpoint.origin, str(checkpoint.size), _b64encode(checkpoint.root)]
    if checkpoint.time is not None:
        try:
            lines.append(_TIME_EXTENSION + format_time(checkpoint.time))
        except MalformedEvent as exc:
            raise MalformedCheckpoint(str(exc)) from exc
    lines.extend(checkpoint.extensions)
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (already verified) into a ``Checkpoint``."""
    if not text.endswith("\n"):
        raise MalformedCheckpoint("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise MalformedCheckpoint("checkpoint needs three or more non-empty lines")
    origin, size_text, root64, *rest = lines

    # One spelling per size: no sign, no leading zeros, ASCII digits only.
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text):
        raise MalformedCheckpoint("tree size is not a plain decimal number")
    try:
        root = _b64decode(root64)
    except ValueError as exc:
        raise MalformedCheckpoint("root hash is not canonical base64") from exc
    if len(root) != HASH_SIZE:
        raise MalformedCheckpoint("root hash must be 32 bytes")

    moment: datetime | None = None
    extensions: list[str] = []
    for line in rest:
        if line.startswith(_TIME_EXTENSION):
            if moment is not None:
                raise MalformedCheckpoint("checkpoint has two time lines")
            try:
                moment = parse_time(line[len(_TIME_EXTENSION) :])
            except MalformedEvent as exc:
                raise MalformedCheckpoint(str(exc)) from exc
        else:
            extensions.append(line)
    return Checkpoint(origin, int(size_text), root, moment, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The signed note for a checkpoint."""
    return sign_note(format_checkpoint(checkpoint), [signer])


def open_checkpoint(
    note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return its contents.

    ``origin`` pins the log identity: a valid checkpoint of another practice's log
    must not be accepted in place of this one.
    """
    opened = open_note(note, [verifier])
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise MalformedCheckpoint(
            f"checkpoint origin {checkpoint.origin!r} is not {origin!r}"
        )

    # A checkpoint re-rendered from its parsed parts must be the signed text, so
    # nothing in the text escapes the meaning we give it.
    if format_checkpoint(checkpoint) != opened.text:
        raise MalformedCheckpoint("checkpoint text is not in canonical form")
    return checkpoint
