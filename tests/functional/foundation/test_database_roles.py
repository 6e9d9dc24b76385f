"""The owner/service split: the service role can never step around row-level
security, and the claims it sets are the only identity policies see."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from tests.conftest import owner_connection
from tests.support.factories import sign_up

from perpetua.db.migrations import MigrationTampered, discover, pending
from perpetua.db.target import DatabaseTarget, check_service_role


def service_connection(
    target: DatabaseTarget,
) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(target.conninfo("service"))


def test_service_role_is_not_superuser_and_cannot_bypass_rls(target: DatabaseTarget):
    with service_connection(target) as conn:
        row = conn.execute(
            "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb "
            "from pg_roles where rolname = current_user"
        ).fetchone()
    assert row == (False, False, False, False)


def test_service_role_owns_no_table_or_schema(target: DatabaseTarget):
    with service_connection(target) as conn:
        owned = conn.execute(
            "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner "
            "where r.rolname = current_user"
        ).fetchone()
        schemas = conn.execute(
            "select count(*) from pg_namespace n join pg_roles r "
            "on r.oid = n.nspowner where r.rolname = current_user"
        ).fetchone()
    assert owned == (0,)
    assert schemas == (0,)
    check_service_role(target)


def test_every_practice_table_has_forced_row_level_security(target: DatabaseTarget):
    with owner_connection(target) as conn:
        rows = conn.execute(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'app' and c.relkind = 'r'"
        ).fetchall()
    flags = {name: (enabled, forced) for name, enabled, forced in rows}
    assert flags["practices"] == (True, True)
    assert flags["memberships"] == (True, True)
    assert all(enabled for enabled, _ in flags.values())


def test_service_role_cannot_read_sessions_directly(target: DatabaseTarget):
    with (
        service_connection(target) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("select * from app.sessions")


def test_service_role_cannot_set_a_plan(client, target: DatabaseTarget):
    practice = sign_up(client)["practice"]
    claims = {
        "actor_kind": "user",
        "sub": str(uuid.uuid4()),
        "request_id": "t",
        "practice_id": practice["id"],
        "practice_role": "owner",
    }
    with service_connection(target) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "update app.practices set plan = 'standard' where id = %s",
                (practice["id"],),
            )


def _visible_practices(target: DatabaseTarget, claims: str | None) -> int:
    with service_connection(target) as conn:
        if claims is not None:
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        row = conn.execute("select count(*) from app.practices").fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.mark.parametrize(
    "claims",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '{"actor_kind": "user"}',
        '{"actor_kind": "wizard", "sub": "%(sub)s", "request_id": "r"}',
        '{"actor_kind": "user", "sub": "nope", "request_id": "r"}',
        '{"actor_kind": "user", "sub": "%(sub)s", "request_id": "r", '
        '"practice_id": "%(practice)s", "practice_role": "emperor"}',
        '{"actor_kind": "user", "sub": "%(sub)s", "request_id": "r", '
        '"practice_id": "not-a-uuid", "practice_role": "owner"}',
        '{"actor_kind": "user", "sub": "%(sub)s", "practice_id": "%(practice)s", '
        '"practice_role": "owner"}',
    ],
    ids=[
        "missing",
        "empty",
        "not-json",
        "not-object",
        "no-subject",
        "unknown-actor-kind",
        "bad-subject",
        "unknown-role",
        "bad-practice",
        "no-request-id",
    ],
)
def test_missing_or_malformed_claims_see_nothing(client, target, claims):
    practice = sign_up(client)["practice"]
    filled = (
        claims % {"sub": uuid.uuid4(), "practice": practice["id"]} if claims else claims
    )
    assert _visible_practices(target, filled) == 0


def test_valid_claims_see_their_practice_and_no_other(client, target):
    first = sign_up(client)["practice"]
    second = sign_up(client)["practice"]
    claims = json.dumps(
        {
            "actor_kind": "user",
            "sub": str(uuid.uuid4()),
            "request_id": "r",
            "practice_id": first["id"],
            "practice_role": "front_desk",
        }
    )
    with service_connection(target) as conn:
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        ids = {str(r[0]) for r in conn.execute("select id from app.practices")}
    assert ids == {first["id"]}
    assert second["id"] not in ids


def test_migrations_are_recorded_with_their_hashes(target: DatabaseTarget):
    with owner_connection(target) as conn:
        rows = conn.execute(
            "select version, sha256 from perpetua_meta.schema_migrations order by 1"
        ).fetchall()
        assert pending(conn) == []
    assert [(m.version, m.sha256) for m in discover()] == rows


def test_an_edited_released_migration_is_refused(target: DatabaseTarget):
    with owner_connection(target) as conn:
        conn.execute(
            "update perpetua_meta.schema_migrations set sha256 = 'edited' "
            "where version = 1"
        )
        with pytest.raises(MigrationTampered):
            pending(conn)
