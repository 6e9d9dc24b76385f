"""The document store: executed agreements, encrypted under the practice's
`documents` class key, one file per object under `<data-dir>/documents`.

Plaintext never reaches the disk: the PDF is encrypted from memory straight into
its final file, which is created exclusively (an existing object is never
overwritten) and readable only by the service. The database keeps the object id,
the wrapped data key and the plaintext's SHA-256; the keys stay in
`<data-dir>/keys`, so a copy of this folder alone decrypts nothing.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

from perpetua.crypto import BlobCipher, DataClass, Keystore


class DocumentStore:
    def __init__(self, root: Path, keystore: Keystore) -> None:
        self.root = root
        self.keystore = keystore
        self._blobs = BlobCipher(keystore)

    def _path(self, practice_id: uuid.UUID, object_id: uuid.UUID) -> Path:
        # Both parts are UUIDs the service made, never names a caller typed.
        return self.root / str(practice_id) / f"{object_id}.enc"

    def put(self, practice_id: uuid.UUID, object_id: uuid.UUID, data: bytes) -> bytes:
        """Encrypt and store one object; return the wrapped data key to record."""
        path = self._path(practice_id, object_id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                wrapped = self._blobs.encrypt(
                    practice_id,
                    DataClass.DOCUMENTS,
                    object_id,
                    io.BytesIO(data),
                    out,
                )
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return wrapped

    def get(
        self, practice_id: uuid.UUID, object_id: uuid.UUID, wrapped_key: bytes
    ) -> bytes:
        """Decrypt one object into memory; authentication failures raise."""
        out = io.BytesIO()
        with self._path(practice_id, object_id).open("rb") as src:
            self._blobs.decrypt(
                practice_id, DataClass.DOCUMENTS, object_id, wrapped_key, src, out
            )
        return out.getvalue()

    def discard(self, practice_id: uuid.UUID, object_id: uuid.UUID) -> None:
        """Remove an object whose record was never committed."""
        self._path(practice_id, object_id).unlink(missing_ok=True)
