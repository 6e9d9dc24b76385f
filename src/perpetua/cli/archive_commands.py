"""`perpetua audit archive`: move audit months past seven years out of the database.

Each monthly partition older than the retention line is written, practice by
practice, to encrypted month archives that are read back and proven before the
partition is dropped (audit/archive.py). `--check FILE` proves one archive again
later. A long log shows a progress bar per month on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perpetua.audit.archive import (
    RETENTION_YEARS,
    ArchiveRefused,
    archive_partition,
    open_month_file,
    partitions_due,
)
from perpetua.audit.archive_file import MonthArchiveError
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, open_keystore
from perpetua.cli.common import add_data_dir, count_bar, owner_as_system
from perpetua.config import load_settings
from perpetua.crypto.keystore import Keystore
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput


def register(audit_sub: Any) -> None:
    archive = audit_sub.add_parser(
        "archive",
        help="move audit months older than the retention into encrypted archives",
    )
    add_data_dir(archive)
    archive.add_argument(
        "--retention-years",
        metavar="N",
        type=int,
        default=RETENTION_YEARS,
        help=f"keep this many years in the database (at least {RETENTION_YEARS})",
    )
    archive.add_argument(
        "--to",
        metavar="DIR",
        type=Path,
        help="where the month archives go (default: <data dir>/audit-archives)",
    )
    archive.add_argument(
        "--dry-run", action="store_true", help="list the months due, change nothing"
    )
    archive.add_argument(
        "--check",
        metavar="FILE",
        type=Path,
        help="decrypt one month archive and prove every event in it again",
    )
    archive.add_argument(
        "--key", metavar="VKEY", help="with --check: the verifier key you trust"
    )
    archive.add_argument(
        "--origin-host", default=DEFAULT_ORIGIN_HOST, help=argparse.SUPPRESS
    )
    archive.set_defaults(handler=run_archive)


def run_archive(args: argparse.Namespace, _extra: list[str]) -> int:
    if args.retention_years < RETENTION_YEARS:
        raise InvalidInput(f"audit events are kept at least {RETENTION_YEARS} years")
    settings = load_settings(data_dir=args.data_dir)
    keystore = open_keystore(settings.data_dir)
    if args.check is not None:
        return check_file(args.check, keystore, args.key)
    out_dir = args.to or settings.data_dir / "audit-archives"
    with open_target(settings) as target:
        return archive_database(
            target.conninfo("owner"),
            keystore,
            out_dir,
            years=args.retention_years,
            dry_run=args.dry_run,
            origin_host=args.origin_host,
        )


def archive_database(
    owner_conninfo: str,
    keystore: Keystore,
    out_dir: Path,
    *,
    years: int = RETENTION_YEARS,
    dry_run: bool = False,
    origin_host: str = DEFAULT_ORIGIN_HOST,
    now: datetime | None = None,
) -> int:
    """Archive every month due; print a line each; 0 when all went through."""
    with owner_as_system(owner_conninfo, "cli-audit-archive") as conn:
        due = partitions_due(conn, now or datetime.now(UTC), years)
        if not due:
            print(f"no audit month is older than {years} years")
            return 0
        for partition in due:
            (total,) = conn.execute(
                f"select count(*) from {partition.name}"
            ).fetchone() or (0,)
            if dry_run:
                print(f"{partition.label}: {total} events due for archiving")
                continue
            try:
                with _bar(partition.label, total) as progress:
                    files = archive_partition(
                        conn,
                        keystore,
                        partition,
                        out_dir,
                        origin_host=origin_host,
                        progress=progress,
                    )
            except ArchiveRefused as refused:
                # Later months wait: the archive always moves forward in time.
                print(f"{partition.label}: not archived: {refused}", file=sys.stderr)
                return 1
            print(
                f"{partition.label}: {total} events archived in {len(files)} "
                f"file(s) under {out_dir / partition.label}; partition dropped"
            )
    return 0


def check_file(path: Path, keystore: Keystore, trusted_key: str | None) -> int:
    """`--check`: decrypt a month archive and prove it, printing the verdict."""
    try:
        contents, digest = open_month_file(path, keystore, trusted_key=trusted_key)
    except (MonthArchiveError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    header = contents.header
    print(
        f"ok: {contents.events} events of practice {header.practice_id} from "
        f"{header.range_from} to {header.range_to}, each proven in the checkpoint "
        f"of size {contents.checkpoint.size}; file sha256 {digest.hex()}"
    )
    if trusted_key is None:
        print("the key came from the archive itself and was not pinned")
    return 0


@contextlib.contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over a month's events, on a terminal only."""
    if not sys.stderr.isatty():
        yield None
        return
    progress = count_bar()
    with progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
