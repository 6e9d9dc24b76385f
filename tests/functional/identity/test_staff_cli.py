"""`perpetua staff create EMAIL`, run as an operator runs it: it prints a one-time
enrolment link, and the account gets no session that reaches anything until a
second factor is enrolled."""

from __future__ import annotations

import re

from tests.conftest import admin_connection, scratch_dir
from tests.functional.identity.helpers import bearer, enrol_totp, sign_in
from tests.support.factories import STRONG_PASSWORD
from tests.support.server import perpetua

EMAIL = "operator.made@perpetua.example"
LINK = re.compile(r"^(https://\S+)/staff/enrol#([A-Za-z0-9_\-]{40,})$", re.MULTILINE)


def staff_create(target, *args: str):
    """The command against this test's database, given as an external one."""
    return perpetua(
        "staff",
        "create",
        *args,
        data_dir=scratch_dir("perpetua-staff-cli-") / "data",
        env={
            "DATABASE_URL": target.conninfo("owner"),
            "SERVICE_DATABASE_URL": target.conninfo("service"),
            "PERPETUA_PUBLIC_ORIGIN": "https://console.example.test",
        },
    )


def sessions_of(target, email: str) -> list[str]:
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select s.state from app.sessions s join app.users u on u.id = s.user_id "
            "where u.email = %s and s.ended_at is null",
            (email,),
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_staff_create_prints_a_one_time_enrolment_link(target):
    result = staff_create(target, EMAIL, "--name", "Operator Testperson")

    assert result.returncode == 0, result.stderr
    found = LINK.search(result.stdout)
    assert found, result.stdout
    assert found.group(1) == "https://console.example.test"
    with admin_connection(target) as conn:
        row = conn.execute(
            "select kind, full_name from app.users where email = %s", (EMAIL,)
        ).fetchone()
        links = conn.execute(
            "select r.purpose, r.expires_at - r.created_at from app.password_resets r "
            "join app.users u on u.id = r.user_id where u.email = %s",
            (EMAIL,),
        ).fetchall()
    assert row == ("staff", "Operator Testperson")
    assert [(purpose, str(life)) for purpose, life in links] == [
        ("staff_enrolment", "1 day, 0:00:00")
    ]
    # The token is shown to the operator once and kept only as a hash.
    assert found.group(2) not in str(links)


def test_staff_created_on_the_command_line_has_no_session_until_mfa(
    client, target, clock
):
    result = staff_create(target, EMAIL)
    assert result.returncode == 0, result.stderr
    token = LINK.search(result.stdout).group(2)  # type: ignore[union-attr]
    assert sessions_of(target, EMAIL) == []

    # Nobody knows the password the command set.
    assert sign_in(client, EMAIL).status_code == 401
    assert sessions_of(target, EMAIL) == []

    # The link sets a password and opens a session that can only enrol.
    enrolment = client.post(
        "/api/v1/staff/enrolment", json={"token": token, "password": STRONG_PASSWORD}
    )
    assert enrolment.status_code == 201
    assert sessions_of(target, EMAIL) == ["mfa_enrolment"]
    held = bearer(enrolment.json()["token"])
    assert client.get("/api/v1/me", headers=held).status_code == 403

    # With the right password, still nothing without a factor.
    refused = sign_in(client, EMAIL)
    assert refused.status_code == 403
    assert refused.json()["code"] == "staff_mfa_not_enrolled"
    assert sessions_of(target, EMAIL) == ["mfa_enrolment"]

    _, enrolled = enrol_totp(client, held, clock)
    assert sessions_of(target, EMAIL) == ["full"]
    me = client.get("/api/v1/me", headers=bearer(enrolled["token"]))
    assert me.status_code == 200
    assert me.json()["practice_id"] is None


def test_staff_create_refuses_an_address_already_taken(target):
    assert staff_create(target, EMAIL).returncode == 0

    again = staff_create(target, EMAIL.upper())

    assert again.returncode != 0
    assert LINK.search(again.stdout) is None
    assert EMAIL not in again.stderr.lower()
