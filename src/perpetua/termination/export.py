"""Everything the practice holds at Perpetua, gathered for its export: patients,
providers, appointments, coverage, calls, clinical documents, call media and the
audit log, as files in one ZIP with a manifest of their sizes and SHA-256.

Every read goes through the records service and the `phi_api` functions, so each
one records its audit event like any other export; the owner's claims carry the
purpose (operations) and the reason. Call recordings and transcripts come through
the calls service's own reading methods (each a recorded view or playback) when
the application has one.

The ZIP is written as it is read, straight into the caller's writer (the sealing
writer of the archive), so no plaintext touches the disk and memory does not grow
with the practice: recordings pass through chunk by chunk and the audit log a page
at a time. Compression and encryption run in a worker thread, so a large export
does not hold up the requests of other practices.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from anyio import to_thread

from perpetua.access.claims import Claims
from perpetua.crypto.digests import DigestingWriter
from perpetua.crypto.streaming import BinaryWriter
from perpetua.errors import PerpetuaError
from perpetua.records.gate import read
from perpetua.records.service import Records

EXPORT_PURPOSE = "HOPERAT"
EXPORT_REASON = "Business Associate Agreement terminated: export for the practice"
# audit_api.events returns at most this many events per call, in time order. The
# log is read a month at a time, and a month that fills a page goes on from the
# page's last instant, so no month is too busy to export and none is cut short.
_AUDIT_PAGE_LIMIT = 100_000
# Rows serialized per hand-off to the writing thread.
_ROWS_PER_CHUNK = 2000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# What a call may lack without the export being incomplete: no such media, or
# media the practice's retention period already deleted.
_ABSENT_MEDIA = ("not_found", "media_deleted")
_AUDIO_SUFFIX = {"audio/wav": "wav", "audio/mpeg": "mp3", "audio/ogg": "ogg"}


class MediaPlayback(Protocol):
    content_type: str
    chunks: AsyncIterator[bytes]


class CallMedia(Protocol):
    """The calls service's reading methods the export needs."""

    async def transcript(
        self, claims: Claims, call_id: uuid.UUID
    ) -> list[dict[str, object]]: ...

    async def playback(self, claims: Claims, call_id: uuid.UUID) -> Any: ...


class ExportIncomplete(Exception):
    """Something could not be exported whole; nothing is destroyed then."""


@dataclass
class ExportContents:
    """What went into the ZIP: the counts, and the digest of the ZIP itself."""

    counts: dict[str, int] = field(default_factory=dict)
    media_included: bool = False
    zip_bytes: int = 0
    zip_sha256: str = ""


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _ndjson(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True).encode()
        + b"\n"
        for row in rows
    )


async def _row_chunks(rows: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for first in range(0, len(rows), _ROWS_PER_CHUNK):
        yield _ndjson(rows[first : first + _ROWS_PER_CHUNK])


def export_claims(claims: Claims) -> Claims:
    return dataclasses.replace(
        claims, purpose_of_use=EXPORT_PURPOSE, reason=EXPORT_REASON
    )


def _months(
    since: dt.datetime, until: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    windows = []
    start = since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while start < until:
        end = (start + dt.timedelta(days=32)).replace(day=1)
        windows.append((start, min(end, until)))
        start = end
    return windows


async def _audit_pages(
    records: Records, claims: Claims, since: dt.datetime, until: dt.datetime
) -> AsyncIterator[list[dict[str, Any]]]:
    """The practice's audit events in time order, each once, a page at a time."""
    for start, end in _months(since, until):
        while True:
            page = await records.audit_events(claims, start, end, export=True)
            if len(page) < _AUDIT_PAGE_LIMIT:
                yield page
                break
            # A full page: everything before its last instant is in it, in order;
            # the next page starts at that instant, so events sharing it are
            # read whole there and none is read twice.
            last = page[-1]["occurred_at"]
            earlier = [event for event in page if event["occurred_at"] < last]
            if not earlier:
                raise ExportIncomplete("more audit events share one instant than fit")
            yield earlier
            start = last


class _Zip:
    """The ZIP being written, one entry at a time, with the manifest's facts."""

    def __init__(self, sink: BinaryWriter, now: dt.datetime) -> None:
        # The whole ZIP is counted and hashed on its way to the sink, so that the
        # sealed file can be proven to reopen to exactly these bytes.
        self._digest = DigestingWriter(sink)
        self._archive = zipfile.ZipFile(
            self._digest, "w", compression=zipfile.ZIP_DEFLATED
        )
        self._stamp = now.astimezone(dt.UTC).timetuple()[:6]
        self.files: dict[str, dict[str, Any]] = {}

    async def add(
        self, name: str, chunks: AsyncIterator[bytes], *, compress: bool = True
    ) -> None:
        info = zipfile.ZipInfo(name, date_time=self._stamp)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o600 << 16
        tally = DigestingWriter()
        # Sizes are unknown until the end and may pass 4 GiB: ZIP64 from the start.
        entry = await to_thread.run_sync(
            lambda: self._archive.open(info, "w", force_zip64=True)
        )
        try:
            async for chunk in chunks:
                tally.write(chunk)
                await to_thread.run_sync(entry.write, chunk)
        finally:
            await to_thread.run_sync(entry.close)
        self.files[name] = {"bytes": tally.count, "sha256": tally.hash.hexdigest()}

    async def finish(self, manifest: dict[str, Any]) -> tuple[int, str]:
        body = (json.dumps(manifest, indent=2) + "\n").encode()
        await self.add("manifest.json", _once(body))
        await to_thread.run_sync(self._archive.close)
        return self._digest.count, self._digest.hash.hexdigest()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _media(
    zip_: _Zip, media: CallMedia, claims: Claims, call_ids: list[uuid.UUID]
) -> tuple[int, int]:
    transcripts = recordings = 0
    for call_id in call_ids:
        try:
            turns = await media.transcript(claims, call_id)
        except PerpetuaError as exc:
            if exc.code not in _ABSENT_MEDIA:
                raise
        else:
            body = json.dumps(turns, indent=1, default=str).encode()
            await zip_.add(f"transcripts/{call_id}.json", _once(body))
            transcripts += 1
        try:
            playback: MediaPlayback = await media.playback(claims, call_id)
        except PerpetuaError as exc:
            if exc.code not in _ABSENT_MEDIA:
                raise
        else:
            suffix = _AUDIO_SUFFIX.get(playback.content_type, "bin")
            # Audio is compressed already or barely compresses: stored as is.
            await zip_.add(
                f"recordings/{call_id}.{suffix}", playback.chunks, compress=False
            )
            recordings += 1
    return transcripts, recordings


async def write_export(
    records: Records,
    claims: Claims,
    practice: dict[str, Any],
    now: dt.datetime,
    sink: BinaryWriter,
    media: CallMedia | None = None,
) -> ExportContents:
    """Read the practice's whole record and write it to `sink` as a ZIP."""
    claims = export_claims(claims)
    db = records.gate.db
    # Nothing of the practice predates its sign-up; a day either side absorbs
    # the difference between the service's clock and the database's.
    since = practice["created_at"] - dt.timedelta(days=1)
    until = now + dt.timedelta(days=1)
    practice_id = practice["id"]
    zip_ = _Zip(sink, now)
    contents = ExportContents(media_included=media is not None)
    counts = contents.counts

    async def table(name: str, rows: list[dict[str, Any]]) -> None:
        counts[name] = len(rows)
        await zip_.add(f"{name}.ndjson", _row_chunks(rows))

    providers = await records.list_providers(claims)
    await table("providers", [dataclasses.asdict(p) for p in providers])
    patients = await records.export_patients(claims)
    await table("patients", [dataclasses.asdict(p) for p in patients])
    fetched = await read(
        db, claims, "select * from phi_api.termination_export_appointments()", ()
    )
    await table(
        "appointments",
        [
            {
                **{k: v for k, v in r.items() if k != "reason_ct"},
                "reason": records.vault.open_text(
                    practice_id, "appointments", "reason", r["id"], r["reason_ct"]
                ),
            }
            for r in fetched.ensure()
        ],
    )
    await table(
        "coverages",
        [dataclasses.asdict(c) for c in await records.export_coverages(claims)],
    )
    # Calls carry the time the telephony reported, which may predate sign-up.
    calls = [
        dataclasses.asdict(c) for c in await records.export_calls(claims, _EPOCH, until)
    ]
    await table("calls", calls)
    fetched = await read(
        db, claims, "select * from phi_api.termination_export_clinical_documents()", ()
    )
    await table(
        "clinical_documents",
        [
            {
                **{k: v for k, v in r.items() if k != "body_ct"},
                "body": records.vault.open_text(
                    practice_id, "clinical_documents", "body", r["id"], r["body_ct"]
                ),
            }
            for r in fetched.ensure()
        ],
    )
    transcripts = recordings = 0
    if media is not None:
        transcripts, recordings = await _media(
            zip_, media, claims, [c["id"] for c in calls]
        )

    audit_events = 0

    async def audit_chunks() -> AsyncIterator[bytes]:
        nonlocal audit_events
        async for page in _audit_pages(records, claims, since, until):
            audit_events += len(page)
            async for chunk in _row_chunks(page):
                yield chunk

    await zip_.add("audit_log.ndjson", audit_chunks())
    counts.update(
        audit_events=audit_events, recordings=recordings, transcripts=transcripts
    )
    manifest = {
        "format": "perpetua-export/1",
        "practice_id": str(practice_id),
        "practice_name": practice["name"],
        "exported_at": now.isoformat(),
        "counts": counts,
        "media_included": media is not None,
        "files": dict(sorted(zip_.files.items())),
    }
    contents.zip_bytes, contents.zip_sha256 = await zip_.finish(manifest)
    return contents
