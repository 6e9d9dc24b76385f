"""Verification renders the log in chunks on several connections at once, with a
cheaper line than the exact one: the cheaper line is byte for byte the exact
line for everything the application writes, a value it cannot reproduce falls
back to the exact line instead of failing, and damage is still named at its
index whichever connection rendered the chunk."""

from __future__ import annotations

import uuid

import pytest
from tests.conftest import admin_connection, scratch_dir
from tests.functional.audit.test_event_v2_in_database import (
    PRACTICE,
    as_attacker,
    insert_events,
    plain_events,
    seal,
    sealed_rows,
    verify_with,
)

from perpetua.audit.db_verify import CHUNK_LINE_V2, EVENT_LINE_V2
from perpetua.audit.sealing import open_keystore
from perpetua.crypto.keystore import Keystore
from perpetua.db.target import DatabaseTarget


@pytest.fixture
def keystore() -> Keystore:
    return open_keystore(scratch_dir("perpetua-audit-chunk-keys-"))


def differing_lines(target: DatabaseTarget) -> int:
    with admin_connection(target) as conn:
        row = conn.execute(
            f"""
            select count(*) filter (where ({CHUNK_LINE_V2}) <> ({EVENT_LINE_V2})),
              count(*)
            from audit.sealed s
            join audit.events e on e.id = s.event_id and e.occurred_at = s.occurred_at
            where s.practice_id = %s
            """,
            (PRACTICE,),
        ).fetchone()
    assert row is not None
    assert row[1] > 0
    return row[0]


def test_cheap_line_is_the_exact_line_for_values_the_application_writes(
    target, keystore
):
    insert_events(
        target,
        [
            {"reason": 'quote " backslash \\ tab \t newline \n bell \x07'},
            {"reason": "Cafe\u0301 ☕ 𝄞 \u2028", "user_agent": "ü" * 400},
            {"client_ip": "2001:db8::1", "actor_role": None, "outcome": "denied"},
            {"resource_ids": [str(uuid.uuid4())], "patient_ids": [str(uuid.uuid4())]},
            {"actor_kind": "system", "purpose_of_use": "BTG", "action": "break_glass"},
            {"resource_type": "appointment", "actor_role": "billing", "reason": ""},
        ],
    )
    assert seal(target, keystore) == 6

    assert differing_lines(target) == 0


def test_value_the_cheap_line_cannot_reproduce_verifies_through_the_exact_line(
    target, keystore, small_chunks
):
    insert_events(target, plain_events(6))
    insert_events(
        target,
        [{"resource_type": 'odd "type" \\', "actor_role": "line\nbreak"}],
    )
    assert seal(target, keystore) == 7
    assert differing_lines(target) == 1

    report = verify_with(target, keystore, 2)
    assert report.ok, report.message
    assert report.sealed_count == 7


def test_log_over_many_chunks_verifies_on_two_connections(
    target, keystore, small_chunks
):
    insert_events(target, plain_events(23))
    assert seal(target, keystore) == 23

    for connections in (1, 2, 3):
        report = verify_with(target, keystore, connections)
        assert report.ok, report.message
        assert report.sealed_count == 23


@pytest.mark.parametrize(
    ("column", "value"),
    [
        # Raw in the cheap line: a forged field that tries to pass for the next
        # fields, and one that splits the chunk's lines with a newline.
        ("resource_type", 'patient","row_count":1'),
        ("actor_role", "front_desk\n"),
        ("request_id", "req-forged"),
    ],
)
def test_damage_in_a_late_chunk_is_named_at_its_index(
    target, keystore, small_chunks, column, value
):
    insert_events(target, plain_events(23))
    assert seal(target, keystore) == 23
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


def test_event_deleted_in_a_chunk_another_connection_renders_is_named(
    target, keystore, small_chunks
):
    insert_events(target, plain_events(23))
    assert seal(target, keystore) == 23
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
