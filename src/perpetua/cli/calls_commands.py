"""`perpetua calls import DIR` and `perpetua calls fetch-twilio`.

`import` bulk-loads calls with their recordings and
transcripts into one practice, through the same ingestion as the webhook and the
upload API (checks, card-number redaction, silencing, retention opt-out).

DIR holds one manifest per call, `NAME.call.json`::

    {"direction": "inbound", "started_at": "2026-11-02T14:05:00Z",
     "duration_seconds": 184, "caller_number": "+1 555 0100 123",
     "recording": "NAME.wav", "transcript": "NAME.txt"}

`recording` (WAV, MP3 or OGG) and `transcript` (text with speaker turns, or JSON
turns with word timings) are optional file names beside the manifest. Files are
read into memory only; nothing is written except into the encrypted blob store.

`fetch-twilio [--practice ID]` works off the queue of Twilio recordings now
(`perpetua.calls.fetch`), as the `calls.fetch_twilio` job of `perpetua serve`
does a batch a minute, with a progress bar for a backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpetua.access.permissions import load_permissions
from perpetua.blobs import BlobStore
from perpetua.calls.fetch import FetchReport, TwilioFetcher, open_calls
from perpetua.calls.models import IncomingCall
from perpetua.calls.service import Calls, practice_system_claims
from perpetua.calls.twilio import api_base as twilio_api_base
from perpetua.cli.common import add_data_dir, count_bar
from perpetua.clock import Clock
from perpetua.config import Settings, load_settings
from perpetua.db.pool import Database
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput, PerpetuaError
from perpetua.records.gate import RecordsGate
from perpetua.records.vault import Vault

MANIFEST_SUFFIX = ".call.json"


def register(sub: Any) -> None:
    calls = sub.add_parser("calls", help="bulk-load call recordings and transcripts")
    calls_sub = calls.add_subparsers(
        dest="calls_command", required=True, metavar="COMMAND"
    )
    load = calls_sub.add_parser(
        "import",
        help="import every NAME.call.json manifest of DIR into one practice",
    )
    add_data_dir(load)
    load.add_argument("directory", metavar="DIR", type=Path)
    load.add_argument("--practice", metavar="ID", required=True)
    load.set_defaults(handler=run_import)
    fetch_twilio = calls_sub.add_parser(
        "fetch-twilio",
        help="fetch the Twilio recordings waiting in the queue now",
    )
    add_data_dir(fetch_twilio)
    fetch_twilio.add_argument("--practice", metavar="ID", default=None)
    fetch_twilio.set_defaults(handler=run_fetch_twilio)


@dataclass(frozen=True)
class ImportReport:
    imported: int
    failed: list[tuple[str, str]]
    recordings: int
    transcripts: int
    redactions: int


def _file(base: Path, name: object) -> bytes | None:
    if name is None:
        return None
    if not isinstance(name, str) or Path(name).name != name:
        # Only files beside the manifest: no paths that climb out of DIR.
        raise InvalidInput("recording and transcript must be file names in DIR")
    return (base / name).read_bytes()


def read_manifest(path: Path) -> IncomingCall:
    """One call from its manifest and the files it names."""
    try:
        body = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("the manifest is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the manifest must be a JSON object")
    try:
        started = dt.datetime.fromisoformat(str(body.get("started_at", "")))
        duration = int(body.get("duration_seconds", 0))
    except ValueError:
        raise InvalidInput("started_at or duration_seconds is malformed") from None
    caller = body.get("caller_number")
    return IncomingCall(
        direction=str(body.get("direction", "")),
        started_at=started,
        duration_seconds=duration,
        caller_number=str(caller) if caller else None,
        recording=_file(path.parent, body.get("recording")),
        transcript=_file(path.parent, body.get("transcript")),
    )


async def import_directory(
    calls: Calls,
    practice: uuid.UUID,
    directory: Path,
    *,
    show_progress: bool,
) -> ImportReport:
    manifests = sorted(directory.glob("*" + MANIFEST_SUFFIX))
    imported = recordings = transcripts = redactions = 0
    failed: list[tuple[str, str]] = []
    with count_bar(show=show_progress) as bar:
        task = bar.add_task("Importing calls", total=len(manifests))
        for path in manifests:
            claims = practice_system_claims(practice, f"cli-calls-import-{path.name}")
            try:
                made = await calls.ingest(claims, read_manifest(path))
            except (PerpetuaError, OSError) as exc:
                # Name the file and the refusal, never the content.
                detail = exc.detail if isinstance(exc, PerpetuaError) else "unreadable"
                failed.append((path.name, detail))
            else:
                imported += 1
                recordings += made.recording_stored
                transcripts += made.transcript_stored
                redactions += made.redactions
            bar.advance(task)
    return ImportReport(imported, failed, recordings, transcripts, redactions)


async def _with_calls(
    settings: Settings, conninfo: str, practice: uuid.UUID, directory: Path
) -> ImportReport:
    db = Database(conninfo, min_size=1, max_size=2)
    await db.open()
    try:
        vault = Vault.open(settings.data_dir)
        calls = Calls(
            db,
            RecordsGate(db, await load_permissions(db)),
            vault,
            BlobStore.open(settings, vault.keystore, db),
            Clock(),
        )
        return await import_directory(
            calls, practice, directory, show_progress=sys.stderr.isatty()
        )
    finally:
        await db.close()


def run_import(args: argparse.Namespace, _extra: list[str]) -> int:
    try:
        practice = uuid.UUID(args.practice)
    except ValueError:
        raise InvalidInput("practice id must be a UUID") from None
    if not args.directory.is_dir():
        raise InvalidInput("DIR must be a directory")
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        report = asyncio.run(
            _with_calls(settings, target.conninfo("service"), practice, args.directory)
        )
    print(
        f"imported {report.imported} calls ({report.recordings} recordings, "
        f"{report.transcripts} transcripts, {report.redactions} card numbers "
        f"redacted); {len(report.failed)} refused"
    )
    for name, reason in report.failed:
        print(f"  {name}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


# Far more than the job takes per minute: the command is for working off a backlog.
FETCH_LIMIT = 100_000


async def fetch_backlog(
    fetcher: TwilioFetcher, practice: uuid.UUID | None, *, show_progress: bool
) -> FetchReport:
    with count_bar(show=show_progress) as bar:
        task = bar.add_task("Fetching Twilio recordings", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return await fetcher.run(practice, limit=FETCH_LIMIT, progress=advance)


async def _fetch(
    settings: Settings, conninfo: str, practice: uuid.UUID | None
) -> FetchReport:
    base = twilio_api_base(settings)
    db = Database(conninfo, min_size=1, max_size=2)
    await db.open()
    try:
        fetcher = TwilioFetcher(await open_calls(db, settings, Clock()), base)
        return await fetch_backlog(fetcher, practice, show_progress=sys.stderr.isatty())
    finally:
        await db.close()


def run_fetch_twilio(args: argparse.Namespace, _extra: list[str]) -> int:
    practice = None
    if args.practice is not None:
        try:
            practice = uuid.UUID(args.practice)
        except ValueError:
            raise InvalidInput("practice id must be a UUID") from None
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        report = asyncio.run(_fetch(settings, target.conninfo("service"), practice))
    print(report)
    return 1 if report.failed or report.credentials_rejected else 0
