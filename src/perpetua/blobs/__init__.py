"""Encrypted blob storage: call recordings, transcripts and documents.

Guards large PHI objects at rest. Every object is encrypted as a segmented
stream (`perpetua.crypto.streaming`) under a fresh data key of its own, in
constant memory whatever its size; the data key is wrapped by a class key from
the keystore (`<data-dir>/keys`, never the database) and the wrapped key is
stored in `phi.blob_objects`. Associated data binds every ciphertext to its
practice, data class and object id, so a blob moved to another object, another
practice or another class fails to decrypt.

Recordings and transcripts are bucketed by retention period: one class key per
practice, class and month (`YYYY-MM` of the object's `at` time). Destroying a
month's key crypto-shreds every copy of that month's objects, backups included.
Objects under legal hold are rewrapped into the practice's `hold` bucket first.
Documents have one class key per practice; deleting one object discards its
wrapped data key and its ciphertext.

The API (all methods are async; the streaming work runs in a worker thread, so
the event loop never blocks and memory stays at a few segments)::

    from perpetua.blobs import BlobStore

    store = BlobStore.open(settings, keystore, db)   # local dir or S3, from settings

    ref = await store.put(claims, DataClass.RECORDINGS, object_id, reader,
                          at=clock.now(), patient_id=patient_id)
        # -> BlobRef(object_id, data_class, period, key_bucket, key_version,
        #            size, stored_size, sha256, legal_hold, created_at, ...)
    ref = await store.describe(claims, object_id)          # audited metadata read
    n = await store.read_into(claims, object_id, writer)   # audited, streamed
    async for chunk in store.iter_plaintext(claims, object_id): ...
    await store.set_legal_hold(claims, object_id, held=True)
    cert = await store.delete(claims, object_id, reason="...")   # one object
    certs = await store.shred_expired_periods(
        practice_id, DataClass.RECORDINGS, retention_months=84,
        now=clock.now(), actor="retention-job", reason="retention period ended")
    await store.list_certificates(claims)          # owners and the system only
    moved = await store.rewrap(practice_id, data_class)   # newest key versions

`claims` are the caller's transaction claims (`perpetua.access.claims`); the
practice is always `claims.practice_id`, and row-level security on
`phi.blob_objects` decides what the caller may do. Reads write their audit
event before any byte is returned (`playback` for recordings, `view`
otherwise). Failures are the named errors in `perpetua.blobs.errors`:
`BlobNotFound` (404), `BlobShredded` (410), `BlobUnreadable` (500, with the
crypto reason: tampered, truncated, wrong key or context, key destroyed).

Lower layers, usable alone (the backup command uses them):
`perpetua.blobs.objects` (`ObjectStore`: `LocalObjects`, `S3Objects`) moves
ciphertext bytes; `perpetua.blobs.sealing` encrypts and decrypts one object
between a reader and an `ObjectStore` key, without touching the database.
"""

from perpetua.blobs.errors import (
    BlobError,
    BlobNotFound,
    BlobShredded,
    BlobUnreadable,
)
from perpetua.blobs.objects import LocalObjects, ObjectStore, S3Objects, open_objects
from perpetua.blobs.store import BlobRef, BlobStore

__all__ = [
    "BlobError",
    "BlobNotFound",
    "BlobRef",
    "BlobShredded",
    "BlobStore",
    "BlobUnreadable",
    "LocalObjects",
    "ObjectStore",
    "S3Objects",
    "open_objects",
]
