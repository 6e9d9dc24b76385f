"""Guards the detectors' thresholds: defaults for every practice, overridden per
practice. Only a known name with a finite, non-negative value is accepted, so a
typo cannot silently switch a detector off."""

from __future__ import annotations

import decimal
import uuid
from dataclasses import dataclass

from perpetua.db.pool import Conn
from perpetua.errors import InvalidInput


@dataclass(frozen=True)
class Threshold:
    name: str
    value: decimal.Decimal
    default: decimal.Decimal
    meaning: str


async def effective(conn: Conn, practice_id: uuid.UUID) -> list[Threshold]:
    """Every threshold as it applies to the practice."""
    cur = await conn.execute(
        "select d.name, coalesce(t.value, d.value) as value, d.value as default, "
        "d.meaning from monitor.threshold_defaults d "
        "left join monitor.thresholds t on t.name = d.name and t.practice_id = %s "
        "order by d.name",
        (practice_id,),
    )
    return [
        Threshold(r["name"], r["value"], r["default"], r["meaning"])
        for r in await cur.fetchall()
    ]


def parse_value(text: str) -> decimal.Decimal:
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise InvalidInput("a threshold must be a number") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput("a threshold must be a finite number, zero or more")
    return value


async def set_threshold(
    conn: Conn, practice_id: uuid.UUID, name: str, value: decimal.Decimal | None
) -> None:
    """Override one threshold for the practice; None returns it to the default."""
    cur = await conn.execute(
        "select 1 from monitor.threshold_defaults where name = %s", (name,)
    )
    if await cur.fetchone() is None:
        raise InvalidInput("no such threshold")
    if value is None:
        await conn.execute(
            "delete from monitor.thresholds where practice_id = %s and name = %s",
            (practice_id, name),
        )
        return
    await conn.execute(
        "insert into monitor.thresholds (practice_id, name, value) "
        "values (%s, %s, %s) on conflict (practice_id, name) "
        "do update set value = excluded.value, updated_at = now()",
        (practice_id, name, value),
    )
