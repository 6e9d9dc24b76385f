"""KEK provider backed by Google Cloud KMS.

Guards the keystore with a key held in Cloud KMS: class keys are wrapped by the
`encrypt`/`decrypt` methods of a symmetric CryptoKey, with the associated data
passed as `additional_authenticated_data`, so Cloud KMS refuses to unwrap a
class key presented for another practice or data class.

`google-cloud-kms` is imported only when no client is passed in, so Perpetua
installs and runs without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from perpetua.crypto.errors import DecryptionFailed, KekUnavailable

__all__ = ["GcpKmsKek"]

# Cloud KMS answers InvalidArgument (HTTP 400) when the ciphertext or the
# additional authenticated data does not match.
_AUTH_ERRORS = frozenset({"InvalidArgument", "BadRequest"})


class GcpKmsKek:
    """Wrap class keys with a Cloud KMS CryptoKey resource name.

    `key_name` looks like
    `projects/P/locations/L/keyRings/R/cryptoKeys/K`; Cloud KMS picks the
    primary version to encrypt and finds the right version to decrypt.
    """

    def __init__(self, key_name: str, *, client: Any = None) -> None:
        if client is None:
            # Loaded on demand: Perpetua must run without this SDK installed.
            try:
                sdk = importlib.import_module("google.cloud.kms")
            except ImportError:
                raise KekUnavailable(
                    "the Cloud KMS provider needs google-cloud-kms: "
                    "pip install google-cloud-kms"
                ) from None
            client = sdk.KeyManagementServiceClient()
        self._client = client
        self._key_name = key_name

    @property
    def kek_id(self) -> str:
        return f"gcp-kms:{self._key_name}"

    def wrap(self, plaintext: bytes, ad: bytes) -> bytes:
        request = {
            "name": self._key_name,
            "plaintext": plaintext,
            "additional_authenticated_data": ad,
        }
        try:
            response = self._client.encrypt(request=request)
        except Exception as exc:
            raise KekUnavailable(
                f"Cloud KMS encrypt failed ({type(exc).__name__})"
            ) from None
        return bytes(response.ciphertext)

    def unwrap(self, wrapped: bytes, ad: bytes) -> bytes:
        request = {
            "name": self._key_name,
            "ciphertext": wrapped,
            "additional_authenticated_data": ad,
        }
        try:
            response = self._client.decrypt(request=request)
        except Exception as exc:
            if type(exc).__name__ in _AUTH_ERRORS:
                raise DecryptionFailed(
                    "Cloud KMS refused to unwrap (wrong key or context)"
                ) from None
            raise KekUnavailable(
                f"Cloud KMS decrypt failed ({type(exc).__name__})"
            ) from None
        return bytes(response.plaintext)
