"""Encryption at rest: the pure cryptographic core.

Guards PHI stored by Perpetua, in the database and in blob storage, through a
three-level key hierarchy:

    KEK (local key file, AWS KMS, Cloud KMS or Vault Transit)   kek*.py
      -> class keys per practice, data class, version [, period]  keystore.py
           -> field values and blind indexes                      fields.py,
                                                                   blind_index.py
           -> per-object data keys -> segmented blob streams      streaming.py

This package imports nothing from Perpetua's database, web or API code; the
data layer calls it. Failures are the named exceptions in `errors`.
"""

from perpetua.crypto.blind_index import BlindIndexer
from perpetua.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    KekUnavailable,
    KeyDestroyed,
    KeyNotFound,
    NormalizationError,
    StreamTruncated,
)
from perpetua.crypto.fields import FieldCipher
from perpetua.crypto.kek import KekProvider, LocalKek
from perpetua.crypto.keystore import (
    ClassKey,
    DataClass,
    DeletionCertificate,
    KeyInfo,
    Keystore,
    period_of,
)
from perpetua.crypto.streaming import BlobCipher

__all__ = [
    "BlindIndexer",
    "BlobCipher",
    "ClassKey",
    "CryptoError",
    "DataClass",
    "DecryptionFailed",
    "DeletionCertificate",
    "FieldCipher",
    "KekProvider",
    "KekUnavailable",
    "KeyDestroyed",
    "KeyInfo",
    "KeyNotFound",
    "Keystore",
    "LocalKek",
    "NormalizationError",
    "StreamTruncated",
    "period_of",
]
