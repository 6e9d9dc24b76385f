"""Guards the cadence of detection: every run scans what is new since each
detector's high-water mark (`monitor.tick`, in the database) and raises what it
finds as alerts in the same transaction, so a finding is never lost between the
detector and the alert table, and a window scanned twice alerts once.

Runs inside `perpetua serve` as the `monitor.detect` job, or on its own as
`perpetua monitor run`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.crypto.blind_index import BlindIndexer
from perpetua.db.pool import Database
from perpetua.monitoring.alerts import NewAlert, raise_alert_in
from perpetua.monitoring.tags import tag_new_members

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
