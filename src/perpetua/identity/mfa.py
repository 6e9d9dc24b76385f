"""Guards the second factor: enrolment and use of authenticator-app codes (TOTP),
security keys and passkeys (WebAuthn), and single-use recovery codes.

The pure checks live in `totp.py`, `webauthn_ceremony.py` and `recovery_codes.py`;
this module stores what they return, under the user's own row-level policy, and
closes the races they leave to the caller: a TOTP step and a recovery code are
spent with conditional updates, so two requests carrying the same code cannot both
succeed. Every use and every failure is throttled per account and recorded in the
security history.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from anyio import to_thread

from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.errors import InvalidInput, NotFound
from perpetua.identity import history, recovery_codes, secret_box, throttle, totp
from perpetua.identity import webauthn_ceremony as ceremony
from perpetua.identity.errors import (
    RecoveryCodeInvalid,
    RecoveryCodeMalformed,
    TooManyAttempts,
    TotpCodeInvalid,
    TotpCodeReplayed,
    WebAuthnVerificationFailed,
)


@dataclass(frozen=True)
class RelyingParty:
    """Who security keys are registered with: the console's own origin."""

    id: str
    name: str
    origin: str

    @classmethod
    def for_origin(cls, origin: str) -> RelyingParty:
        host = urlsplit(origin).hostname or "localhost"
        return cls(id=host, name="Perpetua", origin=origin)


@dataclass(frozen=True)
class SecurityKey:
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class Factors:
    totp: bool
    keys: list[SecurityKey] = field(default_factory=list)
    recovery_codes_left: int = 0

    @property
    def enrolled(self) -> bool:
        return self.totp or bool(self.keys)

    @property
    def count(self) -> int:
        return int(self.totp) + len(self.keys)


async def factors(conn: Conn, user_id: uuid.UUID) -> Factors:
    cur = await conn.execute(
        "select exists (select 1 from app.totp_factors where user_id = %s "
        "and confirmed_at is not null) as totp, "
        "(select count(*) from app.recovery_codes where user_id = %s "
        "and used_at is null) as codes",
        (user_id, user_id),
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "select id, name, created_at, last_used_at from app.webauthn_credentials "
        "where user_id = %s order by created_at",
        (user_id,),
    )
    keys = [SecurityKey(**r) for r in await cur.fetchall()]
    return Factors(
        totp=bool(row["totp"]), keys=keys, recovery_codes_left=int(row["codes"])
    )


async def has_second_factor(conn: Conn, user_id: uuid.UUID) -> bool:
    """Whether the user has a confirmed authenticator app or a security key:
    the same test the database applies when it decides a session's state."""
    cur = await conn.execute("select app.has_second_factor(%s) as f", (user_id,))
    row = await cur.fetchone()
    return bool(row and row["f"])


# Authenticator app


async def start_totp(conn: Conn, user_id: uuid.UUID, now: dt.datetime) -> str:
    """A new secret, kept unconfirmed until the first code proves the app has it."""
    cur = await conn.execute(
        "select confirmed_at from app.totp_factors where user_id = %s", (user_id,)
    )
    row = await cur.fetchone()
    if row and row["confirmed_at"]:
        raise InvalidInput("an authenticator app is already set up; remove it first")
    secret = totp.new_secret()
    await conn.execute(
        "insert into app.totp_factors (user_id, secret, created_at) values "
        "(%s, %s, %s) on conflict (user_id) do update "
        "set secret = excluded.secret, created_at = excluded.created_at",
        (user_id, secret_box.seal_totp_secret(user_id, secret), now),
    )
    return secret


async def pending_totp_secret(conn: Conn, user_id: uuid.UUID) -> str | None:
    cur = await conn.execute(
        "select secret from app.totp_factors where user_id = %s "
        "and confirmed_at is null",
        (user_id,),
    )
    row = await cur.fetchone()
    return secret_box.open_totp_secret(user_id, str(row["secret"])) if row else None


async def confirm_totp(
    conn: Conn, user_id: uuid.UUID, code: str, now: dt.datetime
) -> None:
    secret = await pending_totp_secret(conn, user_id)
    if secret is None:
        raise NotFound("start setting up the authenticator app first")
    step = totp.require_valid_code(secret, code, now=now, last_used_step=None)
    await conn.execute(
        "update app.totp_factors set confirmed_at = %s, last_used_step = %s "
        "where user_id = %s",
        (now, step, user_id),
    )


async def _spend_totp(
    conn: Conn, user_id: uuid.UUID, code: str, now: dt.datetime
) -> None:
    cur = await conn.execute(
        "select secret, last_used_step from app.totp_factors "
        "where user_id = %s and confirmed_at is not null",
        (user_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise TotpCodeInvalid()
    secret = secret_box.open_totp_secret(user_id, str(row["secret"]))
    step = totp.require_valid_code(
        secret, code, now=now, last_used_step=row["last_used_step"]
    )

    # Spend the step only if no concurrent request spent it (or a later one) first.
    cur = await conn.execute(
        "update app.totp_factors set last_used_step = %s where user_id = %s "
        "and (last_used_step is null or last_used_step < %s)",
        (step, user_id, step),
    )
    if cur.rowcount != 1:
        raise TotpCodeReplayed()


async def remove_totp(conn: Conn, user_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "delete from app.totp_factors where user_id = %s", (user_id,)
    )
    return cur.rowcount > 0


# Recovery codes


async def issue_recovery_codes(
    conn: Conn, user_id: uuid.UUID, now: dt.datetime
) -> list[str]:
    """Ten new codes, replacing any earlier set; returned once, stored hashed."""
    codes = recovery_codes.generate_codes()
    hashes = await to_thread.run_sync(
        lambda: [recovery_codes.hash_code(code) for code in codes]
    )
    await conn.execute("delete from app.recovery_codes where user_id = %s", (user_id,))
    for hashed in hashes:
        await conn.execute(
            "insert into app.recovery_codes (id, user_id, code_hash, created_at) "
            "values (%s, %s, %s, %s)",
            (uuid.uuid4(), user_id, hashed, now),
        )
    return codes


async def _spend_recovery_code(
    conn: Conn, user_id: uuid.UUID, code: str, now: dt.datetime
) -> int:
    """Spend a code; return how many remain."""
    try:
        recovery_codes.normalize(code)
    except RecoveryCodeMalformed:
        raise RecoveryCodeInvalid() from None
    cur = await conn.execute(
        "select id, code_hash from app.recovery_codes "
        "where user_id = %s and used_at is null order by id",
        (user_id,),
    )
    rows = list(await cur.fetchall())
    stored = [str(r["code_hash"]) for r in rows]
    index = await to_thread.run_sync(lambda: recovery_codes.find_match(code, stored))
    if index is None:
        raise RecoveryCodeInvalid()
    cur = await conn.execute(
        "update app.recovery_codes set used_at = %s where id = %s and used_at is null",
        (now, rows[index]["id"]),
    )
    if cur.rowcount != 1:
        raise RecoveryCodeInvalid()
    return len(rows) - 1


# Security keys


async def user_handle(conn: Conn, user_id: uuid.UUID) -> tuple[bytes, str, str]:
    cur = await conn.execute(
        "select webauthn_handle, email, full_name from app.users where id = %s",
        (user_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound()
    return bytes(row["webauthn_handle"]), str(row["email"]), str(row["full_name"])


async def known_credentials(
    conn: Conn, user_id: uuid.UUID
) -> list[ceremony.KnownCredential]:
    cur = await conn.execute(
        "select credential_id, transports from app.webauthn_credentials "
        "where user_id = %s",
        (user_id,),
    )
    return [
        ceremony.KnownCredential(bytes(r["credential_id"]), tuple(r["transports"]))
        for r in await cur.fetchall()
    ]


def clean_key_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 60:
        raise InvalidInput("name the key in 1 to 60 characters")
    return cleaned


async def add_key(
    conn: Conn,
    user_id: uuid.UUID,
    registered: ceremony.RegisteredCredential,
    name: str,
    now: dt.datetime,
) -> uuid.UUID:
    key_id = uuid.uuid4()
    await conn.execute(
        "insert into app.webauthn_credentials (id, user_id, credential_id, "
        "public_key, sign_count, transports, name, created_at) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            key_id,
            user_id,
            registered.credential_id,
            registered.public_key,
            registered.sign_count,
            list(registered.transports),
            clean_key_name(name),
            now,
        ),
    )
    return key_id


async def remove_key(conn: Conn, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "delete from app.webauthn_credentials where user_id = %s and id = %s",
        (user_id, key_id),
    )
    return cur.rowcount > 0


async def _spend_assertion(
    conn: Conn,
    user_id: uuid.UUID,
    response: dict[str, Any],
    challenge: bytes,
    rp: RelyingParty,
    now: dt.datetime,
) -> None:
    claimed = ceremony.credential_id_of(response)
    cur = await conn.execute(
        "select id, credential_id, public_key, sign_count "
        "from app.webauthn_credentials where user_id = %s and credential_id = %s "
        "for update",
        (user_id, claimed),
    )
    row = await cur.fetchone()
    if row is None:
        raise WebAuthnVerificationFailed("credential is not registered to this user")
    verified = ceremony.verify_authentication(
        response=response,
        expected_challenge=challenge,
        expected_origin=rp.origin,
        expected_rp_id=rp.id,
        credential_id=bytes(row["credential_id"]),
        public_key=bytes(row["public_key"]),
        stored_sign_count=int(row["sign_count"]),
    )
    await conn.execute(
        "update app.webauthn_credentials set sign_count = %s, last_used_at = %s "
        "where id = %s",
        (verified.new_sign_count, now, row["id"]),
    )


# Using a second factor, throttled and recorded


@dataclass(frozen=True)
class SecondFactorProof:
    """What the user offered; exactly one field is set."""

    totp_code: str | None = None
    recovery_code: str | None = None
    assertion: dict[str, Any] | None = None
    challenge: bytes | None = None
    challenge_purpose: str | None = None


@dataclass(frozen=True)
class SecondFactorUsed:
    method: str
    recovery_codes_left: int | None = None


async def use_second_factor(
    db: Database,
    clock: Clock,
    claims_for_user: Any,
    user_id: uuid.UUID,
    proof: SecondFactorProof,
    actor: history.Actor,
    rp: RelyingParty,
) -> SecondFactorUsed:
    """Check a second factor and spend it. Failures count against the account's
    second-factor throttle and the address's, and are recorded."""
    key = throttle.second_factor_key(user_id)
    address = throttle.address_key(actor.ip)
    now = clock.now()
    try:
        await throttle.check(db, clock, key, address)
    except TooManyAttempts:
        await history.record(
            db, now, history.MFA_FAILED, actor, user_id=user_id, reason="throttled"
        )
        raise

    method = "totp"
    left: int | None = None
    try:
        async with db.transaction(claims_for_user) as conn:
            if proof.totp_code is not None:
                await _spend_totp(conn, user_id, proof.totp_code, now)
            elif proof.recovery_code is not None:
                method = "recovery_code"
                left = await _spend_recovery_code(
                    conn, user_id, proof.recovery_code, now
                )
            elif proof.assertion is not None and proof.challenge is not None:
                method = "webauthn"
                await _spend_assertion(
                    conn, user_id, proof.assertion, proof.challenge, rp, now
                )
            else:
                raise InvalidInput("offer a code or a security key")
    except (TotpCodeInvalid, RecoveryCodeInvalid, WebAuthnVerificationFailed) as exc:
        await history.record(
            db, now, history.MFA_FAILED, actor, user_id=user_id, reason=exc.code
        )
        wait = await throttle.failed(
            db,
            clock,
            [(key, throttle.SECOND_FACTOR_LIMIT), (address, throttle.ADDRESS_LIMIT)],
        )
        if wait:
            raise TooManyAttempts(wait) from exc
        raise

    await throttle.clear(db, key)
    if method == "recovery_code":
        await history.record(
            db,
            now,
            history.RECOVERY_CODE_USED,
            actor,
            user_id=user_id,
            detail={"remaining": left},
        )
    else:
        await history.record(
            db, now, history.MFA_USED, actor, user_id=user_id, reason=method
        )
    return SecondFactorUsed(method=method, recovery_codes_left=left)
