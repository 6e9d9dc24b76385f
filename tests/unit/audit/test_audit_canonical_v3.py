"""Version 3 events: the leaf hashes a typed, length-prefixed binary form of the
event, rebuilt here from the archive's JSON line. The expected bytes below are
written out from the definition in docs/audit-log.md, not from the encoder."""

import struct
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpetua.audit.canonical import (
    MalformedEvent,
    decode_event,
    encode_event,
    event_bytes_v3,
    leaf_input,
    make_event_v2,
    make_event_v3,
)

EVENT_ID = "7d0c9f5e-3a55-4a8e-9d43-0d1c6f0a4b21"
PRACTICE = "0b6a1a5e-0000-4000-8000-000000000001"
ACTOR = "2c1f7e0a-9b8d-4c3e-8f6a-5d4c3b2a1f0e"
PATIENT = "9f1e2d3c-4b5a-4c6d-8e7f-0a1b2c3d4e5f"


def sample(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "event_id": EVENT_ID,
        "practice_id": PRACTICE,
        "index": 5,
        "time": datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC),
        "actor_kind": "user",
        "actor_id": ACTOR,
        "actor_role": "front_desk",
        "action": "view",
        "resource_type": "patient",
        "outcome": "success",
        "row_count": 1,
        "resource_ids": [PATIENT],
        "patient_ids": [],
        "purpose_of_use": "TREAT",
        "reason": None,
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "request_id": "req-1",
    }
    return fields | overrides


def field(oid: int, data: bytes | None) -> bytes:
    if data is None:
        return struct.pack(">Ii", oid, -1)
    return struct.pack(">Ii", oid, len(data)) + data


def test_binary_form_is_the_documented_record() -> None:
    event = make_event_v3(**sample())
    # Microseconds since 2000-01-01T00:00:00Z.
    micros = datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC) - datetime(
        2000, 1, 1, tzinfo=UTC
    )
    one_id = struct.pack(">iiIii", 1, 0, 2950, 1, 1) + struct.pack(">i", 16)
    expected = b"".join(
        [
            struct.pack(">i", 19),
            field(23, struct.pack(">i", 3)),
            field(2950, uuid.UUID(EVENT_ID).bytes),
            field(2950, uuid.UUID(PRACTICE).bytes),
            field(20, struct.pack(">q", 5)),
            field(1184, struct.pack(">q", micros // timedelta(microseconds=1))),
            field(25, b"user"),
            field(2950, uuid.UUID(ACTOR).bytes),
            field(25, b"front_desk"),
            field(25, b"view"),
            field(25, b"patient"),
            field(2951, one_id + uuid.UUID(PATIENT).bytes),
            field(2951, struct.pack(">iiI", 0, 0, 2950)),
            field(25, b"TREAT"),
            field(25, None),
            field(17, bytes([203, 0, 113, 7])),
            field(25, b"Mozilla/5.0"),
            field(25, b"req-1"),
            field(25, b"success"),
            field(23, struct.pack(">i", 1)),
        ]
    )
    assert event_bytes_v3(event) == expected


def test_archive_line_is_json_and_rebuilds_the_binary_form() -> None:
    event = make_event_v3(**sample())
    line = encode_event(event)
    assert line.startswith(b'{"action":"view",')
    assert line.endswith(b',"v":3}')
    assert decode_event(line) == event
    assert leaf_input(line) == event_bytes_v3(event)


def test_earlier_versions_hash_their_line_itself() -> None:
    line = encode_event(make_event_v2(**sample()))
    assert leaf_input(line) == line


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"reason": None}, {"reason": ""}),
        ({"actor_role": None}, {"actor_role": ""}),
        ({"ip": None}, {"ip": "192.0.2.0"}),
        ({"ip": "192.0.2.1"}, {"ip": "::ffff:192.0.2.1"}),
        ({"resource_ids": [], "patient_ids": [PATIENT]}, {"resource_ids": [PATIENT]}),
        (
            {"user_agent": "ab", "request_id": "c"},
            {"user_agent": "a", "request_id": "bc"},
        ),
        ({"time": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}, {}),
        ({"row_count": -1}, {"row_count": 2**31 - 1}),
    ],
)
def test_different_events_have_different_bytes(
    left: dict[str, object], right: dict[str, object]
) -> None:
    one = event_bytes_v3(make_event_v3(**sample(**left)))
    other = event_bytes_v3(make_event_v3(**sample(**right)))
    assert one != other


@pytest.mark.parametrize(
    "override",
    [
        {"actor_id": "not-a-uuid"},
        {"actor_id": ACTOR.upper()},
        {"ip": "203.0.113.300"},
        {"row_count": 2**31},
        {"resource_ids": ["x"]},
    ],
)
def test_values_the_binary_form_cannot_hold_are_refused(
    override: dict[str, object],
) -> None:
    with pytest.raises(MalformedEvent):
        make_event_v3(**sample(**override))


def test_a_v3_line_that_does_not_decode_has_no_leaf() -> None:
    line = encode_event(make_event_v3(**sample()))
    with pytest.raises(MalformedEvent):
        leaf_input(line.replace(b'"index":5', b'"index":"5"'))
    with pytest.raises(MalformedEvent):
        leaf_input(line.replace(b'"action":"view",', b'"action":"view", '))


texts = st.one_of(st.none(), st.text(max_size=20))


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(texts, texts, texts), b=st.tuples(texts, texts, texts))
def test_text_fields_never_run_into_each_other(
    a: tuple[str | None, ...], b: tuple[str | None, ...]
) -> None:
    def make(values: tuple[str | None, ...]) -> bytes:
        reason, agent, request = values
        return event_bytes_v3(
            make_event_v3(**sample(reason=reason, user_agent=agent, request_id=request))
        )

    try:
        one, other = make(a), make(b)
    except MalformedEvent:
        return  # a lone surrogate has no UTF-8 form
    assert (one == other) == (a == b)


ids = st.lists(st.uuids().map(str), max_size=3)
maybe_text = st.one_of(st.none(), st.text(max_size=30))


@settings(max_examples=300, deadline=None)
@given(
    reason=maybe_text,
    agent=maybe_text,
    role=maybe_text,
    kind=st.text(max_size=12),
    resources=ids,
    patients=ids,
    ip=st.one_of(st.none(), st.ip_addresses().map(str)),
    count=st.integers(-(2**31), 2**31 - 1),
    index=st.integers(0, 2**53 - 1),
    micros=st.integers(0, 10**16),
)
def test_every_line_rebuilds_the_bytes_of_its_event(
    reason, agent, role, kind, resources, patients, ip, count, index, micros
) -> None:
    # leaf_input reads canonical lines by their exact shape; it must give the
    # bytes of the event the strict decoder reads from the same line.
    try:
        event = make_event_v3(
            **sample(
                reason=reason,
                user_agent=agent,
                actor_role=role,
                actor_kind=kind,
                resource_ids=resources,
                patient_ids=patients,
                ip=ip,
                row_count=count,
                index=index,
                time=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros),
            )
        )
    except MalformedEvent:
        return  # a lone surrogate has no UTF-8 form
    line = encode_event(event)
    assert leaf_input(line) == event_bytes_v3(decode_event(line))
    assert leaf_input(line) == event_bytes_v3(event)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"reason":null', b'"reason":"\\u0041"'),
        (b'"reason":null', b'"reason":"\\/"'),
        (b'"reason":null', b'"reason":"\\u001F"'),
        (b'"index":5', b'"index":05'),
        (b'"row_count":1', b'"row_count":-0'),
        (b'"row_count":1', b'"row_count":2147483648'),
        (
            b'"time":"2026-12-03T09:00:00.123456Z"',
            b'"time":"2026-02-30T09:00:00.000000Z"',
        ),
        (b'"ip":"203.0.113.7"', b'"ip":"203.0.113.700"'),
        (b'"patient_ids":[]', b'"patient_ids":[""]'),
        (b'"action":"view"', b'"action":"vi\xffew"'),
    ],
)
def test_a_line_of_another_shape_is_refused(old: bytes, new: bytes) -> None:
    line = encode_event(make_event_v3(**sample()))
    assert old in line
    with pytest.raises(MalformedEvent):
        leaf_input(line.replace(old, new))
