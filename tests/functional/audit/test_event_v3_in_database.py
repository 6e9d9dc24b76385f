"""Version 3 audit events: the leaf hashes the event's binary form, which the
database writes and ``canonical.event_bytes_v3`` rebuilds from the archive line.
The two agree byte for byte on awkward values; every column changed after
sealing, a deleted event and a back-dated insertion are reported at their index,
across chunks rendered on several connections; logs sealed under versions 1 and
2 keep verifying as they grow in version 3; and an exported archive of version 3
lines verifies offline and fails where it was changed."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from psycopg.rows import dict_row
from tests.conftest import admin_connection, scratch_dir
from tests.functional.audit.test_event_v2_in_database import (
    PRACTICE,
    START,
    as_attacker,
    insert_events,
    owner_as_system,
    plain_events,
    seal,
    seal_as_version_1,
    sealed_rows,
    verify_with,
)

from perpetua.audit.canonical import (
    decode_event,
    encode_event,
    event_bytes_v3,
    leaf_input,
)
from perpetua.audit.db_verify import EVENT_BYTES_V3
from perpetua.audit.merkle import leaf_hash
from perpetua.audit.offline_verify import (
    practice_log_origin,
    verify_archive,
    write_archive,
)
from perpetua.audit.sealing import (
    event_from_row_v3,
    event_line,
    open_keystore,
    signer_for,
)
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.target import DatabaseTarget


@pytest.fixture
def keystore() -> Keystore:
    return open_keystore(scratch_dir("perpetua-audit-v3-keys-"))


def seal_v3(target: DatabaseTarget, keystore: Keystore) -> int:
    return seal(target, keystore, encoding=3)


def database_bytes(target: DatabaseTarget) -> list[bytes]:
    """Each sealed event's version 3 bytes as the verifier's query renders them."""
    with admin_connection(target) as conn, conn.transaction():
        conn.execute("set local client_encoding = 'UTF8'")
        rows = conn.execute(
            f"""
            select {EVENT_BYTES_V3}
            from audit.sealed s
            join audit.events e on e.id = s.event_id and e.occurred_at = s.occurred_at
            where s.practice_id = %s
            order by s.leaf_index
            """,
            (PRACTICE,),
            binary=True,
        ).fetchall()
    return [bytes(row[0]) for row in rows]


AWKWARD = [
    {"reason": 'quote " backslash \\ slash / tab \t newline \n bell \x07 nul-free'},
    {"reason": "Cafe\u0301 décomposé ☕ 𝄞 \u2028", "user_agent": "ü" * 400},
    {"client_ip": "::ffff:192.0.2.1", "actor_role": None},
    {"client_ip": "2001:db8::1", "row_count": 0, "outcome": "denied"},
    {"client_ip": "192.0.2.7", "reason": ""},
    {
        "resource_ids": [str(uuid.uuid4()), str(uuid.uuid4())],
        "patient_ids": [str(uuid.uuid4())],
        "row_count": 2147483647,
    },
    {"actor_kind": "system", "purpose_of_use": "BTG", "row_count": -1},
    {"occurred_at": START + timedelta(microseconds=999_999), "request_id": ""},
]


def test_database_bytes_are_the_canonical_v3_encoding_for_awkward_values(
    target, keystore
):
    insert_events(target, AWKWARD)
    assert seal_v3(target, keystore) == len(AWKWARD)

    rows = sealed_rows(target)
    assert [r["encoding"] for r in rows] == [3] * len(AWKWARD)
    rendered = database_bytes(target)
    for row, data in zip(rows, rendered, strict=True):
        event = event_from_row_v3(PRACTICE, row["leaf_index"], row)
        assert event_bytes_v3(event) == data, event
        assert leaf_hash(data) == bytes(row["leaf_hash"])

        # The archive line is JSON; the leaf is rebuilt from its fields.
        line = encode_event(event)
        assert decode_event(line) == event
        assert leaf_input(line) == data

    report = verify_with(target, keystore)
    assert report.ok, report.message
    assert report.sealed_count == len(AWKWARD)


def test_sealer_renders_stored_text_whatever_the_client_encoding(target):
    # Text a LATIN1 client would receive converted, had the function not set
    # the encoding itself.
    insert_events(target, [{"reason": "Müller, été"}])
    with owner_as_system(target) as conn:
        conn.execute("set client_encoding = 'LATIN1'")
        line = conn.execute(
            "select line from audit_api.seal_next_v3(%s, 0, null, null, 10)",
            (PRACTICE,),
            binary=True,
        ).fetchone()
    assert line is not None
    row = sealed_candidate(target)
    assert bytes(line[0]) == event_bytes_v3(event_from_row_v3(PRACTICE, 0, row))
    assert "Müller, été".encode() in bytes(line[0])


def sealed_candidate(target: DatabaseTarget) -> dict[str, object]:
    with admin_connection(target) as conn:
        cur = conn.cursor(row_factory=dict_row)
        row = cur.execute(
            "select e.*, host(e.client_ip) as ip from audit.events e "
            "where practice_id = %s",
            (PRACTICE,),
        ).fetchone()
    assert row is not None
    return row


# Each column of the audit row, changed after sealing, with a value the table's
# constraints accept.
CHANGES = [
    ("actor_kind", "agent"),
    ("actor_id", str(uuid.UUID(int=7))),
    ("actor_role", "billing"),
    ("actor_role", None),
    ("action", "export"),
    ("resource_type", "appointment"),
    ("resource_ids", [str(uuid.UUID(int=8))]),
    ("patient_ids", [str(uuid.UUID(int=9))]),
    ("purpose_of_use", "HPAYMT"),
    ("reason", ""),
    ("reason", "forged"),
    ("client_ip", "203.0.113.9"),
    ("client_ip", "::ffff:203.0.113.7"),
    ("user_agent", "curl/8.0"),
    ("request_id", "req-forged"),
    ("outcome", "denied"),
    ("row_count", 99),
]


def sealed_with_ip(count: int) -> list[dict[str, object]]:
    return [{"client_ip": "203.0.113.7"} for _ in range(count)]


@pytest.mark.parametrize(("column", "value"), CHANGES)
def test_changed_column_is_reported_at_its_index(target, keystore, column, value):
    insert_events(target, sealed_with_ip(5))
    assert seal_v3(target, keystore) == 5
    row = sealed_rows(target)[3]
    as_attacker(
        target,
        f"update audit.events set {column} = %s where id = %s and occurred_at = %s",
        (value, row["id"], row["occurred_at"]),
    )

    report = verify_with(target, keystore)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 3


@pytest.mark.parametrize(("column", "value"), CHANGES)
def test_changed_column_in_a_late_chunk_is_named_on_two_connections(
    target, keystore, small_chunks, column, value
):
    insert_events(target, sealed_with_ip(23))
    assert seal_v3(target, keystore) == 23
    row = sealed_rows(target)[17]
    as_attacker(
        target,
        f"update audit.events set {column} = %s where id = %s and occurred_at = %s",
        (value, row["id"], row["occurred_at"]),
    )

    report = verify_with(target, keystore, 2)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 17


@pytest.mark.parametrize(
    "change",
    [
        "id = gen_random_uuid()",
        "occurred_at = occurred_at + interval '1 microsecond'",
        "practice_id = gen_random_uuid()",
    ],
)
def test_event_moved_away_from_its_index_is_missing(target, keystore, change):
    insert_events(target, plain_events(5))
    assert seal_v3(target, keystore) == 5
    row = sealed_rows(target)[2]
    as_attacker(
        target,
        f"update audit.events set {change} where id = %s and occurred_at = %s",
        (row["id"], row["occurred_at"]),
    )

    report = verify_with(target, keystore, 2)
    assert not report.ok
    assert report.code == "missing_event"
    assert report.first_bad_index == 2


def test_deleted_event_is_named_at_its_index(target, keystore, small_chunks):
    insert_events(target, plain_events(23))
    assert seal_v3(target, keystore) == 23
    row = sealed_rows(target)[9]
    as_attacker(
        target,
        "delete from audit.events where id = %s and occurred_at = %s",
        (row["id"], row["occurred_at"]),
    )

    report = verify_with(target, keystore, 2)
    assert not report.ok
    assert report.code == "missing_event"
    assert report.first_bad_index == 9


def test_back_dated_insertion_is_reported_where_it_would_sit(target, keystore):
    insert_events(target, plain_events(6))
    assert seal_v3(target, keystore) == 6
    with admin_connection(target) as conn:
        conn.execute(
            "update audit.log_state set scan_from = %s where practice_id = %s",
            (START + timedelta(hours=1), PRACTICE),
        )
    insert_events(
        target,
        [{"occurred_at": START + timedelta(milliseconds=3, microseconds=500)}],
    )

    report = verify_with(target, keystore, 2)
    assert not report.ok
    assert report.code == "unsealed_event"
    assert report.first_bad_index == 4


def test_relabelling_a_version_3_leaf_as_version_2_is_caught(target, keystore):
    insert_events(target, plain_events(3))
    assert seal_v3(target, keystore) == 3
    with admin_connection(target) as conn, conn.transaction():
        conn.execute("alter table audit.sealed disable trigger user")
        conn.execute(
            "update audit.sealed set encoding = 2 "
            "where practice_id = %s and leaf_index = 1",
            (PRACTICE,),
        )
        conn.execute("alter table audit.sealed enable trigger user")

    report = verify_with(target, keystore)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 1


def test_logs_sealed_under_versions_1_and_2_grow_in_version_3(
    target, keystore, small_chunks
):
    insert_events(target, plain_events(3))
    assert seal_as_version_1(target, keystore) == 3
    later = [
        {"occurred_at": START + timedelta(seconds=10, milliseconds=n)} for n in range(6)
    ]
    insert_events(target, later)
    assert seal(target, keystore, encoding=2) == 6
    latest = [
        {"occurred_at": START + timedelta(seconds=20, milliseconds=n)} for n in range(9)
    ]
    insert_events(target, latest)
    assert seal_v3(target, keystore) == 9

    encodings = [r["encoding"] for r in sealed_rows(target)]
    assert encodings == [1] * 3 + [2] * 6 + [3] * 9
    for connections in (1, 2):
        report = verify_with(target, keystore, connections)
        assert report.ok, report.message
        assert report.sealed_count == 18


def archive_of(target: DatabaseTarget, keystore: Keystore) -> io.BytesIO:
    """The practice's archive as the export writes it, from the database."""
    origin = practice_log_origin(PRACTICE)
    signer = signer_for(keystore.current(PRACTICE, DataClass.AUDIT_SIGNING), origin)
    rows = sealed_rows(target)
    with owner_as_system(target) as conn:
        notes = [
            r[0]
            for r in conn.execute(
                "select note from audit.checkpoints where practice_id = %s "
                "order by size",
                (PRACTICE,),
            )
        ]
    out = io.BytesIO()
    write_archive(
        out,
        practice_id=PRACTICE,
        origin=origin,
        verifier_key=signer.verifier.to_key(),
        events=[event_line(PRACTICE, r["leaf_index"], r) for r in rows],
        checkpoints=notes,
    )
    out.seek(0)
    return out


def test_archive_of_version_3_events_verifies_offline_and_names_damage(
    target, keystore
):
    insert_events(target, AWKWARD)
    assert seal_v3(target, keystore) == len(AWKWARD)
    archive = archive_of(target, keystore)
    report = verify_archive(archive)
    assert report.ok, report.message
    assert report.sealed_count == len(AWKWARD)

    lines = archive.getvalue().split(b"\n")

    # Another valid event in place of event 2: the signed root disagrees.
    changed = list(lines)
    event = decode_event(lines[3])
    changed[3] = encode_event({**event, "row_count": event["row_count"] + 1})
    report = verify_archive(io.BytesIO(b"\n".join(changed)))
    assert not report.ok
    assert report.code == "root_mismatch"

    # A line that no longer decodes is named exactly.
    damaged = list(lines)
    damaged[4] = damaged[4].replace(b'"actor_kind":"', b'"actor_kind":1,"x":"')
    report = verify_archive(io.BytesIO(b"\n".join(damaged)))
    assert not report.ok
    assert report.code == "bad_event"
    assert report.first_bad_index == 3
