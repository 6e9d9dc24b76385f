"""The encrypted file one practice's audit month is moved into after seven years.

This module guards what remains of those events once their partition is
dropped: a file that proves, on its own, that it holds exactly the events the
signed log held. Pure: bytes in, bytes out; the caller brings the keys.

File layout (integers big-endian)::

    magic "PPAM" | format 0x01 | practice id (16) | archive id (16)
    | wrapped key length (2) | the data key, wrapped by the keystore under the
      practice's ``audit_archive`` class key, bound to the object id below
    then one stream in Perpetua's segmented AES-256-GCM format
    (crypto/streaming.py), data class ``audit_archive``, object id
    ``audit-archive/<archive id>``; its plaintext is JSON Lines:

1. a header: format, version, practice id, log origin, verifier key, the month's
   range, and the newest signed checkpoint when the month was archived;
2. one line per event in index order:
   ``{"index": i, "line": "<canonical event>", "proof": ["<base64>", ...]}``,
   the proof being the event's RFC 9162 inclusion proof in that checkpoint's tree;
3. a footer ``{"end": {"events": n}}``.

Reading checks every proof against the signed root, decodes every event
strictly (canonical bytes only), and checks each event's index, practice and
time against the header, so a file that reopens is a file that proves itself.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from perpetua.audit.canonical import (
    MalformedEvent,
    canonical_json,
    decode_event,
    leaf_input,
    parse_time,
)
from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteError,
    NoteVerifier,
    open_checkpoint,
)
from perpetua.audit.merkle import leaf_hash, verify_inclusion
from perpetua.crypto.keystore import DataClass
from perpetua.crypto.streaming import (
    BinaryReader,
    BinaryWriter,
    SealingWriter,
    write_all,
)

__all__ = [
    "MONTH_FORMAT",
    "ArchivedEvent",
    "MonthArchiveError",
    "MonthContents",
    "MonthHeader",
    "object_id_for",
    "read_month",
    "read_prefix",
    "write_month",
]

MAGIC = b"PPAM"
FORMAT = 1
MONTH_FORMAT = "perpetua-audit-month"

_PREFIX = struct.Struct(">4sB16s16sH")


class MonthArchiveError(Exception):
    """The file is not a month archive, or it does not prove what it claims."""


@dataclass(frozen=True)
class MonthHeader:
    practice_id: str
    origin: str
    verifier_key: str
    range_from: str
    range_to: str
    checkpoint_note: str

    def to_line(self) -> bytes:
        return canonical_json(
            {
                "format": MONTH_FORMAT,
                "version": FORMAT,
                "practice_id": self.practice_id,
                "origin": self.origin,
                "verifier_key": self.verifier_key,
                "range_from": self.range_from,
                "range_to": self.range_to,
                "checkpoint": self.checkpoint_note,
            }
        )


@dataclass(frozen=True)
class ArchivedEvent:
    index: int
    line: bytes
    proof: list[bytes]


def object_id_for(archive_id: uuid.UUID) -> str:
    return f"audit-archive/{archive_id}"


def write_month(
    out: BinaryWriter,
    *,
    archive_id: uuid.UUID,
    data_key: bytes,
    wrapped_key: bytes,
    header: MonthHeader,
    events: Iterable[ArchivedEvent],
) -> int:
    """Write the whole file; return the number of events written."""
    practice = uuid.UUID(header.practice_id)
    prefix = _PREFIX.pack(
        MAGIC, FORMAT, practice.bytes, archive_id.bytes, len(wrapped_key)
    )
    write_all(out, memoryview(prefix + wrapped_key))
    sealed = SealingWriter(
        data_key,
        out,
        practice_id=header.practice_id,
        data_class=DataClass.AUDIT_ARCHIVE,
        object_id=object_id_for(archive_id),
    )
    sealed.write(header.to_line() + b"\n")
    count = 0
    for event in events:
        record = {
            "index": event.index,
            "line": event.line.decode("utf-8"),
            "proof": [base64.b64encode(h).decode("ascii") for h in event.proof],
        }
        sealed.write(canonical_json(record) + b"\n")
        count += 1
    sealed.write(canonical_json({"end": {"events": count}}) + b"\n")
    sealed.close()
    return count


def read_prefix(reader: BinaryReader) -> tuple[uuid.UUID, uuid.UUID, bytes]:
    """The practice, the archive id and the wrapped data key, from the start.

    None of it is trusted yet: the key unwraps and the stream opens only if all
    three are what they were when the file was written.
    """
    fixed = _read_exactly(reader, _PREFIX.size)
    magic, fmt, practice, archive, wrapped_length = _PREFIX.unpack(fixed)
    if magic != MAGIC or fmt != FORMAT:
        raise MonthArchiveError("not a Perpetua audit month archive")
    if not 0 < wrapped_length <= 1024:
        raise MonthArchiveError("the archive's key header is damaged")
    return (
        uuid.UUID(bytes=practice),
        uuid.UUID(bytes=archive),
        _read_exactly(reader, wrapped_length),
    )


def _read_exactly(reader: BinaryReader, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        got = reader.readinto(view[filled:])
        if not got:
            raise MonthArchiveError("the archive ends inside its header")
        filled += got
    return bytes(buffer)


@dataclass(frozen=True)
class MonthContents:
    header: MonthHeader
    checkpoint: Checkpoint
    events: int
    first_index: int | None
    last_index: int | None


def read_month(
    plaintext: BinaryReader,
    *,
    trusted_key: str | None = None,
) -> MonthContents:
    """Check a decrypted month archive from its first line to its footer.

    ``trusted_key`` pins the verifier key; without it the header's key is
    used, which proves integrity but not who signed.
    """
    lines = _lines(plaintext)
    header = _header(next(lines, b""))
    try:
        verifier = NoteVerifier.from_key(trusted_key or header.verifier_key)
        checkpoint = open_checkpoint(
            header.checkpoint_note, verifier, origin=header.origin
        )
    except NoteError as exc:
        raise MonthArchiveError(
            f"the archive's checkpoint does not verify: {exc}"
        ) from exc
    range_from = parse_time(header.range_from)
    range_to = parse_time(header.range_to)

    first: int | None = None
    previous = -1
    for count, raw in enumerate(lines):
        record = _json(raw)
        if "end" in record:
            if record != {"end": {"events": count}} or next(lines, None) is not None:
                raise MonthArchiveError("the footer does not match the events")
            return MonthContents(header, checkpoint, count, first, previous)
        index = _event(record, header, checkpoint, range_from, range_to)
        if index <= previous:
            raise MonthArchiveError(f"event {index} is out of order")
        first = index if first is None else first
        previous = index
    raise MonthArchiveError("the archive is cut short: no footer")


def _lines(plaintext: BinaryReader) -> Iterator[bytes]:
    carry = b""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    while True:
        got = plaintext.readinto(view)
        if not got:
            break
        data = carry + bytes(view[:got])
        *complete, carry = data.split(b"\n")
        yield from complete
    if carry:
        raise MonthArchiveError("the archive's last line is incomplete")


def _json(raw: bytes) -> dict[str, object]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise MonthArchiveError("a line of the archive is not JSON") from exc
    if not isinstance(value, dict):
        raise MonthArchiveError("a line of the archive is not an object")
    return value


def _header(raw: bytes) -> MonthHeader:
    value = _json(raw)
    expected = {
        "format",
        "version",
        "practice_id",
        "origin",
        "verifier_key",
        "range_from",
        "range_to",
        "checkpoint",
    }
    if set(value) != expected or value["format"] != MONTH_FORMAT:
        raise MonthArchiveError("the archive's header is not a month header")
    if value["version"] != FORMAT:
        raise MonthArchiveError(f"unsupported month archive version {value['version']}")
    if not all(isinstance(value[k], str) for k in expected - {"version"}):
        raise MonthArchiveError("the archive's header has a field of the wrong type")
    return MonthHeader(
        practice_id=str(value["practice_id"]),
        origin=str(value["origin"]),
        verifier_key=str(value["verifier_key"]),
        range_from=str(value["range_from"]),
        range_to=str(value["range_to"]),
        checkpoint_note=str(value["checkpoint"]),
    )


def _event(
    record: dict[str, object],
    header: MonthHeader,
    checkpoint: Checkpoint,
    range_from: datetime,
    range_to: datetime,
) -> int:
    index, line, proof = record.get("index"), record.get("line"), record.get("proof")
    if (
        set(record) != {"index", "line", "proof"}
        or not isinstance(index, int)
        or not isinstance(line, str)
        or not isinstance(proof, list)
        or not all(isinstance(h, str) for h in proof)
    ):
        raise MonthArchiveError("an event line of the archive is malformed")
    data = line.encode("utf-8")
    try:
        event = decode_event(data)
        hashes = [base64.b64decode(h, validate=True) for h in proof]
    except (MalformedEvent, ValueError) as exc:
        raise MonthArchiveError(f"event {index} is malformed: {exc}") from exc

    # The event says where it sits, whose it is and when it happened; each must
    # agree with the line's place in this file.
    if event["index"] != index or event["practice_id"] != header.practice_id:
        raise MonthArchiveError(f"event {index} does not belong at this place")
    if not range_from <= parse_time(event["time"]) < range_to:
        raise MonthArchiveError(f"event {index} is outside the archived month")
    if not verify_inclusion(
        index, checkpoint.size, leaf_hash(leaf_input(data)), hashes, checkpoint.root
    ):
        raise MonthArchiveError(
            f"event {index} is not proven by the checkpoint of size {checkpoint.size}"
        )
    return index
