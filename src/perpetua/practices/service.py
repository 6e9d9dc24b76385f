"""Practice sign-up and the trial clock."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from dataclasses import dataclass

import psycopg
from anyio import to_thread

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.errors import EmailTaken, InvalidInput, NotFound
from perpetua.identity.passwords import check_password_policy, hash_password

TRIAL_DAYS = 14
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True)
class PracticeView:
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    trial_ends_at: dt.datetime
    plan: str | None

    def trial_days_left(self, now: dt.datetime) -> int:
        remaining = (self.trial_ends_at - now).total_seconds() / 86400
        return max(0, math.ceil(remaining))

    def read_only(self, now: dt.datetime) -> bool:
        return self.plan is None and now >= self.trial_ends_at

    def status(self, now: dt.datetime) -> str:
        if self.plan:
            return "active"
        return "read_only" if self.read_only(now) else "trial"


def clean_name(value: str, field: str) -> str:
    cleaned = " ".join(value.split())
    if not 1 <= len(cleaned) <= 200:
        raise InvalidInput(f"{field} must be between 1 and 200 characters")
    return cleaned


def clean_email(value: str) -> str:
    cleaned = value.strip()
    if len(cleaned) > 254 or not _EMAIL.match(cleaned):
        raise InvalidInput("enter a valid email address")
    return cleaned


@dataclass(frozen=True)
class SignUp:
    practice_name: str
    owner_name: str
    email: str
    password: str


@dataclass(frozen=True)
class SignedUp:
    practice_id: uuid.UUID
    user_id: uuid.UUID


async def sign_up(
    db: Database, clock: Clock, form: SignUp, *, request_id: str
) -> SignedUp:
    """Create the practice, its owner and the owner's membership in one transaction,
    acting as that owner so the same row-level policies apply as ever after."""
    practice_name = clean_name(form.practice_name, "practice name")
    owner_name = clean_name(form.owner_name, "your name")
    email = clean_email(form.email)
    check_password_policy(form.password, email=email, name=owner_name)
    password_hash = await to_thread.run_sync(lambda: hash_password(form.password))

    practice_id, user_id = uuid.uuid4(), uuid.uuid4()
    claims = Claims(
        actor_kind="user",
        actor_id=user_id,
        request_id=request_id,
        practice_id=practice_id,
        practice_role="owner",
    )
    now = clock.now()
    try:
        async with db.transaction(claims) as conn:
            await conn.execute(
                "insert into app.users (id, email, full_name, password_hash, "
                "created_at) values (%s, %s, %s, %s, %s)",
                (user_id, email, owner_name, password_hash, now),
            )
            await conn.execute(
                "insert into app.practices (id, name, created_at, trial_ends_at) "
                "values (%s, %s, %s, %s)",
                (practice_id, practice_name, now, now + dt.timedelta(days=TRIAL_DAYS)),
            )
            await conn.execute(
                "insert into app.memberships (practice_id, user_id, role, created_at) "
                "values (%s, %s, 'owner', %s)",
                (practice_id, user_id, now),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise EmailTaken() from exc
    return SignedUp(practice_id=practice_id, user_id=user_id)


async def get_practice(conn: Conn, practice_id: uuid.UUID) -> PracticeView:
    cur = await conn.execute(
        "select id, name, created_at, trial_ends_at, plan from app.practices "
        "where id = %s",
        (practice_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound()
    return PracticeView(**row)


async def list_memberships(conn: Conn, user_id: uuid.UUID) -> list[dict[str, object]]:
    cur = await conn.execute(
        "select m.practice_id, p.name as practice_name, m.role "
        "from app.memberships m join app.practices p on p.id = m.practice_id "
        "where m.user_id = %s order by p.name",
        (user_id,),
    )
    return list(await cur.fetchall())


async def rename_practice(conn: Conn, practice_id: uuid.UUID, name: str) -> None:
    cleaned = clean_name(name, "practice name")
    cur = await conn.execute(
        "update app.practices set name = %s where id = %s", (cleaned, practice_id)
    )
    if cur.rowcount == 0:
        raise NotFound()
