"""Canonical bytes for one audit event: the exact data a Merkle leaf commits to.

This module guards determinism. The sealing job hashes these bytes, the exporter
writes them as one line of the archive, and a practice's verifier hashes that line
again, so one event must have one and only one encoding, today and years from now.

The encoding is JSON with keys sorted, no whitespace, UTF-8 output with only the
characters JSON requires escaped (quote, backslash and controls below U+0020, the
five short escapes where JSON has them, lowercase ``\\u00xx`` otherwise). For the
values an event may hold (ASCII keys, NFC strings without lone surrogates, integers
below 2**53, lists of strings, null) this is exactly the RFC 8785 (JCS) output, so
an auditor can reproduce it with any JCS library, and ``jq -cS`` gets close. JSON
was chosen over a binary format because an export must stay readable by a person
with a text editor; JCS compatibility gives it a published definition beyond our
code.

Decoding is strict: unknown or missing fields, duplicate keys, wrong types, text
that is not NFC, and any byte sequence that is not the canonical encoding of what
it decodes to are all rejected, so an archive line either round-trips byte for
byte or is refused.

Two versions exist, told apart by the ``v`` field inside the hashed bytes:

- version 1 leaves out the stored row's event ``id`` and ``row_count``, and
  normalizes text to NFC and addresses to Python's compressed spelling before
  hashing. Logs sealed under it stay verifiable, nothing more is sealed with it.
- version 2 adds ``id`` and ``row_count``, so every column of an audit row is
  committed to, and records text exactly as stored (no normalization step that
  could hide a change). Its bytes are what PostgreSQL's ``to_json`` writes for
  each stored value, so the database renders the line that Python hashes
  (``db_render``); this module is the definition both must agree with.
- version 3 holds the same fields as version 2, but its leaf does not hash the
  JSON line: it hashes the event's binary form (``event_bytes_v3``), which
  PostgreSQL writes with its binary send functions at about half the cost of
  the JSON line. The JSON line stays what an archive holds and a person reads;
  a verifier rebuilds the binary form from it (``leaf_input``).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import struct
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict, cast

__all__ = [
    "EVENT_FIELDS",
    "EVENT_FIELDS_V2",
    "EVENT_FIELDS_V3",
    "EVENT_VERSION",
    "EVENT_VERSION_V2",
    "EVENT_VERSION_V3",
    "MAX_INDEX",
    "AuditEvent",
    "MalformedEvent",
    "NonCanonicalEvent",
    "canonical_json",
    "decode_event",
    "encode_event",
    "event_bytes_v3",
    "format_time",
    "leaf_input",
    "make_event",
    "make_event_v2",
    "make_event_v3",
    "parse_time",
]

EVENT_VERSION: Literal[1] = 1
EVENT_VERSION_V2: Literal[2] = 2
EVENT_VERSION_V3: Literal[3] = 3

# JCS represents numbers as IEEE doubles; past 2**53 two indices could share one
# encoding in other implementations, so the log refuses to grow that far.
MAX_INDEX = 2**53 - 1

_MAX_TEXT = 4096
_MAX_TOKEN = 128
_MAX_IDS = 1000


class AuditEvent(TypedDict):
    """One audit event, as stored, sealed and exported.

    ``id`` and ``row_count`` are present exactly when ``v`` is 2 or 3.
    """

    v: int
    id: NotRequired[str]
    row_count: NotRequired[int]
    practice_id: str
    index: int
    time: str
    actor_kind: str
    actor_id: str | None
    actor_role: str | None
    action: str
    resource_type: str
    resource_ids: list[str]
    patient_ids: list[str]
    purpose_of_use: str | None
    reason: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    outcome: str


class MalformedEvent(ValueError):
    """An event is missing a field, has an unknown one, or holds a bad value."""


class NonCanonicalEvent(MalformedEvent):
    """Bytes decode to a valid event but are not that event's canonical encoding."""


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Colon-shaped tags such as ``patient:read`` or ``front_desk``.
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.:\-]*")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")

_Kind = Literal[
    "uuid",
    "index",
    "time",
    "token",
    "text",
    "ids",
    "ip",
    "version",
    "version2",
    "version3",
    "raw_text",
    "raw_ids",
    "raw_ip",
    "int32",
]

# Field name -> (kind, may be null). The order here is documentation only; the
# encoding sorts keys.
EVENT_FIELDS: Mapping[str, tuple[_Kind, bool]] = {
    "v": ("version", False),
    "practice_id": ("uuid", False),
    "index": ("index", False),
    "time": ("time", False),
    "actor_kind": ("token", False),
    "actor_id": ("text", True),
    "actor_role": ("token", True),
    "action": ("token", False),
    "resource_type": ("token", False),
    "resource_ids": ("ids", False),
    "patient_ids": ("ids", False),
    "purpose_of_use": ("text", True),
    "reason": ("text", True),
    "ip": ("ip", True),
    "user_agent": ("text", True),
    "request_id": ("text", True),
    "outcome": ("token", False),
}
_FIELD_SET = frozenset(EVENT_FIELDS)

# Version 2: every column of the stored row, each value exactly as stored. The
# database constrains tags and lengths on the way in; here a value only has to
# be of the right JSON type, so sealing can never stall on an odd stored value.
EVENT_FIELDS_V2: Mapping[str, tuple[_Kind, bool]] = {
    "v": ("version2", False),
    "id": ("uuid", False),
    "practice_id": ("uuid", False),
    "index": ("index", False),
    "time": ("time", False),
    "actor_kind": ("raw_text", False),
    "actor_id": ("raw_text", True),
    "actor_role": ("raw_text", True),
    "action": ("raw_text", False),
    "resource_type": ("raw_text", False),
    "resource_ids": ("raw_ids", False),
    "patient_ids": ("raw_ids", False),
    "purpose_of_use": ("raw_text", True),
    "reason": ("raw_text", True),
    "ip": ("raw_ip", True),
    "user_agent": ("raw_text", True),
    "request_id": ("raw_text", True),
    "outcome": ("raw_text", False),
    "row_count": ("int32", False),
}
_FIELD_SET_V2 = frozenset(EVENT_FIELDS_V2)

# Version 3: the fields of version 2. The actor id is a uuid column, and its
# binary form is the uuid's 16 bytes, so here it must be written as one.
EVENT_FIELDS_V3: Mapping[str, tuple[_Kind, bool]] = {
    **EVENT_FIELDS_V2,
    "v": ("version3", False),
    "actor_id": ("uuid", True),
}
_FIELD_SET_V3 = frozenset(EVENT_FIELDS_V3)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits and a ``Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MalformedEvent("event time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of ``format_time``; refuses every other spelling of a time."""
    if not _TIME.fullmatch(text):
        raise MalformedEvent(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise MalformedEvent(f"time {text!r} is not a real instant") from exc


def _check_text(name: str, value: object, limit: int = _MAX_TEXT) -> None:
    if value.__class__ is not str:
        raise MalformedEvent(f"{name} must be a string")
    if len(value) > limit:
        raise MalformedEvent(f"{name} is longer than {limit} characters")
    if value.isascii():
        return

    # A lone surrogate cannot be written as UTF-8, and text that is not NFC has a
    # twin that looks identical but hashes differently.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedEvent(f"{name} holds a lone surrogate") from exc
    if not unicodedata.is_normalized("NFC", value):
        raise MalformedEvent(f"{name} is not in Unicode NFC form")


def _check_version(name: str, value: object) -> None:
    if value.__class__ is not int or value != EVENT_VERSION:
        raise MalformedEvent(f"unsupported event version {value!r}")


def _check_version2(name: str, value: object) -> None:
    if value.__class__ is not int or value != EVENT_VERSION_V2:
        raise MalformedEvent(f"unsupported event version {value!r}")


def _check_version3(name: str, value: object) -> None:
    if value.__class__ is not int or value != EVENT_VERSION_V3:
        raise MalformedEvent(f"unsupported event version {value!r}")


def _check_raw_text(name: str, value: object) -> None:
    if value.__class__ is not str:
        raise MalformedEvent(f"{name} must be a string")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedEvent(f"{name} holds a lone surrogate") from exc


def _check_raw_ids(name: str, value: object) -> None:
    if value.__class__ is not list:
        raise MalformedEvent(f"{name} must be a list")
    for item in value:
        _check_uuid(name, item)


def _check_raw_ip(name: str, value: object) -> None:
    # Spelled as PostgreSQL's host() writes it; any spelling Python can read.
    if value.__class__ is not str:
        raise MalformedEvent(f"{name} must be a string")
    try:
        _address_bytes(value)
    except ValueError as exc:
        raise MalformedEvent(f"{name} {value!r} is not an IP address") from exc


def _check_int32(name: str, value: object) -> None:
    if value.__class__ is not int or not -(2**31) <= value < 2**31:
        raise MalformedEvent(f"{name} must be a 32-bit integer")


def _check_uuid(name: str, value: object) -> None:
    if value.__class__ is not str or not _UUID.fullmatch(value):
        raise MalformedEvent(f"{name} must be a lowercase UUID")


def _check_index(name: str, value: object) -> None:
    # bool is an int in Python but true/false in JSON, hence the exact class.
    if value.__class__ is not int or not 0 <= value <= MAX_INDEX:
        raise MalformedEvent(f"{name} must be an integer in 0..2**53-1")


def _check_time(name: str, value: object) -> None:
    if value.__class__ is not str:
        raise MalformedEvent(f"{name} must be a string")
    parse_time(value)


def _check_token(name: str, value: object) -> None:
    if value.__class__ is not str or len(value) > _MAX_TOKEN:
        raise MalformedEvent(f"{name} must be a short lowercase tag")
    if not _TOKEN.fullmatch(value):
        raise MalformedEvent(f"{name} {value!r} is not a lowercase tag")


def _check_ids(name: str, value: object) -> None:
    if value.__class__ is not list or len(value) > _MAX_IDS:
        raise MalformedEvent(f"{name} must be a list of at most {_MAX_IDS}")
    for item in value:
        _check_text(name, item, _MAX_TOKEN)
        if not item:
            raise MalformedEvent(f"{name} holds an empty identifier")


@functools.lru_cache(maxsize=4096)
def _ip_problem(value: str) -> str | None:
    # Cached: a practice sees the same few addresses over and over.
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "is not an IP address"

    # "::ffff:0:1" and "::FFFF:0.0.0.1" are one address; keep one spelling.
    if address.compressed != value:
        return f"must be written as {address.compressed}"
    return None


def _check_ip(name: str, value: object) -> None:
    if value.__class__ is not str:
        raise MalformedEvent(f"{name} must be a string")
    problem = _ip_problem(value)
    if problem is not None:
        raise MalformedEvent(f"{name} {value!r} {problem}")


_CHECKS: Mapping[_Kind, Callable[[str, object], None]] = {
    "version": _check_version,
    "uuid": _check_uuid,
    "index": _check_index,
    "time": _check_time,
    "token": _check_token,
    "text": _check_text,
    "ids": _check_ids,
    "ip": _check_ip,
    "version2": _check_version2,
    "version3": _check_version3,
    "raw_text": _check_raw_text,
    "raw_ids": _check_raw_ids,
    "raw_ip": _check_raw_ip,
    "int32": _check_int32,
}
_PLAN = tuple(
    (name, _CHECKS[kind], nullable) for name, (kind, nullable) in EVENT_FIELDS.items()
)
_PLAN_V2 = tuple(
    (name, _CHECKS[kind], nullable)
    for name, (kind, nullable) in EVENT_FIELDS_V2.items()
)
_PLAN_V3 = tuple(
    (name, _CHECKS[kind], nullable)
    for name, (kind, nullable) in EVENT_FIELDS_V3.items()
)


def _validate(event: Mapping[str, object]) -> None:
    # The version decides the field set; anything but exactly 2 or 3 is held to
    # the version 1 rules, which refuse it with a clear message.
    version = event.get("v")
    fields, plan = _FIELD_SET, _PLAN
    if version.__class__ is int and version == EVENT_VERSION_V2:
        fields, plan = _FIELD_SET_V2, _PLAN_V2
    elif version.__class__ is int and version == EVENT_VERSION_V3:
        fields, plan = _FIELD_SET_V3, _PLAN_V3
    if event.keys() != fields:
        keys = set(event)
        missing = sorted(fields - keys)
        extra = sorted(keys - fields)
        raise MalformedEvent(f"event fields differ: missing {missing}, extra {extra}")
    for name, check, nullable in plan:
        value = event[name]
        if value is None:
            if not nullable:
                raise MalformedEvent(f"{name} is required")
            continue
        check(name, value)


# One encoder, built once: json.dumps would build a new one per call.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the form of every line Perpetua's audit
    files hold, events and the lines around them alike."""
    return _ENCODER.encode(value).encode("utf-8")


def encode_event(event: Mapping[str, object]) -> bytes:
    """Validate ``event`` and return its canonical bytes (no trailing newline)."""
    _validate(event)
    return canonical_json(event)


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MalformedEvent("event repeats a key")
    return result


def _reject_constant(name: str) -> object:
    raise MalformedEvent(f"{name} is not JSON")


def decode_event(data: bytes) -> AuditEvent:
    """Parse canonical bytes back into an event, refusing any other encoding."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedEvent(f"not a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedEvent("an event is a JSON object")
    _validate(value)

    # Accepting a second spelling of the same event would let two archives with
    # different bytes (and different roots) claim the same history.
    if canonical_json(value) != data:
        raise NonCanonicalEvent("bytes are not the canonical encoding of the event")
    event: AuditEvent = value  # type: ignore[assignment]
    return event


def _compress_ip(value: str) -> str:
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError as exc:
        raise MalformedEvent(f"ip {value!r} is not an IP address") from exc


def make_event(
    *,
    practice_id: str,
    index: int,
    time: datetime,
    actor_kind: str,
    action: str,
    resource_type: str,
    outcome: str,
    actor_id: str | None = None,
    actor_role: str | None = None,
    resource_ids: Sequence[str] = (),
    patient_ids: Sequence[str] = (),
    purpose_of_use: str | None = None,
    reason: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Build a valid event, normalizing text to NFC and the time to UTC."""

    def nfc(value: str | None) -> str | None:
        return None if value is None else unicodedata.normalize("NFC", value)

    event: AuditEvent = {
        "v": EVENT_VERSION,
        "practice_id": practice_id.lower(),
        "index": index,
        "time": format_time(time),
        "actor_kind": actor_kind,
        "actor_id": nfc(actor_id),
        "actor_role": actor_role,
        "action": action,
        "resource_type": resource_type,
        "resource_ids": [unicodedata.normalize("NFC", r) for r in resource_ids],
        "patient_ids": [unicodedata.normalize("NFC", p) for p in patient_ids],
        "purpose_of_use": nfc(purpose_of_use),
        "reason": nfc(reason),
        "ip": None if ip is None else _compress_ip(ip),
        "user_agent": nfc(user_agent),
        "request_id": nfc(request_id),
        "outcome": outcome,
    }
    _validate(event)
    return event


def make_event_v2(
    *,
    event_id: str,
    practice_id: str,
    index: int,
    time: datetime,
    actor_kind: str,
    action: str,
    resource_type: str,
    outcome: str,
    row_count: int,
    actor_id: str | None = None,
    actor_role: str | None = None,
    resource_ids: Sequence[str] = (),
    patient_ids: Sequence[str] = (),
    purpose_of_use: str | None = None,
    reason: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Build a version 2 event from stored values, recording them as they are."""
    event: AuditEvent = {
        "v": EVENT_VERSION_V2,
        "id": event_id,
        "practice_id": practice_id,
        "index": index,
        "time": format_time(time),
        "actor_kind": actor_kind,
        "actor_id": actor_id,
        "actor_role": actor_role,
        "action": action,
        "resource_type": resource_type,
        "resource_ids": list(resource_ids),
        "patient_ids": list(patient_ids),
        "purpose_of_use": purpose_of_use,
        "reason": reason,
        "ip": ip,
        "user_agent": user_agent,
        "request_id": request_id,
        "outcome": outcome,
        "row_count": row_count,
    }
    _validate(event)
    return event


def make_event_v3(**fields: Any) -> AuditEvent:
    """Build a version 3 event from stored values (the arguments of
    ``make_event_v2``), recording them as they are."""
    event = make_event_v2(**fields)
    event["v"] = EVENT_VERSION_V3
    _validate(event)
    return event


# Version 3's binary form is what PostgreSQL's record_send writes for one row of
# these fields, in this order, with these types: a 4-byte field count, then per
# field its type's OID (4 bytes), its length in bytes (4 bytes, -1 for null) and
# its value in the type's binary form. All integers are big-endian and signed.
# Every field is typed and length-prefixed and a null is marked as such, so two
# different events cannot have the same bytes.
_OID_BYTEA = 17
_OID_INT8 = 20
_OID_INT4 = 23
_OID_TEXT = 25
_OID_TIMESTAMPTZ = 1184
_OID_UUID = 2950
_OID_UUID_ARRAY = 2951
_V3_FIELDS = 19

_INT4 = struct.Struct(">i")
_HEAD = struct.Struct(">Ii")
_INT8 = struct.Struct(">q")
# PostgreSQL counts time in microseconds from the start of 2000, UTC.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _uuid_bytes(value: str) -> bytes:
    # Validated as a lowercase hyphenated UUID before it gets here.
    return bytes.fromhex(value.replace("-", ""))


@functools.lru_cache(maxsize=4096)
def _address_bytes(value: str) -> bytes:
    # Cached: a practice sees the same few addresses over and over.
    return ipaddress.ip_address(value).packed


def _text(oid: int, value: str | None) -> bytes:
    if value is None:
        return _HEAD.pack(oid, -1)
    data = value.encode("utf-8")
    return _HEAD.pack(oid, len(data)) + data


def _uuid(value: str | None) -> bytes:
    if value is None:
        return _HEAD.pack(_OID_UUID, -1)
    return _UUID_HEAD + _uuid_bytes(value)


def _uuid_array(ids: Sequence[str]) -> bytes:
    # PostgreSQL's binary array: dimensions, a has-nulls flag, the element type,
    # each dimension's length and lower bound (1), then each element with its
    # length. An empty array has no dimension.
    if not ids:
        body = struct.pack(">iiI", 0, 0, _OID_UUID)
    else:
        body = struct.pack(">iiIii", 1, 0, _OID_UUID, len(ids), 1) + b"".join(
            [b"\x00\x00\x00\x10" + _uuid_bytes(i) for i in ids]
        )
    return _HEAD.pack(_OID_UUID_ARRAY, len(body)) + body


_UUID_HEAD = _HEAD.pack(_OID_UUID, 16)
_VERSION_FIELDS = _INT4.pack(_V3_FIELDS) + _HEAD.pack(_OID_INT4, 4) + _INT4.pack(3)
_INDEX_HEAD = _HEAD.pack(_OID_INT8, 8)
_TIME_HEAD = _HEAD.pack(_OID_TIMESTAMPTZ, 8)
_COUNT_HEAD = _HEAD.pack(_OID_INT4, 4)


def event_bytes_v3(event: Mapping[str, object]) -> bytes:
    """The bytes a version 3 event's Merkle leaf hashes (see the note above)."""
    _validate(event)
    if event["v"] != EVENT_VERSION_V3:
        raise MalformedEvent("only a version 3 event has a binary form")
    return _binary_v3(cast(AuditEvent, event))


def _binary_v3(e: AuditEvent) -> bytes:
    # ``e`` is a validated version 3 event.
    time = parse_time(e["time"])
    ip = e["ip"]
    if ip is None:
        address = _HEAD.pack(_OID_BYTEA, -1)
    else:
        # The address's own bytes: 4 for IPv4, 16 for IPv6 (an IPv4-mapped IPv6
        # address stays 16), without its netmask, as host() shows it.
        packed = _address_bytes(ip)
        address = _HEAD.pack(_OID_BYTEA, len(packed)) + packed
    return b"".join(
        [
            _VERSION_FIELDS,
            _uuid(e["id"]),
            _uuid(e["practice_id"]),
            _INDEX_HEAD + _INT8.pack(e["index"]),
            _TIME_HEAD + _INT8.pack((time - _PG_EPOCH) // _MICROSECOND),
            _text(_OID_TEXT, e["actor_kind"]),
            _uuid(e["actor_id"]),
            _text(_OID_TEXT, e["actor_role"]),
            _text(_OID_TEXT, e["action"]),
            _text(_OID_TEXT, e["resource_type"]),
            _uuid_array(e["resource_ids"]),
            _uuid_array(e["patient_ids"]),
            _text(_OID_TEXT, e["purpose_of_use"]),
            _text(_OID_TEXT, e["reason"]),
            address,
            _text(_OID_TEXT, e["user_agent"]),
            _text(_OID_TEXT, e["request_id"]),
            _text(_OID_TEXT, e["outcome"]),
            _COUNT_HEAD + _INT4.pack(e["row_count"]),
        ]
    )


# In a canonical line the keys are sorted and "v" is the last one.
_V3_SUFFIX = b',"v":3}'

# The exact shape of a canonical version 3 line, field by field: a JSON string
# with only the escapes the encoding writes, lowercase UUIDs, integers without
# leading zeros. A line it matches is canonical, and the bytes between a text
# field's quotes are its UTF-8 value unless they hold an escape. Anything else
# takes the strict decoder, which accepts or names the problem.
# Written as runs of plain characters between escapes ("unrolled"), which the
# regular-expression engine matches a run at a time instead of a character at a
# time; it matches exactly the strings of (plain | escape)*.
_PLAIN = rb'[^"\\\x00-\x1f]*'
_ESCAPE = rb'\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))'
_STR = rb'"(' + _PLAIN + rb"(?:" + _ESCAPE + _PLAIN + rb")*)" + rb'"'
_NSTR = rb"(?:null|" + _STR + rb")"
_UUID_B = rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_IDS = rb'\[((?:"' + _UUID_B + rb'"(?:,"' + _UUID_B + rb'")*)?)\]'
_LINE_V3 = re.compile(
    rb'\{"action":'
    + _STR
    + rb',"actor_id":(?:null|"('
    + _UUID_B
    + rb')")'
    + rb',"actor_kind":'
    + _STR
    + rb',"actor_role":'
    + _NSTR
    + rb',"id":"('
    + _UUID_B
    + rb')"'
    + rb',"index":(0|[1-9][0-9]{0,15})'
    + rb',"ip":(?:null|"([0-9a-fA-F.:]{2,45})")'
    + rb',"outcome":'
    + _STR
    + rb',"patient_ids":'
    + _IDS
    + rb',"practice_id":"('
    + _UUID_B
    + rb')"'
    + rb',"purpose_of_use":'
    + _NSTR
    + rb',"reason":'
    + _NSTR
    + rb',"request_id":'
    + _NSTR
    + rb',"resource_ids":'
    + _IDS
    + rb',"resource_type":'
    + _STR
    + rb',"row_count":(0|-?[1-9][0-9]{0,9})'
    + rb',"time":"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6})Z"'
    + rb',"user_agent":'
    + _NSTR
    + rb',"v":3\}'
)


def _text_field(oid: int, raw: bytes | None) -> bytes:
    if raw is None:
        return _HEAD.pack(oid, -1)
    if b"\\" in raw:
        raw = json.loads(b'"' + raw + b'"').encode("utf-8")
    return _HEAD.pack(oid, len(raw)) + raw


def _ids_field(raw: bytes) -> bytes:
    if not raw:
        return _uuid_array(())
    return _uuid_array(raw.decode("ascii").replace('"', "").split(","))


def _fast_v3(line: bytes) -> bytes | None:
    """The binary form of a canonical version 3 line, without building the
    event; None when the line is not of the exact canonical shape."""
    match = _LINE_V3.fullmatch(line)
    if match is None:
        return None
    (
        action,
        actor_id,
        actor_kind,
        actor_role,
        event_id,
        index,
        ip,
        outcome,
        patients,
        practice,
        purpose,
        reason,
        request,
        resources,
        resource_type,
        row_count,
        time,
        user_agent,
    ) = match.groups()
    index_value, count_value = int(index), int(row_count)
    if index_value > MAX_INDEX or not -(2**31) <= count_value < 2**31:
        return None
    try:
        line.decode("utf-8")
        moment = datetime.fromisoformat(time.decode("ascii")).replace(tzinfo=UTC)
        if ip is None:
            address = _HEAD.pack(_OID_BYTEA, -1)
        else:
            packed = _address_bytes(ip.decode("ascii"))
            address = _HEAD.pack(_OID_BYTEA, len(packed)) + packed
    except ValueError:
        return None
    return b"".join(
        [
            _VERSION_FIELDS,
            _UUID_HEAD + _uuid_bytes(event_id.decode("ascii")),
            _UUID_HEAD + _uuid_bytes(practice.decode("ascii")),
            _INDEX_HEAD + _INT8.pack(index_value),
            _TIME_HEAD + _INT8.pack((moment - _PG_EPOCH) // _MICROSECOND),
            _text_field(_OID_TEXT, actor_kind),
            _uuid(None if actor_id is None else actor_id.decode("ascii")),
            _text_field(_OID_TEXT, actor_role),
            _text_field(_OID_TEXT, action),
            _text_field(_OID_TEXT, resource_type),
            _ids_field(resources),
            _ids_field(patients),
            _text_field(_OID_TEXT, purpose),
            _text_field(_OID_TEXT, reason),
            address,
            _text_field(_OID_TEXT, user_agent),
            _text_field(_OID_TEXT, request),
            _text_field(_OID_TEXT, outcome),
            _COUNT_HEAD + _INT4.pack(count_value),
        ]
    )


def leaf_input(line: bytes) -> bytes:
    """The bytes whose hash is the Merkle leaf of one archive line.

    Versions 1 and 2 hash the line itself; a version 3 line is decoded strictly
    and its binary form hashed. Raises ``MalformedEvent`` for a version 3 line
    that does not decode.
    """
    if line.endswith(_V3_SUFFIX):
        fast = _fast_v3(line)
        if fast is not None:
            return fast
        event = decode_event(line)
        if event["v"] != EVENT_VERSION_V3:
            raise MalformedEvent("only a version 3 event has a binary form")
        return _binary_v3(event)
    return line
