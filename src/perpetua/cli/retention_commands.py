"""`perpetua retention sweep`: run the retention sweep now, with progress.

The same sweep the service runs every hour (`calls.retention_sweep`): recordings
and transcripts past the practice's retention are crypto-shredded, calls on legal
hold are kept, month keys whose objects all expired are destroyed, and each
destruction leaves a deletion certificate. The audit log is never touched.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from perpetua.blobs import BlobStore
from perpetua.calls.retention import SweepReport, sweep
from perpetua.cli.common import add_data_dir, count_bar
from perpetua.clock import Clock
from perpetua.config import Settings, load_settings
from perpetua.db.pool import Database
from perpetua.db.target import open_target
from perpetua.records.vault import Vault


def register(sub: Any) -> None:
    retention = sub.add_parser(
        "retention", help="apply the practices' retention choices to call data"
    )
    retention_sub = retention.add_subparsers(
        dest="retention_command", required=True, metavar="COMMAND"
    )
    run = retention_sub.add_parser(
        "sweep", help="crypto-shred expired recordings and transcripts now"
    )
    add_data_dir(run)
    run.set_defaults(handler=run_sweep)


async def sweep_now(settings: Settings, conninfo: str) -> SweepReport:
    db = Database(conninfo, min_size=1, max_size=2)
    await db.open()
    try:
        keystore = Vault.open(settings.data_dir).keystore
        store = BlobStore.open(settings, keystore, db)
        with count_bar() as bar:
            task = bar.add_task("Sweeping practices", total=None)
            return await sweep(
                db,
                store,
                Clock(),
                progress=lambda done, total: bar.update(
                    task, completed=done, total=total
                ),
            )
    finally:
        await db.close()


def run_sweep(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        report = asyncio.run(sweep_now(settings, target.conninfo("service")))
    print(f"retention sweep: {report}")
    return 0
