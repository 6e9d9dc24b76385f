"""The simulated month: synthetic practice activity written through the owner
with labelled misuse, which the detectors then find in a backfill scan."""

from __future__ import annotations

from tests.conftest import admin_connection

from perpetua.access.claims import system_claims
from perpetua.monitoring.simulation import Simulation


def test_short_simulated_month_is_written_and_its_misuse_is_found(
    target, with_db, vault
):
    month = Simulation(
        target.conninfo("owner"), vault, days=3, warmup_days=1, patients=60, seed=7
    ).build()

    async def scan(db):
        async with db.transaction(system_claims("test")) as conn:
            cur = await conn.execute(
                "select distinct detector, practice_id from monitor.scan(%s, %s)",
                (month.start, month.end),
            )
            return {(r["detector"], r["practice_id"]) for r in await cur.fetchall()}

    found = with_db(scan)

    kinds = {s.kind for s in month.scenarios}
    assert {"credential_stuffing", "cross_practice_probe", "stolen_api_token"} <= kinds
    for detector in ("cross_practice", "repeated_denied", "failed_signins"):
        assert (detector, month.practice_id) in found
    with admin_connection(target) as conn:
        names = conn.execute(
            "select count(*) from app.practices where id = %s and name = %s",
            (month.practice_id, "Simulated Practice"),
        ).fetchone()
        plaintext = conn.execute(
            "select count(*) from phi.patients where practice_id = %s "
            "and position('Simulated'::bytea in name_ct) > 0",
            (month.practice_id,),
        ).fetchone()
    assert names == (1,)
    assert plaintext == (0,)
