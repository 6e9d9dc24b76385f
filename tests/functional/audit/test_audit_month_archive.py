"""Audit months past seven years leave the database only into encrypted month
archives that prove every event they hold; what stays (the sealed index, the
signed record of the month) keeps the whole log verifiable in the database and
in the practice's export; younger months, unsealed months and unarchived months
are never dropped; a forged archive record and a damaged archive file fail."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from tests.conftest import admin_connection, scratch_dir
from tests.support.world import World, build_world

from perpetua.access.claims import system_claims
from perpetua.audit.db_verify import verify_practice
from perpetua.audit.offline_verify import verify_archive
from perpetua.cli import archive_commands, audit_commands
from perpetua.crypto.keystore import Keystore
from perpetua.db.target import DatabaseTarget
from perpetua.errors import InvalidInput
from perpetua.records.vault import Vault

OLD_MONTH = datetime(2018, 3, 1, tzinfo=UTC)
NEIGHBOUR = "5e4c0a1d-0000-4000-8000-0000000000c3"


def seal(target: DatabaseTarget, keystore: Keystore) -> int:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(
            audit_commands.seal_database, target.conninfo("service"), keystore
        ).result()


def app_keystore(settings) -> Keystore:
    return Vault.open(settings.data_dir).keystore


def old_events(target: DatabaseTarget, practice_id: str, count: int) -> None:
    """Events of March 2018 as the superuser restores them: past retention."""
    # The month's partition belongs to the database owner, as migrations make
    # them; the rows come in as the superuser.
    with psycopg.connect(target.conninfo("owner"), autocommit=True) as conn:
        conn.execute("select audit.ensure_partitions(%s, 1)", (OLD_MONTH.date(),))
    with admin_connection(target) as conn, conn.transaction():
        for n in range(count):
            conn.execute(
                """
                insert into audit.events (
                  practice_id, occurred_at, actor_kind, actor_id, actor_role,
                  action, resource_type, purpose_of_use, request_id, outcome,
                  row_count, reason
                ) values (%s, %s, 'user', %s, 'front_desk', 'view', 'patient',
                  'TREAT', %s, 'success', 1, %s)
                """,
                (
                    practice_id,
                    OLD_MONTH + timedelta(days=2, minutes=n),
                    str(uuid.uuid4()),
                    f"req-2018-{n}",
                    'Checked the "old" referral' if n == 1 else None,
                ),
            )


def owner_as_system(target: DatabaseTarget) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(target.conninfo("owner"), autocommit=True)
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (json.dumps(system_claims("test-archive").as_json()),),
    )
    return conn


def verify(target: DatabaseTarget, keystore: Keystore, practice_id: str):
    with owner_as_system(target) as conn, owner_as_system(target) as reader:
        return verify_practice(conn, keystore, uuid.UUID(practice_id), readers=[reader])


def partition_exists(target: DatabaseTarget, name: str) -> bool:
    with admin_connection(target) as conn:
        row = conn.execute("select to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


def archive(target: DatabaseTarget, keystore: Keystore, out: Path) -> int:
    return archive_commands.archive_database(target.conninfo("owner"), keystore, out)


@pytest.fixture
def aged_world(client, target, settings) -> World:
    world = build_world(client, target)
    patient = world.patient()
    response = world.api("front_desk", "GET", f"/api/v1/patients/{patient['id']}")
    assert response.status_code == 200, response.text
    old_events(target, world.practice_id, 5)
    old_events(target, NEIGHBOUR, 2)
    assert seal(target, app_keystore(settings)) > 7
    return world


def test_month_past_retention_is_archived_proven_and_dropped(
    aged_world, target, settings, capsys
):
    keystore = app_keystore(settings)
    out = scratch_dir("perpetua-audit-months-")
    before = verify(target, keystore, aged_world.practice_id)
    assert before.ok, before.message

    assert archive(target, keystore, out) == 0
    assert "2018-03: 7 events archived in 2 file(s)" in capsys.readouterr().out
    assert not partition_exists(target, "audit.events_2018_03")

    # One encrypted file per practice, each proving its events again on its own.
    files = sorted((out / "2018-03").iterdir())
    assert [f.name for f in files] == sorted(
        f"{p}.audit-month" for p in (aged_world.practice_id, NEIGHBOUR)
    )
    assert b"old referral" not in files[0].read_bytes() + files[1].read_bytes()
    for path in files:
        assert archive_commands.check_file(path, keystore, None) == 0
    assert "each proven in the checkpoint" in capsys.readouterr().out

    # The database still verifies the whole log: the archived events by their
    # stored leaves under the signed record, the rest recomputed.
    after = verify(target, keystore, aged_world.practice_id)
    assert after.ok, after.message
    assert after.sealed_count == before.sealed_count
    assert "5 of them in months moved to archives" in after.message

    # So does the practice's own export, offline, with the archived events in
    # their place by their leaf hash.
    response = aged_world.api("owner", "GET", "/api/v1/audit/archive")
    assert response.status_code == 200, response.text
    path = scratch_dir("perpetua-audit-export-") / "audit.jsonl"
    path.write_bytes(response.content)
    report = verify_archive(path, trusted_key=response.headers["x-audit-verifier-key"])
    assert report.ok, report.message
    assert report.archived_count == 5
    assert b'"archived_leaf":' in response.content

    # Nothing is left to archive on a second run.
    assert archive(target, keystore, out) == 0
    assert "no audit month is older than 7 years" in capsys.readouterr().out


def test_damaged_month_archive_fails_its_check(aged_world, target, settings, capsys):
    keystore = app_keystore(settings)
    out = scratch_dir("perpetua-audit-months-")
    assert archive(target, keystore, out) == 0
    path = out / "2018-03" / f"{aged_world.practice_id}.audit-month"

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert archive_commands.check_file(path, keystore, None) == 1
    assert "FAILED" in capsys.readouterr().err


def test_young_or_unarchived_months_are_never_dropped(aged_world, target, settings):
    keystore = app_keystore(settings)
    this_month = datetime.now(UTC).strftime("audit.events_%Y_%m")

    # The database refuses, whoever calls it: a month inside the seven years...
    with (
        owner_as_system(target) as conn,
        pytest.raises(psycopg.Error, match="kept seven years"),
    ):
        conn.execute(
            "select audit.drop_archived_partition(%s::regclass)", (this_month,)
        )
    # ...and an old month whose events were not archived.
    with (
        owner_as_system(target) as conn,
        pytest.raises(psycopg.Error, match="not archived"),
    ):
        conn.execute(
            "select audit.drop_archived_partition('audit.events_2018_03'::regclass)"
        )
    assert partition_exists(target, "audit.events_2018_03")

    # The command never goes below seven years.
    with pytest.raises(InvalidInput):
        archive_commands.run_archive(
            archive_commands_args(settings, retention_years=6), []
        )

    # A dry run lists the month and changes nothing.
    out = scratch_dir("perpetua-audit-months-")
    code = archive_commands.archive_database(
        target.conninfo("owner"), keystore, out, dry_run=True
    )
    assert code == 0
    assert partition_exists(target, "audit.events_2018_03")
    assert not any(out.iterdir())


def archive_commands_args(settings, **overrides):
    values = {
        "data_dir": str(settings.data_dir),
        "retention_years": 7,
        "to": None,
        "dry_run": False,
        "check": None,
        "key": None,
        "origin_host": "perpetua.example",
    } | overrides
    return argparse.Namespace(**values)


def test_month_with_an_unsealed_event_is_not_archived(
    aged_world, target, settings, capsys
):
    keystore = app_keystore(settings)
    old_events(target, aged_world.practice_id, 1)

    assert archive(target, keystore, scratch_dir("perpetua-audit-months-")) == 1
    assert "not sealed" in capsys.readouterr().err
    assert partition_exists(target, "audit.events_2018_03")


def test_event_deleted_behind_a_forged_archive_record_is_reported(
    aged_world, target, settings
):
    keystore = app_keystore(settings)
    with admin_connection(target) as conn:
        row = conn.execute(
            """
            select s.leaf_index, s.occurred_at, s.event_id from audit.sealed s
            where s.practice_id = %s order by s.leaf_index desc limit 1
            """,
            (aged_world.practice_id,),
        ).fetchone()
        assert row is not None
        index, occurred_at, event_id = row
        with conn.transaction():
            conn.execute("alter table audit.events disable trigger user")
            conn.execute(
                "delete from audit.events where id = %s and occurred_at = %s",
                (event_id, occurred_at),
            )
            conn.execute("alter table audit.events enable trigger user")
            conn.execute(
                """
                insert into audit.archived_months (
                  practice_id, range_from, range_to, events, file_sha256, note,
                  key_version
                ) values (%s, %s, %s, 1, %s, 'forged', 1)
                """,
                (
                    aged_world.practice_id,
                    occurred_at,
                    occurred_at + timedelta(microseconds=1),
                    bytes(32),
                ),
            )

    report = verify(target, keystore, aged_world.practice_id)
    assert not report.ok
    assert report.code == "bad_archive"
    assert report.first_bad_index == index


def test_sealing_keeps_the_coming_months_partitions_ready(target, settings):
    ahead = (datetime.now(UTC).replace(day=1) + timedelta(days=70)).strftime(
        "audit.events_%Y_%m"
    )
    with admin_connection(target) as conn:
        conn.execute(f"drop table {ahead}")
    assert not partition_exists(target, ahead)

    seal(target, app_keystore(settings))

    # Made again, by the database owner, so that it can be archived one day.
    with admin_connection(target) as conn:
        row = conn.execute(
            "select pg_get_userbyid(relowner) = pg_get_userbyid("
            "  (select relowner from pg_class where oid = 'audit.events'::regclass))"
            " from pg_class where oid = to_regclass(%s)",
            (ahead,),
        ).fetchone()
    assert row == (True,)
