"""The daily roll-up of actor-days (`monitor.actor_days`) that long windows and the
baselines read instead of the audit events: each day agrees with its events, a
late event makes its day be built again, and the day detectors find through the
roll-up exactly what they find reading the events."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest
from tests.conftest import admin_connection
from tests.support.world import build_world

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.monitoring.runner import build_actor_days, run_tick

DAY = dt.timedelta(days=1)


def midnight(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - days_ago * DAY


def write_events(target, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Write audit events straight into the log, as the database's own writers do."""
    ids = []
    with admin_connection(target) as conn:
        for row in rows:
            event_id = uuid.uuid4()
            conn.execute(
                "insert into audit.events (id, practice_id, occurred_at, actor_kind, "
                "actor_id, actor_role, action, resource_type, patient_ids, "
                "purpose_of_use, request_id, outcome, row_count) "
                "values (%s, %s, %s, %s, %s, %s, %s, 'patient', %s, 'HOPERAT', "
                "'test', %s, %s)",
                (
                    event_id,
                    row["practice"],
                    row["at"],
                    row.get("kind", "user"),
                    row["actor"],
                    row.get("role", "front_desk"),
                    row.get("action", "view"),
                    row.get("patients", [uuid.uuid4()]),
                    row.get("outcome", "success"),
                    row.get("rows", 1),
                ),
            )
            ids.append(event_id)
    return ids


def scan(with_db, since: dt.datetime, until: dt.datetime, only: str | None = None):
    async def work(db):
        async with db.transaction(system_claims("test")) as conn:
            cur = await conn.execute(
                "select * from monitor.scan(%s, %s, %s)", (since, until, only)
            )
            return list(await cur.fetchall())

    return with_db(work)


def rolled_up(target) -> dict[tuple[dt.date, str], dict[str, Any]]:
    with admin_connection(target) as conn:
        cur = conn.execute("select * from monitor.actor_days")
        names = [c.name for c in cur.description or []]
        return {
            (r[names.index("day")], str(r[names.index("actor_id")])): dict(
                zip(names, r, strict=True)
            )
            for r in cur.fetchall()
        }


def test_each_rolled_up_day_agrees_with_its_events_across_midnight(target, with_db):
    practice = uuid.uuid4()
    reader, agent = uuid.uuid4(), uuid.uuid4()
    patient = uuid.uuid4()
    day1 = midnight(4)
    last_instant = day1 + DAY - dt.timedelta(microseconds=1)
    rows = [
        # The last instant of a day belongs to it; midnight to the next day.
        {
            "practice": practice,
            "actor": reader,
            "at": last_instant,
            "rows": 300,
            "action": "export",
            "patients": [patient, uuid.uuid4()],
        },
        {
            "practice": practice,
            "actor": reader,
            "at": day1 + DAY,
            "rows": 5,
            "patients": [patient],
        },
        {
            "practice": practice,
            "actor": reader,
            "at": day1 + DAY * 1.5,
            "rows": 7,
            "patients": [patient],
        },
        {
            "practice": practice,
            "actor": reader,
            "at": day1 + DAY * 1.25,
            "outcome": "denied",
            "rows": 0,
        },
        {
            "practice": practice,
            "actor": agent,
            "kind": "agent",
            "role": None,
            "at": day1 + DAY * 1.5,
            "rows": 0,
            "patients": [],
        },
    ]
    ids = write_events(target, rows)

    scan(with_db, day1 - DAY, day1 + DAY * 3)

    days = rolled_up(target)
    first = days[(day1.date(), str(reader))]
    assert (first["events"], first["successes"], first["patients"]) == (1, 1, 2)
    assert first["hour_events"] == [0] * 23 + [1]
    assert (first["rows_total"], first["rows_biggest_export"]) == (300, 300)
    assert first["rows_last"] == last_instant
    second = days[((day1 + DAY).date(), str(reader))]
    # The same patient twice is one patient; the refusal counts as an event only.
    assert (second["events"], second["successes"], second["patients"]) == (3, 2, 1)
    assert second["hour_events"] == [1] + [0] * 11 + [1] + [0] * 11
    assert (second["rows_total"], second["rows_biggest"]) == (12, 7)
    assert second["rows_biggest_export"] is None
    assert second["rows_evidence"] == [ids[2], ids[1]]
    assert (second["rows_first"], second["rows_last"]) == (day1 + DAY, day1 + DAY * 1.5)
    idle = days[((day1 + DAY).date(), str(agent))]
    assert (idle["patients"], idle["rows_total"], idle["rows_evidence"]) == (0, 0, [])
    with admin_connection(target) as conn:
        built = dict(
            conn.execute(
                "select day, events from monitor.actor_day_builds "
                "where day between %s and %s",
                (day1.date() - DAY, day1.date() + 2 * DAY),
            ).fetchall()
        )
    # Every day of the window is recorded, with the events it was built from.
    assert built == {
        day1.date() - DAY: 0,
        day1.date(): 1,
        day1.date() + DAY: 4,
        day1.date() + 2 * DAY: 0,
    }


def test_a_late_event_in_a_rolled_up_day_is_counted_when_the_window_is_read_again(
    target, with_db
):
    practice = uuid.uuid4()
    reader = uuid.uuid4()
    day = midnight(3)
    early = write_events(
        target,
        [
            {"practice": practice, "actor": reader, "at": day + DAY * 0.4, "rows": 150},
            {"practice": practice, "actor": reader, "at": day + DAY * 0.5, "rows": 150},
        ],
    )
    since, until = day - DAY, midnight(0) + dt.timedelta(hours=1)

    assert [f for f in scan(with_db, since, until, "bulk_access")] == []

    # Written now, for a moment of that day: the day's roll-up no longer matches.
    late = write_events(
        target,
        [{"practice": practice, "actor": reader, "at": day + DAY * 0.45, "rows": 900}],
    )
    found = scan(with_db, since, until, "bulk_access")

    assert [(f["actor_id"], f["summary"]) for f in found] == [
        (reader, "1200 rows today; largest export 0 rows, largest result 900 rows")
    ]
    assert found[0]["event_ids"] == late + early
    assert rolled_up(target)[(day.date(), str(reader))]["rows_total"] == 1200


def detect_from_events(target, detector: str, since, until) -> list[tuple]:
    """The detector reading every day from the events: the roll-up's record of
    built days is set aside first (as the cluster's superuser, in a transaction
    that is rolled back)."""
    with admin_connection(target) as conn:
        conn.execute("begin")
        conn.execute("delete from monitor.actor_day_builds")
        rows = conn.execute(
            f"select * from monitor.detect_{detector}(%s, %s)", (since, until)
        ).fetchall()
        conn.execute("rollback")
    return sorted(rows, key=lambda r: r[-1])


def as_rows(findings: list[dict[str, Any]]) -> list[tuple]:
    return sorted((tuple(f.values()) for f in findings), key=lambda r: r[-1])


def test_day_detectors_find_through_the_roll_up_what_the_events_show(target, with_db):
    practice = uuid.uuid4()
    steady, spiker, bulk = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    rows = []

    def read(actor, days_ago, patients, rows_each=1, hour=9, action="view"):
        for n in range(patients):
            at = midnight(days_ago) + dt.timedelta(hours=hour, seconds=n)
            if at >= now:
                at = now - dt.timedelta(seconds=patients - n)
            rows.append(
                {
                    "practice": practice,
                    "actor": actor,
                    "at": at,
                    "rows": rows_each,
                    "action": action,
                }
            )

    for days_ago in range(10, 0, -1):
        read(steady, days_ago, 3)
        read(spiker, days_ago, 2)
    # A spike on a finished day and another today (the window's last day, read
    # from the events); bulk reads on a finished day and today.
    read(spiker, 4, 50)
    read(spiker, 0, 45, hour=0)
    read(bulk, 6, 4, rows_each=300)
    read(bulk, 5, 30, rows_each=40, action="export")
    read(bulk, 0, 3, rows_each=400, hour=0)
    write_events(target, rows)
    since, until = midnight(8) + dt.timedelta(hours=3), now

    findings = scan(with_db, since, until)

    for detector in ("volume_spike", "bulk_access"):
        through_roll_up = as_rows([f for f in findings if f["detector"] == detector])
        assert through_roll_up == detect_from_events(target, detector, since, until)
    keys = {
        f["dedup_key"]
        for f in findings
        if f["detector"] in ("volume_spike", "bulk_access")
    }
    for actor, days_ago, detector in [
        (spiker, 4, "volume_spike"),
        (spiker, 0, "volume_spike"),
        (bulk, 6, "bulk_access"),
        (bulk, 5, "bulk_access"),
        (bulk, 0, "bulk_access"),
    ]:
        assert f"{detector}:{actor}:{midnight(days_ago).date()}" in keys
    assert not any(str(steady) in k for k in keys)


def test_the_first_tick_after_downtime_judges_the_missed_days_through_the_roll_up(
    client, target, with_db
):
    # A real practice and member: the alert refers to both.
    world = build_world(client, target, baa=False)
    practice = world.practice_id
    reader = world.user_ids["front_desk"]
    down_at = midnight(3) + dt.timedelta(hours=1)
    with_db(lambda db: run_tick(db, Clock(), now=down_at))
    big = write_events(
        target,
        [
            {
                "practice": practice,
                "actor": reader,
                "rows": 900,
                "at": midnight(2) + dt.timedelta(hours=10),
            },
            {
                "practice": practice,
                "actor": reader,
                "rows": 3,
                "at": midnight(1) + dt.timedelta(hours=10),
            },
        ],
    )[0]

    # Back up two days later: one window of more than six hours.
    with_db(lambda db: run_tick(db, Clock(), now=dt.datetime.now(dt.UTC)))

    with admin_connection(target) as conn:
        found = conn.execute(
            "select event_ids, dedup_key from monitor.alerts "
            "where practice_id = %s and detector = 'bulk_access'",
            (practice,),
        ).fetchall()
        built = conn.execute(
            "select events from monitor.actor_day_builds where day = %s",
            (midnight(2).date(),),
        ).fetchone()
    assert found == [([big], f"bulk_access:{reader}:{midnight(2).date()}")]
    assert built == (1,)


def test_a_backfill_builds_the_days_on_two_connections_as_a_scan_would(target, with_db):
    practice = uuid.uuid4()
    readers = [uuid.uuid4() for _ in range(3)]
    rows = [
        {
            "practice": practice,
            "actor": reader,
            "at": midnight(days_ago) + dt.timedelta(hours=3 + n),
            "rows": 10 * n + days_ago,
        }
        for days_ago in range(1, 6)
        for n, reader in enumerate(readers)
    ]
    write_events(target, rows)
    since, until = midnight(6), midnight(0) + dt.timedelta(hours=1)
    heard: list[tuple[int, int]] = []

    built = with_db(
        lambda db: build_actor_days(
            db, since, until, connections=2, progress=lambda *p: heard.append(p)
        )
    )

    # Six finished days (the one before the events too), each committed.
    assert built == 6
    assert heard == [(n, 6) for n in range(7)]
    by_builders = rolled_up(target)
    assert {day for day, _ in by_builders} == {midnight(d).date() for d in range(1, 6)}
    # Nothing is left for the scan to build, and building again builds nothing.
    assert with_db(lambda db: build_actor_days(db, since, until)) == 0
    # What the scan builds on its own connection, from nothing, is the same.
    with admin_connection(target) as conn:
        conn.execute("delete from monitor.actor_days")
        conn.execute("delete from monitor.actor_day_builds")
    scan(with_db, since, until, "bulk_access")
    assert rolled_up(target) == by_builders


def test_only_the_system_builds_actor_days(target, with_db):
    member = {
        "actor_kind": "user",
        "sub": str(uuid.uuid4()),
        "request_id": "test",
        "practice_id": str(uuid.uuid4()),
        "practice_role": "owner",
    }
    today = midnight(0).date()
    for call, args in [
        ("select monitor.stale_actor_days(%s, %s)", (today - DAY, today)),
        ("select monitor.build_actor_day_as_system(%s)", (today - DAY,)),
    ]:
        with psycopg.connect(target.conninfo("service")) as conn:
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (json.dumps(member),),
            )
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(call, args)
            assert refused.value.sqlstate == "PR403"
        # The service role cannot reach the builder underneath.
        with (
            psycopg.connect(target.conninfo("service")) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("select monitor.build_actor_day(%s)", (today,))
    assert rolled_up(target) == {}
