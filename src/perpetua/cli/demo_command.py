"""`perpetua demo`: create (once) a synthetic practice for trying Perpetua out."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

import psycopg
from rich.progress import Progress

from perpetua.access.claims import SYSTEM_ACTOR, Claims
from perpetua.cli.common import add_data_dir
from perpetua.config import load_settings
from perpetua.db.migrations import migrate
from perpetua.db.pool import Database
from perpetua.db.target import check_service_role, open_target


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="create a synthetic demo practice and print its sign-in details",
    )
    add_data_dir(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print sign-in details and five sample patients as JSON",
    )
    parser.set_defaults(handler=run)


async def record_baa(owner_conninfo: str, practice_id: uuid.UUID) -> None:
    """Record an executed BAA for the synthetic practice, as the operator."""
    claims = Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id="demo-baa",
        practice_id=practice_id,
    )
    async with await psycopg.AsyncConnection.connect(owner_conninfo) as conn:
        await conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps(claims.as_json()),),
        )
        await conn.execute(
            "insert into app.baa_executions (practice_id, version, document_sha256) "
            "values (%s, 'demo', %s)",
            (practice_id, "0" * 64),
        )


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    from perpetua.access.permissions import load_permissions
    from perpetua.records.demo import PATIENTS, seed_demo
    from perpetua.records.gate import RecordsGate
    from perpetua.records.service import Records
    from perpetua.records.vault import Vault

    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        migrate(target.conninfo("owner"))
        check_service_role(target)

        async def main() -> Any:
            db = Database(target.conninfo("service"), min_size=1, max_size=4)
            await db.open()
            try:
                records = Records(
                    RecordsGate(db, await load_permissions(db)),
                    Vault.open(settings.data_dir),
                )
                with Progress(
                    transient=True, disable=args.json or not sys.stderr.isatty()
                ) as bar:
                    task = bar.add_task("Creating demo practice", total=PATIENTS * 2)
                    return await seed_demo(
                        db,
                        records,
                        lambda practice: record_baa(target.conninfo("owner"), practice),
                        progress=lambda done, total: bar.update(
                            task, completed=done, total=total
                        ),
                    )
            finally:
                await db.close()

        result = asyncio.run(main())

    if args.json:
        print(result.as_json())
        return 0
    state = "created" if result.created else "already present; passwords reset"
    print(f"Demo practice {result.practice_id} ({state}). Sign in with:")
    for member in result.members:
        print(f"  {member['role']:<11} {member['email']:<36} {member['password']}")
    print("Sample patients (synthetic):")
    for sample in result.samples:
        print(f"  {sample['name']:<28} {sample['phone']:<18} {sample['member_id']}")
    return 0
