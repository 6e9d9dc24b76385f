"""`perpetua keys list | rotate | rewrap`: the operator's view of the keystore.

`rotate` adds a class key version (new writes use it, old data still
decrypts); `rewrap` then re-encrypts every stored object's data key under the
newest version of its bucket, without touching the blobs, in committed batches
so an interrupted run resumes where it stopped. Once rewrap has finished, older
versions hold no data key and may be retired.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from rich.console import Console
from rich.progress import (
    TaskID,
)
from rich.table import Table

from perpetua.blobs import BlobStore
from perpetua.blobs.store import BLOB_CLASSES
from perpetua.cli.common import add_data_dir, count_bar
from perpetua.config import load_settings
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.migrations import migrate
from perpetua.db.pool import Database
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput
from perpetua.records.vault import Vault

# Classes whose ciphertexts name their key version, so old data still opens
# after a rotation. Not `blind_index`: existing rows' search tags would stop
# matching until a reindex, which does not exist. Not `audit_signing`: the
# audit log's signer is derived from it and is rotated by the audit module.
ROTATABLE = (
    DataClass.FIELDS,
    DataClass.RECORDINGS,
    DataClass.TRANSCRIPTS,
    DataClass.DOCUMENTS,
    DataClass.BACKUPS,
)


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="list, rotate and rewrap encryption keys")
    keys_sub = keys.add_subparsers(
        dest="keys_command", required=True, metavar="COMMAND"
    )

    listing = keys_sub.add_parser("list", help="every key version, active or destroyed")
    add_data_dir(listing)
    listing.add_argument("--practice", metavar="ID", help="only this practice")
    listing.set_defaults(handler=run_list)

    rotate = keys_sub.add_parser(
        "rotate", help="add a key version to every active bucket that matches"
    )
    add_data_dir(rotate)
    rotate.add_argument("--practice", metavar="ID", help="only this practice")
    rotate.add_argument(
        "--class", dest="data_class", choices=[str(c) for c in ROTATABLE]
    )
    rotate.set_defaults(handler=run_rotate)

    rewrap = keys_sub.add_parser(
        "rewrap", help="rewrap stored objects' data keys under the newest versions"
    )
    add_data_dir(rewrap)
    rewrap.add_argument("--practice", metavar="ID", help="only this practice")
    rewrap.add_argument(
        "--class", dest="data_class", choices=sorted(str(c) for c in BLOB_CLASSES)
    )
    rewrap.set_defaults(handler=run_rewrap)


def _keystore(args: argparse.Namespace) -> Keystore:
    return Vault.open(load_settings(data_dir=args.data_dir).data_dir).keystore


def _practice(text: str | None) -> str | None:
    if text is None:
        return None
    if text == "platform":
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidInput("--practice must be a practice id (a UUID)") from None


def run_list(args: argparse.Namespace, _extra: list[str]) -> int:
    infos = _keystore(args).list(_practice(args.practice))
    table = Table("practice", "class", "period", "version", "state", "created")
    for info in infos:
        table.add_row(
            info.practice_id,
            str(info.data_class),
            info.period or "-",
            str(info.version),
            info.state,
            info.created_at or f"certificate {info.certificate_id}",
        )
    Console().print(table)
    return 0


def run_rotate(args: argparse.Namespace, _extra: list[str]) -> int:
    keystore = _keystore(args)
    wanted = DataClass(args.data_class) if args.data_class else None
    buckets = sorted(
        {
            (info.practice_id, info.data_class, info.period)
            for info in keystore.list(_practice(args.practice))
            if info.state == "active"
            and info.data_class in ROTATABLE
            and wanted in (None, info.data_class)
        },
        key=lambda item: (item[0], str(item[1]), item[2] or ""),
    )
    if not buckets:
        print("no active keys match; nothing rotated")
        return 0
    for practice, data_class, period in buckets:
        key = keystore.rotate(practice, data_class, period)
        label = f"{practice} {data_class}" + (f" {period}" if period else "")
        print(f"rotated {label} -> version {key.version}")
    print("new writes use the new versions; run `perpetua keys rewrap` next")
    return 0


def run_rewrap(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    keystore = Vault.open(settings.data_dir).keystore
    wanted = DataClass(args.data_class) if args.data_class else None
    only = _practice(args.practice)
    practices = sorted(
        {
            info.practice_id
            for info in keystore.list(only)
            if info.data_class in BLOB_CLASSES and info.state == "active"
        }
    )
    with open_target(settings) as target:
        migrate(target.conninfo("owner"))

        async def main() -> int:
            db = Database(target.conninfo("service"), min_size=1, max_size=2)
            await db.open()
            try:
                store = BlobStore.open(settings, keystore, db)
                total = 0
                with count_bar(transient=False) as bar:
                    for practice in practices:
                        task = bar.add_task(f"rewrap {practice}", total=None)

                        def set_total(n: int, task: TaskID = task) -> None:
                            bar.update(task, total=n)

                        def advance(n: int, task: TaskID = task) -> None:
                            bar.advance(task, n)

                        total += await store.rewrap(
                            uuid.UUID(practice),
                            wanted,
                            on_total=set_total,
                            on_progress=advance,
                        )
                return total
            finally:
                await db.close()

        done = asyncio.run(main())
    print(f"rewrapped {done} data keys")
    return 0
