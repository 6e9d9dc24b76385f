"""A month whose audit log fills more than one page of the export still leaves
whole: every event once, in time order, in an archive written as it is read."""

from __future__ import annotations

import json
import zipfile

from tests.conftest import admin_connection
from tests.functional.contracts.helpers import terminate_and_open
from tests.support.world import build_world

# One more page than audit_api.events returns at once, and some.
BUSY = 100_050
MARK = "busy-month-synthetic"


def test_a_month_fuller_than_a_page_is_exported_whole(
    client, target, monkeypatch, capsys
):
    world = build_world(client, target)
    with admin_connection(target) as conn:
        # Synthetic reads a microsecond apart, ending just now: one month.
        conn.execute(
            "insert into audit.events (practice_id, occurred_at, actor_kind, "
            "actor_id, action, resource_type, purpose_of_use, request_id, outcome) "
            "select %s, now() - n * interval '1 microsecond', 'system', "
            "gen_random_uuid(), 'view', 'patient', 'TREAT', %s, 'success' "
            "from generate_series(1, %s) n",
            (world.practice_id, MARK, BUSY),
        )

    done, out = terminate_and_open(world, target, monkeypatch, capsys)

    counts = done.json()["termination"]["export_counts"]
    assert counts["audit_events"] > BUSY
    with zipfile.ZipFile(out) as archive:
        events = [json.loads(line) for line in archive.open("audit_log.ndjson")]
    assert len(events) == counts["audit_events"]
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    assert sum(e["request_id"] == MARK for e in events) == BUSY
