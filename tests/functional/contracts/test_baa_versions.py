"""A new version of the agreement: owners are asked to sign it, the version they
signed keeps PHI open until they do, and every executed version stays listed with
its own PDF."""

from __future__ import annotations

import hashlib
import shutil
from importlib import resources

from tests.conftest import admin_connection, scratch_dir
from tests.functional.contracts.helpers import (
    NEW_VERSION,
    owner_only,
    release_new_version,
    sign_body,
)
from tests.support.console import sign_in_console

from perpetua.contracts.agreements import Library, current
from perpetua.contracts.service import Contracts


def test_new_version_awaits_signature_while_the_old_one_stays_in_force(client, target):
    world = owner_only(client, target)
    first = world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    assert first.status_code == 201

    library = release_new_version(client, target)
    newest = library.current()
    status = world.api("owner", "GET", "/api/v1/baa").json()
    page = sign_in_console(world, "owner").get("/agreement").text

    assert newest.version == NEW_VERSION
    assert status["current_version"] == NEW_VERSION
    assert status["in_force"] is True
    assert status["current_signed"] is False
    assert status["awaiting_signature"] is True
    assert status["released_versions"] == [current().version, NEW_VERSION]
    assert 'data-testid="baa-new-version"' in page
    assert 'action="/agreement/sign"' in page
    assert world.patient("owner")["id"]

    # The owner who reviewed the old text cannot sign the new one with it.
    stale = world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    assert stale.status_code == 409
    assert stale.json()["code"] == "baa_version_stale"

    second = world.api(
        "owner", "POST", "/api/v1/baa/signatures", json=sign_body(newest)
    )
    assert second.status_code == 201, second.text
    after = world.api("owner", "GET", "/api/v1/baa").json()
    assert after["awaiting_signature"] is False
    assert [s["version"] for s in after["signatures"]] == [
        NEW_VERSION,
        current().version,
    ]
    for signed in (first.json(), second.json()):
        pdf = world.api("owner", "GET", f"/api/v1/baa/signatures/{signed['id']}/pdf")
        assert pdf.status_code == 200
        assert hashlib.sha256(pdf.content).hexdigest() == signed["pdf_sha256"]
    with admin_connection(target) as conn:
        executions = conn.execute(
            "select version, terminated_at from app.baa_executions "
            "where practice_id = %s order by executed_at",
            (world.practice_id,),
        ).fetchall()
    assert executions == [(current().version, None), (NEW_VERSION, None)]


def test_a_text_that_was_never_recorded_cannot_be_signed(client, target):
    world = owner_only(client, target)
    folder = scratch_dir("perpetua-baa-texts-")
    shutil.copy(
        str(resources.files("perpetua.contracts").joinpath("templates")
            .joinpath(f"baa-{current().version}.md")),
        folder / f"baa-{current().version}.md",
    )  # fmt: skip
    (folder / "baa-2099-02.md").write_text("# Unreleased text\n\nNot recorded.\n")
    assert world.api("owner", "GET", "/api/v1/baa").status_code == 200
    running: Contracts = client.app.state.contracts
    client.app.state.contracts = Contracts(
        running.db, running.clock, running.store, running.origin, Library(folder)
    )

    refused = world.api(
        "owner",
        "POST",
        "/api/v1/baa/signatures",
        json=sign_body(Library(folder).current()),
    )

    # The database names no such (version, digest) pair: nothing is signed.
    assert refused.status_code in (403, 409), refused.text
    assert world.api("owner", "GET", "/api/v1/baa").json()["signatures"] == []
