"""Specification of the canonical event encoding that Merkle leaves commit to."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpetua.audit.canonical import (
    AuditEvent,
    MalformedEvent,
    NonCanonicalEvent,
    decode_event,
    encode_event,
    format_time,
    make_event,
)

PRACTICE = "0b6a1a5e-0000-4000-8000-000000000001"


def sample(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "practice_id": PRACTICE,
        "index": 7,
        "time": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "actor_kind": "user",
        "actor_id": "u-1",
        "actor_role": "front_desk",
        "action": "patient:read",
        "resource_type": "patient",
        "resource_ids": ["p-9"],
        "patient_ids": ["p-9"],
        "purpose_of_use": "TREAT",
        "reason": "Checking the appointment",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "request_id": "req-1",
        "outcome": "success",
    }
    fields.update(overrides)
    return make_event(**fields)  # type: ignore[arg-type]


def test_encoding_is_sorted_compact_utf8_json() -> None:
    data = encode_event(sample(reason="Café ☕"))
    assert data.startswith(b'{"action":"patient:read","actor_id":"u-1"')
    assert b'", "' not in data
    assert b'": ' not in data
    assert "Café ☕".encode() in data
    parsed = json.loads(data)
    assert list(parsed) == sorted(parsed)


def test_encoding_round_trips_byte_for_byte() -> None:
    event = sample()
    data = encode_event(event)
    assert decode_event(data) == event
    assert encode_event(decode_event(data)) == data


def test_control_characters_use_the_jcs_escapes() -> None:
    data = encode_event(sample(reason='a\nb\tc\x01d\x7fe"f\\g'))
    assert b'"a\\nb\\tc\\u0001d\x7fe\\"f\\\\g"' in data


def test_time_is_utc_with_six_fractional_digits() -> None:
    eastern = timezone(timedelta(hours=-5))
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=eastern)
    assert format_time(moment) == "2024-01-02T08:04:05.000000Z"
    with pytest.raises(MalformedEvent):
        format_time(datetime(2024, 1, 2))


def test_text_is_normalized_to_nfc_when_an_event_is_made() -> None:
    decomposed = "Cafe\u0301"
    assert sample(reason=decomposed)["reason"] == "Caf\u00e9"


def test_text_that_is_not_nfc_is_refused_on_decode() -> None:
    data = encode_event(sample(reason="Caf\u00e9")).replace(
        "Caf\u00e9".encode(), "Cafe\u0301".encode()
    )
    with pytest.raises(MalformedEvent):
        decode_event(data)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b'"index":7', b'"index":7.0'),
        lambda d: d.replace(b'"index":7', b'"index":07'),
        lambda d: d.replace(b'"index":7', b'"index":true'),
        lambda d: d.replace(b'{"action"', b'{ "action"'),
        lambda d: d.replace(b'"outcome":"success"', b'"outcome":"success","x":1'),
        lambda d: d.replace(b',"outcome":"success"', b""),
        lambda d: d.replace(b"u-1", b"u\\u002d1"),
        lambda d: d.replace(b'"action":"patient:read",', b""),
        lambda d: d.replace(b'"ip":"203.0.113.7"', b'"ip":"203.000.113.7"'),
        lambda d: d.replace(
            b'"time":"2024-05-01T12:00:00.000000Z"', b'"time":"2024-05-01T12:00:00Z"'
        ),
        lambda d: d + b"\n",
        lambda d: d.replace(b'"patient_ids":["p-9"]', b'"patient_ids":"p-9"'),
        lambda d: d.replace(b'"practice_id":"0b6a', b'"practice_id":"0B6A'),
    ],
)
def test_any_other_spelling_of_an_event_is_refused(
    mutate: Callable[[bytes], bytes],
) -> None:
    data = encode_event(sample())
    mutated = mutate(data)
    assert mutated != data
    with pytest.raises(MalformedEvent):
        decode_event(mutated)


def test_duplicate_keys_are_refused() -> None:
    data = encode_event(sample()).replace(b'"v":1}', b'"v":1,"v":1}')
    with pytest.raises(MalformedEvent):
        decode_event(data)


def test_reordered_keys_are_non_canonical() -> None:
    event = dict(sample())
    shuffled = json.dumps(
        dict(reversed(list(event.items()))), separators=(",", ":"), ensure_ascii=False
    ).encode()
    with pytest.raises(NonCanonicalEvent):
        decode_event(shuffled)


@pytest.mark.parametrize(
    "override",
    [
        {"index": -1},
        {"index": 2**53},
        {"action": "Patient Read"},
        {"outcome": ""},
        {"ip": "not-an-ip"},
        {"practice_id": "not-a-uuid"},
        {"reason": "x" * 5000},
        {"patient_ids": [""]},
    ],
)
def test_invalid_values_are_refused(override: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        encode_event({**encode_ready(), **override})


def encode_ready() -> dict[str, object]:
    return dict(sample())


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(MalformedEvent):
        encode_event({**encode_ready(), "reason": "\ud800"})


def test_ipv6_addresses_are_kept_in_compressed_form() -> None:
    assert sample(ip="2001:DB8:0:0:0:0:0:1")["ip"] == "2001:db8::1"


@settings(max_examples=200, deadline=None)
@given(
    reason=st.one_of(st.none(), st.text(max_size=200)),
    ids=st.lists(st.text(min_size=1, max_size=30), max_size=5),
    index=st.integers(0, 2**53 - 1),
)
def test_any_valid_event_round_trips_through_its_encoding(
    reason: str | None, ids: list[str], index: int
) -> None:
    try:
        event = sample(reason=reason, patient_ids=ids, index=index)
    except MalformedEvent:
        return  # surrogates cannot be stored; refusing them is the specified outcome
    data = encode_event(event)
    assert decode_event(data) == event
    assert b"\n" not in data
