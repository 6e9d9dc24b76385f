"""Encrypt one object into an object store, or decrypt it back, in constant memory.

Guards the join between the crypto core and storage: a fresh data key per
object, wrapped by the keystore's class key for the object's practice, data
class and key bucket; the stream encrypted straight into the store's writer,
hashed on the way (SHA-256 of the stored bytes, so a copy can be checked
without any key); on the way back, the stored bytes hashed again and compared
after every segment has authenticated. Synchronous on purpose: callers in the
event loop run it in a worker thread.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Generator
from dataclasses import dataclass

from perpetua.blobs.objects import ObjectStore
from perpetua.crypto.aead import key_version_of
from perpetua.crypto.digests import DigestingReader, DigestingWriter, Progress
from perpetua.crypto.errors import DecryptionFailed
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.crypto.streaming import (
    DEFAULT_SEGMENT_SIZE,
    BinaryReader,
    BinaryWriter,
    encrypt_stream,
    iter_decrypt,
)

__all__ = ["Sealed", "iter_unsealed", "seal_object", "unseal_object"]


@dataclass(frozen=True)
class Sealed:
    """What the caller must keep to open the object again."""

    wrapped_data_key: bytes
    key_version: int
    size: int
    stored_size: int
    sha256: str


def seal_object(
    keystore: Keystore,
    objects: ObjectStore,
    key: str,
    *,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
    key_period: str | None,
    reader: BinaryReader,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    progress: Progress | None = None,
) -> Sealed:
    """Encrypt everything `reader` yields into object `key` of `objects`."""
    data_key = keystore.new_data_key()
    wrapped = keystore.wrap_data_key(
        practice_id, data_class, object_id, data_key, key_period
    )
    with objects.write(key) as sink:
        hashing = DigestingWriter(sink, progress)
        size = encrypt_stream(
            data_key,
            reader,
            hashing,
            practice_id=practice_id,
            data_class=data_class,
            object_id=object_id,
            segment_size=segment_size,
        )
    return Sealed(
        wrapped_data_key=wrapped,
        key_version=key_version_of(wrapped),
        size=size,
        stored_size=hashing.count,
        sha256=hashing.hash.hexdigest(),
    )


def iter_unsealed(
    keystore: Keystore,
    objects: ObjectStore,
    key: str,
    *,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
    key_period: str | None,
    wrapped_data_key: bytes,
    sha256: str | None,
    progress: Progress | None = None,
) -> Generator[bytes, None, None]:
    """Yield authenticated plaintext chunks of object `key`.

    Each chunk is authentic when yielded; truncation and a checksum mismatch are
    only known at the end, so a consumer must discard everything on an error.
    """
    # Unwrap before touching storage: a destroyed or wrong key fails first.
    data_key = keystore.unwrap_data_key(
        practice_id, data_class, object_id, wrapped_data_key, key_period
    )
    with objects.open(key) as source:
        hashing = DigestingReader(source, progress)
        yield from iter_decrypt(
            data_key,
            hashing,
            practice_id=practice_id,
            data_class=data_class,
            object_id=object_id,
        )
        if sha256 is not None and not hmac.compare_digest(
            hashing.hash.hexdigest(), sha256
        ):
            raise DecryptionFailed(
                "stored object does not match its recorded SHA-256", reason="checksum"
            )


def unseal_object(
    keystore: Keystore,
    objects: ObjectStore,
    key: str,
    writer: BinaryWriter,
    *,
    practice_id: str | uuid.UUID,
    data_class: DataClass,
    object_id: str | uuid.UUID,
    key_period: str | None,
    wrapped_data_key: bytes,
    sha256: str | None,
    progress: Progress | None = None,
) -> int:
    """Decrypt object `key` into `writer`; return the plaintext size.

    On an error the writer already holds a prefix that must be discarded.
    """
    total = 0
    chunks = iter_unsealed(
        keystore,
        objects,
        key,
        practice_id=practice_id,
        data_class=data_class,
        object_id=object_id,
        key_period=key_period,
        wrapped_data_key=wrapped_data_key,
        sha256=sha256,
        progress=progress,
    )
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            done = writer.write(view)
            if done is None or done >= len(view):
                break
            view = view[done:]
        total += len(chunk)
    return total
