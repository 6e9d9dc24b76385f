"""`perpetua audit witness`: send the newest audit checkpoints to their witnesses
now, and `perpetua audit verify --checkpoint FILE`: compare the database's log
with a checkpoint that was witnessed earlier.

`witness` does what the daily job inside `perpetua serve` does (the same claims,
so it never sends a second copy the same day) and then delivers the queued mail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, open_keystore
from perpetua.audit.witness import Witnesses, WitnessReport
from perpetua.audit.witness_check import check_witnessed, practice_of_note
from perpetua.audit.witness_store import WitnessStore, open_witness_store
from perpetua.cli.common import add_data_dir, owner_as_system, practice_arg
from perpetua.clock import Clock
from perpetua.config import Settings, load_settings
from perpetua.crypto.keystore import Keystore
from perpetua.db.pool import Database
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput
from perpetua.mail.outbox import deliver_due
from perpetua.mail.transport import transport_for

# A signed note is at most 1 MiB (checkpoint.py); anything larger is not one.
_MAX_NOTE_BYTES = 1 << 20


def register(audit_sub: Any) -> None:
    """Adds `witness` to the `perpetua audit` command group."""
    witness = audit_sub.add_parser(
        "witness",
        help="send the newest signed checkpoints to the owners (and object store)",
    )
    add_data_dir(witness)
    witness.add_argument("--practice", metavar="ID", help="only this practice")
    witness.add_argument(
        "--origin-host", default=DEFAULT_ORIGIN_HOST, help=argparse.SUPPRESS
    )
    witness.set_defaults(handler=run_witness)


def run_witness(args: argparse.Namespace, _extra: list[str]) -> int:
    practice = practice_arg(args.practice)
    settings = load_settings(data_dir=args.data_dir)
    # Refuse a misconfigured object store before any mail is queued.
    store = open_witness_store(settings)
    keystore = open_keystore(settings.data_dir)
    with open_target(settings) as target:
        report = witness_database(
            target.conninfo("service"),
            keystore,
            settings,
            practice,
            store=store,
            origin_host=args.origin_host,
        )
    print(f"audit witness: {report}")
    return 1 if report.failed or report.without_owner else 0


def witness_database(
    service_conninfo: str,
    keystore: Keystore,
    settings: Settings,
    practice: uuid.UUID | None = None,
    *,
    store: WitnessStore | None = None,
    origin_host: str = DEFAULT_ORIGIN_HOST,
    clock: Clock | None = None,
) -> WitnessReport:
    """One witnessing pass as the service role, then deliver the queued mail."""
    clock = clock or Clock()

    async def once() -> WitnessReport:
        db = Database(service_conninfo, min_size=1, max_size=1)
        await db.open()
        try:
            report = await Witnesses(
                db,
                clock,
                console_origin=settings.origin,
                keystore=keystore,
                store=store,
                origin_host=origin_host,
            ).run(practice)
            if report.emailed:
                await deliver_due(
                    db,
                    clock,
                    transport_for(settings.smtp_url, settings.data_dir),
                    keystore=keystore,
                )
            return report
        finally:
            await db.close()

    return asyncio.run(once())


def read_note(path: Path) -> str:
    """A witnessed checkpoint saved to a file (from the email, or the bucket)."""
    data = path.read_bytes()
    if len(data) > _MAX_NOTE_BYTES:
        raise InvalidInput(f"{path} is too large to be a signed checkpoint")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    # Mail clients and editors add carriage returns and drop the final newline;
    # neither is part of what was signed.
    text = text.replace("\r\n", "\n").strip("\n") + "\n"
    return text


def verify_witnessed(
    owner_conninfo: str,
    keystore: Keystore,
    note: str,
    practice: uuid.UUID | None = None,
    *,
    trusted_key: str | None = None,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> int:
    """`verify --checkpoint`: compare the stored log with a witnessed checkpoint;
    prints the verdict and returns 0 when they agree."""
    practice = practice or practice_of_note(note)
    if practice is None:
        raise InvalidInput("the checkpoint names no practice: pass --practice")
    with owner_as_system(owner_conninfo, "cli-audit-verify") as conn:
        result = check_witnessed(
            conn,
            keystore,
            practice,
            note,
            trusted_key=trusted_key,
            origin_host=origin_host,
        )
    if result.ok:
        print(f"practice {result.practice_id}: {result.message}")
        return 0
    print(
        f"practice {result.practice_id}: witnessed checkpoint FAILED "
        f"({result.code}): {result.message}",
        file=sys.stderr,
    )
    return 1
