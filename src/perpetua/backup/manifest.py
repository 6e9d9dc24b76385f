"""The manifest of one backup: what was dumped, how it was sealed, how to check it.

Guards integrity checks that need no key: the SHA-256 of the stored bytes can be
verified by anyone holding the files; the plaintext SHA-256 is checked after
decryption. The manifest names no patient and holds no secret: the data key in
it is wrapped by the `backups` class key, which never leaves the keystore.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Any

from perpetua.errors import InvalidInput

__all__ = ["FORMAT", "Manifest"]

FORMAT = "perpetua-backup/1"


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    created_at: str
    practice_id: str
    data_class: str
    key_version: int
    wrapped_data_key: str
    dump_format: str
    plaintext_size: int
    plaintext_sha256: str
    stored_size: int
    stored_sha256: str
    pg_dump_version: str
    server_version: str
    database: str
    format: str = FORMAT

    @property
    def wrapped_key_bytes(self) -> bytes:
        return base64.b64decode(self.wrapped_data_key)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            loaded: Any = json.loads(raw)
            if not isinstance(loaded, dict) or loaded.get("format") != FORMAT:
                raise ValueError("unknown manifest format")
            return cls(**loaded)
        except (ValueError, TypeError) as exc:
            raise InvalidInput("the backup manifest is not readable") from exc
