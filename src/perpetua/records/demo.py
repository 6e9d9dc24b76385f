"""A synthetic demo practice: an executed BAA, one member per role, 200 invented
patients, a month of appointments, coverage and calls. Every name, number and date
is made up; nothing here resembles a real person on purpose."""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from anyio import to_thread

from perpetua.access.claims import SYSTEM_ACTOR, Claims
from perpetua.db.pool import Database
from perpetua.identity.passwords import hash_password
from perpetua.records.service import (
    CoverageInput,
    NewAppointment,
    NewCall,
    NewPatient,
    Records,
)

DEMO_PRACTICE = uuid.uuid5(uuid.NAMESPACE_URL, "https://perpetua.invalid/demo")
ROLES = ("owner", "manager", "biller", "front_desk", "provider")
PATIENTS = 200

_FIRST = [
    "Avelin",
    "Brisk",
    "Corra",
    "Dovan",
    "Elsra",
    "Fenwick",
    "Galiva",
    "Hollis",
    "Ivra",
    "Jorrin",
    "Kestrel",
    "Lumen",
    "Marrow",
    "Nettle",
    "Orrin",
    "Pellam",
    "Quenby",
    "Rusk",
    "Sorrel",
    "Tamsin",
    "Ulric",
    "Veda",
    "Wren",
    "Yarrow",
    "Zephra",
    "Ansel",
    "Bramble",
    "Cinder",
    "Delphin",
    "Emrys",
]
_LAST = [
    "Ashgrove",
    "Bellweather",
    "Cobblestone",
    "Dunmore",
    "Eldercroft",
    "Fallowmere",
    "Glimmerton",
    "Hollowell",
    "Inkwater",
    "Juniperlee",
    "Kettleby",
    "Larkspurn",
    "Mossbury",
    "Nettlefield",
    "Oakhaven",
    "Pebbleton",
    "Quillfeather",
    "Rookwood",
    "Silverbirch",
    "Thistledown",
    "Underbough",
    "Violetmere",
    "Willowstep",
    "Yellowfen",
    "Zinnowby",
]
_PAYERS = ("Synthetic Health Plan", "Imaginary Mutual", "Fictional Blue Shield")
_REASONS = (
    "Annual physical",
    "Follow-up visit",
    "Flu symptoms",
    "Blood pressure check",
    "Vaccination",
    "Sports physical",
    "Medication review",
)


@dataclass
class DemoResult:
    practice_id: uuid.UUID
    members: list[dict[str, str]] = field(default_factory=list)
    samples: list[dict[str, str]] = field(default_factory=list)
    created: bool = False

    def as_json(self) -> str:
        return json.dumps(
            {
                "practice_id": str(self.practice_id),
                "created": self.created,
                "members": self.members,
                "sample_patients": self.samples,
            },
            indent=2,
        )


def _claims(user: uuid.UUID, role: str | None, kind: str = "user") -> Claims:
    return Claims(
        actor_kind=kind,  # type: ignore[arg-type]
        actor_id=user,
        request_id="demo-" + secrets.token_hex(6),
        practice_id=DEMO_PRACTICE,
        practice_role=role,  # type: ignore[arg-type]
        reason="synthetic demo data",
    )


def _member_id(n: int) -> str:
    return f"SYN{100000 + n * 7919 % 900000:06d}"


def _phone(n: int) -> str:
    # 555-01xx numbers are reserved for fiction in North America.
    return f"+1 ({201 + n // 100}) 555-01{n % 100:02d}"


async def seed_demo(
    db: Database,
    records: Records,
    record_baa: Callable[[uuid.UUID], Awaitable[None]],
    *,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> DemoResult:
    """Create the demo practice if it does not exist; always reset and return the
    members' sign-in details."""
    result = DemoResult(DEMO_PRACTICE)
    rng = random.Random(20260101)  # noqa: S311 - synthetic data, not secrets
    owner_id = uuid.uuid5(DEMO_PRACTICE, "owner")

    async with db.transaction(_claims(owner_id, "owner")) as conn:
        cur = await conn.execute(
            "select 1 from app.practices where id = %s", (DEMO_PRACTICE,)
        )
        exists = await cur.fetchone() is not None

    passwords = {role: "demo " + secrets.token_urlsafe(12) for role in ROLES}
    hashes = {
        role: await to_thread.run_sync(hash_password, pw)
        for role, pw in passwords.items()
    }
    now = dt.datetime.now(dt.UTC)
    if not exists:
        result.created = True
        async with db.transaction(_claims(owner_id, "owner")) as conn:
            await conn.execute(
                "insert into app.users (id, email, full_name, password_hash) "
                "values (%s, %s, %s, %s)",
                (
                    owner_id,
                    "owner@demo.perpetua.invalid",
                    "Demo Owner",
                    hashes["owner"],
                ),
            )
            await conn.execute(
                "insert into app.practices (id, name, trial_ends_at) "
                "values (%s, 'Demo Family Practice (synthetic)', %s)",
                (DEMO_PRACTICE, now + dt.timedelta(days=14)),
            )
            await conn.execute(
                "insert into app.memberships (practice_id, user_id, role) "
                "values (%s, %s, 'owner')",
                (DEMO_PRACTICE, owner_id),
            )
        for role in ROLES[1:]:
            user_id = uuid.uuid5(DEMO_PRACTICE, role)
            async with db.transaction(_claims(user_id, "owner")) as conn:
                await conn.execute(
                    "insert into app.users (id, email, full_name, password_hash) "
                    "values (%s, %s, %s, %s)",
                    (
                        user_id,
                        f"{role.replace('_', '-')}@demo.perpetua.invalid",
                        f"Demo {role.replace('_', ' ').title()}",
                        hashes[role],
                    ),
                )
                await conn.execute(
                    "insert into app.memberships (practice_id, user_id, role) "
                    "values (%s, %s, %s)",
                    (DEMO_PRACTICE, user_id, role),
                )
    else:
        for role in ROLES:
            user_id = uuid.uuid5(DEMO_PRACTICE, role)
            async with db.transaction(_claims(user_id, None)) as conn:
                await conn.execute(
                    "update app.users set password_hash = %s where id = %s",
                    (hashes[role], user_id),
                )

    for role in ROLES:
        result.members.append(
            {
                "role": role,
                "email": f"{role.replace('_', '-')}@demo.perpetua.invalid",
                "password": passwords[role],
            }
        )

    owner = _claims(owner_id, "owner")
    if result.created:
        # The service role cannot record a BAA; the operator's owner role does,
        # as it would for a practice that signed on paper.
        await record_baa(DEMO_PRACTICE)
        await _fill(db, records, owner, rng, now, progress)

    for n in range(5):
        first, last = _FIRST[n % len(_FIRST)], _LAST[n % len(_LAST)]
        result.samples.append(
            {"name": f"{first} {last}", "phone": _phone(n), "member_id": _member_id(n)}
        )
    return result


async def _fill(
    db: Database,
    records: Records,
    owner: Claims,
    rng: random.Random,
    now: dt.datetime,
    progress: Callable[[int, int], None],
) -> None:
    providers = [
        await records.create_provider(owner, "Dr. Imogen Testwell", "1999999984"),
        await records.create_provider(owner, "Dr. Casimir Placeholder", None),
    ]
    async with db.transaction(owner) as conn:
        await conn.execute(
            "update app.memberships set provider_id = %s "
            "where practice_id = %s and role = 'provider'",
            (providers[0].id, DEMO_PRACTICE),
        )

    total = PATIENTS * 2
    patients = []
    for n in range(PATIENTS):
        first, last = _FIRST[n % len(_FIRST)], _LAST[n % len(_LAST)]
        if n >= len(_FIRST):
            first = f"{first}{'ae'[n % 2]}"
        patient = await records.create_patient(
            owner,
            NewPatient(
                name=f"{first} {last}",
                birth_date=dt.date(1940 + n % 60, 1 + n % 12, 1 + n % 28),
                phone=_phone(n),
                ehr_ref=f"EHR-SYN-{n:05d}",
            ),
        )
        await records.put_coverage(
            owner,
            patient.id,
            CoverageInput(
                payer=_PAYERS[n % len(_PAYERS)],
                member_id=_member_id(n),
                group_number=f"G{n % 40:04d}",
                plan_type=("PPO", "HMO", "HDHP")[n % 3],
                copay_cents=(2500, 4000, 0)[n % 3],
                deductible_status=("met", "not_met", "unknown")[n % 3],
                last_verified_at=now - dt.timedelta(days=n % 30),
            ),
        )
        patients.append(patient)
        progress(n + 1, total)

    start = (now - dt.timedelta(days=14)).replace(
        hour=14, minute=0, second=0, microsecond=0
    )
    made = 0
    for day in range(30):
        base = start + dt.timedelta(days=day)
        if base.weekday() >= 5:
            continue
        for provider in providers:
            for slot in range(4):
                patient = rng.choice(patients)
                begins = base + dt.timedelta(minutes=30 * slot)
                await records.create_appointment(
                    owner,
                    NewAppointment(
                        patient_id=patient.id,
                        provider_id=provider.id,
                        starts_at=begins,
                        ends_at=begins + dt.timedelta(minutes=30),
                        reason=rng.choice(_REASONS),
                        status="completed" if begins < now else "booked",
                    ),
                )
                made += 1
        if made % 10 == 0:
            progress(PATIENTS + min(made, PATIENTS // 2), total)

    system = Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id="demo-calls",
        practice_id=DEMO_PRACTICE,
        reason="synthetic demo data",
    )
    for n in range(60):
        patient = patients[n * 3 % len(patients)]
        await records.create_call(
            system,
            NewCall(
                direction="inbound" if n % 4 else "outbound",
                started_at=start + dt.timedelta(hours=n * 11),
                duration_seconds=60 + n * 7 % 400,
                caller_number=patient.phone,
                patient_id=patient.id,
            ),
        )
    progress(total, total)
