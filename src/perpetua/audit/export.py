"""A practice's export of its own audit log, which it can verify alone.

This module guards the practice's copy of the evidence. An owner or manager gets
the archive format of ``offline_verify``: a header with the log's origin and
public verifier key, every sealed event in index order as its canonical line,
the signed checkpoints, and a footer. ``perpetua audit verify --archive FILE``
checks it with no database, network or Perpetua secret. Reading the log for an
export is itself recorded, as an ``export`` audit event, by the database
function that returns the rows (``audit_api.export_log``, migration 0032). The
same rows also leave as FHIR R4 AuditEvent NDJSON (``fhir``), for other systems.

The verifier key is re-derived from the keystore here, never read from the
database. Limitation: the header names one key, the current one; checkpoints
signed before a rotation of the practice's audit signing key would not verify
against it (rotation of that key is not offered yet).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import ReadCaller
from perpetua.audit.canonical import decode_event
from perpetua.audit.fhir import audit_event_resource
from perpetua.audit.offline_verify import (
    ArchivedLeaf,
    practice_log_origin,
    write_archive,
)
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, event_line, signer_for
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.pool import Database
from perpetua.errors import NotFound
from perpetua.records.gate import read

__all__ = ["AuditArchive", "DamagedLog", "export_archive", "export_fhir"]


class DamagedLog(RuntimeError):
    """A sealed index names an event that is gone: the log fails verification."""


@dataclass(frozen=True)
class AuditArchive:
    practice_id: str
    origin: str
    verifier_key: str
    event_count: int
    checkpoint_count: int
    data: bytes

    @property
    def filename(self) -> str:
        return f"audit-log-{self.practice_id}.jsonl"


def _event_lines(
    practice_id: str, rows: Sequence[Mapping[str, Any]]
) -> Iterator[bytes | ArchivedLeaf]:
    for row in rows:
        index = row["at_index"]
        if row["id"] is None:
            # Moved to a monthly archive after seven years: the leaf keeps its
            # place in the tree, and the verifier reports it as archived.
            if row["archived"]:
                yield ArchivedLeaf(index, bytes(row["leaf"]))
                continue
            # Exporting around the hole would hand the practice an archive that
            # fails for a reason it cannot see; say so instead.
            raise DamagedLog(f"sealed event {index} is missing from the database")
        yield event_line(practice_id, index, row)


async def export_archive(
    db: Database,
    keystore: Keystore,
    caller: ReadCaller,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> AuditArchive:
    """The caller's practice's sealed log as an archive (owners and managers)."""
    fetched = await read(db, caller, "select * from audit_api.export_log()", ())
    rows = fetched.ensure()
    practice = fetched.practice()
    practice_id = str(practice)
    checkpoints = [r for r in rows if r["kind"] == "checkpoint"]
    events = [r for r in rows if r["kind"] == "event"]
    if not checkpoints:
        raise NotFound("this practice's audit log has no checkpoint yet")

    origin = practice_log_origin(practice_id, origin_host)
    class_key = keystore.current(practice, DataClass.AUDIT_SIGNING)
    verifier_key = signer_for(class_key, origin).verifier.to_key()
    out = io.BytesIO()
    count = write_archive(
        out,
        practice_id=practice_id,
        origin=origin,
        verifier_key=verifier_key,
        events=_event_lines(practice_id, events),
        checkpoints=[bytes(r["line"]).decode("utf-8") for r in checkpoints],
    )
    return AuditArchive(
        practice_id=practice_id,
        origin=origin,
        verifier_key=verifier_key,
        event_count=count,
        checkpoint_count=len(checkpoints),
        data=out.getvalue(),
    )


async def export_fhir(
    db: Database,
    caller: ReadCaller,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> bytes:
    """The sealed log as FHIR R4 AuditEvent NDJSON (recorded as an export)."""
    fetched = await read(db, caller, "select * from audit_api.export_log()", ())
    rows = fetched.ensure()
    practice_id = str(fetched.practice())
    origin = practice_log_origin(practice_id, origin_host)
    events = [r for r in rows if r["kind"] == "event"]
    out = io.BytesIO()
    for line in _event_lines(practice_id, events):
        if isinstance(line, ArchivedLeaf):
            continue  # its content left the database with its month
        resource = audit_event_resource(decode_event(line), source=origin)
        out.write(json.dumps(resource, separators=(",", ":")).encode("utf-8") + b"\n")
    return out.getvalue()
