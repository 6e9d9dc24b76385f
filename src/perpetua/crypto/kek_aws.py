"""KEK provider backed by AWS KMS.

Guards the keystore with a key that never leaves AWS KMS: class keys are sent to
KMS `Encrypt`/`Decrypt`, and the associated data travels as the KMS encryption
context, so KMS itself refuses to unwrap a class key presented for another
practice or data class, and CloudTrail records every unwrap.

`boto3` is imported only when no client is passed in, so Perpetua installs and
runs without it.
"""

from __future__ import annotations

import base64
import importlib
from typing import Any

from perpetua.crypto.errors import DecryptionFailed, KekUnavailable

__all__ = ["AwsKmsKek"]

_CONTEXT_KEY = "perpetua:ad"

# KMS answers these when the ciphertext or its context does not match; every
# other error (throttling, network, permissions) means "KEK unavailable".
_AUTH_ERRORS = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class AwsKmsKek:
    """Wrap class keys with a symmetric AWS KMS key (key id, ARN or alias)."""

    def __init__(
        self, key_id: str, *, client: Any = None, region_name: str | None = None
    ) -> None:
        if client is None:
            # Loaded on demand: Perpetua must run without this SDK installed.
            try:
                sdk = importlib.import_module("boto3")
            except ImportError:
                raise KekUnavailable(
                    "the AWS KMS provider needs boto3: pip install boto3"
                ) from None
            client = sdk.client("kms", region_name=region_name)
        self._client = client
        self._key_id = key_id

    @property
    def kek_id(self) -> str:
        return f"aws-kms:{self._key_id}"

    def _context(self, ad: bytes) -> dict[str, str]:
        # The context is a string map; base64 keeps the binary, length-prefixed
        # associated data exact.
        return {_CONTEXT_KEY: base64.b64encode(ad).decode("ascii")}

    def wrap(self, plaintext: bytes, ad: bytes) -> bytes:
        try:
            response = self._client.encrypt(
                KeyId=self._key_id,
                Plaintext=plaintext,
                EncryptionContext=self._context(ad),
            )
        except Exception as exc:
            raise KekUnavailable(
                f"AWS KMS encrypt failed ({_error_code(exc) or type(exc).__name__})"
            ) from None
        return bytes(response["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, ad: bytes) -> bytes:
        try:
            response = self._client.decrypt(
                CiphertextBlob=wrapped,
                KeyId=self._key_id,
                EncryptionContext=self._context(ad),
            )
        except Exception as exc:
            code = _error_code(exc)
            if code in _AUTH_ERRORS:
                raise DecryptionFailed(
                    "AWS KMS refused to unwrap (wrong key or context)"
                ) from None
            raise KekUnavailable(
                f"AWS KMS decrypt failed ({code or type(exc).__name__})"
            ) from None
        return bytes(response["Plaintext"])
