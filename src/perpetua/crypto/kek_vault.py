"""KEK provider backed by HashiCorp Vault's Transit secrets engine.

Guards the keystore with a key that never leaves Vault: class keys are wrapped
by Transit `encrypt`/`decrypt`, and the associated data is passed as the
Transit `context`. The Transit key must be created with `derived=true`: Vault
then derives a distinct key per context, so a class key presented with another
practice's or data class's context does not decrypt.

`hvac` is imported only when no client is passed in, so Perpetua installs and
runs without it.
"""

from __future__ import annotations

import base64
import binascii
import importlib
from typing import Any

from perpetua.crypto.errors import DecryptionFailed, KekUnavailable

__all__ = ["VaultTransitKek"]

# hvac raises InvalidRequest (HTTP 400) when Vault cannot decrypt the input.
_AUTH_ERRORS = frozenset({"InvalidRequest"})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class VaultTransitKek:
    """Wrap class keys with a derived Vault Transit key."""

    def __init__(
        self,
        key_name: str,
        *,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        mount_point: str = "transit",
    ) -> None:
        if client is None:
            # Loaded on demand: Perpetua must run without this SDK installed.
            try:
                sdk = importlib.import_module("hvac")
            except ImportError:
                raise KekUnavailable(
                    "the Vault Transit provider needs hvac: pip install hvac"
                ) from None
            client = sdk.Client(url=url, token=token)
        self._client = client
        self._key_name = key_name
        self._mount_point = mount_point

    @property
    def kek_id(self) -> str:
        return f"vault-transit:{self._mount_point}/{self._key_name}"

    def wrap(self, plaintext: bytes, ad: bytes) -> bytes:
        try:
            response = self._client.secrets.transit.encrypt_data(
                name=self._key_name,
                plaintext=_b64(plaintext),
                context=_b64(ad),
                mount_point=self._mount_point,
            )
            token = str(response["data"]["ciphertext"])
        except Exception as exc:
            raise KekUnavailable(
                f"Vault Transit encrypt failed ({type(exc).__name__})"
            ) from None
        # Stored as the ASCII `vault:vN:...` token Vault returned.
        return token.encode("ascii")

    def unwrap(self, wrapped: bytes, ad: bytes) -> bytes:
        try:
            token = wrapped.decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionFailed("not a Vault Transit ciphertext", "format") from None
        try:
            response = self._client.secrets.transit.decrypt_data(
                name=self._key_name,
                ciphertext=token,
                context=_b64(ad),
                mount_point=self._mount_point,
            )
        except Exception as exc:
            if type(exc).__name__ in _AUTH_ERRORS:
                raise DecryptionFailed(
                    "Vault Transit refused to unwrap (wrong key or context)"
                ) from None
            raise KekUnavailable(
                f"Vault Transit decrypt failed ({type(exc).__name__})"
            ) from None
        try:
            return base64.b64decode(response["data"]["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise KekUnavailable("Vault Transit returned a malformed answer") from None
