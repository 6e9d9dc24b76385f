"""The executed agreement reaches every owner as a PDF attachment: encrypted in the
outbox (the database refuses anything else), delivered whole by the mail job,
then erased from the outbox. Without the keys the message waits; it is never sent
without the file it promises."""

from __future__ import annotations

import hashlib
import json
import uuid

import psycopg
import pytest
from tests.conftest import admin_connection, scratch_dir
from tests.functional.contracts.helpers import (
    deliver,
    delivered,
    owner_only,
    pdf_attachments,
    sign_body,
)
from tests.support.world import add_member


def _attachments(target, practice_id: str) -> list[tuple]:
    with admin_connection(target) as conn:
        return conn.execute(
            "select a.filename, a.content_type, a.sha256, a.ciphertext, o.to_address "
            "from app.mail_attachments a join app.mail_outbox o on o.id = a.message_id "
            "where a.practice_id = %s order by o.to_address",
            (practice_id,),
        ).fetchall()


def test_every_owner_gets_the_executed_pdf_attached(client, target):
    world = owner_only(client, target)
    second = f"owner2.{uuid.uuid4().hex[:8]}@example.test"
    add_member(target, world.practice_id, "owner", second)
    signed = world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    assert signed.status_code == 201, signed.text
    pdf_sha256 = signed.json()["pdf_sha256"]

    stored = _attachments(target, world.practice_id)
    assert len(stored) == 2
    for filename, content_type, sha256, ciphertext, _to in stored:
        assert filename == f"baa-{signed.json()['version']}.pdf"
        assert content_type == "application/pdf"
        assert sha256 == pdf_sha256
        assert bytes(ciphertext).startswith(b"PPSB")
        assert b"%PDF" not in bytes(ciphertext)
        assert b"Owner Testperson" not in bytes(ciphertext)

    folder = scratch_dir("perpetua-mail-")
    report = deliver(client, folder)

    assert report.sent == 2
    messages = delivered(folder)
    assert {str(m["To"]) for m in messages} == {s[4] for s in stored}
    for message in messages:
        files = pdf_attachments(message)
        assert list(files) == [f"baa-{signed.json()['version']}.pdf"]
        document = next(iter(files.values()))
        assert document.startswith(b"%PDF-")
        assert hashlib.sha256(document).hexdigest() == pdf_sha256
    # Delivered: the ciphertext leaves the outbox like the body does.
    assert all(row[3] is None for row in _attachments(target, world.practice_id))


def test_without_the_keys_the_message_waits_instead_of_going_bare(client, target):
    world = owner_only(client, target)
    world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    folder = scratch_dir("perpetua-mail-")

    report = deliver(client, folder, with_keys=False)

    assert (report.sent, report.retrying) == (0, 1)
    assert delivered(folder) == []
    with admin_connection(target) as conn:
        status, error = conn.execute(
            "select status, last_error from app.mail_outbox where practice_id = %s",
            (world.practice_id,),
        ).fetchone()
    assert (status, error) == ("pending", "AttachmentUnreadable")
    assert _attachments(target, world.practice_id)[0][3] is not None


def test_outbox_refuses_an_attachment_in_plaintext(client, target):
    world = owner_only(client, target)
    world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    with admin_connection(target) as conn:
        message_id = conn.execute(
            "select id from app.mail_outbox where practice_id = %s",
            (world.practice_id,),
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "insert into app.mail_attachments (id, message_id, practice_id, "
                "position, filename, content_type, size_bytes, sha256, wrapped_key, "
                "ciphertext, created_at) values (%s, %s, %s, 1, 'x.pdf', "
                "'application/pdf', 9, %s, '\\x00', %s, now())",
                (
                    uuid.uuid4(),
                    message_id,
                    world.practice_id,
                    "0" * 64,
                    b"%PDF-1.4 plaintext",
                ),
            )


def test_a_member_cannot_attach_to_another_practice(client, target):
    world = owner_only(client, target)
    other = owner_only(client, target)
    other.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    with admin_connection(target) as conn:
        message_id = conn.execute(
            "select id from app.mail_outbox where practice_id = %s",
            (other.practice_id,),
        ).fetchone()[0]
    claims = {
        "actor_kind": "user",
        "sub": world.user_ids["owner"],
        "request_id": "test",
        "practice_id": world.practice_id,
        "practice_role": "owner",
    }
    with psycopg.connect(target.conninfo("service")) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)", (json.dumps(claims),)
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into app.mail_attachments (id, message_id, practice_id, "
                "position, filename, content_type, size_bytes, sha256, wrapped_key, "
                "ciphertext, created_at) values (%s, %s, %s, 1, 'x.pdf', "
                "'application/pdf', 9, %s, '\\x00', 'PPSBxx'::bytea, now())",
                (uuid.uuid4(), message_id, other.practice_id, "0" * 64),
            )
