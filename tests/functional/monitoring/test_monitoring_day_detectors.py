"""The detectors that judge an actor's whole day (volume, hours, rows) and bursts of
refusals, over audit events written straight into the log: a day that began
before the detection window counts whole, only actors active in the window are
judged, and the evidence is the events that crossed the line."""

from __future__ import annotations

import datetime as dt
import uuid

from tests.conftest import admin_connection
from tests.support.world import build_world

from perpetua.clock import Clock
from perpetua.monitoring.runner import run_tick


def noon_today() -> dt.datetime:
    """The tick time of these tests: the middle of a UTC day, so that the hours
    before it and the minutes around it fall on the same day."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=12, minute=0, second=0, microsecond=0)


def write_event(
    target,
    practice_id: str,
    actor_id: str,
    at: dt.datetime,
    *,
    outcome: str = "success",
    action: str = "view",
    row_count: int = 1,
    patient: uuid.UUID | None = None,
) -> uuid.UUID:
    event_id = uuid.uuid4()
    with admin_connection(target) as conn:
        conn.execute(
            "insert into audit.events (id, practice_id, occurred_at, actor_kind, "
            "actor_id, actor_role, action, resource_type, patient_ids, "
            "purpose_of_use, request_id, outcome, row_count) "
            "values (%s, %s, %s, 'user', %s, 'front_desk', %s, 'patient', %s, "
            "'HOPERAT', 'test', %s, %s)",
            (
                event_id,
                practice_id,
                at,
                actor_id,
                action,
                [patient or uuid.uuid4()],
                outcome,
                row_count,
            ),
        )
    return event_id


def alerts_by(target, practice_id: str, detector: str) -> list[dict]:
    with admin_connection(target) as conn:
        cur = conn.execute(
            "select actor_id::text, event_ids, summary from monitor.alerts "
            "where practice_id = %s and detector = %s order by actor_id",
            (practice_id, detector),
        )
        return [
            {"actor_id": r[0], "event_ids": r[1], "summary": r[2]}
            for r in cur.fetchall()
        ]


def test_reads_at_hours_a_member_never_works_are_alerted_with_those_reads(
    client, target, with_db
):
    world = build_world(client, target, baa=False)
    member = world.user_ids["front_desk"]
    tick = noon_today()
    # Four weeks of work eight hours away from the tick's hour teach the baseline
    # that the hours around noon are rare for this member.
    for days in range(1, 28):
        for minutes in (0, 30):
            at = tick - dt.timedelta(days=days, hours=8, minutes=-minutes)
            write_event(target, world.practice_id, member, at)
    late = [
        write_event(target, world.practice_id, member, tick - dt.timedelta(minutes=m))
        for m in (3, 2, 1)
    ]

    with_db(lambda db: run_tick(db, Clock(), now=tick))

    found = alerts_by(target, world.practice_id, "unusual_hours")
    assert [(a["actor_id"], a["event_ids"]) for a in found] == [(member, late)]
    assert found[0]["summary"].startswith("3 patient access(es) at hours")


def test_a_burst_of_refusals_is_alerted_and_a_slow_trickle_is_not(
    client, target, with_db
):
    world = build_world(client, target, baa=False)
    bursty = world.user_ids["front_desk"]
    trickler = world.user_ids["biller"]
    tick = noon_today()
    burst = [
        write_event(
            target,
            world.practice_id,
            bursty,
            tick - dt.timedelta(minutes=m),
            outcome="denied",
        )
        for m in (10, 9, 8, 7, 6)
    ]
    # Twelve minutes apart: never more than two inside the 15-minute window.
    for m in (50, 38, 26, 14, 2):
        write_event(
            target,
            world.practice_id,
            trickler,
            tick - dt.timedelta(minutes=m),
            outcome="denied",
        )

    with_db(lambda db: run_tick(db, Clock(), now=tick))

    found = alerts_by(target, world.practice_id, "repeated_denied")
    assert [(a["actor_id"], a["event_ids"]) for a in found] == [(bursty, [burst[-1]])]
    assert found[0]["summary"] == "5 denied accesses in a short window"


def test_rows_read_earlier_in_the_day_count_once_the_member_reads_again(
    client, target, with_db
):
    world = build_world(client, target, baa=False)
    reader = world.user_ids["front_desk"]
    idle = world.user_ids["biller"]
    tick = noon_today()
    morning = write_event(
        target, world.practice_id, reader, tick - dt.timedelta(hours=3), row_count=900
    )
    now_read = write_event(
        target, world.practice_id, reader, tick - dt.timedelta(minutes=5), row_count=150
    )
    # A large read earlier in the day by someone not active in the window is not
    # judged by this run.
    write_event(
        target, world.practice_id, idle, tick - dt.timedelta(hours=3), row_count=5000
    )

    with_db(lambda db: run_tick(db, Clock(), now=tick))

    found = alerts_by(target, world.practice_id, "bulk_access")
    assert [(a["actor_id"], a["event_ids"]) for a in found] == [
        (reader, [morning, now_read])
    ]
    assert found[0]["summary"] == (
        "1050 rows today; largest export 0 rows, largest result 900 rows"
    )


def test_many_distinct_patients_in_a_day_are_a_volume_spike(client, target, with_db):
    world = build_world(client, target, baa=False)
    member = world.user_ids["front_desk"]
    tick = noon_today()
    patients = [uuid.uuid4() for _ in range(45)]
    events = [
        write_event(
            target,
            world.practice_id,
            member,
            tick - dt.timedelta(minutes=50, seconds=-n),
            patient=p,
        )
        for n, p in enumerate(patients)
    ]
    # Opening the same patient again adds an event, not a patient.
    events.append(
        write_event(
            target,
            world.practice_id,
            member,
            tick - dt.timedelta(minutes=1),
            patient=patients[0],
        )
    )

    with_db(lambda db: run_tick(db, Clock(), now=tick))

    found = alerts_by(target, world.practice_id, "volume_spike")
    assert [(a["actor_id"], a["event_ids"]) for a in found] == [
        (member, sorted(events))
    ]
    assert found[0]["summary"].startswith("45 distinct patients today;")
