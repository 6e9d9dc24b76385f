"""`perpetua backup create | list | verify | restore`.

Every byte of the dump travels through pipes and is encrypted before it is
stored (see `perpetua.backup`). `restore` refuses a database that is not
empty; with the embedded cluster it creates the database it is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from perpetua.backup import (
    create_backup,
    list_backups,
    restore_backup,
    verify_backup,
)
from perpetua.backup.service import read_manifest
from perpetua.blobs import open_objects
from perpetua.cli.common import add_data_dir
from perpetua.config import Settings, load_settings
from perpetua.db.embedded import ADMIN_ROLE
from perpetua.db.target import (
    DatabaseTarget,
    ensure_database,
    open_target,
    require_verified_tls,
)
from perpetua.errors import InvalidInput
from perpetua.records.vault import Vault


def register(sub: Any) -> None:
    backup = sub.add_parser("backup", help="encrypted database backups")
    backup_sub = backup.add_subparsers(
        dest="backup_command", required=True, metavar="COMMAND"
    )

    create = backup_sub.add_parser("create", help="stream an encrypted pg_dump")
    add_data_dir(create)
    create.set_defaults(handler=run_create)

    listing = backup_sub.add_parser("list", help="complete backups, oldest first")
    add_data_dir(listing)
    listing.set_defaults(handler=run_list)

    verify = backup_sub.add_parser(
        "verify", help="authenticate and checksum a backup without restoring it"
    )
    add_data_dir(verify)
    verify.add_argument("backup_id", metavar="BACKUP_ID")
    verify.set_defaults(handler=run_verify)

    restore = backup_sub.add_parser(
        "restore", help="restore a backup into an empty database"
    )
    add_data_dir(restore)
    restore.add_argument("backup_id", metavar="BACKUP_ID")
    into = restore.add_mutually_exclusive_group(required=True)
    into.add_argument(
        "--database",
        metavar="NAME",
        help="embedded cluster: a database name (created if missing, must be empty)",
    )
    into.add_argument(
        "--target-url",
        metavar="URL",
        help="external server: libpq URL of an existing empty database",
    )
    restore.set_defaults(handler=run_restore)


@contextmanager
def _bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        disable=not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def dump_conninfo(target: DatabaseTarget) -> dict[str, str]:
    """Who dumps: the embedded cluster's superuser, which sees past row-level
    security (forced on every PHI table, so even the owner would see nothing);
    with DATABASE_URL, that role, which then needs BYPASSRLS."""
    if target.embedded is None:
        return dict(target.owner)
    return {
        **target.owner,
        "user": ADMIN_ROLE,
        "password": target.embedded.admin_password(),
    }


def run_create(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    keystore = Vault.open(settings.data_dir).keystore
    objects = open_objects(settings, "backups")
    with open_target(settings) as target, _bar("backup", None) as progress:
        manifest = create_backup(
            objects,
            keystore,
            dump_conninfo(target),
            embedded=target.embedded is not None,
            progress=progress,
        )
    print(
        f"backup {manifest.backup_id}: {manifest.plaintext_size} bytes dumped, "
        f"{manifest.stored_size} stored encrypted in {objects.description} "
        f"(backups key version {manifest.key_version})"
    )
    return 0


def run_list(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    for manifest in list_backups(open_objects(settings, "backups")):
        print(
            f"{manifest.backup_id}  {manifest.created_at}  "
            f"{manifest.stored_size:>12} bytes  PostgreSQL {manifest.server_version}"
        )
    return 0


def run_verify(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    objects = open_objects(settings, "backups")
    keystore = Vault.open(settings.data_dir).keystore

    total = read_manifest(objects, args.backup_id).stored_size
    with _bar("verify", total) as progress:
        manifest = verify_backup(objects, keystore, args.backup_id, progress=progress)
    print(
        f"backup {manifest.backup_id} is intact: every segment authenticated, "
        f"SHA-256 of {manifest.stored_size} stored and {manifest.plaintext_size} "
        "plaintext bytes match the manifest"
    )
    return 0


def _restore_conninfo(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, str]:
    if args.target_url:
        info = {k: str(v) for k, v in conninfo_to_dict(args.target_url).items()}
        require_verified_tls(info, "--target-url")
        return info
    if target.embedded is None:
        raise InvalidInput("--database works only with the embedded cluster")
    admin = dump_conninfo(target)
    with (
        psycopg.connect(make_conninfo(**{**admin, "dbname": "postgres"}),
                        autocommit=True) as conn,
        conn.cursor() as cur,
    ):  # fmt: skip
        ensure_database(cur, args.database)
    return {**admin, "dbname": args.database}


def run_restore(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    objects = open_objects(settings, "backups")
    keystore = Vault.open(settings.data_dir).keystore

    total = read_manifest(objects, args.backup_id).stored_size
    with open_target(settings) as target:
        conninfo = _restore_conninfo(settings, target, args)
        with _bar("restore", total) as progress:
            manifest = restore_backup(
                objects,
                keystore,
                args.backup_id,
                conninfo,
                embedded=target.embedded is not None and not args.target_url,
                progress=progress,
            )
    print(f"restored backup {manifest.backup_id} into {conninfo.get('dbname')}")
    return 0
