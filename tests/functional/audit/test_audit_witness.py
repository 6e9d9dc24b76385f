"""Witnessing the audit log: once a day the owners get the newest signed
checkpoint by email, through the outbox, and (when configured) a copy lands in
an Object Lock bucket; a second run the same day, or a second process, sends
nothing more; owners and managers see the last witnessed checkpoint, other roles
are refused; and a log rewritten after a checkpoint was witnessed is caught by
comparing it with the copy."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import json
import uuid

import boto3
import pytest
from moto import mock_aws
from starlette.requests import Request
from tests.conftest import admin_connection, owner_connection, scratch_dir
from tests.support.world import World, add_member, build_world

from perpetua.access.claims import system_claims
from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    generate_key,
    sign_checkpoint,
)
from perpetua.audit.merkle import root_from_leaf_hashes
from perpetua.audit.offline_verify import practice_log_origin, verify_archive
from perpetua.audit.sealing import signer_for
from perpetua.audit.witness import KIND, Witnesses, WitnessReport
from perpetua.audit.witness_check import check_witnessed, practice_of_note
from perpetua.audit.witness_store import (
    DEFAULT_RETENTION_DAYS,
    WitnessStoreRefused,
    open_witness_store,
)
from perpetua.cli import audit_commands
from perpetua.cli.audit_commands import verify_archive_file
from perpetua.cli.witness_commands import (
    read_note,
    verify_witnessed,
    witness_database,
)
from perpetua.config import Settings
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.pool import Database
from perpetua.errors import ConfigError
from perpetua.records.vault import Vault
from perpetua.web.app import background_jobs
from perpetua.web.console_audit_witness import audit_witness_section
from perpetua.web.context import api_principal


def keystore_of(settings: Settings) -> Keystore:
    return Vault.open(settings.data_dir).keystore


def seal(target, settings: Settings) -> int:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(
            audit_commands.seal_database,
            target.conninfo("service"),
            keystore_of(settings),
        ).result()


def read_patient(world: World, times: int = 1) -> None:
    patient = world.patient()
    for _ in range(times):
        response = world.api("front_desk", "GET", f"/api/v1/patients/{patient['id']}")
        assert response.status_code == 200, response.text


def witness(client, store=None, practice=None) -> WitnessReport:
    svc = client.app.state.services
    witnesses = Witnesses(
        svc.db,
        svc.clock,
        console_origin=svc.settings.origin,
        keystore=keystore_of(svc.settings),
        store=store,
    )
    assert client.portal is not None
    return client.portal.call(functools.partial(witnesses.run, practice))


def mails(target, practice_id: str) -> list[tuple[str, str, str]]:
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select to_address, subject, body_text from app.mail_outbox "
            "where kind = %s and practice_id = %s order by created_at, to_address",
            (KIND, practice_id),
        ).fetchall()
    return [(str(to), str(subject), str(body)) for to, subject, body in rows]


def witnessings(target, practice_id: str) -> list[tuple[str, int, str]]:
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select channel, size, destination from audit.witnessings "
            "where practice_id = %s order by witnessed_at, channel, destination",
            (practice_id,),
        ).fetchall()
    return [(str(c), int(s), str(d)) for c, s, d in rows]


def owners(target, practice_id: str) -> list[str]:
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select u.email from app.memberships m "
            "join app.users u on u.id = m.user_id "
            "where m.practice_id = %s and m.role = 'owner' order by u.email",
            (practice_id,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def newest_checkpoint(target, practice_id: str) -> tuple[int, str]:
    with admin_connection(target) as conn:
        row = conn.execute(
            "select size, note from audit.checkpoints where practice_id = %s "
            "order by size desc limit 1",
            (practice_id,),
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def note_in(body: str) -> str:
    """The signed note between the two dash lines of the email."""
    dashes = "-" * 40 + "\n"
    return body.split(dashes)[1]


def system_owner_conn(target):
    conn = owner_connection(target)
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (json.dumps(system_claims("test-witness-check").as_json()),),
    )
    return conn


@pytest.fixture
def sealed(client, target, settings) -> World:
    world = build_world(client, target)
    read_patient(world, 3)
    assert seal(target, settings) > 0
    return world


def test_owners_get_the_newest_checkpoint_once_a_day_and_it_checks_an_archive(
    sealed, client, target, settings, clock, capsys
):
    practice = sealed.practice_id
    second_owner = f"owner2-{uuid.uuid4().hex[:8]}@example.test"
    add_member(target, practice, "owner", second_owner)
    size, note = newest_checkpoint(target, practice)

    report = witness(client)
    assert (report.emailed, report.failed) == (1, 0)

    # One message per owner (managers and staff get none), all the same body.
    sent = mails(target, practice)
    assert [to for to, _, _ in sent] == owners(target, practice)
    assert second_owner in [to for to, _, _ in sent]
    _, subject, body = sent[0]
    assert clock.now().date().isoformat() in subject
    origin = practice_log_origin(practice)
    key = signer_for(
        keystore_of(settings).current(uuid.UUID(practice), DataClass.AUDIT_SIGNING),
        origin,
    ).verifier.to_key()
    assert note_in(body) == note
    assert origin in body
    assert key in body
    assert f"perpetua audit verify --archive audit-log.jsonl --key '{key}'" in body
    assert f"Events covered: {size}" in body
    assert "Testpatient" not in body  # no PHI: the patients' names stay out

    assert witnessings(target, practice) == [
        ("email", size, address) for address in owners(target, practice)
    ]

    # The emailed checkpoint checks a downloaded archive, offline.
    archive = sealed.api("owner", "GET", "/api/v1/audit/archive")
    assert archive.status_code == 200, archive.text
    path = scratch_dir("perpetua-witness-") / "audit-log.jsonl"
    path.write_bytes(archive.content)
    saved = path.with_name("checkpoint.txt")
    saved.write_text(note_in(body).replace("\n", "\r\n").rstrip("\r\n"))
    assert read_note(saved) == note
    report_ok = verify_archive(path, trusted_key=key, trusted_checkpoints=[note])
    assert report_ok.ok, report_ok.message
    assert verify_archive_file(path, key, [read_note(saved)]) == 0
    assert "archive ok" in capsys.readouterr().out

    # More events are sealed the same day: nothing more is sent until tomorrow.
    read_patient(sealed, 2)
    assert seal(target, settings) > 0
    assert witness(client) == WitnessReport()
    assert len(mails(target, practice)) == 2

    clock.advance(days=1)
    newer_size, newer_note = newest_checkpoint(target, practice)
    assert newer_size > size
    assert witness(client).emailed == 1
    sent = mails(target, practice)
    assert len(sent) == 4
    assert note_in(sent[-1][2]) == newer_note

    # Nothing new sealed: the next day sends nothing either.
    clock.advance(days=1)
    assert witness(client) == WitnessReport()

    # The same pass runs inside `perpetua serve` as a job on the app's clock.
    jobs = [job.name for job in background_jobs(client.app.state.services)]
    assert "audit.witness" in jobs


def test_two_processes_running_the_job_send_one_copy(sealed, client, target, settings):
    svc = client.app.state.services

    async def both() -> list[WitnessReport]:
        pools = [Database(target.conninfo("service"), min_size=1) for _ in range(2)]
        for pool in pools:
            await pool.open()
        try:
            runs = [
                Witnesses(
                    pool,
                    svc.clock,
                    console_origin=svc.settings.origin,
                    keystore=keystore_of(settings),
                ).run()
                for pool in pools
            ]
            return list(await asyncio.gather(*runs))
        finally:
            for pool in pools:
                await pool.close()

    reports = asyncio.run(both())
    assert sorted(r.emailed for r in reports) == [0, 1]
    assert len(mails(target, sealed.practice_id)) == len(
        owners(target, sealed.practice_id)
    )


def test_a_practice_without_owners_is_not_claimed_and_gets_its_copy_later(
    sealed, client, target
):
    practice = sealed.practice_id
    with admin_connection(target) as conn:
        # No path in Perpetua removes the last owner; the database is told to
        # skip its guard triggers for this one statement's sake.
        conn.execute("set session_replication_role = replica")
        removed = conn.execute(
            "delete from app.memberships where practice_id = %s and role = 'owner' "
            "returning practice_id, user_id, role, created_at",
            (practice,),
        ).fetchall()
    assert removed

    report = witness(client)
    assert (report.without_owner, report.emailed) == (1, 0)
    assert mails(target, practice) == []
    assert witnessings(target, practice) == []

    with admin_connection(target) as conn:
        conn.execute("set session_replication_role = replica")
        for row in removed:
            conn.execute(
                "insert into app.memberships (practice_id, user_id, role, created_at) "
                "values (%s, %s, %s, %s)",
                row,
            )
    assert witness(client).emailed == 1
    assert len(mails(target, practice)) == 1


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="witness-locked", ObjectLockEnabledForBucket=True)
        client.create_bucket(Bucket="witness-plain")
        yield client


def store_settings(settings: Settings, url: str, **extra: str) -> Settings:
    return Settings(
        data_dir=settings.data_dir,
        witness_store_url=url,
        witness_s3_region="us-east-1",
        **extra,
    )


def test_checkpoint_is_stored_under_a_compliance_lock(
    sealed, client, target, settings, clock, s3
):
    practice = sealed.practice_id
    store = open_witness_store(store_settings(settings, "s3://witness-locked/site-a"))
    assert store is not None
    size, note = newest_checkpoint(target, practice)

    report = witness(client, store)
    assert (report.emailed, report.stored, report.failed) == (1, 1, 0)
    key = f"site-a/{practice}/checkpoint-{size:020d}.txt"
    assert ("object_store", size, f"s3://witness-locked/{key}") in witnessings(
        target, practice
    )

    head = s3.head_object(Bucket="witness-locked", Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = clock.now() + dt.timedelta(days=DEFAULT_RETENTION_DAYS)
    assert abs(head["ObjectLockRetainUntilDate"] - until) < dt.timedelta(seconds=2)
    stored = s3.get_object(Bucket="witness-locked", Key=key)["Body"].read()
    assert stored.decode("utf-8") == note
    with pytest.raises(s3.exceptions.ClientError):
        s3.delete_object(Bucket="witness-locked", Key=key, VersionId=head["VersionId"])

    # Same day, more sealed: neither channel sends again.
    read_patient(sealed)
    assert seal(target, settings) > 0
    assert witness(client, store) == WitnessReport()
    versions = s3.list_object_versions(Bucket="witness-locked")["Versions"]
    assert len(versions) == 1

    # Owners see both channels; the API documents the endpoint.
    shown = sealed.api("owner", "GET", "/api/v1/audit/witnessed")
    assert shown.status_code == 200, shown.text
    by_channel = {w["channel"]: w for w in shown.json()["witnessed"]}
    assert by_channel["object_store"]["destinations"] == [f"s3://witness-locked/{key}"]
    assert by_channel["object_store"]["size"] == size
    assert by_channel["object_store"]["note"] == note
    assert sorted(by_channel["email"]["destinations"]) == owners(target, practice)
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/audit/witnessed" in schema["paths"]


def test_a_bucket_without_object_lock_is_refused_and_nothing_is_recorded(
    sealed, client, target, settings, s3
):
    store = open_witness_store(store_settings(settings, "s3://witness-plain"))
    assert store is not None
    with pytest.raises(WitnessStoreRefused, match="no Object Lock"):
        witness(client, store)

    # The owners' email does not depend on the bucket; the bucket stays empty
    # and unclaimed, so fixing it lets today's copy through.
    channels = {c for c, _, _ in witnessings(target, sealed.practice_id)}
    assert channels == {"email"}
    assert "Contents" not in s3.list_objects_v2(Bucket="witness-plain")
    with admin_connection(target) as conn:
        claims = conn.execute(
            "select count(*) from audit.witness_claims where channel = 'object_store'"
        ).fetchone()
    assert claims == (0,)


def test_object_store_settings_are_checked():
    base = Settings(data_dir=scratch_dir("perpetua-witness-cfg-"))
    assert open_witness_store(base) is None
    for bad in (
        {"witness_store_url": "witness-bucket"},
        {"witness_store_url": "s3://b", "witness_retention_days": "seven years"},
        {"witness_store_url": "s3://b", "witness_retention_days": "0"},
        {
            "witness_store_url": "s3://b",
            "witness_s3_endpoint_url": "http://minio.example.test:9000",
        },
    ):
        with pytest.raises(ConfigError):
            open_witness_store(Settings(data_dir=base.data_dir, **bad))  # type: ignore[arg-type]
    local = open_witness_store(
        Settings(
            data_dir=base.data_dir,
            witness_store_url="s3://b",
            witness_s3_endpoint_url="http://127.0.0.1:9000",
            witness_s3_region="us-east-1",
            witness_retention_days="30",
        )
    )
    assert local is not None
    assert (local.bucket, local.prefix, local.retention_days) == (
        "b",
        "audit-witness",
        30,
    )


def test_front_desk_is_refused_the_witnessed_checkpoint(sealed, client, target):
    assert witness(client).emailed == 1
    for role in ("owner", "manager"):
        response = sealed.api(role, "GET", "/api/v1/audit/witnessed")
        assert response.status_code == 200, response.text
        assert [w["channel"] for w in response.json()["witnessed"]] == ["email"]
    for role in ("front_desk", "biller", "provider"):
        response = sealed.api(role, "GET", "/api/v1/audit/witnessed")
        assert response.status_code == 403, (role, response.text)
        assert response.json()["code"] == "forbidden"

    # Another practice's owner sees nothing of this one's.
    other = build_world(client, target, baa=False)
    response = other.api("owner", "GET", "/api/v1/audit/witnessed")
    assert response.status_code == 200
    assert response.json() == {"witnessed": []}


def console_request(client, headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "app": client.app,
        "method": "GET",
        "path": "/audit",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
        "scheme": "https",
        "query_string": b"",
        "state": {"request_id": uuid.uuid4().hex},
    }
    return Request(scope)


def test_console_section_names_the_last_witnessed_checkpoint(sealed, client, target):
    async def section(role: str) -> str:
        request = console_request(client, sealed.headers[role])
        principal = await api_principal(request)
        return str(await audit_witness_section(request, principal))

    assert client.portal is not None
    before = client.portal.call(section, "owner")
    assert 'data-testid="audit-witness-none"' in before

    size, _ = newest_checkpoint(target, sealed.practice_id)
    assert witness(client).emailed == 1
    after = client.portal.call(section, "manager")
    assert 'data-testid="audit-witness-email"' in after
    assert f"{size} events" in after
    assert owners(target, sealed.practice_id)[0] in after
    assert client.portal.call(section, "front_desk") == ""


def test_a_log_rewritten_after_witnessing_no_longer_matches_the_copy(
    sealed, client, target, settings
):
    practice = uuid.UUID(sealed.practice_id)
    keystore = keystore_of(settings)
    assert witness(client).emailed == 1
    _, _, body = mails(target, sealed.practice_id)[0]
    witnessed = note_in(body)
    assert practice_of_note(witnessed) == practice
    size, _ = newest_checkpoint(target, sealed.practice_id)

    with system_owner_conn(target) as conn:
        ok = check_witnessed(conn, keystore, practice, witnessed)
    assert ok.ok, ok.message
    assert ok.size == size
    assert verify_witnessed(target.conninfo("owner"), keystore, witnessed) == 0

    # A note from another key, even for this log's origin, proves nothing.
    origin = practice_log_origin(sealed.practice_id)
    forged_key, _ = generate_key(origin)
    forged = sign_checkpoint(
        Checkpoint(origin, size, b"\x01" * 32, None), NoteSigner.from_key(forged_key)
    )
    with system_owner_conn(target) as conn:
        bad = check_witnessed(conn, keystore, practice, forged)
    assert (bad.ok, bad.code) == (False, "bad_witness")

    # Someone with the database and the signing key rewrites the first event's
    # leaf and signs the checkpoint at the witnessed size anew. Every stored
    # checkpoint still verifies on its own; the witnessed copy does not match.
    signer = signer_for(keystore.current(practice, DataClass.AUDIT_SIGNING), origin)
    with admin_connection(target) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "update audit.sealed set leaf_hash = %s "
            "where practice_id = %s and leaf_index = 0",
            (b"\x02" * 32, practice),
        )
        leaves = [
            bytes(r[0])
            for r in conn.execute(
                "select leaf_hash from audit.sealed where practice_id = %s "
                "and leaf_index < %s order by leaf_index",
                (practice, size),
            ).fetchall()
        ]
    with system_owner_conn(target) as conn:
        rewritten_leaf = check_witnessed(conn, keystore, practice, witnessed)
    assert (rewritten_leaf.ok, rewritten_leaf.code) == (False, "root_mismatch")

    resigned = sign_checkpoint(
        Checkpoint(
            origin, size, root_from_leaf_hashes(leaves), dt.datetime.now(dt.UTC)
        ),
        signer,
    )
    with admin_connection(target) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "update audit.checkpoints set root = %s, note = %s "
            "where practice_id = %s and size = %s",
            (root_from_leaf_hashes(leaves), resigned, practice, size),
        )
    with system_owner_conn(target) as conn:
        rewritten = check_witnessed(conn, keystore, practice, witnessed)
        assert check_witnessed(conn, keystore, practice, resigned).ok
    assert (rewritten.ok, rewritten.code) == (False, "checkpoint_differs")
    assert verify_witnessed(target.conninfo("owner"), keystore, witnessed) == 1

    with admin_connection(target) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "delete from audit.checkpoints where practice_id = %s and size = %s",
            (practice, size),
        )
    with system_owner_conn(target) as conn:
        missing = check_witnessed(conn, keystore, practice, witnessed)
    assert (missing.ok, missing.code) == (False, "checkpoint_missing")


def test_witness_command_sends_now_and_delivers(sealed, target, settings):
    practice = uuid.UUID(sealed.practice_id)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        report = pool.submit(
            witness_database,
            target.conninfo("service"),
            keystore_of(settings),
            settings,
            practice,
        ).result()
        assert report.emailed == 1
        again = pool.submit(
            witness_database,
            target.conninfo("service"),
            keystore_of(settings),
            settings,
            practice,
        ).result()
    assert again == WitnessReport()
    with admin_connection(target) as conn:
        statuses = conn.execute(
            "select status from app.mail_outbox where kind = %s and practice_id = %s",
            (KIND, sealed.practice_id),
        ).fetchall()
    assert statuses == [("sent",)] * len(owners(target, sealed.practice_id))
