"""Everything the practice holds at Perpetua, gathered for its export: patients,
providers, appointments, coverage, calls, clinical documents and the audit log,
as NDJSON files in one ZIP with a manifest.

Every read goes through the records service and the `phi_api` functions, so each
one records its audit event like any other export; the owner's claims carry the
purpose (operations) and the reason. Call recordings and transcripts come through
the calls service's own reading methods (each a recorded view or playback) when
the application has one. Nothing is written to disk here: the ZIP is built in
memory and handed to `archive.seal`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from perpetua.access.claims import Claims
from perpetua.errors import PerpetuaError
from perpetua.records.gate import read
from perpetua.records.service import Records

EXPORT_PURPOSE = "HOPERAT"
EXPORT_REASON = "Business Associate Agreement terminated: export for the practice"
# audit_api.events returns at most this many events per call, so the log is read
# a month at a time; a month at the cap is refused rather than cut short.
_AUDIT_PAGE_LIMIT = 100_000
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


@dataclass(frozen=True)
class ExportContents:
    zip_bytes: bytes
    counts: dict[str, int]
    media_included: bool


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


def _ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True).encode()
        + b"\n"
        for row in rows
    )


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


async def _audit_log(
    records: Records, claims: Claims, since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for start, end in _months(since, until):
        page = await records.audit_events(claims, start, end, export=True)
        if len(page) >= _AUDIT_PAGE_LIMIT:
            raise ExportIncomplete("an audit month exceeds the export page size")
        events.extend(page)
    return events


async def _media(
    media: CallMedia, claims: Claims, call_ids: list[uuid.UUID]
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for call_id in call_ids:
        try:
            turns = await media.transcript(claims, call_id)
            files[f"transcripts/{call_id}.json"] = json.dumps(
                turns, indent=1, default=str
            ).encode()
        except PerpetuaError as exc:
            if exc.code not in _ABSENT_MEDIA:
                raise
        try:
            playback: MediaPlayback = await media.playback(claims, call_id)
            audio = b"".join([chunk async for chunk in playback.chunks])
            suffix = _AUDIO_SUFFIX.get(playback.content_type, "bin")
            files[f"recordings/{call_id}.{suffix}"] = audio
        except PerpetuaError as exc:
            if exc.code not in _ABSENT_MEDIA:
                raise
    return files


async def collect(
    records: Records,
    claims: Claims,
    practice: dict[str, Any],
    now: dt.datetime,
    media: CallMedia | None = None,
) -> ExportContents:
    """Read the practice's whole record and build the ZIP, in memory."""
    claims = export_claims(claims)
    db = records.gate.db
    # Nothing of the practice predates its sign-up; a day either side absorbs
    # the difference between the service's clock and the database's.
    since = practice["created_at"] - dt.timedelta(days=1)
    until = now + dt.timedelta(days=1)

    providers = [dataclasses.asdict(p) for p in await records.list_providers(claims)]
    patients = [dataclasses.asdict(p) for p in await records.export_patients(claims)]
    coverages = [dataclasses.asdict(c) for c in await records.export_coverages(claims)]
    # Calls carry the time the telephony reported, which may predate sign-up.
    calls = [
        dataclasses.asdict(c) for c in await records.export_calls(claims, _EPOCH, until)
    ]
    practice_id = practice["id"]
    fetched = await read(
        db, claims, "select * from phi_api.termination_export_appointments()", ()
    )
    appointments = [
        {
            **{k: v for k, v in r.items() if k != "reason_ct"},
            "reason": records.vault.open_text(
                practice_id, "appointments", "reason", r["id"], r["reason_ct"]
            ),
        }
        for r in fetched.ensure()
    ]
    fetched = await read(
        db, claims, "select * from phi_api.termination_export_clinical_documents()", ()
    )
    documents = [
        {
            **{k: v for k, v in r.items() if k != "body_ct"},
            "body": records.vault.open_text(
                practice_id, "clinical_documents", "body", r["id"], r["body_ct"]
            ),
        }
        for r in fetched.ensure()
    ]
    media_files = await _media(media, claims, [c["id"] for c in calls]) if media else {}
    audit = await _audit_log(records, claims, since, until)

    files: dict[str, bytes] = {
        "providers.ndjson": _ndjson(providers),
        "patients.ndjson": _ndjson(patients),
        "appointments.ndjson": _ndjson(appointments),
        "coverages.ndjson": _ndjson(coverages),
        "calls.ndjson": _ndjson(calls),
        "clinical_documents.ndjson": _ndjson(documents),
        "audit_log.ndjson": _ndjson(audit),
        **media_files,
    }
    counts = {
        "providers": len(providers),
        "patients": len(patients),
        "appointments": len(appointments),
        "coverages": len(coverages),
        "calls": len(calls),
        "clinical_documents": len(documents),
        "audit_events": len(audit),
        "recordings": sum(n.startswith("recordings/") for n in media_files),
        "transcripts": sum(n.startswith("transcripts/") for n in media_files),
    }
    manifest = {
        "format": "perpetua-export/1",
        "practice_id": str(practice_id),
        "practice_name": practice["name"],
        "exported_at": now.isoformat(),
        "counts": counts,
        "media_included": media is not None,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        },
    }

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return ExportContents(buffer.getvalue(), counts, media is not None)
