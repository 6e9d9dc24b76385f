"""Named failures of the blob store, each with the code and HTTP status the API
reports. Messages name identifiers and reasons only, never content."""

from __future__ import annotations

from perpetua.errors import NotFound, PerpetuaError

__all__ = [
    "BlobError",
    "BlobNotFound",
    "BlobOnHold",
    "BlobShredded",
    "BlobUnreadable",
]


class BlobError(PerpetuaError):
    """Base of the blob store's errors."""

    code = "blob_error"
    status = 500
    title = "The stored object could not be handled"


class BlobNotFound(BlobError, NotFound):
    """No visible object has this id (absent, or hidden from this caller)."""

    code = "blob_not_found"
    status = 404
    title = "No such stored object"


class BlobShredded(BlobError):
    """The object was crypto-shredded; it can never be read again."""

    code = "blob_shredded"
    status = 410
    title = "The stored object was destroyed"


class BlobOnHold(BlobError):
    """An object under legal hold cannot be deleted."""

    code = "blob_on_hold"
    status = 409
    title = "The stored object is under legal hold"


class BlobUnreadable(BlobError):
    """Fail closed: the ciphertext, its key or its context did not check out.

    `reason` is the crypto layer's machine-readable reason (`key_destroyed`,
    `wrong_key_or_context`, `wrong_object`, `segment_authentication`,
    `truncated`, `checksum`, `missing`...).
    """

    code = "blob_unreadable"
    status = 500
    title = "A stored object could not be decrypted; no data was returned"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or f"{self.title} ({reason})")
        self.reason = reason
