"""Key encryption key (KEK) providers: the root of the key hierarchy.

Guards the keystore at rest: every class key on disk is wrapped by a KEK that
lives elsewhere (a key file or environment variable for a single server, or a
cloud KMS / Vault for production), so a copy of the data directory or of a
database backup alone decrypts nothing.

A provider only wraps and unwraps short secrets (class keys) with associated
data; bulk data never travels to it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from perpetua.crypto import _files
from perpetua.crypto.aead import KEY_SIZE, NONCE_SIZE
from perpetua.crypto.errors import DecryptionFailed, KekUnavailable

__all__ = [
    "LOCAL_KEK_ENV",
    "LOCAL_KEK_FILENAME",
    "KekProvider",
    "LocalKek",
]

LOCAL_KEK_ENV = "PERPETUA_LOCAL_KEK"
LOCAL_KEK_FILENAME = "local-kek.key"

_LOCAL_FORMAT = b"\x01"


@runtime_checkable
class KekProvider(Protocol):
    """Wraps and unwraps class keys; implemented locally or by a KMS."""

    @property
    def kek_id(self) -> str:
        """A stable, non-secret name for the KEK, recorded beside wrapped keys."""
        ...

    def wrap(self, plaintext: bytes, ad: bytes) -> bytes:
        """Encrypt a short secret bound to `ad`."""
        ...

    def unwrap(self, wrapped: bytes, ad: bytes) -> bytes:
        """Decrypt a secret wrapped with the same `ad`, or raise DecryptionFailed."""
        ...


class LocalKek:
    """A 32-byte AES-256-GCM KEK held in this process.

    Suitable for a single server or development. The key comes from the
    `PERPETUA_LOCAL_KEK` environment variable (base64) or from a 0600 file in
    the data directory created on first use. Whoever can read that file or
    environment can unwrap the keystore: keep the file off database backups.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise KekUnavailable("the local KEK must be exactly 32 bytes")
        self._aead = AESGCM(key)

        # A fingerprint, not the key: lets the keystore say "wrong KEK" plainly
        # instead of failing every unwrap with a generic error.
        digest = hashlib.sha256(b"perpetua local kek id\x00" + key).hexdigest()
        self._kek_id = f"local:{digest[:16]}"

    def __repr__(self) -> str:
        return f"LocalKek({self._kek_id!r})"

    @property
    def kek_id(self) -> str:
        return self._kek_id

    @classmethod
    def from_base64(cls, encoded: str) -> LocalKek:
        """Build from a base64 string (the environment-variable form)."""
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KekUnavailable("the local KEK is not valid base64") from None
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> LocalKek:
        """Load a key file written by `load_or_create`."""
        try:
            content = _files.read_private(path)
        except PermissionError as exc:
            raise KekUnavailable(str(exc)) from None
        except FileNotFoundError:
            raise KekUnavailable(f"no local KEK file at {path}") from None
        return cls.from_base64(content.decode("ascii", errors="replace"))

    @classmethod
    def load_or_create(
        cls, data_dir: Path, env: Mapping[str, str] | None = None
    ) -> LocalKek:
        """Use `PERPETUA_LOCAL_KEK` if set, else the data-dir file, creating it."""
        environ = os.environ if env is None else env
        if encoded := environ.get(LOCAL_KEK_ENV):
            return cls.from_base64(encoded)

        path = data_dir / LOCAL_KEK_FILENAME
        if not path.exists():
            _files.ensure_private_dir(data_dir)
            key = secrets.token_bytes(KEY_SIZE)
            content = base64.b64encode(key) + b"\n"
            # If another process created it first, use theirs.
            with contextlib.suppress(FileExistsError):
                _files.publish_exclusive(path, content)
        return cls.from_file(path)

    def wrap(self, plaintext: bytes, ad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_SIZE)
        return _LOCAL_FORMAT + nonce + self._aead.encrypt(nonce, plaintext, ad)

    def unwrap(self, wrapped: bytes, ad: bytes) -> bytes:
        if len(wrapped) < 1 + NONCE_SIZE + 16 or wrapped[:1] != _LOCAL_FORMAT:
            raise DecryptionFailed("wrapped key has an unknown format", "format")
        nonce = wrapped[1 : 1 + NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, wrapped[1 + NONCE_SIZE :], ad)
        except InvalidTag:
            raise DecryptionFailed(
                "the KEK could not unwrap this key (wrong KEK or moved key file)"
            ) from None
