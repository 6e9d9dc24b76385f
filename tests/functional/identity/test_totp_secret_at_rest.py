"""An authenticator app's shared secret is never stored in clear."""

from __future__ import annotations

from tests.conftest import admin_connection
from tests.functional.identity.helpers import enrol_totp
from tests.support.factories import sign_up


def test_totp_secret_is_sealed_in_the_database(client, target, clock):
    owner = sign_up(client)
    app, _confirmed = enrol_totp(client, owner["auth"], clock)
    with admin_connection(target) as conn:
        row = conn.execute(
            "select secret from app.totp_factors where user_id = %s",
            (owner["user_id"],),
        ).fetchone()
    assert row is not None
    assert row[0].startswith("sealed:")
    assert app.secret not in row[0]
