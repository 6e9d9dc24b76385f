"""Once sealed, the audit log in the database cannot be changed unnoticed: whoever
edits, deletes or slips in an audit row with full database access (the superuser,
append-only triggers switched off) is caught by `perpetua audit verify`, which names
the first diverging index; an untouched log verifies."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from tests.conftest import admin_connection, scratch_dir
from tests.support.world import World, as_owner_role, build_world
from tests.support.world import system_claims as world_system_claims

from perpetua.access.claims import system_claims
from perpetua.audit.canonical import event_bytes_v3
from perpetua.audit.checkpoint import open_checkpoint
from perpetua.audit.db_verify import verify_practice
from perpetua.audit.merkle import leaf_hash
from perpetua.audit.offline_verify import (
    practice_log_origin,
    verify_archive,
    write_archive,
)
from perpetua.audit.sealing import (
    event_from_row_v3,
    open_keystore,
    signer_for,
)
from perpetua.cli import audit_commands
from perpetua.cli.audit_commands import verify_archive_file, verify_database
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.target import DatabaseTarget


def seal_database(conninfo: str, keystore: Keystore) -> int:
    """One sealing pass, as `perpetua audit seal` runs it, in a thread of its own:
    the browser tests' session keeps an event loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(audit_commands.seal_database, conninfo, keystore).result()


@pytest.fixture
def keystore() -> Keystore:
    return open_keystore(scratch_dir("perpetua-audit-keys-"))


def make_activity(world: World, reads: int = 3) -> None:
    """Patients created and read: every step leaves audit events."""
    for _ in range(2):
        patient = world.patient()
        for _ in range(reads):
            response = world.api(
                "front_desk", "GET", f"/api/v1/patients/{patient['id']}"
            )
            assert response.status_code == 200, response.text


def owner_as_system(target: DatabaseTarget) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(target.conninfo("owner"), autocommit=True)
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (json.dumps(system_claims("test-verify").as_json()),),
    )
    return conn


def verify(target: DatabaseTarget, keystore: Keystore, practice_id: str):
    with owner_as_system(target) as conn:
        return verify_practice(conn, keystore, uuid.UUID(practice_id))


def sealed_event(target: DatabaseTarget, practice_id: str, index: int) -> tuple:
    with admin_connection(target) as conn:
        row = conn.execute(
            "select event_id, occurred_at from audit.sealed "
            "where practice_id = %s and leaf_index = %s",
            (practice_id, index),
        ).fetchone()
    assert row is not None
    return row


def as_attacker(target: DatabaseTarget, statement: str, params: tuple) -> None:
    """The superuser, with the append-only triggers off, as full access allows."""
    with admin_connection(target) as conn, conn.transaction():
        conn.execute("alter table audit.events disable trigger user")
        conn.execute(statement, params)
        conn.execute("alter table audit.events enable trigger user")


@pytest.fixture
def sealed_world(client, target, keystore) -> World:
    world = build_world(client, target)
    make_activity(world)
    assert seal_database(target.conninfo("service"), keystore) > 0
    make_activity(world, reads=2)
    assert seal_database(target.conninfo("service"), keystore) > 0
    return world


def test_untouched_log_verifies_and_exits_zero(sealed_world, target, keystore, capsys):
    report = verify(target, keystore, sealed_world.practice_id)
    assert report.ok, report.message
    assert report.sealed_count > 10
    assert report.checkpoint_count == 2
    assert report.pending_count == 0

    assert verify_database(target.conninfo("owner"), keystore) == 0
    assert "ok" in capsys.readouterr().out


def test_sealing_is_idempotent_and_gapless(sealed_world, target, keystore):
    assert seal_database(target.conninfo("service"), keystore) == 0
    with admin_connection(target) as conn:
        indices = [
            row[0]
            for row in conn.execute(
                "select leaf_index from audit.sealed where practice_id = %s "
                "order by leaf_index",
                (sealed_world.practice_id,),
            )
        ]
        events = conn.execute(
            "select count(*) from audit.events where practice_id = %s",
            (sealed_world.practice_id,),
        ).fetchone()
    assert indices == list(range(len(indices)))
    assert events == (len(indices),)


def test_checkpoint_is_a_signed_note_for_the_practice_key(
    sealed_world, target, keystore
):
    with admin_connection(target) as conn:
        note, size, version = conn.execute(
            "select note, size, key_version from audit.checkpoints "
            "where practice_id = %s order by size desc limit 1",
            (sealed_world.practice_id,),
        ).fetchone()
    origin = practice_log_origin(sealed_world.practice_id)
    class_key = keystore.get(sealed_world.practice_id, DataClass.AUDIT_SIGNING, version)
    checkpoint = open_checkpoint(note, signer_for(class_key, origin).verifier)
    assert checkpoint.origin == origin
    assert checkpoint.size == size


def test_altered_event_is_reported_at_its_index(sealed_world, target, keystore, capsys):
    event_id, occurred_at = sealed_event(target, sealed_world.practice_id, 5)
    as_attacker(
        target,
        "update audit.events set purpose_of_use = 'HPAYMT' "
        "where id = %s and occurred_at = %s",
        (event_id, occurred_at),
    )

    report = verify(target, keystore, sealed_world.practice_id)
    assert not report.ok
    assert report.code == "altered_event"
    assert report.first_bad_index == 5

    assert verify_database(target.conninfo("owner"), keystore) == 1
    assert "at index 5" in capsys.readouterr().err


def test_altered_event_with_rewritten_leaf_is_caught_by_the_signed_root(
    sealed_world, target, keystore
):
    with admin_connection(target) as conn:
        first_size = conn.execute(
            "select min(size) from audit.checkpoints where practice_id = %s",
            (sealed_world.practice_id,),
        ).fetchone()[0]
    index = first_size + 1
    event_id, occurred_at = sealed_event(target, sealed_world.practice_id, index)
    as_attacker(
        target,
        "update audit.events set reason = 'nothing to see' "
        "where id = %s and occurred_at = %s",
        (event_id, occurred_at),
    )

    # The attacker recomputes the stored leaf too; only the signature is beyond
    # reach, so the damage is located to the range after the last good checkpoint.
    with owner_as_system(target) as conn:
        cur = conn.cursor(row_factory=dict_row)
        full = cur.execute(
            "select e.*, host(e.client_ip) as ip from audit.events e "
            "where id = %s and occurred_at = %s",
            (event_id, occurred_at),
        ).fetchone()
    leaf = leaf_hash(
        event_bytes_v3(event_from_row_v3(sealed_world.practice_id, index, full))
    )
    with admin_connection(target) as conn, conn.transaction():
        conn.execute("alter table audit.sealed disable trigger user")
        conn.execute(
            "update audit.sealed set leaf_hash = %s "
            "where practice_id = %s and leaf_index = %s",
            (leaf, sealed_world.practice_id, index),
        )
        conn.execute("alter table audit.sealed enable trigger user")

    report = verify(target, keystore, sealed_world.practice_id)
    assert not report.ok
    assert report.code == "root_mismatch"
    assert report.first_bad_index == first_size


def test_deleted_event_is_reported_at_its_index(sealed_world, target, keystore):
    event_id, occurred_at = sealed_event(target, sealed_world.practice_id, 3)
    as_attacker(
        target,
        "delete from audit.events where id = %s and occurred_at = %s",
        (event_id, occurred_at),
    )

    report = verify(target, keystore, sealed_world.practice_id)
    assert not report.ok
    assert report.code == "missing_event"
    assert report.first_bad_index == 3


def test_forged_back_dated_event_is_reported_where_it_would_sit(
    sealed_world, target, keystore
):
    _event_id, first_time = sealed_event(target, sealed_world.practice_id, 0)
    as_attacker(
        target,
        "insert into audit.events (practice_id, occurred_at, actor_kind, actor_id, "
        "action, resource_type, purpose_of_use, request_id, outcome) "
        "values (%s, %s - interval '1 hour', 'user', %s, 'view', 'patient', "
        "'TREAT', 'forged', 'success')",
        (sealed_world.practice_id, first_time, sealed_world.user_ids["biller"]),
    )

    report = verify(target, keystore, sealed_world.practice_id)
    assert not report.ok
    assert report.code == "unsealed_event"
    assert report.first_bad_index == 0


def test_forged_sealed_index_without_checkpoint_is_reported(
    sealed_world, target, keystore
):
    with admin_connection(target) as conn:
        size = conn.execute(
            "select size from audit.log_state where practice_id = %s",
            (sealed_world.practice_id,),
        ).fetchone()[0]
    _event_id, first_time = sealed_event(target, sealed_world.practice_id, 0)
    forged = uuid.uuid4()
    as_attacker(
        target,
        "insert into audit.events (id, practice_id, occurred_at, actor_kind, "
        "actor_id, action, resource_type, purpose_of_use, request_id, outcome) "
        "values (%s, %s, %s, 'user', %s, 'view', 'patient', 'TREAT', 'forged', "
        "'success')",
        (forged, sealed_world.practice_id, first_time, sealed_world.user_ids["biller"]),
    )
    with admin_connection(target) as conn:
        conn.execute(
            "insert into audit.sealed "
            "(practice_id, leaf_index, event_id, occurred_at, leaf_hash) "
            "values (%s, %s, %s, %s, %s)",
            (sealed_world.practice_id, size, forged, first_time, b"\x00" * 32),
        )

    report = verify(target, keystore, sealed_world.practice_id)
    assert not report.ok
    assert report.code in {"altered_event", "uncovered_index"}
    assert report.first_bad_index == size


def test_database_export_verifies_offline(sealed_world, target, keystore, capsys):
    practice_id = sealed_world.practice_id
    origin = practice_log_origin(practice_id)
    with owner_as_system(target) as conn:
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(
            "select s.leaf_index, e.*, host(e.client_ip) as ip "
            "from audit.sealed s join audit.events e "
            "on e.id = s.event_id and e.occurred_at = s.occurred_at "
            "where s.practice_id = %s order by s.leaf_index",
            (practice_id,),
        ).fetchall()
        notes = [
            row[0]
            for row in conn.execute(
                "select note from audit.checkpoints where practice_id = %s "
                "order by size",
                (practice_id,),
            )
        ]
    class_key = keystore.current(practice_id, DataClass.AUDIT_SIGNING)
    vkey = signer_for(class_key, origin).verifier.to_key()
    path = Path(scratch_dir("perpetua-audit-export-")) / "audit.jsonl"
    with path.open("wb") as out:
        write_archive(
            out,
            practice_id=practice_id,
            origin=origin,
            verifier_key=vkey,
            events=[event_from_row_v3(practice_id, r["leaf_index"], r) for r in rows],
            checkpoints=notes,
        )

    report = verify_archive(path, trusted_key=vkey)
    assert report.ok, report.message
    assert report.sealed_count == len(rows)
    assert verify_archive_file(path, vkey) == 0

    # One byte changed in one event line fails the archive.
    data = path.read_bytes().replace(b'"outcome":"success"', b'"outcome":"denied"', 1)
    path.write_bytes(data)
    assert verify_archive_file(path, vkey) == 1
    assert "FAILED" in capsys.readouterr().err


def test_event_committed_late_with_an_earlier_time_is_sealed_not_skipped(
    client, target, keystore
):
    world = build_world(client, target)
    held = as_owner_role(target, world_system_claims(world.practice_id))
    held.execute(
        "insert into audit.events (practice_id, actor_kind, actor_id, action, "
        "resource_type, purpose_of_use, request_id, outcome) "
        "values (%s, 'system', %s, 'view', 'patient', 'TREAT', 'held', 'success')",
        (world.practice_id, str(uuid.UUID(int=0))),
    )

    # Later events commit and are sealed while the earlier one is still open.
    make_activity(world, reads=1)
    before = seal_database(target.conninfo("service"), keystore)
    held.commit()
    held.close()
    assert seal_database(target.conninfo("service"), keystore) == 1

    with admin_connection(target) as conn:
        index = conn.execute(
            "select s.leaf_index from audit.sealed s join audit.events e "
            "on e.id = s.event_id where e.request_id = 'held'"
        ).fetchone()
    assert index == (before,)
    report = verify(target, keystore, world.practice_id)
    assert report.ok, report.message
    assert report.pending_count == 0


def test_service_role_cannot_write_the_sealed_log_directly(sealed_world, target):
    with psycopg.connect(target.conninfo("service"), autocommit=True) as conn:
        for statement in (
            "insert into audit.sealed values "
            "(gen_random_uuid(), 0, gen_random_uuid(), now(), '\\x00')",
            "update audit.log_state set size = 0",
            "delete from audit.checkpoints",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_only_system_claims_may_seal(sealed_world, target):
    with psycopg.connect(target.conninfo("service"), autocommit=True) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)",
            (
                json.dumps(
                    world_system_claims(sealed_world.practice_id)
                    | {
                        "actor_kind": "user",
                        "sub": sealed_world.user_ids["owner"],
                    }
                ),
            ),
        )
        with pytest.raises(psycopg.Error, match="only the system"):
            conn.execute(
                "select * from audit_api.seal_begin(%s)", (sealed_world.practice_id,)
            )


def test_sealed_index_and_checkpoints_refuse_changes_even_from_the_owner(
    sealed_world, target
):
    with owner_as_system(target) as conn:
        for statement in (
            "update audit.sealed set leaf_index = leaf_index + 1",
            "delete from audit.checkpoints",
            "delete from audit.log_state",
        ):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)
