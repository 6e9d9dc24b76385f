"""The termination record of a practice, as every member may read it: whether the
Business Associate Agreement was terminated, and what was exported and destroyed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import Claims
from perpetua.db.pool import Conn, Database

_COLUMNS = """
    practice_id, requested_by, requested_at, state, export_id, export_kdf,
    export_bytes, export_sha256, export_counts, destroyed_at, certificates,
    certificate_object_id, certificate_sha256, export_deleted_at
"""


@dataclass(frozen=True)
class Termination:
    practice_id: uuid.UUID
    requested_by: uuid.UUID
    requested_at: dt.datetime
    state: str
    export_id: uuid.UUID | None
    export_kdf: str | None
    export_bytes: int | None
    export_sha256: str | None
    export_counts: dict[str, int] | None
    destroyed_at: dt.datetime | None
    certificates: list[dict[str, Any]] | None
    certificate_object_id: uuid.UUID | None
    certificate_sha256: str | None
    export_deleted_at: dt.datetime | None

    @property
    def complete(self) -> bool:
        return self.state == "destroyed"


def _termination(row: dict[str, Any]) -> Termination:
    return Termination(**{k: row[k] for k in Termination.__dataclass_fields__})


async def termination_of(conn: Conn, practice_id: uuid.UUID) -> Termination | None:
    cur = await conn.execute(
        f"select {_COLUMNS} from app.practice_terminations where practice_id = %s",
        (practice_id,),
    )
    row = await cur.fetchone()
    return _termination(row) if row else None


async def termination_row(
    conn: Conn, practice_id: uuid.UUID
) -> tuple[Termination, bytes | None] | None:
    """The record with the wrapped key of its certificate, for the download."""
    cur = await conn.execute(
        f"select {_COLUMNS}, certificate_wrapped_key "
        "from app.practice_terminations where practice_id = %s",
        (practice_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    wrapped = row["certificate_wrapped_key"]
    return _termination(row), bytes(wrapped) if wrapped is not None else None


TERMINATED = (
    "This practice terminated its Business Associate Agreement: its patient data "
    "was exported and destroyed, and Perpetua will not hold patient data for it "
    "again."
)


async def locked_reason(db: Database, claims: Claims, unsigned: str) -> str:
    """Why PHI features are locked, for a page to show: never signed, or ended."""
    if claims.practice_id is None:
        return unsigned
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select perpetua.practice_terminated(%s) as ended", (claims.practice_id,)
        )
        row = await cur.fetchone()
    return TERMINATED if row and row["ended"] else unsigned
