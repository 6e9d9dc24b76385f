"""Shared steps of the BAA tests: the signing body, the release of a new version,
one run of the mail delivery job into a folder, the messages it wrote, and a
termination whose export is downloaded and opened as the practice would."""

from __future__ import annotations

import email
import email.policy
import functools
import io
from email.message import EmailMessage
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient
from tests.conftest import admin_connection, scratch_dir
from tests.support.factories import sign_up
from tests.support.world import World, execute_baa

from perpetua.cli import main as cli
from perpetua.contracts.agreements import Agreement, Library, current
from perpetua.contracts.service import Contracts
from perpetua.mail.outbox import DeliveryReport, deliver_due
from perpetua.mail.transport import FolderTransport
from perpetua.records.vault import Vault


def sign_body(agreement: Agreement | None = None, **overrides: Any) -> dict[str, Any]:
    agreement = agreement or current()
    body: dict[str, Any] = {
        "full_name": "Owner Testperson",
        "title": "Practice owner",
        "consent": True,
        "version": agreement.version,
        "document_sha256": agreement.sha256,
    }
    body.update(overrides)
    return body


def owner_only(client: TestClient, target: Any, *, baa: bool = False) -> World:
    """A practice with its owner alone: enough where no other role is involved,
    and much cheaper than a whole world (no further sign-ins)."""
    signed = sign_up(client)
    world = World(client, signed["practice"]["id"])
    world.headers["owner"] = signed["auth"]
    world.user_ids["owner"] = signed["user_id"]
    if baa:
        execute_baa(target, world.practice_id)
    return world


def deliver(
    client: TestClient, folder: Path, *, with_keys: bool = True
) -> DeliveryReport:
    """One run of the `mail.deliver` job on the application's loop."""
    svc = client.app.state.services  # type: ignore[attr-defined]
    keystore = Vault.open(svc.settings.data_dir).keystore if with_keys else None
    assert client.portal is not None
    return client.portal.call(
        functools.partial(
            deliver_due,
            svc.db,
            svc.clock,
            FolderTransport(folder),
            keystore=keystore,
        )
    )


def delivered(folder: Path) -> list[EmailMessage]:
    messages = []
    for path in sorted(folder.glob("*.eml")):
        parsed = email.message_from_bytes(
            path.read_bytes(), policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def pdf_attachments(message: EmailMessage) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        if part.get_content_type() == "application/pdf":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[str(part.get_filename())] = payload
    return found


NEW_VERSION = "2099-01"


def release_new_version(client, target) -> Library:
    """What a release does: a new template file and its recorded digest."""
    folder = scratch_dir("perpetua-baa-texts-")
    shipped = resources.files("perpetua.contracts").joinpath("templates")
    for entry in shipped.iterdir():
        if entry.name.startswith("baa-"):
            (folder / entry.name).write_bytes(entry.read_bytes())
    text = current().text + "\n## Changes in this version\n\nSynthetic clause.\n"
    (folder / f"baa-{NEW_VERSION}.md").write_text(text)
    library = Library(Path(folder))
    with admin_connection(target) as conn:
        conn.execute(
            "insert into app.baa_versions (version, document_sha256, released_at) "
            "values (%s, %s, now())",
            (NEW_VERSION, library.current().sha256),
        )
    running: Contracts = client.app.state.contracts
    client.app.state.contracts = Contracts(
        running.db, running.clock, running.store, running.origin, library
    )
    return library


EXPORT_PASSPHRASE = "correct horse battery staple"


def terminate_and_open(world: World, target: Any, monkeypatch: Any, capsys: Any) -> Any:
    """Terminate as the owner with a passphrase, download the export and open it
    with `perpetua export open`; the response and the opened ZIP's path."""
    with admin_connection(target) as conn:
        name = conn.execute(
            "select name from app.practices where id = %s", (world.practice_id,)
        ).fetchone()[0]
    done = world.api(
        "owner",
        "POST",
        "/api/v1/baa/termination",
        json={"confirmation": name, "passphrase": EXPORT_PASSPHRASE},
    )
    assert done.status_code == 201, done.text
    saved = scratch_dir("perpetua-export-") / "practice.ppex"
    saved.write_bytes(
        world.api("owner", "GET", "/api/v1/baa/termination/export").content
    )
    out = saved.with_name("opened.zip")
    monkeypatch.setattr("sys.stdin", io.StringIO(EXPORT_PASSPHRASE + "\n"))
    assert cli.main(["export", "open", str(saved), "--out", str(out)]) == 0
    capsys.readouterr()
    return done, out
