"""Once the practice has its export, an owner can have Perpetua's copy deleted,
through the API or the console: the file is gone, the download answers 404, and
the termination record keeps when and by whom. Nobody else can, it happens once,
and the database lets nothing else of a completed termination change."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from tests.conftest import admin_connection
from tests.functional.contracts.helpers import terminate_and_open
from tests.support.console import post_form, sign_in_console
from tests.support.world import build_world


def _export_file(settings, world, done):
    export_id = done.json()["termination"]["export_id"]
    return settings.data_dir / "exports" / world.practice_id / f"{export_id}.ppex"


def test_an_owner_deletes_the_export_once_and_nobody_else_can(
    client, target, settings, monkeypatch, capsys
):
    world = build_world(client, target)
    done, _opened = terminate_and_open(world, target, monkeypatch, capsys)
    stored = _export_file(settings, world, done)
    assert stored.is_file()

    for role in ("manager", "front_desk", "biller"):
        refused = world.api(role, "DELETE", "/api/v1/baa/termination/export")
        assert refused.status_code == 404, role
        assert refused.json()["code"] == "termination_export_not_found"
    assert stored.is_file()

    deleted = world.api("owner", "DELETE", "/api/v1/baa/termination/export")

    assert deleted.status_code == 204, deleted.text
    assert not stored.exists()
    gone = world.api("owner", "GET", "/api/v1/baa/termination/export")
    assert gone.status_code == 404
    termination = world.api("manager", "GET", "/api/v1/baa").json()["termination"]
    assert termination["export_deleted_at"] is not None
    assert termination["export_sha256"] == done.json()["termination"]["export_sha256"]
    again = world.api("owner", "DELETE", "/api/v1/baa/termination/export")
    assert again.status_code == 404
    with admin_connection(target) as conn:
        by = conn.execute(
            "select export_deleted_by from app.practice_terminations "
            "where practice_id = %s",
            (world.practice_id,),
        ).fetchone()[0]
    assert str(by) == world.user_ids["owner"]


@pytest.mark.parametrize(
    "change",
    [
        "export_deleted_at = null, export_deleted_by = null",
        "export_sha256 = repeat('0', 64)",
        "export_deleted_at = now() - interval '1 day'",
    ],
    ids=["undo-deletion", "other-column", "second-deletion"],
)
def test_the_database_allows_no_other_change(
    client, target, monkeypatch, capsys, change
):
    world = build_world(client, target)
    terminate_and_open(world, target, monkeypatch, capsys)
    assert (
        world.api("owner", "DELETE", "/api/v1/baa/termination/export").status_code
        == 204
    )

    with admin_connection(target) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute(
            f"update app.practice_terminations set {change} where practice_id = %s",
            (world.practice_id,),
        )
    assert refused.value.sqlstate == "42501"


def test_before_deletion_only_the_deletion_may_change(
    client, target, monkeypatch, capsys
):
    world = build_world(client, target)
    terminate_and_open(world, target, monkeypatch, capsys)
    with admin_connection(target) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute(
            "update app.practice_terminations set export_deleted_at = now(), "
            "export_deleted_by = %s, export_bytes = 1 where practice_id = %s",
            (uuid.UUID(world.user_ids["owner"]), world.practice_id),
        )
    assert refused.value.sqlstate == "42501"


def test_the_console_offers_deletion_to_owners_only(
    client, target, settings, monkeypatch, capsys
):
    world = build_world(client, target)
    done, _opened = terminate_and_open(world, target, monkeypatch, capsys)
    stored = _export_file(settings, world, done)

    manager = sign_in_console(world, "manager")
    assert 'data-testid="export-delete-form"' not in manager.get("/agreement").text
    refused = post_form(manager, "/agreement/termination/export/delete", {})
    assert refused.status_code == 404
    assert stored.is_file()

    owner = sign_in_console(world, "owner")
    assert 'data-testid="export-delete-form"' in owner.get("/agreement").text
    posted = post_form(
        owner, "/agreement/termination/export/delete", {}, follow_redirects=False
    )

    assert posted.status_code == 303
    assert not stored.exists()
    status = owner.get("/agreement").text
    assert 'data-testid="export-deleted"' in status
    assert 'data-testid="export-link"' not in status
    assert 'data-testid="export-delete-form"' not in status
