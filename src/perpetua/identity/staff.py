"""Guards Perpetua's own staff accounts: made only by an operator on the command
line, with no practice and therefore no way to any PHI (their claims carry
`actor_kind` 'staff' and no practice), and with no session of any kind until a
second factor is enrolled.

`perpetua staff create` makes the account with an unguessable password nobody
knows and prints a one-time enrolment link (24 hours). The link lets the person
choose a password and opens a session that can do nothing but enrol a second
factor; a password sign-in by a staff account without a factor is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid

import psycopg

from perpetua.access.claims import system_claims
from perpetua.errors import EmailTaken
from perpetua.identity.passwords import hash_password
from perpetua.identity.sessions import token_hash
from perpetua.practices.service import clean_email, clean_name

ENROLMENT_LIFETIME = dt.timedelta(hours=24)


def create_staff(
    conn: psycopg.Connection[tuple[object, ...]],
    email: str,
    full_name: str,
    origin: str,
) -> tuple[uuid.UUID, str]:
    """Create a staff account (as the owner role, in the caller's transaction) and
    return its id and the enrolment link to hand to the person."""
    email = clean_email(email)
    full_name = clean_name(full_name, "name")
    user_id = uuid.uuid4()
    token = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        "select set_config('request.jwt.claims', %s, true)",
        (json.dumps(system_claims("cli-staff-create").as_json()),),
    )
    try:
        conn.execute(
            "insert into app.users (id, email, full_name, password_hash, kind, "
            "created_at) values (%s, %s, %s, %s, 'staff', %s)",
            (user_id, email, full_name, hash_password(secrets.token_urlsafe(32)), now),
        )
    except psycopg.errors.UniqueViolation as exc:
        raise EmailTaken() from exc
    conn.execute(
        "insert into app.password_resets (token_hash, user_id, purpose, created_at, "
        "expires_at) values (%s, %s, 'staff_enrolment', %s, %s)",
        (token_hash(token), user_id, now, now + ENROLMENT_LIFETIME),
    )
    conn.execute(
        "select app.record_security_event(%s, 'staff:account:created', %s, null, "
        "'system', %s, null, null, null, '{}')",
        (now, user_id, uuid.UUID(int=0)),
    )
    return user_id, f"{origin}/staff/enrol#{token}"
