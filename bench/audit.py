"""Throughput of the audit log against the real database, side by side in one run.

Measures, on one embedded PostgreSQL started for the run:

- audited reads: ``phi_api.read_patients`` called as the service role with a
  front-desk user's claims, one transaction per read, one connection; each read
  commits its audit event (the patient id is synthetic, so no PHI row is read
  and the time is the claims, the permission check and the audit insert);
- sealing: ``Sealer.run`` over a backlog of ``--events`` committed events of one
  practice (the events are bulk-inserted by the superuser beforehand, shaped
  like real ones), as the background job does it, as the service role; and, for
  comparison, the same number of events of a second practice sealed under the
  previous event version (2, a JSON line per leaf) instead of version 3;
- verification: ``verify_practice`` over each practice's whole log, as
  ``perpetua audit verify`` runs it (owner role, one repeatable-read snapshot),
  on one connection and on the CLI's default number, version 2 and version 3
  alternating so that both see the same load;
- inclusion proof sizes for logs of 10**3..10**7 events: generated from the
  sealed leaf hashes where the log is that large, computed from the tree shape
  (no hashing) beyond it; the output says which.

Run: ``python bench/audit.py [--events N] [--reads N]``. The last line is
``audit_verify_events_per_s: X``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from perpetua.access.claims import Claims, system_claims
from perpetua.audit.db_verify import verify_practice
from perpetua.audit.merkle import (
    inclusion_proof_from_leaves,
    inclusion_proof_size,
)
from perpetua.audit.sealing import Sealer, open_keystore
from perpetua.cli.audit_commands import VERIFY_CONNECTIONS
from perpetua.config import Settings
from perpetua.db.embedded import ADMIN_ROLE
from perpetua.db.migrations import migrate
from perpetua.db.pool import Database
from perpetua.db.target import DATABASE_NAME, DatabaseTarget, open_target

READS_PRACTICE = uuid.UUID("0b6a1a5e-0000-4000-8000-00000000be01")
LOG_PRACTICE = uuid.UUID("0b6a1a5e-0000-4000-8000-00000000be02")
V2_PRACTICE = uuid.UUID("0b6a1a5e-0000-4000-8000-00000000be04")
FRONT_DESK = uuid.UUID("0b6a1a5e-0000-4000-8000-00000000be03")


def admin_conninfo(target: DatabaseTarget) -> str:
    assert target.embedded is not None
    info = target.embedded.conninfo(
        ADMIN_ROLE, target.embedded.admin_password(), DATABASE_NAME
    )
    return " ".join(f"{k}={v}" for k, v in info.items())


def bench_reads(target: DatabaseTarget, reads: int) -> float:
    """Audited reads per second, each its own transaction."""
    claims = Claims(
        actor_kind="user",
        actor_id=FRONT_DESK,
        request_id="bench-read",
        practice_id=READS_PRACTICE,
        practice_role="front_desk",
        purpose_of_use="TREAT",
        client_ip="203.0.113.9",
        user_agent="bench/audit",
    )
    payload = json.dumps(claims.as_json())
    patient = [uuid.uuid4()]
    with psycopg.connect(target.conninfo("service")) as conn:
        started = time.perf_counter()
        for _ in range(reads):
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)", (payload,)
            )
            conn.execute("select * from phi_api.read_patients(%s)", (patient,))
            conn.commit()
        elapsed = time.perf_counter() - started
    with psycopg.connect(admin_conninfo(target)) as conn:
        row = conn.execute(
            "select count(*) from audit.events where practice_id = %s",
            (READS_PRACTICE,),
        ).fetchone()
    assert row is not None
    assert row[0] == reads, "every read must leave its event"
    return reads / elapsed


def insert_backlog(
    target: DatabaseTarget, count: int, practice: uuid.UUID = LOG_PRACTICE
) -> None:
    """``count`` committed, unsealed events of one practice, as reads leave them."""
    with psycopg.connect(admin_conninfo(target)) as conn:
        conn.execute(
            """
            insert into audit.events (
              practice_id, occurred_at, actor_kind, actor_id, actor_role, action,
              resource_type, resource_ids, patient_ids, purpose_of_use, reason,
              client_ip, user_agent, request_id, outcome, row_count
            )
            select
              %(practice)s,
              now() - interval '1 hour' + g * interval '20 microseconds',
              'user',
              %(actor)s,
              (array['front_desk', 'provider', 'billing', 'manager'])[1 + g %% 4],
              (array['view', 'search', 'update', 'export'])[1 + g %% 4],
              (array['patient', 'appointment', 'coverage', 'call'])[1 + g %% 4],
              array[gen_random_uuid()],
              array[gen_random_uuid()],
              'TREAT',
              case when g %% 50 = 0 then 'Checking the referral "as asked"' end,
              ('10.0.' || (g %% 250) || '.' || (g %% 199))::inet,
              'Mozilla/5.0 (X11; Linux x86_64) Perpetua console',
              md5(g::text),
              'success',
              1
            from generate_series(1, %(count)s) g
            """,
            {"practice": practice, "actor": FRONT_DESK, "count": count},
        )
        conn.execute("analyze audit.events")


def bench_sealing(
    target: DatabaseTarget, keystore_dir: Path, encoding: int = 3
) -> tuple[int, float]:
    """Version 3: every pending event, as the job does. Version 2: only the
    comparison practice's backlog."""

    async def once() -> int:
        db = Database(target.conninfo("service"), min_size=1, max_size=1)
        await db.open()
        try:
            keystore = open_keystore(keystore_dir)
            sealer = Sealer(db, keystore=keystore, encoding=encoding)
            if encoding == 2:
                return await sealer.seal_practice(V2_PRACTICE)
            return await sealer.run()
        finally:
            await db.close()

    started = time.perf_counter()
    sealed = asyncio.run(once())
    return sealed, sealed / (time.perf_counter() - started)


def owner_as_system(target: DatabaseTarget) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(target.conninfo("owner"), autocommit=True)
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (json.dumps(system_claims("bench-audit").as_json()),),
    )
    return conn


def bench_verify(
    target: DatabaseTarget,
    keystore_dir: Path,
    connections: int,
    practice: uuid.UUID = LOG_PRACTICE,
) -> tuple[int, float]:
    keystore = open_keystore(keystore_dir)
    with contextlib.ExitStack() as stack:
        conn, *readers = [
            stack.enter_context(owner_as_system(target)) for _ in range(connections)
        ]
        conn.execute("analyze audit.sealed")
        started = time.perf_counter()
        report = verify_practice(conn, keystore, practice, readers=readers)
        elapsed = time.perf_counter() - started
    assert report.ok, report.message
    return report.sealed_count, report.sealed_count / elapsed


def proof_sizes(target: DatabaseTarget, sealed: int) -> list[str]:
    with owner_as_system(target) as conn:
        leaves = [
            bytes(row[0])
            for row in conn.execute(
                "select leaf_hash from audit.sealed where practice_id = %s "
                "order by leaf_index",
                (LOG_PRACTICE,),
            )
        ]
    lines = []
    for exponent in range(3, 8):
        size = 10**exponent
        picks = (0, size // 2, size - 1)
        if size <= sealed:
            tree = leaves[:size]
            counts = [len(inclusion_proof_from_leaves(i, tree)) for i in picks]
            how = "generated from sealed leaves"
        else:
            counts = [inclusion_proof_size(i, size) for i in picks]
            how = "computed from the tree shape"
        lines.append(
            f"  10^{exponent}: first/middle/last event {counts[0]}/{counts[1]}/"
            f"{counts[2]} hashes, at most {max(counts) * 32} bytes ({how})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--reads", type=int, default=3_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="perpetua-bench-audit-"))
    try:
        settings = Settings(data_dir=work / "data")
        with open_target(settings) as target:
            migrate(target.conninfo("owner"))
            reads_per_s = bench_reads(target, args.reads)
            keys = work / "keys"
            insert_backlog(target, args.events, V2_PRACTICE)
            _, seal_v2_per_s = bench_sealing(target, keys, encoding=2)
            insert_backlog(target, args.events)
            sealed, seal_per_s = bench_sealing(target, keys)

            # One connection, then as `perpetua audit verify` runs by default;
            # the previous version just before each, under the same load.
            _, verify_one_v2_per_s = bench_verify(target, keys, 1, V2_PRACTICE)
            _, verify_one_per_s = bench_verify(target, keys, 1)
            _, verify_v2_per_s = bench_verify(
                target, keys, VERIFY_CONNECTIONS, V2_PRACTICE
            )
            verified, verify_per_s = bench_verify(target, keys, VERIFY_CONNECTIONS)
            sizes = proof_sizes(target, sealed)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cli = f"{VERIFY_CONNECTIONS} connections, as the CLI"
    print(f"audited reads   {args.reads:>9} events  {reads_per_s:>9,.0f} events/s")
    print(f"sealing         {sealed:>9} events  {seal_per_s:>9,.0f} events/s")
    print(
        f"verification    {verified:>9} events  {verify_one_per_s:>9,.0f} events/s"
        "  (1 connection)"
    )
    print(
        f"verification    {verified:>9} events  {verify_per_s:>9,.0f} events/s  ({cli})"
    )
    print("previous event version (2), same run, same shape of events:")
    print(
        f"  sealing       {args.events:>9} events  {seal_v2_per_s:>9,.0f} events/s"
        f"  (version 3: {seal_per_s / seal_v2_per_s:.2f}x)"
    )
    print(
        f"  verification  {args.events:>9} events  {verify_one_v2_per_s:>9,.0f} "
        f"events/s  (1 connection; version 3: "
        f"{verify_one_per_s / verify_one_v2_per_s:.2f}x)"
    )
    print(
        f"  verification  {args.events:>9} events  {verify_v2_per_s:>9,.0f} "
        f"events/s  ({cli}; version 3: {verify_per_s / verify_v2_per_s:.2f}x)"
    )
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("inclusion proof sizes:")
    for line in sizes:
        print(line)
    print(f"audit_seal_events_per_s: {seal_per_s:.0f}")
    print(f"audit_verify_events_per_s: {verify_per_s:.0f}")


if __name__ == "__main__":
    main()
