"""`perpetua simulate`: write a realistic month of a synthetic practice, with
labelled misuse injected, into this installation's database, for trying the
monitoring detectors out (`perpetua monitor scan` over the printed window) or
measuring them (`bench/monitoring.py` does both in a scratch database).

An operator tool: it writes through the owner connection into new practices of its
own (named "Simulated Practice"); all names, numbers and addresses are invented.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from perpetua.cli.common import add_data_dir
from perpetua.config import load_settings
from perpetua.db.migrations import migrate
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput
from perpetua.monitoring.simulation import Simulation
from perpetua.records.vault import Vault


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="write a synthetic month of practice activity with labelled misuse",
    )
    add_data_dir(parser)
    parser.add_argument("--days", type=int, default=30, help="days in the month")
    parser.add_argument(
        "--warmup-days", type=int, default=14, help="days of ordinary history before"
    )
    parser.add_argument("--patients", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--json", action="store_true", help="print the labelled scenarios as JSON"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    if not 3 <= args.days <= 120 or not 0 <= args.warmup_days <= 60:
        raise InvalidInput("days must be 3-120 and warm-up days 0-60")
    if not 50 <= args.patients <= 100_000:
        raise InvalidInput("patients must be 50-100000")
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        migrate(target.conninfo("owner"))
        month = Simulation(
            target.conninfo("owner"),
            Vault.open(settings.data_dir),
            days=args.days,
            warmup_days=args.warmup_days,
            patients=args.patients,
            seed=args.seed,
        ).build()
    scenarios = [
        {
            "kind": s.kind,
            "expected": list(s.expected),
            "start": s.start.isoformat(),
            "end": s.end.isoformat(),
            "actors": sorted(str(a) for a in s.actors),
            "event_ids": sorted(str(e) for e in s.event_ids),
        }
        for s in month.scenarios
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "practice_id": str(month.practice_id),
                    "start": month.start.isoformat(),
                    "end": month.end.isoformat(),
                    "scenarios": scenarios,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"Simulated practice {month.practice_id}: {month.audit_events} audit events "
        f"and {month.security_events} security events from "
        f"{month.warmup_from:%Y-%m-%d} to {month.end:%Y-%m-%d}."
    )
    print(
        f"Injected {len(scenarios)} labelled scenarios in the last {month.days} days:"
    )
    for s in month.scenarios:
        print(f"  {s.start:%Y-%m-%d %H:%M} {s.kind:<22} -> {', '.join(s.expected)}")
    print(
        "Run the detectors over it: perpetua monitor scan "
        f"--since {month.warmup_from:%Y-%m-%d} --until {month.end:%Y-%m-%d}"
    )
    return 0
