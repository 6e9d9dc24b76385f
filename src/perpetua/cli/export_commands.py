"""`perpetua export open FILE`: decrypt a practice's termination export.

Runs on the practice's own machine and needs nothing but this file and the
passphrase or key: no database, no data directory, no network. The passphrase is
read without echo from the terminal (or the first line of stdin when piped) and
never printed, logged or stored. The decrypted ZIP is written next to the archive
(or to --out), created exclusively with mode 0600, and every file in it is checked
against the size and SHA-256 its manifest lists; on any failure the partial output
is removed, so a damaged or forged archive never leaves plaintext behind.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

from perpetua.crypto.digests import DigestingWriter
from perpetua.termination.archive import ArchiveError, open_archive


def register(sub: Any) -> None:
    export = sub.add_parser("export", help="open a practice's encrypted export")
    export_sub = export.add_subparsers(
        dest="export_command", required=True, metavar="COMMAND"
    )
    opener = export_sub.add_parser(
        "open",
        help="decrypt an export archive (.ppex) into a ZIP file",
        description="Decrypt a Perpetua export archive with its passphrase or "
        "random key, check every segment, and write the ZIP it holds.",
    )
    opener.add_argument("file", metavar="FILE", type=Path, help="the .ppex archive")
    opener.add_argument(
        "--out",
        metavar="ZIP",
        type=Path,
        help="where to write the ZIP (default: FILE with .zip instead of .ppex)",
    )
    opener.set_defaults(handler=run_open)


def _secret() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Export passphrase or key: ")
    return sys.stdin.readline().rstrip("\r\n")


def _check_manifest(opened: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    """Every file of the ZIP is the one the manifest lists, byte for byte."""
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    present = set(opened.namelist()) - {"manifest.json"}
    if present != set(listed):
        raise ValueError("the export's files differ from its manifest")
    for name, facts in sorted(listed.items()):
        tally = DigestingWriter()
        with opened.open(name) as member:
            shutil.copyfileobj(member, tally)
        if (tally.count, tally.hash.hexdigest()) != (
            facts.get("bytes"),
            facts.get("sha256"),
        ):
            raise ValueError(f"{name} differs from the export's manifest")


def run_open(args: argparse.Namespace, _extra: list[str]) -> int:
    source: Path = args.file
    target: Path = args.out or source.with_suffix(".zip")
    if not source.is_file():
        print(f"perpetua: {source} is not a file", file=sys.stderr)
        return 2
    secret = _secret()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"perpetua: {target} exists; choose another --out", file=sys.stderr)
        return 2
    try:
        with source.open("rb") as reader, os.fdopen(fd, "wb") as writer:
            header = open_archive(reader, writer, secret)
        with zipfile.ZipFile(target) as opened:
            manifest = json.loads(opened.read("manifest.json"))
            _check_manifest(opened, manifest)
    except (ArchiveError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        target.unlink(missing_ok=True)
        print(f"perpetua: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    print(f"opened export {header.export_id} of practice {header.practice_id}")
    print(f"wrote {target}")
    for name, count in sorted(manifest.get("counts", {}).items()):
        print(f"  {name}: {count}")
    if not manifest.get("media_included"):
        print("  call media: not included (call records only)")
    return 0
