"""Named failures of the cryptographic core.

Guards against leaking secrets through error paths: every message here is built
from identifiers (practice, data class, key version, segment number) and never
from plaintext, ciphertext or key bytes, so an exception can be logged or shown
to an operator safely.

    CryptoError
     +-- KekUnavailable        the key encryption key cannot be loaded or reached
     +-- KeyNotFound           no such class key version in the keystore
     +-- KeyDestroyed          the key was crypto-shredded on purpose
     +-- DecryptionFailed      authentication failed; `reason` says which check
     |    +-- StreamTruncated  a stored stream ends before its final segment
     +-- NormalizationError    a blind-index input cannot be normalized
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "DecryptionFailed",
    "KekUnavailable",
    "KeyDestroyed",
    "KeyNotFound",
    "NormalizationError",
    "StreamTruncated",
]


class CryptoError(Exception):
    """Base of every error raised by `perpetua.crypto`."""


class KekUnavailable(CryptoError):
    """The key encryption key cannot be loaded, created or reached."""


class KeyNotFound(CryptoError):
    """The keystore holds no key for this practice, data class and version."""


class KeyDestroyed(CryptoError):
    """The key was destroyed; data under it is unrecoverable by design."""

    def __init__(self, message: str, certificate_id: str | None = None) -> None:
        super().__init__(message)
        self.certificate_id = certificate_id


class DecryptionFailed(CryptoError):
    """A ciphertext did not authenticate.

    `reason` is machine-readable (for example `authentication`, `format`,
    `wrong_key_or_context`, `segment_authentication`, `truncated`) so callers
    can map it to a response without parsing the message.
    """

    def __init__(self, message: str, reason: str = "authentication") -> None:
        super().__init__(message)
        self.reason = reason


class StreamTruncated(DecryptionFailed):
    """A stored stream lost its tail: every segment read was authentic."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="truncated")


class NormalizationError(CryptoError, ValueError):
    """A value cannot be normalized for a blind index (say, a phone number
    with too few digits)."""
