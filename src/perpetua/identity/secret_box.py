"""Keeps second-factor secrets encrypted at rest.

A TOTP secret belongs to a person, not to a practice (one person may belong to
several practices, and Perpetua's staff to none), so it is sealed under the key
store's platform scope rather than a practice's key, bound to its table, column and
user. The cipher is set once when the service starts; without it nothing is sealed
or opened: fail closed rather than store a secret in clear.
"""

from __future__ import annotations

import base64
import uuid

from perpetua.crypto.fields import FieldCipher
from perpetua.errors import ServiceUnavailable

PLATFORM_SCOPE = "platform"
_PREFIX = "sealed:"

_cipher: FieldCipher | None = None


def configure(cipher: FieldCipher) -> None:
    global _cipher
    _cipher = cipher


def _require() -> FieldCipher:
    if _cipher is None:
        raise ServiceUnavailable("second-factor secrets cannot be opened right now")
    return _cipher


def seal_totp_secret(user_id: uuid.UUID, secret: str) -> str:
    sealed = _require().encrypt_str(
        PLATFORM_SCOPE, "totp_factors", "secret", user_id, secret
    )
    return _PREFIX + base64.b64encode(sealed).decode("ascii")


def open_totp_secret(user_id: uuid.UUID, stored: str) -> str:
    if not stored.startswith(_PREFIX):
        # Refuse rather than guess: every secret this service wrote is sealed.
        raise ServiceUnavailable("a stored second-factor secret is not sealed")
    sealed = base64.b64decode(stored[len(_PREFIX) :])
    return _require().decrypt_str(
        PLATFORM_SCOPE, "totp_factors", "secret", user_id, sealed
    )
