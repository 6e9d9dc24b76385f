"""Owners and managers read the practice's audit log through the API and the
console: filtered, paged, each event with its inclusion proof status; proofs
served by the API verify with the offline functions and tampered inputs fail;
CSV downloads are recorded as exports and inert in spreadsheets; the patient
access report lists every access. Other roles are refused by the database, and
the refusal is recorded; another practice's events are never visible."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid

import pytest
from tests.conftest import admin_connection
from tests.functional.audit.test_audit_archive_export import app_keystore, seal
from tests.support.console import sign_in_console
from tests.support.world import World, build_world

from perpetua.audit.canonical import leaf_input
from perpetua.audit.checkpoint import NoteVerifier, open_checkpoint
from perpetua.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from perpetua.config import Settings


def _b(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
def world(client, target, settings) -> World:
    return _sealed_world(client, target, settings)


# Only for tests that read the world and assert nothing about what the others do
# to it; every test that counts events or writes takes its own `world`.
@pytest.fixture(scope="module")
def shared_world(module_client, module_target, cluster) -> World:
    settings = Settings(data_dir=cluster.data_dir, host="testserver", port=443)
    return _sealed_world(module_client, module_target, settings)


def _sealed_world(client, target, settings) -> World:
    built = build_world(client, target)
    built.sealed_patient = built.patient(name="Ada Lovelace-Test")
    built.other_patient = built.patient(name="Bo Formula")
    for _ in range(2):
        response = built.api(
            "front_desk",
            "GET",
            f"/api/v1/patients/{built.sealed_patient['id']}",
            headers={"X-Purpose-Of-Use": "TREAT", "X-Access-Reason": "=HYPERLINK(1)"},
        )
        assert response.status_code == 200, response.text
    assert seal(target, app_keystore(settings)) > 0
    return built


def audit_rows(target, practice_id: str, where: str, params: tuple = ()) -> list:
    with admin_connection(target) as conn:
        return conn.execute(
            "select action, outcome, actor_role, patient_ids::text[], row_count "
            "from audit.events where practice_id = %s and resource_type = 'audit_log' "
            f"and {where} order by occurred_at",
            (practice_id, *params),
        ).fetchall()


def test_owner_filters_the_log_by_patient_and_the_read_is_recorded(world, target):
    patient = world.sealed_patient["id"]
    response = world.api(
        "owner", "GET", "/api/v1/audit/events", params={"patient": patient}
    )
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert events, "the front desk's reads must be listed"
    assert all(patient in [p["id"] for p in e["patients"]] for e in events)
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times, reverse=True)
    read = next(e for e in events if e["action"] == "view")
    assert read["actor_role"] == "front_desk"
    assert read["actor_name"] == "Test front_desk"
    assert read["purpose_of_use"] == "TREAT"
    assert read["reason"] == "=HYPERLINK(1)"
    assert read["patients"][0]["name"] == "Ada Lovelace-Test"
    assert read["leaf_index"] is not None

    # Reading the log named the patients it showed, as a PHI read.
    recorded = audit_rows(target, world.practice_id, "action = 'view'")
    assert recorded[-1][:3] == ("view", "success", "owner")
    assert recorded[-1][3] == [patient]
    assert recorded[-1][4] == len(events)

    # Other filters narrow the list.
    member = world.user_ids["front_desk"]
    by_member = world.api(
        "manager",
        "GET",
        "/api/v1/audit/events",
        params={"member": member, "action": "create", "purpose": "HOPERAT"},
    ).json()["events"]
    assert by_member
    assert {e["actor_id"] for e in by_member} == {member}
    assert {e["action"] for e in by_member} == {"create"}
    future = world.api(
        "owner", "GET", "/api/v1/audit/events", params={"from": "2999-01-01"}
    )
    assert future.json() == {"events": [], "next_cursor": None}


def test_pages_follow_the_cursor_without_repeats_or_gaps(world):
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = world.api("owner", "GET", "/api/v1/audit/events", params=params).json()
        seen += [e["id"] for e in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    everything = world.api(
        "owner", "GET", "/api/v1/audit/events", params={"limit": 200}
    ).json()["events"]
    # Each page read adds its own event, newer than anything paged through.
    older = [e["id"] for e in everything if e["id"] in set(seen)]
    assert seen == older
    assert len(seen) == len(set(seen)) >= 5


@pytest.mark.parametrize(
    "params",
    [
        {"patient": "not-a-uuid"},
        {"member": "1234"},
        {"from": "2026-13-40"},
        {"to": "yesterday"},
        {"action": "peek"},
        {"purpose": "CURIOSITY"},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "%%%"},
        {"from": "2026-05-02", "to": "2026-05-01"},
    ],
)
def test_malformed_filters_are_refused_clearly(shared_world, params):
    response = shared_world.api("owner", "GET", "/api/v1/audit/events", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"
    for value in params.values():
        if len(str(value)) > 3:
            assert str(value) not in response.text


def test_front_desk_is_refused_and_the_refusal_is_recorded(world, target):
    event = world.api("owner", "GET", "/api/v1/audit/events").json()["events"][0]
    for path in (
        "/api/v1/audit/events",
        "/api/v1/audit/events.csv",
        f"/api/v1/audit/events/{event['id']}",
        "/api/v1/audit/checkpoints",
        "/api/v1/audit/proofs/inclusion?index=0",
    ):
        response = world.api("front_desk", "GET", path)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"
    denied = audit_rows(
        target,
        world.practice_id,
        "outcome = 'denied' and actor_id = %s",
        (world.user_ids["front_desk"],),
    )
    assert [r[0] for r in denied] == ["view", "export", "view", "view", "view"]

    # The database refuses even when the service is bypassed.
    biller = {
        "actor_kind": "user",
        "sub": world.user_ids["biller"],
        "request_id": "r",
        "practice_id": world.practice_id,
        "practice_role": "biller",
    }
    with admin_connection(target) as conn:
        conn.execute("set role perpetua_service")
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)",
            (json.dumps(biller),),
        )
        rows = conn.execute(
            "select * from audit_api.list_events"
            "('view', null, null, null, null, null, null, null, null, 10)"
        ).fetchall()
        assert rows == []
        conn.execute("reset role")

    # The console says so, and records it too.
    console = sign_in_console(world, "front_desk")
    shown = console.get("/audit")
    assert shown.status_code == 403
    assert "Only owners and managers" in shown.text
    assert 'data-testid="audit-row"' not in shown.text
    assert console.get(f"/audit/events/{event['id']}").status_code == 403


def test_another_practice_never_sees_these_events(world, client, target):
    other = build_world(client, target)
    event = world.api("owner", "GET", "/api/v1/audit/events").json()["events"][0]
    listed = other.api(
        "owner",
        "GET",
        "/api/v1/audit/events",
        params={"patient": world.sealed_patient["id"], "limit": 200},
    ).json()["events"]
    assert listed == []
    everything = other.api(
        "owner", "GET", "/api/v1/audit/events", params={"limit": 200}
    ).json()["events"]
    assert event["id"] not in {e["id"] for e in everything}
    response = other.api("owner", "GET", f"/api/v1/audit/events/{event['id']}")
    assert response.status_code == 404
    report = other.api(
        "owner", "GET", f"/api/v1/patients/{world.sealed_patient['id']}/access-report"
    )
    assert report.status_code == 200
    assert report.json() == []


def test_event_detail_is_proven_and_served_proofs_verify_offline(world, target):
    archive = world.api("owner", "GET", "/api/v1/audit/archive")
    key = archive.headers["x-audit-verifier-key"]
    verifier = NoteVerifier.from_key(key)
    lines = archive.content.split(b"\n")[1:]

    listed = world.api(
        "owner",
        "GET",
        "/api/v1/audit/events",
        params={"patient": world.sealed_patient["id"], "action": "view"},
    ).json()["events"]
    sealed = next(e for e in listed if e["leaf_index"] is not None)
    detail = world.api("owner", "GET", f"/api/v1/audit/events/{sealed['id']}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["event"]["id"] == sealed["id"]
    status = body["proof"]
    assert status["state"] == "proven", status
    proof = status["proof"]
    size = proof["tree_size"]
    assert status["message"] == f"proven in checkpoint of size {size}"
    index = proof["index"]
    assert index == sealed["leaf_index"]

    # The served proof verifies with the offline functions against the signed root,
    # for the very line the archive holds.
    checkpoint = open_checkpoint(proof["checkpoint"]["note"], verifier)
    assert checkpoint.size == size
    leaf = leaf_hash(leaf_input(lines[index]))
    assert leaf == _b(proof["leaf_hash"])
    hashes = [_b(h) for h in proof["hashes"]]
    assert verify_inclusion(index, size, leaf, hashes, checkpoint.root)

    # Tampered inputs fail.
    assert not verify_inclusion(
        index, size, leaf_hash(lines[index] + b" "), hashes, checkpoint.root
    )
    if hashes:
        bent = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]
        assert not verify_inclusion(index, size, leaf, bent, checkpoint.root)
    assert (
        not verify_inclusion((index + 1) % size, size, leaf, hashes, checkpoint.root)
        or size == 1
    )

    # The same proof by index and size.
    by_index = world.api(
        "owner",
        "GET",
        "/api/v1/audit/proofs/inclusion",
        params={"index": index, "tree_size": size},
    )
    assert by_index.status_code == 200, by_index.text
    assert by_index.json() == proof

    # Beyond the log, or at a size no checkpoint has.
    beyond = world.api(
        "owner", "GET", "/api/v1/audit/proofs/inclusion", params={"index": size}
    )
    assert beyond.status_code == 404
    assert "not in the checkpoint" in beyond.json()["detail"]
    no_size = world.api(
        "owner",
        "GET",
        "/api/v1/audit/proofs/inclusion",
        params={"index": 0, "tree_size": size + 1000},
    )
    assert no_size.status_code == 404
    negative = world.api(
        "owner", "GET", "/api/v1/audit/proofs/inclusion", params={"index": -1}
    )
    assert negative.status_code == 422

    # Opening the event was a PHI read naming its patient.
    recorded = audit_rows(target, world.practice_id, "action = 'view'")
    assert recorded[-1][3] == [world.sealed_patient["id"]]


def test_consistency_proof_between_checkpoints_verifies(world, target, settings):
    first = world.api("owner", "GET", "/api/v1/audit/checkpoints").json()
    old = first["checkpoints"][0]
    world.api("front_desk", "GET", f"/api/v1/patients/{world.other_patient['id']}")
    assert seal(target, app_keystore(settings)) > 0
    listed = world.api("owner", "GET", "/api/v1/audit/checkpoints").json()
    new = listed["checkpoints"][0]
    assert new["size"] > old["size"]
    verifier = NoteVerifier.from_key(listed["verifier_key"])

    response = world.api(
        "owner",
        "GET",
        "/api/v1/audit/proofs/consistency",
        params={"old_size": old["size"], "new_size": new["size"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    old_root = open_checkpoint(body["old_checkpoint"]["note"], verifier).root
    new_root = open_checkpoint(body["new_checkpoint"]["note"], verifier).root
    hashes = [_b(h) for h in body["hashes"]]
    assert verify_consistency(old["size"], new["size"], old_root, new_root, hashes)
    assert not verify_consistency(old["size"], new["size"], new_root, old_root, hashes)
    if hashes:
        assert not verify_consistency(
            old["size"], new["size"], old_root, new_root, hashes[:-1]
        )

    backwards = world.api(
        "owner",
        "GET",
        "/api/v1/audit/proofs/consistency",
        params={"old_size": new["size"], "new_size": old["size"]},
    )
    assert backwards.status_code == 422
    missing = world.api(
        "owner",
        "GET",
        "/api/v1/audit/proofs/consistency",
        params={"old_size": old["size"], "new_size": new["size"] + 500},
    )
    assert missing.status_code == 404


def test_unsealed_event_is_reported_as_not_sealed_yet(client, target):
    world = build_world(client, target)
    made = world.patient()
    listed = world.api(
        "owner", "GET", "/api/v1/audit/events", params={"patient": made["id"]}
    ).json()["events"]
    detail = world.api("owner", "GET", f"/api/v1/audit/events/{listed[0]['id']}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["proof"]["state"] == "unsealed"
    assert detail.json()["proof"]["message"] == "not sealed yet"
    missing = world.api("owner", "GET", f"/api/v1/audit/events/{uuid.uuid4()}")
    assert missing.status_code == 404
    malformed = world.api("owner", "GET", "/api/v1/audit/events/12345")
    assert malformed.status_code == 422


def test_csv_export_is_recorded_and_inert_in_spreadsheets(world, target):
    response = world.api(
        "owner",
        "GET",
        "/api/v1/audit/events.csv",
        params={"patient": world.sealed_patient["id"]},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows
    reasons = {r["reason"] for r in rows if r["reason"]}
    assert reasons == {"'=HYPERLINK(1)"}
    assert all(not r[k].startswith(("=", "+", "-", "@")) for r in rows for k in r)
    assert "Ada Lovelace-Test" in {r["patient_names"] for r in rows}

    exports = audit_rows(target, world.practice_id, "action = 'export'")
    assert exports[-1][:3] == ("export", "success", "owner")
    assert exports[-1][3] == [world.sealed_patient["id"]]
    assert exports[-1][4] == len(rows)

    # The console's link downloads the same view, also recorded.
    console = sign_in_console(world, "manager")
    page = console.get(f"/audit?patient={world.sealed_patient['id']}")
    assert page.status_code == 200
    assert 'data-testid="audit-row"' in page.text
    assert "Ada Lovelace-Test" in page.text
    downloaded = console.get(f"/audit/events.csv?patient={world.sealed_patient['id']}")
    assert downloaded.status_code == 200
    assert len(audit_rows(target, world.practice_id, "action = 'export'")) == 2
    bad = console.get("/audit?patient=nope")
    assert bad.status_code == 422
    assert "not a valid identifier" in bad.text


def test_patient_access_report_lists_every_access_with_csv(world, target):
    patient = world.sealed_patient["id"]
    report = world.api("owner", "GET", f"/api/v1/patients/{patient}/access-report")
    assert report.status_code == 200, report.text
    accesses = report.json()
    views = [
        a for a in accesses if a["action"] == "view" and a["purpose_of_use"] == "TREAT"
    ]
    assert len(views) == 2
    assert views[0]["actor_name"] == "Test front_desk"
    assert views[0]["purpose_of_use"] == "TREAT"
    assert views[0]["outcome"] == "success"
    recorded = audit_rows(target, world.practice_id, "action = 'view'")
    assert recorded[-1][3] == [patient]
    assert recorded[-1][4] == len(accesses)

    csv_response = world.api(
        "manager", "GET", f"/api/v1/patients/{patient}/access-report.csv"
    )
    assert csv_response.status_code == 200, csv_response.text
    rows = list(csv.DictReader(io.StringIO(csv_response.text)))
    assert len(rows) == len(accesses) + 1  # the owner's report above is an access
    assert {r["reason"] for r in rows if r["reason"]} == {"'=HYPERLINK(1)"}
    exports = audit_rows(target, world.practice_id, "action = 'export'")
    assert exports[-1][:3] == ("export", "success", "manager")

    refused = world.api(
        "front_desk", "GET", f"/api/v1/patients/{patient}/access-report.csv"
    )
    assert refused.status_code == 403
    denied = audit_rows(
        target,
        world.practice_id,
        "outcome = 'denied' and actor_id = %s",
        (world.user_ids["front_desk"],),
    )
    assert denied
    assert denied[-1][0] == "export"

    console = sign_in_console(world, "owner")
    downloaded = console.get(f"/patients/{patient}/access-report.csv")
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"].startswith("text/csv")
