"""Owners hear by email, once, that a new version of the agreement awaits their
signature while the version they signed stays in force; practices that already
signed it, or never signed any, are not written to."""

from __future__ import annotations

import functools
import uuid

from tests.conftest import admin_connection
from tests.functional.contracts.helpers import (
    NEW_VERSION,
    owner_only,
    release_new_version,
    sign_body,
)
from tests.support.world import add_member

from perpetua.contracts.agreements import Library, current
from perpetua.contracts.announcements import KIND, announce_new_version


def announce(client, library: Library | None = None) -> int:
    svc = client.app.state.services
    assert client.portal is not None
    return client.portal.call(
        functools.partial(
            announce_new_version, svc.db, svc.clock, svc.settings.origin, library
        )
    )


def notices(target) -> list[tuple[str, str, str]]:
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select practice_id::text, to_address, body_text from app.mail_outbox "
            "where kind = %s order by practice_id, to_address",
            (KIND,),
        ).fetchall()
    return [(str(p), str(to), str(body)) for p, to, body in rows]


def test_owners_are_told_once_of_a_new_version(client, target):
    signed = owner_only(client, target)
    second_owner = f"owner2-{uuid.uuid4().hex[:8]}@example.test"
    add_member(target, signed.practice_id, "owner", second_owner)
    add_member(
        target, signed.practice_id, "manager", f"m-{uuid.uuid4().hex[:8]}@example.test"
    )
    unsigned = owner_only(client, target)
    early = owner_only(client, target)
    for world in (signed, early):
        made = world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
        assert made.status_code == 201, made.text

    # Nothing is announced while every agreement in force is the current text.
    assert announce(client) == 0
    assert notices(target) == []

    library = release_new_version(client, target)
    newest = library.current()
    adopted = early.api(
        "owner", "POST", "/api/v1/baa/signatures", json=sign_body(newest)
    )
    assert adopted.status_code == 201, adopted.text

    assert announce(client, library) == 1
    assert announce(client, library) == 0

    sent = notices(target)
    assert {practice for practice, _, _ in sent} == {signed.practice_id}
    with admin_connection(target) as conn:
        owners = conn.execute(
            "select u.email from app.memberships m "
            "join app.users u on u.id = m.user_id "
            "where m.practice_id = %s and m.role = 'owner' order by u.email",
            (signed.practice_id,),
        ).fetchall()
    assert [to for _, to, _ in sent] == [str(o[0]) for o in owners]
    assert second_owner in [to for _, to, _ in sent]
    body = sent[0][2]
    assert NEW_VERSION in body
    assert f"({current().version})" in body
    assert body.rstrip().endswith("/agreement")
    assert unsigned.practice_id not in {p for p, _, _ in sent}

    with admin_connection(target) as conn:
        recorded = conn.execute(
            "select practice_id::text, version from app.baa_version_notices"
        ).fetchall()
    assert recorded == [(signed.practice_id, NEW_VERSION)]
