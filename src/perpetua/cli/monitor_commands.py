"""`perpetua monitor ...`: run the detectors as a separate worker, once, or
over a past window; list alerts; set thresholds; tag a member's phone and address
for the shared-identity detector.

In the embedded default the detectors already run inside `perpetua serve` (job
`monitor.detect`); `monitor run` is for production deployments that keep the web
service and the workers apart. Two runners never overlap: a run that finds another
in progress returns at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from perpetua.access.claims import system_claims
from perpetua.cli.common import add_data_dir, count_bar
from perpetua.clock import Clock
from perpetua.config import load_settings
from perpetua.db.pool import Database
from perpetua.db.target import check_service_role, open_target
from perpetua.errors import InvalidInput
from perpetua.monitoring import thresholds
from perpetua.monitoring.alerts import NewAlert, raise_alert_in
from perpetua.monitoring.runner import (
    DEFAULT_EVERY_SECONDS,
    SHORT_WINDOW,
    build_actor_days,
    run_tick,
)
from perpetua.monitoring.tags import identity_tags, replace_member_tags
from perpetua.observability.logging import configure_logging, get_logger
from perpetua.records.vault import Vault

log = get_logger("perpetua.monitor")
T = TypeVar("T")


def register(sub: Any) -> None:
    monitor = sub.add_parser("monitor", help="monitoring detectors and alerts")
    monitor_sub = monitor.add_subparsers(
        dest="monitor_command", required=True, metavar="COMMAND"
    )

    run = monitor_sub.add_parser("run", help="run the detectors every N seconds")
    add_data_dir(run)
    run.add_argument("--every", type=float, default=DEFAULT_EVERY_SECONDS)
    run.set_defaults(handler=run_worker)

    tick = monitor_sub.add_parser("tick", help="run the detectors once, now")
    add_data_dir(tick)
    tick.set_defaults(handler=run_once)

    scan = monitor_sub.add_parser(
        "scan",
        help="run every detector over a past window and raise what it finds "
        "(after downtime)",
    )
    add_data_dir(scan)
    scan.add_argument("--since", required=True, metavar="ISO8601")
    scan.add_argument("--until", metavar="ISO8601", help="default: now")
    scan.set_defaults(handler=run_scan)

    alerts = monitor_sub.add_parser("alerts", help="list alerts (no PHI)")
    add_data_dir(alerts)
    alerts.add_argument("--practice", metavar="ID")
    alerts.add_argument("--status", default="open")
    alerts.set_defaults(handler=run_alerts)

    limits = monitor_sub.add_parser(
        "thresholds", help="show or set a practice's detector thresholds"
    )
    add_data_dir(limits)
    limits.add_argument("--practice", metavar="ID", required=True)
    limits.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override a threshold (VALUE 'default' removes the override)",
    )
    limits.set_defaults(handler=run_thresholds)

    member = monitor_sub.add_parser(
        "member-identity",
        help="tag a member's phone and home address (asked on the terminal, "
        "stored only as blind-index tags)",
    )
    add_data_dir(member)
    member.add_argument("--practice", metavar="ID", required=True)
    member.add_argument("--user", metavar="ID", required=True)
    member.set_defaults(handler=run_member_identity)


def _uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput(f"{what} must be a UUID") from None


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("times must be ISO 8601") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _with_db(args: argparse.Namespace, work: Callable[[Database], Awaitable[T]]) -> T:
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        check_service_role(target)

        async def main() -> T:
            db = Database(target.conninfo("service"), min_size=1, max_size=2)
            await db.open()
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(main())


def run_worker(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    configure_logging(settings.log_format)
    indexer = Vault.open(settings.data_dir).index

    async def loop(db: Database) -> int:
        while True:
            started = time.monotonic()
            try:
                report = await run_tick(db, Clock(), indexer=indexer)
                log.info("monitor_tick", result=str(report))
            except Exception as exc:
                # Keep running: the next tick scans from the same high-water mark.
                log.error("monitor_tick_failed", error_type=type(exc).__name__)
            await asyncio.sleep(max(0.0, args.every - (time.monotonic() - started)))

    return _with_db(args, loop)


def run_once(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    indexer = Vault.open(settings.data_dir).index
    report = _with_db(args, lambda db: run_tick(db, Clock(), indexer=indexer))
    print(f"{report.findings} finding(s), {len(report.raised)} new alert(s)")
    return 0


def run_scan(args: argparse.Namespace, _extra: list[str]) -> int:
    since = _instant(args.since)
    until = _instant(args.until) if args.until else Clock().now()
    if since >= until:
        raise InvalidInput("--since must be before --until")

    async def scan(db: Database) -> tuple[int, int]:
        if until - since > SHORT_WINDOW:
            # The roll-up of the window's days first, on two connections, with a
            # bar: on a long backfill it is most of the work.
            with count_bar() as bar:
                task = bar.add_task("Summing actor-days", total=None)
                await build_actor_days(
                    db,
                    since,
                    until,
                    connections=2,
                    progress=lambda done, total: bar.update(
                        task, completed=done, total=total
                    ),
                )
        now = Clock().now()
        async with db.transaction(system_claims("monitor-scan")) as conn:
            cur = await conn.execute(
                "select * from monitor.scan(%s, %s)", (since, until)
            )
            findings = [NewAlert.from_finding(r) for r in await cur.fetchall()]
            raised = 0
            for finding in findings:
                raised += await raise_alert_in(conn, finding, now) is not None
        return len(findings), raised

    found, raised = _with_db(args, scan)
    print(f"{found} finding(s), {raised} new alert(s)")
    return 0


def run_alerts(args: argparse.Namespace, _extra: list[str]) -> int:
    practice = _uuid(args.practice, "practice id") if args.practice else None

    async def listing(db: Database) -> list[dict[str, Any]]:
        async with db.transaction(system_claims("monitor-alerts")) as conn:
            cur = await conn.execute(
                "select id, practice_id, detector, severity, status, detected_at, "
                "cardinality(event_ids) as events, summary from monitor.alerts "
                "where status = %s and (%s::uuid is null or practice_id = %s) "
                "order by detected_at desc limit 500",
                (args.status, practice, practice),
            )
            return list(await cur.fetchall())

    rows = _with_db(args, listing)
    for r in rows:
        print(
            f"{r['detected_at']:%Y-%m-%d %H:%M} {r['severity']:<8} "
            f"{r['detector']:<20} {r['practice_id']} {r['id']}  {r['summary']}"
        )
    if not rows:
        print(f"no {args.status} alerts")
    return 0


def run_thresholds(args: argparse.Namespace, _extra: list[str]) -> int:
    practice = _uuid(args.practice, "practice id")
    changes: list[tuple[str, Any]] = []
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep:
            raise InvalidInput("use --set NAME=VALUE")
        value = None if text == "default" else thresholds.parse_value(text)
        changes.append((name.strip(), value))

    async def apply(db: Database) -> list[thresholds.Threshold]:
        claims = system_claims("monitor-thresholds")
        async with db.transaction(claims) as conn:
            for name, value in changes:
                await thresholds.set_threshold(conn, practice, name, value)
            return await thresholds.effective(conn, practice)

    for t in _with_db(args, apply):
        mark = "" if t.value == t.default else f"  (default {t.default})"
        print(f"{t.name:<28} {t.value:>8}{mark}  {t.meaning}")
    return 0


def run_member_identity(args: argparse.Namespace, _extra: list[str]) -> int:
    practice = _uuid(args.practice, "practice id")
    user = _uuid(args.user, "user id")
    settings = load_settings(data_dir=args.data_dir)
    indexer = Vault.open(settings.data_dir).index
    # Asked on the terminal, not taken as arguments: arguments end up in shell
    # history and process listings.
    phone = input("Member's phone (empty to skip): ").strip() or None
    address = input("Member's home address line (empty to skip): ").strip() or None
    tags = identity_tags(indexer, practice, phone=phone, address=address)
    kinds = [k for k, v in (("phone", phone), ("address", address)) if v]
    if len(tags) != len(kinds):
        raise InvalidInput("the phone number or address could not be read")

    async def store(db: Database) -> None:
        async with db.transaction(system_claims("monitor-member-identity")) as conn:
            cur = await conn.execute(
                "select monitor.is_member(%s, %s) as member", (practice, user)
            )
            row = await cur.fetchone()
            if not row or not row["member"]:
                raise InvalidInput("no such member in that practice")
            await replace_member_tags(conn, practice, user, tags, kinds)

    _with_db(args, store)
    print(f"stored {len(tags)} tag(s) for member {user}")
    return 0
