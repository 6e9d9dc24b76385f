"""Version 2 audit events commit to every column of the audit row: the line the
database renders is byte for byte the canonical encoding, a changed row_count or
event id is reported at its index, and a log sealed under version 1 before the
upgrade still verifies, with version 2 events appended after it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from tests.conftest import admin_connection, scratch_dir

from perpetua.access.claims import system_claims
from perpetua.audit.canonical import decode_event, encode_event
from perpetua.audit.checkpoint import Checkpoint, sign_checkpoint
from perpetua.audit.db_verify import verify_practice
from perpetua.audit.merkle import Frontier, leaf_hash
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import (
    Sealer,
    event_from_row,
    event_from_row_v2,
    open_keystore,
    signer_for,
)
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.pool import Database
from perpetua.db.target import DatabaseTarget

PRACTICE = "5e4c0a1d-0000-4000-8000-0000000000a2"
ACTOR = "5e4c0a1d-0000-4000-8000-0000000000b7"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def keystore() -> Keystore:
    return open_keystore(scratch_dir("perpetua-audit-v2-keys-"))


def seal(target: DatabaseTarget, keystore: Keystore, encoding: int = 2) -> int:
    """One sealing pass as the background job runs it, sealing new events under
    ``encoding`` (version 2 here; the job's own default is version 3)."""

    async def once() -> int:
        db = Database(target.conninfo("service"), min_size=1, max_size=1)
        await db.open()
        try:
            return await Sealer(db, keystore=keystore, encoding=encoding).run()
        finally:
            await db.close()

    # A thread of its own: the sealing pass runs its own event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, once()).result()


def verify_with(target: DatabaseTarget, keystore: Keystore, connections: int = 1):
    """`verify_practice` on the owner's connection and `connections - 1` readers."""
    with contextlib.ExitStack() as stack:
        conn, *readers = [
            stack.enter_context(owner_as_system(target)) for _ in range(connections)
        ]
        return verify_practice(conn, keystore, uuid.UUID(PRACTICE), readers=readers)


def owner_as_system(target: DatabaseTarget) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(target.conninfo("owner"), autocommit=True)
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (json.dumps(system_claims("test-v2").as_json()),),
    )
    return conn


def verify(target: DatabaseTarget, keystore: Keystore):
    with owner_as_system(target) as conn:
        return verify_practice(conn, keystore, uuid.UUID(PRACTICE))


def insert_events(target: DatabaseTarget, rows: list[dict[str, object]]) -> None:
    """Events as audit.record writes them, inserted by the cluster's superuser."""
    with admin_connection(target) as conn, conn.transaction():
        for n, row in enumerate(rows):
            values = {
                "practice_id": PRACTICE,
                "occurred_at": START + timedelta(milliseconds=n),
                "actor_kind": "user",
                "actor_id": ACTOR,
                "actor_role": "front_desk",
                "action": "view",
                "resource_type": "patient",
                "resource_ids": [],
                "patient_ids": [],
                "purpose_of_use": "TREAT",
                "reason": None,
                "client_ip": None,
                "user_agent": None,
                "request_id": f"req-{n}",
                "outcome": "success",
                "row_count": 1,
            } | row
            conn.execute(
                f"insert into audit.events ({', '.join(values)}) "
                f"values ({', '.join(['%s'] * len(values))})",
                list(values.values()),
            )


def plain_events(count: int) -> list[dict[str, object]]:
    return [{} for _ in range(count)]


def sealed_rows(target: DatabaseTarget) -> list[dict[str, object]]:
    with owner_as_system(target) as conn:
        cur = conn.cursor(row_factory=dict_row)
        return cur.execute(
            "select s.leaf_index, s.leaf_hash, s.encoding, e.*, "
            "host(e.client_ip) as ip "
            "from audit.sealed s join audit.events e "
            "on e.id = s.event_id and e.occurred_at = s.occurred_at "
            "where s.practice_id = %s order by s.leaf_index",
            (PRACTICE,),
        ).fetchall()


def as_attacker(target: DatabaseTarget, statement: str, params: tuple) -> None:
    with admin_connection(target) as conn, conn.transaction():
        conn.execute("alter table audit.events disable trigger user")
        conn.execute(statement, params)
        conn.execute("alter table audit.events enable trigger user")


def test_database_rendering_is_the_canonical_v2_encoding_for_awkward_values(
    target, keystore
):
    insert_events(
        target,
        [
            {"reason": 'quote " backslash \\ slash / tab \t newline \n bell \x07'},
            {"reason": "Cafe\u0301 décomposé ☕ 𝄞 \u2028", "user_agent": "ü" * 400},
            {"client_ip": "::ffff:192.0.2.1", "actor_role": None},
            {"client_ip": "2001:db8::1", "row_count": 0, "outcome": "denied"},
            {
                "resource_ids": [str(uuid.uuid4()), str(uuid.uuid4())],
                "patient_ids": [str(uuid.uuid4())],
                "row_count": 2147483647,
            },
            {"actor_kind": "system", "purpose_of_use": "BTG", "reason": ""},
        ],
    )
    assert seal(target, keystore) == 6

    rows = sealed_rows(target)
    assert [r["encoding"] for r in rows] == [2] * 6
    for row in rows:
        event = event_from_row_v2(PRACTICE, row["leaf_index"], row)
        data = encode_event(event)
        assert leaf_hash(data) == bytes(row["leaf_hash"]), data
        assert decode_event(data) == event
    # Text is recorded as stored, not normalized: the decomposed accent stays.
    assert event_from_row_v2(PRACTICE, 1, rows[1])["reason"].startswith("Cafe\u0301")

    report = verify(target, keystore)
    assert report.ok, report.message
    assert report.sealed_count == 6


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("row_count", 99),
        ("user_agent", "curl/8.0"),
        ("request_id", "req-forged"),
    ],
)
def test_changed_column_is_reported_at_its_index(target, keystore, column, value):
    insert_events(target, plain_events(5))
    assert seal(target, keystore) == 5
    row = sealed_rows(target)[3]
    as_attacker(
        target,
        f"update audit.events set {column} = %s where id = %s and occurred_at = %s",
        (value, row["id"], row["occurred_at"]),
    )

    report = verify(target, keystore)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 3


def test_changed_event_id_is_reported_at_its_index(target, keystore):
    insert_events(target, plain_events(4))
    assert seal(target, keystore) == 4
    row = sealed_rows(target)[2]
    as_attacker(
        target,
        "update audit.events set id = gen_random_uuid() "
        "where id = %s and occurred_at = %s",
        (row["id"], row["occurred_at"]),
    )

    report = verify(target, keystore)
    assert not report.ok
    assert report.code == "missing_event"
    assert report.first_bad_index == 2


def seal_as_version_1(target: DatabaseTarget, keystore: Keystore) -> int:
    """Seal pending events the way the sealer did before version 2 existed:
    leaves over the version 1 encoding, index rows left at encoding 1."""
    origin = practice_log_origin(PRACTICE)
    signer = signer_for(keystore.current(PRACTICE, DataClass.AUDIT_SIGNING), origin)
    with owner_as_system(target) as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        state = cur.execute(
            "select * from audit_api.seal_begin(%s)", (PRACTICE,)
        ).fetchone()
        rows = cur.execute(
            "select e.*, host(e.client_ip) as ip from audit.events e "
            "where practice_id = %s and not exists "
            "(select 1 from audit.sealed x where x.event_id = e.id) "
            "order by occurred_at, id",
            (PRACTICE,),
        ).fetchall()
        frontier = Frontier.from_bytes(bytes(state["frontier"]))
        for n, row in enumerate(rows):
            index = state["size"] + n
            leaf = leaf_hash(encode_event(event_from_row(PRACTICE, index, row)))
            frontier.append(leaf)
            conn.execute(
                "insert into audit.sealed "
                "(practice_id, leaf_index, event_id, occurred_at, leaf_hash) "
                "values (%s, %s, %s, %s, %s)",
                (PRACTICE, index, row["id"], row["occurred_at"], leaf),
            )
        signed_at = datetime.now(UTC)
        note = sign_checkpoint(
            Checkpoint(origin, frontier.size, frontier.root(), signed_at), signer
        )
        conn.execute(
            "insert into audit.checkpoints "
            "(practice_id, size, root, note, key_version, signed_at) "
            "values (%s, %s, %s, %s, 1, %s)",
            (PRACTICE, frontier.size, frontier.root(), note, signed_at),
        )
        conn.execute(
            "update audit.log_state set size = %s, frontier = %s "
            "where practice_id = %s",
            (frontier.size, frontier.to_bytes(), PRACTICE),
        )
    return len(rows)


def test_log_sealed_under_version_1_still_verifies_and_grows_in_version_2(
    target, keystore
):
    insert_events(target, plain_events(3))
    assert seal_as_version_1(target, keystore) == 3
    later = [
        {"occurred_at": START + timedelta(seconds=10 + n), "request_id": f"v2-{n}"}
        for n in range(4)
    ]
    insert_events(target, later)
    assert seal(target, keystore) == 4

    assert [r["encoding"] for r in sealed_rows(target)] == [1, 1, 1, 2, 2, 2, 2]
    report = verify(target, keystore)
    assert report.ok, report.message
    assert report.sealed_count == 7
    assert report.checkpoint_count == 2


def test_altered_version_1_event_is_still_reported_at_its_index(target, keystore):
    insert_events(target, plain_events(3))
    assert seal_as_version_1(target, keystore) == 3
    row = sealed_rows(target)[1]
    as_attacker(
        target,
        "update audit.events set purpose_of_use = 'HPAYMT' "
        "where id = %s and occurred_at = %s",
        (row["id"], row["occurred_at"]),
    )

    report = verify(target, keystore)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 1


def test_relabelling_a_version_2_leaf_as_version_1_is_caught(target, keystore):
    insert_events(target, plain_events(3))
    assert seal(target, keystore) == 3
    with admin_connection(target) as conn, conn.transaction():
        conn.execute("alter table audit.sealed disable trigger user")
        conn.execute(
            "update audit.sealed set encoding = 1 "
            "where practice_id = %s and leaf_index = 2",
            (PRACTICE,),
        )
        conn.execute("alter table audit.sealed enable trigger user")

    report = verify(target, keystore)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 2
