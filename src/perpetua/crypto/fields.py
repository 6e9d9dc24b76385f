"""Encryption of individual PHI columns (names, phone numbers, birth dates...).

Guards each encrypted column value so that it is readable only in its own place:
the associated data names the practice, table, column, row id and value type,
so a ciphertext copied into another row, column or practice, or read back as
another type, fails to decrypt instead of leaking a neighbour's data.

Values are sealed with the practice's newest `fields` class key; the key
version travels inside the ciphertext, so rotation needs no schema change.
"""

from __future__ import annotations

import uuid
from datetime import date

from perpetua.crypto import aead
from perpetua.crypto.errors import DecryptionFailed
from perpetua.crypto.keystore import DataClass, Keystore

__all__ = ["FieldCipher"]

RowId = str | int | uuid.UUID


class FieldCipher:
    """Encrypts and decrypts column values for the data layer."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore

    @staticmethod
    def _ad(
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        kind: str,
    ) -> bytes:
        return aead.associated_data(
            "perpetua/field/v1", str(practice_id), table, column, row_id, kind
        )

    def encrypt_bytes(
        self,
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        value: bytes,
        *,
        kind: str = "bytes",
    ) -> bytes:
        """Seal raw bytes for one cell."""
        key = self._keystore.current(practice_id, DataClass.FIELDS)
        ad = self._ad(practice_id, table, column, row_id, kind)
        return aead.seal(key.secret, key.version, value, ad)

    def decrypt_bytes(
        self,
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        sealed: bytes,
        *,
        kind: str = "bytes",
    ) -> bytes:
        """Open raw bytes sealed for this exact cell."""
        version = aead.key_version_of(sealed)
        key = self._keystore.get(practice_id, DataClass.FIELDS, version)
        ad = self._ad(practice_id, table, column, row_id, kind)
        return aead.open_sealed(key.secret, sealed, ad)

    def encrypt_str(
        self,
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        value: str,
    ) -> bytes:
        """Seal a text value for one cell."""
        return self.encrypt_bytes(
            practice_id, table, column, row_id, value.encode("utf-8"), kind="str"
        )

    def decrypt_str(
        self,
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        sealed: bytes,
    ) -> str:
        """Open a text value sealed for this exact cell."""
        raw = self.decrypt_bytes(practice_id, table, column, row_id, sealed, kind="str")
        return raw.decode("utf-8")

    def encrypt_date(
        self,
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        value: date,
    ) -> bytes:
        """Seal a calendar date (ISO form) for one cell."""
        if not isinstance(value, date):
            raise TypeError("encrypt_date needs a datetime.date")
        text = value.isoformat().encode("ascii")
        return self.encrypt_bytes(practice_id, table, column, row_id, text, kind="date")

    def decrypt_date(
        self,
        practice_id: str | uuid.UUID,
        table: str,
        column: str,
        row_id: RowId,
        sealed: bytes,
    ) -> date:
        """Open a date sealed for this exact cell."""
        raw = self.decrypt_bytes(
            practice_id, table, column, row_id, sealed, kind="date"
        )
        try:
            return date.fromisoformat(raw.decode("ascii"))
        except ValueError:
            raise DecryptionFailed("sealed date is malformed", "format") from None
