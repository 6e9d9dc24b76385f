"""Guards the cadence of detection: every run scans what is new since each
detector's high-water mark (`monitor.tick`, in the database) and raises what it
finds as alerts in the same transaction, so a finding is never lost between the
detector and the alert table, and a window scanned twice alerts once.

Runs inside `perpetua serve` as the `monitor.detect` job, or on its own as
`perpetua monitor run`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.crypto.blind_index import BlindIndexer
from perpetua.db.pool import Database
from perpetua.monitoring.alerts import NewAlert, raise_alert_in
from perpetua.monitoring.tags import tag_new_members

# A window longer than this is read from the daily roll-up of actor-days for its
# finished days (monitor.short_window() in the database says the same).
SHORT_WINDOW = dt.timedelta(hours=6)

# How often the job runs; the time from an event to its alert is at most this
# plus the run itself.
DEFAULT_EVERY_SECONDS = 60


@dataclass(frozen=True)
class TickReport:
    findings: int
    raised: tuple[uuid.UUID, ...]

    def __str__(self) -> str:
        return f"findings={self.findings} raised={len(self.raised)}"


async def run_tick(
    db: Database,
    clock: Clock,
    *,
    indexer: BlindIndexer | None = None,
    now: dt.datetime | None = None,
) -> TickReport:
    """One detection run up to `now` (the clock's time by default)."""
    at = now or clock.now()
    async with db.transaction(system_claims("monitor-tick")) as conn:
        if indexer is not None:
            await tag_new_members(conn, indexer)
        cur = await conn.execute("select * from monitor.tick(%s)", (at,))
        findings = [NewAlert.from_finding(r) for r in await cur.fetchall()]
        raised = []
        for finding in findings:
            alert_id = await raise_alert_in(conn, finding, at)
            if alert_id is not None:
                raised.append(alert_id)
    return TickReport(findings=len(findings), raised=tuple(raised))


async def build_actor_days(
    db: Database,
    since: dt.datetime,
    until: dt.datetime,
    *,
    connections: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Make the roll-up of the finished UTC days in the window current, building
    the stale days on `connections` connections side by side; returns how many.

    A scan over a long window would build them itself, one after another, on its
    one connection; building is most of such a scan's work and each day is
    independent, so a backfill does it first, spread over the cores. Each day
    commits on its own: an interrupted backfill keeps the days it built.
    `progress` hears (days built, days to build) before the first and after each.
    """
    first = since.astimezone(dt.UTC).date()
    last = until.astimezone(dt.UTC).date()
    async with db.transaction(system_claims("monitor-actor-days")) as conn:
        cur = await conn.execute(
            "select monitor.stale_actor_days(%s, %s) as days", (first, last)
        )
        row = await cur.fetchone()
    days: list[dt.date] = list(row["days"] if row else [])
    pending = iter(days)
    built = 0
    if progress is not None:
        progress(built, len(days))

    async def builder() -> None:
        nonlocal built
        # The iterator is shared: each builder takes the next day not yet taken.
        for day in pending:
            async with db.transaction(system_claims("monitor-actor-days")) as conn:
                await conn.execute(
                    "select monitor.build_actor_day_as_system(%s)", (day,)
                )
            built += 1
            if progress is not None:
                progress(built, len(days))

    await asyncio.gather(*(builder() for _ in range(max(1, connections))))
    return len(days)
