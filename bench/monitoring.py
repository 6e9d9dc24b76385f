"""How well, how fast and how cheaply the monitoring detectors work.

1. Builds a simulated month of a synthetic practice (`perpetua simulate`'s
   generator) with labelled misuse injected, in a scratch embedded PostgreSQL.
2. Replays the background cadence in simulated time: every `--cadence` seconds the
   detectors run (`monitor.tick`, the same call the `monitor.detect` job makes) over
   what is new, and their findings are raised as alerts with the tick's time.
   Ticks with no new audit or security event are skipped: the detectors would find
   nothing new in them. A warm-up period before the month teaches the detectors the
   practice's habits; alerts raised in it are not counted.
3. Reports per detector: recall over the scenarios that name it, precision, alerts
   per practice-day, median and p95 time from the event to its alert.
4. Scans 10 million audit events of a scratch practice with every detector
   (`monitor.scan`) and prints the time (`--scan-events 0` skips it).

    python bench/monitoring.py [--cadence 60] [--scan-events 10000000]

The last line is `monitoring_recall: X` (scenarios caught by at least one of the
detectors they name / scenarios injected).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.config import Settings
from perpetua.db.migrations import migrate
from perpetua.db.pool import Database
from perpetua.db.target import open_target
from perpetua.monitoring.runner import build_actor_days, run_tick
from perpetua.monitoring.simulation import Month, Scenario, Simulation
from perpetua.records.vault import Vault


def _matches(alert: dict[str, Any], scenario: Scenario, practice: uuid.UUID) -> bool:
    if alert["practice_id"] != practice or alert["detector"] not in scenario.expected:
        return False
    if scenario.event_ids and set(alert["event_ids"]) & scenario.event_ids:
        return True
    slack = dt.timedelta(hours=3)
    overlaps = (
        alert["first_event_at"] <= scenario.end + slack
        and alert["last_event_at"] >= scenario.start - slack
    )
    actor_ok = alert["actor_id"] is None or alert["actor_id"] in scenario.actors
    return overlaps and actor_ok


async def _replay(
    db: Database, owner: str, month: Month, cadence: float
) -> tuple[int, float]:
    """Tick through warm-up and month; returns (ticks run, seconds spent)."""
    with psycopg.connect(owner) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)",
            (json.dumps(system_claims("bench").as_json()),),
        )
        moments = [
            r[0]
            for r in conn.execute(
                "select occurred_at from audit.events where practice_id = %s "
                "union all select occurred_at from app.security_events "
                "where occurred_at >= %s and occurred_at < %s order by 1",
                (month.practice_id, month.warmup_from, month.end),
            )
        ]
    # Warm-up: hourly ticks teach the detectors the practice's habits and networks
    # (its alerts are not counted). The month: one tick every `cadence` seconds
    # that has at least one new event since the previous tick.
    hour = dt.timedelta(hours=1)
    step = dt.timedelta(seconds=cadence)
    origin = month.warmup_from
    ticks = sorted(
        {
            origin + hour * (int((m - origin) / hour) + 1)
            if m < month.start
            else month.start + step * (int((m - month.start) / step) + 1)
            for m in moments
            if origin <= m < month.end
        }
    )
    clock = Clock()
    started = time.perf_counter()
    for at in ticks:
        await run_tick(db, clock, now=at)
    return len(ticks), time.perf_counter() - started


async def _alerts(db: Database, month: Month) -> list[dict[str, Any]]:
    async with db.transaction(system_claims("bench")) as conn:
        cur = await conn.execute(
            "select * from monitor.alerts where practice_id = %s "
            "and last_event_at >= %s order by detected_at",
            (month.practice_id, month.start),
        )
        return list(await cur.fetchall())


def _report(month: Month, alerts: list[dict[str, Any]]) -> float:
    detectors = sorted(
        {a["detector"] for a in alerts}
        | {d for s in month.scenarios for d in s.expected}
    )
    practice_days = month.days
    caught: set[int] = set()
    print(
        f"\n{'detector':<20} {'recall':>8} {'precision':>10} {'alerts/day':>11} "
        f"{'median s':>9} {'p95 s':>7}  (scenarios named / alerts)"
    )
    for detector in detectors:
        mine = [a for a in alerts if a["detector"] == detector]
        named = [s for s in month.scenarios if detector in s.expected]
        hit = 0
        for n, scenario in enumerate(month.scenarios):
            if detector not in scenario.expected:
                continue
            if any(_matches(a, scenario, month.practice_id) for a in mine):
                hit += 1
                caught.add(n)
        true_alerts = [
            a
            for a in mine
            if any(_matches(a, s, month.practice_id) for s in month.scenarios)
        ]
        delays = sorted(
            (a["detected_at"] - a["last_event_at"]).total_seconds() for a in true_alerts
        )
        recall = f"{hit / len(named):.2f}" if named else "-"
        precision = f"{len(true_alerts) / len(mine):.2f}" if mine else "-"
        median = f"{statistics.median(delays):.0f}" if delays else "-"
        p95 = (
            f"{delays[min(len(delays) - 1, int(0.95 * len(delays)))]:.0f}"
            if delays
            else "-"
        )
        print(
            f"{detector:<20} {recall:>8} {precision:>10} "
            f"{len(mine) / practice_days:>11.2f} {median:>9} {p95:>7}  "
            f"({len(named)} / {len(mine)})"
        )

    false_alerts = [
        a
        for a in alerts
        if not any(_matches(a, s, month.practice_id) for s in month.scenarios)
    ]
    delays = sorted(
        (a["detected_at"] - a["last_event_at"]).total_seconds()
        for a in alerts
        if a not in false_alerts
    )
    print("\nscenarios:")
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for n, scenario in enumerate(month.scenarios):
        by_kind[scenario.kind].append(n in caught)
    for kind, outcomes in sorted(by_kind.items()):
        print(f"  {kind:<22} {sum(outcomes)}/{len(outcomes)} caught")
    print(
        f"\nalerts in the month: {len(alerts)}; false: {len(false_alerts)} "
        f"({len(false_alerts) / practice_days:.2f} per practice-day)"
    )
    for a in false_alerts:
        print(f"  false: {a['detector']:<20} {a['severity']:<8} {a['summary'][:70]}")
    if delays:
        p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
        print(
            f"time from event to alert: median {statistics.median(delays):.0f} s, "
            f"p95 {p95:.0f} s"
        )
    return len(caught) / len(month.scenarios)


def _scan(owner: str, service: str, count: int) -> None:
    """Generate `count` events in a scratch practice and time every detector."""
    practice = uuid.uuid4()
    user = uuid.uuid4()
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(days=28)
    span = (end - start).total_seconds()
    claims = {
        "actor_kind": "user",
        "sub": str(user),
        "request_id": "bench-scan",
        "practice_id": str(practice),
        "practice_role": "owner",
    }
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)", (json.dumps(claims),)
        )
        conn.execute(
            "insert into app.users (id, email, full_name, password_hash) "
            "values (%s, %s, 'Scan Owner', '!bench')",
            (user, f"scan.{practice.hex[:8]}@example.test"),
        )
        conn.execute(
            "insert into app.practices (id, name, trial_ends_at, plan) "
            "values (%s, 'Scan practice', now() + interval '1 year', 'standard')",
            (practice,),
        )
        conn.execute(
            "insert into app.memberships (practice_id, user_id, role) "
            "values (%s, %s, 'owner')",
            (practice, user),
        )

    def generate(first: int, last: int) -> None:
        # 200 members over 28 days; each event opens one of 100 000 patients (ids
        # only: the scratch practice holds no records, so every access is
        # unexplained by construction, the worst case for the join).
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute(
                "select set_config('request.jwt.claims', %s, false)",
                (json.dumps(claims),),
            )
            conn.execute(
                "insert into audit.events (id, practice_id, occurred_at, "
                "actor_kind, actor_id, actor_role, action, resource_type, "
                "resource_ids, patient_ids, purpose_of_use, client_ip, request_id, "
                "outcome, row_count) "
                "select gen_random_uuid(), %s, "
                "  %s::timestamptz + (g * %s / %s) * interval '1 second', 'user', "
                "  ('00000000-0000-4000-8000-' || lpad(to_hex(g %% 200), 12, '0'))"
                "::uuid, 'front_desk', 'view', 'patient', '{}', "
                "  array[('00000000-0000-4000-9000-' || "
                "    lpad(to_hex((g::bigint * 7919) %% 100000), 12, '0'))::uuid], "
                "  'HOPERAT', '198.51.100.7', 'bench', "
                "  case when g %% 5000 = 0 then 'denied' else 'success' end, 1 "
                "from generate_series(%s::bigint, %s::bigint) g",
                (practice, start, span, count, first, last),
            )

    # Two connections write the two halves of the series at once: the insert is
    # bound by index upkeep, which one backend does on one core.
    t0 = time.perf_counter()
    half = count // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [
            pool.submit(generate, 1, half),
            pool.submit(generate, half + 1, count),
        ]:
            done.result()
    generated = time.perf_counter() - t0
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("analyze audit.events")
    print(f"\ngenerated {count:,} audit events in {generated:.1f} s")

    claims_json = json.dumps(system_claims("bench-scan").as_json())
    set_claims = "select set_config('request.jwt.claims', %s, true)"

    # The roll-up of actor-days is most of a long scan's work. Side by side:
    # built inside the scan on its one connection (as a tick after downtime
    # does; rolled back), then on two connections at once (as `perpetua monitor
    # scan` does before scanning; kept for the scan below).
    with psycopg.connect(service) as conn:
        conn.execute(set_claims, (claims_json,))
        t1 = time.perf_counter()
        conn.execute("select count(*) from monitor.scan(%s, %s, 'none')", (start, end))
        one_connection = time.perf_counter() - t1
        conn.rollback()

    async def build_on_two() -> int:
        db = Database(service, min_size=1, max_size=2)
        await db.open()
        try:
            return await build_actor_days(db, start, end, connections=2)
        finally:
            await db.close()

    t1 = time.perf_counter()
    days = asyncio.run(build_on_two())
    two_connections = time.perf_counter() - t1
    print(
        f"roll-up of {days} days and the baselines on one connection "
        f"{one_connection:.1f} s; the roll-up alone on two connections "
        f"{two_connections:.1f} s ({one_connection / two_connections:.2f}x)"
    )

    # Every detector over the whole window, as the service role with system
    # claims (the same door the job uses); the findings are counted, not raised.
    # The baselines are refreshed first (part of the time), then each detector
    # is timed on its own.
    with psycopg.connect(service) as conn:
        conn.execute(set_claims, (claims_json,))
        detectors = [r[0] for r in conn.execute("select unnest(monitor.detectors())")]
        t1 = time.perf_counter()
        conn.execute("select count(*) from monitor.scan(%s, %s, 'none')", (start, end))
        times = {"roll-up": two_connections, "baselines": time.perf_counter() - t1}
        found = 0
        for detector in detectors:
            t2 = time.perf_counter()
            row = conn.execute(
                "select count(*) from monitor.scan(%s, %s, %s)",
                (start, end, detector),
            ).fetchone()
            times[detector] = time.perf_counter() - t2
            found += int(row[0]) if row else 0
        took = two_connections + time.perf_counter() - t1
        conn.rollback()
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    print(
        f"scanned {count:,} audit events with every detector in {took:.1f} s, "
        f"the roll-up on two connections included ({found:,} findings, not raised)"
    )
    print(f"monitoring_scan_seconds: {took:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cadence", type=float, default=60.0)
    parser.add_argument(
        "--days", type=int, default=30, help="simulated days (0: only the scan)"
    )
    parser.add_argument("--scan-events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="perpetua-bench-monitoring-"))
    try:
        return _run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    settings = Settings(data_dir=data_dir)
    with open_target(settings) as target:
        owner = target.conninfo("owner")
        migrate(owner)
        recall = None
        if args.days:
            t0 = time.perf_counter()
            month = Simulation(
                owner, Vault.open(data_dir), days=args.days, seed=args.seed
            ).build()
            print(
                f"simulated {month.days} days (+ warm-up) of one practice: "
                f"{month.audit_events:,} audit events, {month.security_events:,} "
                f"security events, {len(month.scenarios)} injected scenarios "
                f"in {time.perf_counter() - t0:.1f} s"
            )

            async def run() -> tuple[list[dict[str, Any]], int, float]:
                db = Database(target.conninfo("service"), min_size=1, max_size=4)
                await db.open()
                try:
                    ticks, spent = await _replay(db, owner, month, args.cadence)
                    return await _alerts(db, month), ticks, spent
                finally:
                    await db.close()

            alerts, ticks, spent = asyncio.run(run())
            print(
                f"replayed the cadence ({args.cadence:.0f} s of simulated time): "
                f"{ticks:,} ticks with new events in {spent:.1f} s "
                f"({1000 * spent / max(ticks, 1):.1f} ms per tick)"
            )
            recall = _report(month, alerts)
        if args.scan_events:
            _scan(owner, target.conninfo("service"), args.scan_events)
    if recall is not None:
        print(f"monitoring_recall: {recall:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
