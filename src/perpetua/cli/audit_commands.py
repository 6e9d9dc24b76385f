"""`perpetua audit ...`: seal the audit log now, and verify it or an archive.

`verify` is the operator's and the auditor's check that nobody with database access
rewrote, dropped or slipped in an audit event: it exits non-zero and names the first
diverging index when the database disagrees with the signed checkpoints.
`verify --archive` checks an exported archive with no database at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress

from perpetua.audit.db_verify import (
    DbVerification,
    practices_to_verify,
    verify_practice,
)
from perpetua.audit.offline_verify import verify_archive
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, Sealer, open_keystore
from perpetua.cli import archive_commands, witness_commands
from perpetua.cli.common import (
    add_data_dir,
    count_bar,
    owner_as_system,
    practice_arg,
)
from perpetua.cli.witness_commands import read_note, verify_witnessed
from perpetua.config import load_settings
from perpetua.crypto.keystore import Keystore
from perpetua.db.pool import Database
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput

# Below this many events a progress bar would only flicker.
_PROGRESS_FROM = 50_000

# Database connections rendering the log at once during `audit verify`: each is
# one PostgreSQL process, so two keep a two-core database busy while this
# process hashes; a larger database server can be given more.
VERIFY_CONNECTIONS = 2


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="seal and verify the tamper-evident audit log")
    audit_sub = audit.add_subparsers(
        dest="audit_command", required=True, metavar="COMMAND"
    )

    verify = audit_sub.add_parser(
        "verify",
        help="recompute every practice's log and check its signed checkpoints",
    )
    add_data_dir(verify)
    verify.add_argument("--practice", metavar="ID", help="only this practice")
    verify.add_argument(
        "--archive",
        metavar="FILE",
        type=Path,
        help="verify an exported archive instead (no database, no secrets)",
    )
    verify.add_argument(
        "--key",
        metavar="VKEY",
        help="with --archive or --checkpoint: the verifier key you trust, from "
        "outside the archive",
    )
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        type=Path,
        help="a witnessed checkpoint (from the daily email or the witness bucket): "
        "the archive, or the database's log, must agree with it",
    )
    verify.add_argument(
        "--connections",
        metavar="N",
        type=int,
        default=VERIFY_CONNECTIONS,
        help=f"database connections reading at once (default {VERIFY_CONNECTIONS})",
    )
    verify.add_argument(
        "--origin-host", default=DEFAULT_ORIGIN_HOST, help=argparse.SUPPRESS
    )
    verify.set_defaults(handler=run_verify)

    seal = audit_sub.add_parser("seal", help="seal pending audit events now")
    add_data_dir(seal)
    seal.add_argument(
        "--origin-host", default=DEFAULT_ORIGIN_HOST, help=argparse.SUPPRESS
    )
    seal.set_defaults(handler=run_seal)

    witness_commands.register(audit_sub)
    archive_commands.register(audit_sub)


def run_verify(args: argparse.Namespace, _extra: list[str]) -> int:
    note = None if args.checkpoint is None else read_note(args.checkpoint)
    if args.archive is not None:
        return verify_archive_file(
            args.archive, args.key, () if note is None else [note]
        )
    practice = practice_arg(args.practice)
    if note is not None:
        settings = load_settings(data_dir=args.data_dir)
        with open_target(settings) as target:
            return verify_witnessed(
                target.conninfo("owner"),
                open_keystore(settings.data_dir),
                note,
                practice,
                trusted_key=args.key,
                origin_host=args.origin_host,
            )
    if not 1 <= args.connections <= 32:
        raise InvalidInput("--connections must be between 1 and 32")
    settings = load_settings(data_dir=args.data_dir)
    keystore = open_keystore(settings.data_dir)
    with open_target(settings) as target:
        return verify_database(
            target.conninfo("owner"),
            keystore,
            practice,
            origin_host=args.origin_host,
            connections=args.connections,
        )


def run_seal(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    keystore = open_keystore(settings.data_dir)
    with open_target(settings) as target:
        sealed = seal_database(
            target.conninfo("service"), keystore, origin_host=args.origin_host
        )
    print(f"sealed {sealed} audit events")
    return 0


def seal_database(
    service_conninfo: str,
    keystore: Keystore,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> int:
    """One sealing pass as the service role, as the background job does it."""

    async def once() -> int:
        db = Database(service_conninfo, min_size=1, max_size=1)
        await db.open()
        try:
            return await Sealer(db, keystore=keystore, origin_host=origin_host).run()
        finally:
            await db.close()

    return asyncio.run(once())


def verify_database(
    owner_conninfo: str,
    keystore: Keystore,
    practice: uuid.UUID | None = None,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
    connections: int = VERIFY_CONNECTIONS,
) -> int:
    """Verify one or every practice's log; print a line each; 0 if all verify."""
    with contextlib.ExitStack() as stack:
        conn, *readers = [
            stack.enter_context(owner_as_system(owner_conninfo, "cli-audit-verify"))
            for _ in range(connections)
        ]
        practices = [practice] if practice else practices_to_verify(conn)
        failed = 0
        for one in practices:
            with _progress_bar(str(one)) as progress:
                report = verify_practice(
                    conn,
                    keystore,
                    one,
                    origin_host=origin_host,
                    progress=progress,
                    readers=readers,
                )
            _print_report(report)
            failed += not report.ok
    if not practices:
        print("no audit events yet")
    return 1 if failed else 0


def _print_report(report: DbVerification) -> None:
    if report.ok:
        print(f"practice {report.practice_id}: ok, {report.message}")
        return
    print(
        f"practice {report.practice_id}: FAILED ({report.code}) at index "
        f"{report.first_bad_index}: {report.message}",
        file=sys.stderr,
    )


class _Bar:
    """Starts a rich progress bar only once a log turns out to be large."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.progress: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            if total < _PROGRESS_FROM or not sys.stderr.isatty():
                return
            self.progress = count_bar()
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    bar = _Bar(label)
    try:
        yield bar
    finally:
        bar.stop()


def verify_archive_file(
    path: Path, trusted_key: str | None, trusted_checkpoints: Sequence[str] = ()
) -> int:
    """`--archive`: the offline verifier, with its verdict printed."""
    report = verify_archive(
        path, trusted_key=trusted_key, trusted_checkpoints=trusted_checkpoints
    )
    if report.ok:
        pinned = "" if report.key_pinned else " (key not pinned: pass --key)"
        print(
            f"archive ok: {report.sealed_count} events proven, "
            f"{report.unsealed_count} unsealed, "
            f"{report.checkpoint_count} checkpoints{pinned}"
        )
        return 0
    print(
        f"archive FAILED ({report.code}) at index {report.first_bad_index}: "
        f"{report.message}",
        file=sys.stderr,
    )
    return 1
