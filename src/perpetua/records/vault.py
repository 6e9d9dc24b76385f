"""The crypto a records service needs: field encryption bound to practice, table,
column and row, and blind indexes for exact-match search."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

from perpetua.crypto.blind_index import BlindIndexer, normalize_date, normalize_name
from perpetua.crypto.errors import DecryptionFailed, KeyDestroyed
from perpetua.crypto.fields import FieldCipher
from perpetua.crypto.kek import LocalKek
from perpetua.crypto.keystore import Keystore
from perpetua.errors import PerpetuaError


class UnreadableRecord(PerpetuaError):
    """Fail closed: a value that does not decrypt is never shown or guessed."""

    code = "record_unreadable"
    status = 500
    title = "A stored value could not be decrypted; no data was returned"


@dataclass(frozen=True)
class Vault:
    cipher: FieldCipher
    index: BlindIndexer
    keystore: Keystore

    @classmethod
    def open(cls, data_dir: Path) -> Vault:
        # The keys live beside the database, never inside it: a database dump or
        # backup holds only ciphertext and wrapped data keys.
        key_dir = data_dir / "keys"
        keystore = Keystore(key_dir / "keystore", LocalKek.load_or_create(key_dir))
        return cls(FieldCipher(keystore), BlindIndexer(keystore), keystore)

    def seal(
        self, practice: uuid.UUID, table: str, column: str, row: uuid.UUID, value: str
    ) -> bytes:
        return self.cipher.encrypt_str(practice, table, column, row, value)

    def seal_optional(
        self,
        practice: uuid.UUID,
        table: str,
        column: str,
        row: uuid.UUID,
        value: str | None,
    ) -> bytes | None:
        if value is None:
            return None
        return self.seal(practice, table, column, row, value)

    def open_text(
        self,
        practice: uuid.UUID,
        table: str,
        column: str,
        row: uuid.UUID,
        sealed: bytes | None,
    ) -> str | None:
        if sealed is None:
            return None
        try:
            return self.cipher.decrypt_str(practice, table, column, row, bytes(sealed))
        except (DecryptionFailed, KeyDestroyed) as exc:
            raise UnreadableRecord() from exc

    def name_dob_index(
        self, practice: uuid.UUID, name: str, birth_date: dt.date
    ) -> bytes:
        normalized = normalize_name(name) + "|" + normalize_date(birth_date)
        return self.index.tag(practice, "name_dob", normalized)
