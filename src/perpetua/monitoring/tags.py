"""Guards the comparison of members with the patients they open: a member's and a
patient's surname, full name, phone and address are turned into keyed blind-index
tags (crypto/blind_index.py) under the practice's blind-index key, and only the
tags reach the database. The detectors then join tags; no name, number or address
is ever compared, stored or logged in plaintext here.

Phones use the same `phone` index as `phi.patients.phone_bidx`, so a member's phone
matches a patient's existing index directly. Names use the `name` index, surnames
`surname` and addresses `address`; each index is its own HMAC domain.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
import uuid
from collections.abc import Iterable

from perpetua.access.claims import system_claims
from perpetua.crypto.blind_index import BlindIndexer, normalize_name
from perpetua.crypto.errors import NormalizationError
from perpetua.db.pool import Conn, Database
from perpetua.observability.logging import get_logger

Tag = tuple[str, bytes]

log = get_logger("perpetua.monitoring.tags")

# Spelling variants of the same address line, folded so that "12 Elm Street" and
# "12 elm st." tag alike.
_ADDRESS_WORDS = {
    "street": "st",
    "avenue": "ave",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "boulevard": "blvd",
    "court": "ct",
    "place": "pl",
    "apartment": "apt",
    "suite": "ste",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}


def surname_of(full_name: str) -> str:
    """The family name as typed: before a comma ("Doe, Jane"), else the last word."""
    name = normalize_name(full_name)
    family = name.split(",", 1)[0] if "," in name else name.split(" ")[-1]
    surname = family.strip(" .,-'")
    if not surname:
        raise NormalizationError("no surname")
    return surname


def normalize_address(raw: str) -> str:
    """Case-folded, punctuation removed, common street words abbreviated."""
    folded = unicodedata.normalize("NFKC", raw).casefold()
    words = re.sub(r"[^\w\s]", " ", folded).split()
    if not words:
        raise NormalizationError("address is empty")
    return " ".join(_ADDRESS_WORDS.get(w, w) for w in words)


def identity_tags(
    indexer: BlindIndexer,
    practice_id: uuid.UUID,
    *,
    full_name: str | None = None,
    phone: str | None = None,
    address: str | None = None,
) -> list[Tag]:
    """The tags of whatever is given; a value that does not normalize is skipped."""
    tags: list[Tag] = []
    if full_name:
        with contextlib.suppress(NormalizationError):
            tags.append(("name", indexer.name(practice_id, full_name)))
            surname = surname_of(full_name)
            tags.append(("surname", indexer.tag(practice_id, "surname", surname)))
    if phone:
        with contextlib.suppress(NormalizationError):
            tags.append(("phone", indexer.phone(practice_id, phone)))
    if address:
        with contextlib.suppress(NormalizationError):
            normalized = normalize_address(address)
            tags.append(("address", indexer.tag(practice_id, "address", normalized)))
    return tags


async def replace_member_tags(
    conn: Conn,
    practice_id: uuid.UUID,
    user_id: uuid.UUID,
    tags: Iterable[Tag],
    kinds: Iterable[str],
) -> None:
    """Replace the member's tags of `kinds` by `tags` (system claims)."""
    await conn.execute(
        "delete from monitor.member_tags where practice_id = %s and user_id = %s "
        "and kind = any(%s)",
        (practice_id, user_id, list(kinds)),
    )
    for kind, tag in tags:
        await conn.execute(
            "insert into monitor.member_tags (practice_id, user_id, kind, tag) "
            "values (%s, %s, %s, %s) on conflict do nothing",
            (practice_id, user_id, kind, tag),
        )


async def replace_patient_tags(
    conn: Conn,
    practice_id: uuid.UUID,
    patient_id: uuid.UUID,
    tags: Iterable[Tag],
    kinds: Iterable[str],
) -> None:
    """Replace the patient's tags of `kinds` by `tags` (system claims)."""
    await conn.execute(
        "delete from monitor.patient_tags where practice_id = %s and patient_id = %s "
        "and kind = any(%s)",
        (practice_id, patient_id, list(kinds)),
    )
    for kind, tag in tags:
        await conn.execute(
            "insert into monitor.patient_tags (practice_id, patient_id, kind, tag) "
            "values (%s, %s, %s, %s) on conflict do nothing",
            (practice_id, patient_id, kind, tag),
        )


async def tag_patient_name(
    db: Database,
    indexer: BlindIndexer,
    practice_id: uuid.UUID,
    patient_id: uuid.UUID,
    full_name: str,
    request_id: str,
) -> None:
    """Tag a patient's name and surname as the records service registers or renames
    them, so that the detectors can tell a member opening a relative's or a
    co-worker's record.

    The tags are written by the system, after the patient's own transaction has
    committed: a member may not write monitoring state, and a failure here must
    not undo the registration the member asked for. It is logged (without the
    name or the patient) and the patient simply goes untagged until renamed.
    """
    tags = identity_tags(indexer, practice_id, full_name=full_name)
    try:
        async with db.transaction(system_claims(request_id)) as conn:
            await replace_patient_tags(
                conn, practice_id, patient_id, tags, ("name", "surname")
            )
    except Exception as exc:  # monitoring must not undo the registration
        log.error("patient_tags_failed", error_type=type(exc).__name__)


async def tag_new_members(conn: Conn, indexer: BlindIndexer, limit: int = 200) -> int:
    """Tag the names of members not tagged yet; returns how many were tagged."""
    cur = await conn.execute("select * from monitor.members_to_tag(%s)", (limit,))
    rows = list(await cur.fetchall())
    for row in rows:
        tags = identity_tags(indexer, row["practice_id"], full_name=row["full_name"])
        await replace_member_tags(
            conn, row["practice_id"], row["user_id"], tags, ("name", "surname")
        )
    return len(rows)
