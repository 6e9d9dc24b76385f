"""Blind indexes: equality search over encrypted columns without decrypting.

Guards searchable PHI (phone numbers, names, birth dates, member ids): the
database stores a keyed HMAC-SHA256 of the normalized value, never the value,
under a per-practice `blind_index` key that is separate from the encryption
key. Each index name is a separate domain, so the same digits in the phone
index and the member-id index give unrelated tags and cannot be joined, and
tags from two practices never match.

A tag is 2 bytes of key version followed by 16 bytes of HMAC. The version lets
a reindex job find rows still tagged under an older key after rotation.

Limitation: equal values give equal tags within one practice and index, so the
database learns which rows share a value (frequency), by design of equality
search. Use blind indexes only for columns that need lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import unicodedata
import uuid
from datetime import date

from perpetua.crypto import aead
from perpetua.crypto.errors import NormalizationError
from perpetua.crypto.keystore import DataClass, Keystore

__all__ = [
    "TAG_SIZE",
    "BlindIndexer",
    "normalize_date",
    "normalize_identifier",
    "normalize_name",
    "normalize_phone",
]

DIGEST_SIZE = 16
TAG_SIZE = 2 + DIGEST_SIZE
_INDEX_NAME_RE = re.compile(r"[a-z][a-z0-9_.]{0,63}")


def normalize_phone(raw: str, default_country_code: str = "1") -> str:
    """E.164 form (`+` and 8-15 digits) of a phone number as typed.

    Ten-digit numbers without a country code take `default_country_code`
    (North America by default); a leading `00` or `011` international prefix
    is dropped. Limitation: no per-country numbering-plan validation.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    digits = re.sub(r"\D", "", text)
    if not text.startswith("+"):
        if digits.startswith("011"):
            digits = digits[3:]
        elif digits.startswith("00"):
            digits = digits[2:]
        elif len(digits) == 10:
            digits = default_country_code + digits
    if not 8 <= len(digits) <= 15:
        raise NormalizationError("phone number must have 8 to 15 digits")
    return "+" + digits


def normalize_name(raw: str) -> str:
    """NFKC, case-folded, with runs of whitespace collapsed to one space."""
    folded = unicodedata.normalize("NFKC", raw).casefold()
    collapsed = " ".join(folded.split())
    if not collapsed:
        raise NormalizationError("name is empty")
    return collapsed


def normalize_date(value: date | str) -> str:
    """ISO 8601 calendar date (`YYYY-MM-DD`)."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise NormalizationError("date is not ISO 8601") from None
    return value.isoformat()


def normalize_identifier(raw: str) -> str:
    """Member ids and similar codes: NFKC, case-folded, separators removed."""
    folded = unicodedata.normalize("NFKC", raw).casefold()
    cleaned = re.sub(r"[\s\-./]", "", folded)
    if not cleaned:
        raise NormalizationError("identifier is empty")
    return cleaned


class BlindIndexer:
    """Computes blind-index tags for one keystore."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore

    def tag(
        self,
        practice_id: str | uuid.UUID,
        index_name: str,
        normalized: str,
        *,
        version: int | None = None,
    ) -> bytes:
        """The tag of an already-normalized value (newest key unless `version`)."""
        if not _INDEX_NAME_RE.fullmatch(index_name):
            raise ValueError("index name must be lowercase [a-z0-9_.]")
        if version is None:
            key = self._keystore.current(practice_id, DataClass.BLIND_INDEX)
        else:
            key = self._keystore.get(practice_id, DataClass.BLIND_INDEX, version)

        # Practice and index name are inside the MAC input, length-prefixed, so
        # tags are separated per practice and per index even under one key.
        message = aead.associated_data(
            "perpetua/blind-index/v1", key.practice_id, index_name, normalized
        )
        digest = hmac.new(key.secret, message, hashlib.sha256).digest()
        return struct.pack(">H", key.version) + digest[:DIGEST_SIZE]

    def phone(self, practice_id: str | uuid.UUID, raw: str) -> bytes:
        """Tag for the `phone` index."""
        return self.tag(practice_id, "phone", normalize_phone(raw))

    def name(self, practice_id: str | uuid.UUID, raw: str) -> bytes:
        """Tag for the `name` index."""
        return self.tag(practice_id, "name", normalize_name(raw))

    def birth_date(self, practice_id: str | uuid.UUID, value: date | str) -> bytes:
        """Tag for the `birth_date` index."""
        return self.tag(practice_id, "birth_date", normalize_date(value))

    def member_id(self, practice_id: str | uuid.UUID, raw: str) -> bytes:
        """Tag for the `member_id` index."""
        return self.tag(practice_id, "member_id", normalize_identifier(raw))
