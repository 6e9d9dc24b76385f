"""A realistic month of one synthetic practice, with labelled misuse injected, to
measure the detectors against.

The month is built the way the practice's work would leave it: staff sign in at
the start of their shifts, patients call, front desk books visits, billers check
eligibility before visits and follow up after, providers open the charts of the
patients on their schedule, a reminder agent calls the day before, and an EHR
integration reads the schedule through an API token. Each of these leaves the
audit events and security history the real service would. A little ordinary
imperfection is included on purpose (a manager glancing at an unrelated chart, a
new browser), because a real month has it.

Misuse is injected on top, each instance labelled with the detectors that should
catch it: snooping on a co-worker, a relative or a neighbour, a bulk export before
resignation, credential stuffing, off-hours browsing, a stolen API token, probes
for another practice's records, repeated denied reads; and break-glass accesses,
which are legitimate but must always be reviewed.

Everything is synthetic: names are made of invented syllables, phone numbers are
in the 555-01xx fiction range, addresses on invented streets, and network
addresses in the documentation ranges. Data is written through the owner
connection (an operator tool) into practices of its own, with the tables' own
policies and triggers in force; PHI fields are encrypted and indexed exactly as the
records service does.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

from perpetua.monitoring.tags import identity_tags
from perpetua.records.vault import Vault

_SYLLABLES_FIRST = (
    "Ala", "Bren", "Cor", "Dai", "Elo", "Fen", "Gri", "Hal", "Isa", "Jor", "Kel",
    "Lio", "Mar", "Nel", "Ori", "Pel", "Qui", "Ros", "Sil", "Tam", "Ulo", "Ver",
    "Wyn", "Xan", "Yel", "Zor",
)  # fmt: skip
_SYLLABLES_END = ("a", "en", "is", "o", "an", "ette", "ric", "ine", "us", "wyn")
_SURNAME_HEAD = (
    "Ash", "Brack", "Cald", "Dun", "Elm", "Fair", "Glen", "Holt", "Iver", "Kest",
    "Lang", "Moor", "North", "Oak", "Pell", "Quill", "Rook", "Stan", "Thorn", "Wex",
)  # fmt: skip
_SURNAME_TAIL = (
    "wick", "ford", "by", "ley", "ton", "more", "hurst", "dale", "well", "stead",
    "combe", "thwaite", "ridge", "worth", "shaw", "field", "gate", "holm", "low",
    "ney",
)  # fmt: skip
_STREETS = tuple(
    f"{a}{b} {kind}"
    for a in ("Bir", "Cas", "Dov", "Fal", "Gar", "Hes", "Lin", "Mab")
    for b in ("ton", "ley", "wood", "field", "mere")
    for kind in ("Street", "Avenue", "Lane")
)

CLINIC_NET = "198.51.100."
INTEGRATION_IP = "203.0.113.10"
ATTACKER_NETS = ("192.0.2.", "100.64.7.", "100.72.9.")
CLINIC_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36"
HOME_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15"


@dataclass
class Member:
    user_id: uuid.UUID
    role: str
    full_name: str
    email: str
    phone: str
    address: str
    provider_id: uuid.UUID | None = None
    home_ip: str | None = None
    shift_start: int = 8
    shift_end: int = 17


@dataclass
class Patient:
    id: uuid.UUID
    full_name: str
    phone: str
    address: str
    birth_date: dt.date


@dataclass
class Scenario:
    """One injected misuse (or must-review event), with what should catch it."""

    kind: str
    expected: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    actors: set[uuid.UUID] = field(default_factory=set)
    event_ids: set[uuid.UUID] = field(default_factory=set)


@dataclass
class Month:
    practice_id: uuid.UUID
    other_practice_id: uuid.UUID
    warmup_from: dt.datetime
    start: dt.datetime
    end: dt.datetime
    scenarios: list[Scenario]
    audit_events: int
    security_events: int
    days: int


class _Writer:
    """Collects rows in memory and writes each table in batches."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.security: list[dict[str, Any]] = []

    def event(
        self,
        practice: uuid.UUID,
        at: dt.datetime,
        actor_kind: str,
        actor_id: uuid.UUID,
        role: str | None,
        action: str,
        resource_type: str,
        resource_ids: list[uuid.UUID],
        patient_ids: list[uuid.UUID],
        *,
        outcome: str = "success",
        row_count: int | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        purpose: str | None = None,
    ) -> uuid.UUID:
        event_id = uuid.uuid4()
        self.events.append(
            {
                "id": event_id,
                "practice_id": practice,
                "occurred_at": at,
                "actor_kind": actor_kind,
                "actor_id": actor_id,
                "actor_role": role,
                "action": action,
                "resource_type": resource_type,
                "resource_ids": resource_ids,
                "patient_ids": patient_ids,
                "purpose": purpose
                or {"provider": "TREAT", "biller": "HPAYMT"}.get(role or "", "HOPERAT"),
                "ip": ip,
                "user_agent": user_agent,
                "outcome": outcome,
                "row_count": len(patient_ids) if row_count is None else row_count,
            }
        )
        return event_id

    def security_event(
        self,
        at: dt.datetime,
        kind: str,
        *,
        user_id: uuid.UUID | None,
        practice_id: uuid.UUID | None,
        actor_kind: str,
        actor_id: uuid.UUID | None,
        ip: str | None,
        user_agent: str | None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.security.append(
            {
                "at": at,
                "kind": kind,
                "user_id": user_id,
                "practice_id": practice_id,
                "actor_kind": actor_kind,
                "actor_id": actor_id,
                "ip": ip,
                "user_agent": user_agent,
                "reason": reason,
                "detail": json.dumps(detail or {}),
            }
        )


def _claims(
    practice: uuid.UUID, actor: uuid.UUID, role: str | None, kind: str = "user"
) -> str:
    claims: dict[str, str] = {
        "actor_kind": kind,
        "sub": str(actor),
        "request_id": "simulate",
        "practice_id": str(practice),
    }
    if role:
        claims["practice_role"] = role
    return json.dumps(claims)


def _act(conn: psycopg.Connection[Any], claims: str) -> None:
    conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))


class Simulation:
    """Builds the month. `seed` makes it reproducible."""

    def __init__(
        self,
        conninfo: str,
        vault: Vault,
        *,
        days: int = 30,
        warmup_days: int = 14,
        patients: int = 1200,
        seed: int = 20240601,
        end: dt.datetime | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.vault = vault
        self.days = days
        self.warmup_days = warmup_days
        self.patient_count = patients
        # Reproducible synthetic data, not secrets.
        self.rng = random.Random(seed)  # noqa: S311
        # The month ends before today, so the writes' own audit rows (stamped with
        # the real time) never fall inside it.
        today = dt.datetime.now(dt.UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.end = end or today - dt.timedelta(days=1)
        self.start = self.end - dt.timedelta(days=days)
        self.warmup_from = self.start - dt.timedelta(days=warmup_days)
        self.practice = uuid.uuid4()
        self.other_practice = uuid.uuid4()
        self.out = _Writer()
        self.members: list[Member] = []
        self.patients: list[Patient] = []
        self.injected_patients: list[Patient] = []
        self.other_patients: list[uuid.UUID] = []
        self.appointments: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.coverages: dict[uuid.UUID, dict[str, Any]] = {}
        self.break_glass: list[dict[str, Any]] = []
        self.tokens: list[dict[str, Any]] = []
        self.agent_id = uuid.uuid4()
        self.other_owner = uuid.uuid4()
        # (token index, replacement index, day of the theft), chosen up front so
        # that ordinary traffic moves to the replacement token after revocation.
        self.thefts: list[tuple[int, int, dt.datetime]] = []
        self.scenarios: list[Scenario] = []
        self._phone_serial = 0

    # -- synthetic people --------------------------------------------------------

    def _first(self) -> str:
        return self.rng.choice(_SYLLABLES_FIRST) + self.rng.choice(_SYLLABLES_END)

    def _surname(self) -> str:
        return self.rng.choice(_SURNAME_HEAD) + self.rng.choice(_SURNAME_TAIL)

    def _phone(self) -> str:
        # Unique fictional numbers: 555-01xx with a serial area code.
        self._phone_serial += 1
        area = 200 + self._phone_serial // 100
        return f"+1 {area} 555 01{self._phone_serial % 100:02d}"

    def _address(self) -> str:
        return f"{self.rng.randint(1, 9999)} {self.rng.choice(_STREETS)}"

    def _people(self) -> None:
        roles = (
            ["owner", "manager"]
            + ["biller"] * 2
            + ["front_desk"] * 4
            + ["provider"] * 4
        )
        for n, role in enumerate(roles):
            name = f"{self._first()} {self._surname()}"
            member = Member(
                user_id=uuid.uuid4(),
                role=role,
                full_name=name,
                email=f"sim.{role}.{n}.{self.practice.hex[:8]}@example.test",
                phone=self._phone(),
                address=self._address(),
            )
            if role == "provider":
                member.provider_id = uuid.uuid4()
                member.home_ip = f"203.0.113.{100 + n}"
                member.shift_start, member.shift_end = 8, 16
            elif role == "front_desk":
                member.shift_start, member.shift_end = (7, 15) if n % 2 else (9, 17)
            self.members.append(member)
        for _ in range(self.patient_count):
            self.patients.append(
                Patient(
                    id=uuid.uuid4(),
                    full_name=f"{self._first()} {self._surname()}",
                    phone=self._phone(),
                    address=self._address(),
                    birth_date=dt.date(1940, 1, 1)
                    + dt.timedelta(days=self.rng.randint(0, 29000)),
                )
            )

    def _by_role(self, role: str) -> list[Member]:
        return [m for m in self.members if m.role == role]

    # -- ordinary work -------------------------------------------------------------

    def _at(self, day: dt.datetime, hour: float) -> dt.datetime:
        return day + dt.timedelta(hours=hour)

    def _sign_in(self, member: Member, at: dt.datetime) -> None:
        ip = f"{CLINIC_NET}{10 + self.members.index(member)}"
        ua = CLINIC_UA
        if member.home_ip and self.rng.random() < 0.15:
            ip, ua = member.home_ip, HOME_UA
        if self.rng.random() < 0.05:
            # A mistyped password now and then.
            self.out.security_event(
                at - dt.timedelta(seconds=40),
                "account:signin:failure",
                user_id=member.user_id,
                practice_id=None,
                actor_kind="anonymous",
                actor_id=None,
                ip=ip,
                user_agent=ua,
                reason="bad_password",
            )
        self.out.security_event(
            at,
            "account:signin:success",
            user_id=member.user_id,
            practice_id=self.practice,
            actor_kind="user",
            actor_id=member.user_id,
            ip=ip,
            user_agent=ua,
        )

    def _view(
        self,
        member: Member,
        at: dt.datetime,
        patient: uuid.UUID,
        resource: str = "patient",
        **kwargs: Any,
    ) -> uuid.UUID:
        return self.out.event(
            self.practice,
            at,
            "user",
            member.user_id,
            member.role,
            "view",
            resource,
            [patient],
            [patient],
            ip=kwargs.pop("ip", f"{CLINIC_NET}{10 + self.members.index(member)}"),
            user_agent=CLINIC_UA,
            **kwargs,
        )

    def _workday(self, day: dt.datetime) -> None:
        weekday = day.weekday() < 5
        if not weekday:
            return
        front = self._by_role("front_desk")
        billers = self._by_role("biller")
        providers = self._by_role("provider")
        for member in self.members:
            if member.role in ("owner",) and self.rng.random() < 0.5:
                continue
            start = member.shift_start + self.rng.uniform(-0.2, 0.3)
            self._sign_in(member, self._at(day, start))

        # The day's visits, booked earlier (the booking is generated with them).
        for provider in providers:
            for slot in range(12):
                hour = provider.shift_start + 0.5 + slot * 0.6
                patient = self.rng.choice(self.patients)
                starts = self._at(day, hour)
                booked_at = starts - dt.timedelta(
                    days=self.rng.randint(1, 20), hours=self.rng.uniform(-1, 1)
                )
                booked_at = booked_at.replace(
                    hour=self.rng.randint(9, 15), minute=self.rng.randint(0, 59)
                )
                while booked_at.weekday() >= 5:
                    booked_at -= dt.timedelta(days=1)
                self._visit(provider, patient, starts, booked_at, front, billers)

        # Calls that are not bookings: questions, refills, results.
        for _ in range(self.rng.randint(15, 25)):
            member = self.rng.choice(front)
            at = self._at(day, self.rng.uniform(member.shift_start, member.shift_end))
            patient = self.rng.choice(self.patients)
            self._call(at, patient.id)
            self._view(member, at + dt.timedelta(minutes=self.rng.uniform(0.5, 4)),
                       patient.id)  # fmt: skip

        # The EHR integration reads the schedule every hour of the working day.
        token = self._token_on(0, day)
        todays = [a for a in self.appointments if a["starts_at"].date() == day.date()]
        for hour in range(7, 18):
            batch = [a["patient_id"] for a in todays][:20]
            self.out.event(
                self.practice,
                self._at(day, hour + self.rng.uniform(0, 0.1)),
                "api_token",
                token["id"],
                "manager",
                "search",
                "appointment",
                [a["id"] for a in todays][:20],
                batch,
                ip=INTEGRATION_IP,
                user_agent="ehr-sync/2.1",
            )

        # Ordinary imperfection: now and then a manager opens an unrelated chart.
        if self.rng.random() < 0.12:
            manager = self._by_role("manager")[0]
            self._view(
                manager,
                self._at(day, self.rng.uniform(10, 15)),
                self.rng.choice(self.patients).id,
            )

    def _token_on(self, index: int, day: dt.datetime) -> dict[str, Any]:
        for stolen, replacement, theft_day in self.thefts:
            if stolen == index and day.date() > theft_day.date():
                return self.tokens[replacement]
        return self.tokens[index]

    def _call(self, at: dt.datetime, patient: uuid.UUID | None) -> uuid.UUID:
        call_id = uuid.uuid4()
        self.calls.append(
            {"id": call_id, "started_at": at, "patient_id": patient, "direction":
             "inbound"}
        )  # fmt: skip
        return call_id

    def _visit(
        self,
        provider: Member,
        patient: Patient,
        starts: dt.datetime,
        booked_at: dt.datetime,
        front: list[Member],
        billers: list[Member],
    ) -> None:
        appointment = uuid.uuid4()
        booker = self.rng.choice(front)
        self._call(booked_at - dt.timedelta(minutes=3), patient.id)
        self._view(booker, booked_at - dt.timedelta(minutes=2), patient.id)
        self.appointments.append(
            {
                "id": appointment,
                "patient_id": patient.id,
                "provider_id": provider.provider_id,
                "starts_at": starts,
                "ends_at": starts + dt.timedelta(minutes=30),
                "created_at": booked_at,
                "status": "completed",
            }
        )
        # Eligibility check a day or two before.
        biller = self.rng.choice(billers)
        check = starts - dt.timedelta(days=self.rng.randint(1, 2))
        check = check.replace(hour=self.rng.randint(9, 15))
        self.coverages[patient.id] = {"verified": check}
        self._view(biller, check, patient.id, resource="coverage", purpose="HPAYMT")
        # Reminder call by the agent the day before.
        remind = (starts - dt.timedelta(days=1)).replace(hour=11)
        self._call(remind, patient.id)
        self.out.event(
            self.practice, remind + dt.timedelta(seconds=20), "agent", self.agent_id,
            None, "view", "appointment", [appointment], [patient.id],
        )  # fmt: skip
        # Check-in, the visit, and billing afterwards.
        desk = self.rng.choice(front)
        self._view(desk, starts - dt.timedelta(minutes=self.rng.uniform(3, 15)),
                   patient.id)  # fmt: skip
        for offset in (0, 10, 25):
            self._view(provider, starts + dt.timedelta(minutes=offset), patient.id,
                       resource="appointment", purpose="TREAT")  # fmt: skip
        after = starts + dt.timedelta(days=self.rng.randint(1, 6))
        after = after.replace(hour=self.rng.randint(9, 15))
        if after.weekday() < 5:
            self._view(self.rng.choice(billers), after, patient.id,
                       resource="coverage", purpose="HPAYMT")  # fmt: skip

    # -- injected misuse -------------------------------------------------------------

    def _random_shift_time(self, member: Member, day: dt.datetime) -> dt.datetime:
        return self._at(
            day, self.rng.uniform(member.shift_start + 0.5, member.shift_end - 0.5)
        )

    def eval_day(self, weekday: bool = True) -> dt.datetime:
        """A random inner day of the evaluated window, a weekday or not as asked.

        A short window may hold no day of the kind asked for (three days from a
        Monday hold no weekend), and then any inner day does: the scenario stays,
        only its day is less typical.
        """
        last = max(1, self.days - 2)
        inner = [self.start + dt.timedelta(days=n) for n in range(1, last + 1)]
        if not any((day.weekday() < 5) == weekday for day in inner):
            return self.rng.choice(inner)
        # Drawn one day at a time, so that a seed gives the same month as before.
        while True:
            day = self.start + dt.timedelta(days=self.rng.randint(1, last))
            if (day.weekday() < 5) == weekday:
                return day

    def _new_patient(self, **fields: Any) -> Patient:
        patient = Patient(
            id=uuid.uuid4(),
            full_name=fields.get("full_name") or f"{self._first()} {self._surname()}",
            phone=fields.get("phone") or self._phone(),
            address=fields.get("address") or self._address(),
            birth_date=dt.date(1960, 5, 17),
        )
        # Kept apart from the ordinary patients, so that another scenario's random
        # picks never land on a snooped relative by chance.
        self.injected_patients.append(patient)
        return patient

    def _inject_snooping(self) -> None:
        staff = [m for m in self.members if m.role in ("front_desk", "biller")]
        for _ in range(3):
            # A co-worker who is also a patient of the practice.
            snoop, coworker = self.rng.sample(staff, 2)
            record = self._new_patient(
                full_name=coworker.full_name, phone=coworker.phone
            )
            day = self.eval_day()
            at = self._random_shift_time(snoop, day)
            ids = {self._view(snoop, at, record.id)}
            if self.rng.random() < 0.5:
                ids.add(self._view(snoop, at + dt.timedelta(minutes=4), record.id))
            self.scenarios.append(
                Scenario("coworker_snoop", ("coworker_record", "unexplained_access"),
                         at, at + dt.timedelta(minutes=5), {snoop.user_id}, ids)
            )  # fmt: skip
        for _ in range(3):
            # A relative: same surname, same household.
            snoop = self.rng.choice(staff)
            relative = self._new_patient(
                full_name=f"{self._first()} {snoop.full_name.split()[-1]}",
                address=snoop.address,
            )
            day = self.eval_day()
            at = self._random_shift_time(snoop, day)
            ids = {self._view(snoop, at, relative.id)}
            self.scenarios.append(
                Scenario("family_snoop", ("shared_identity", "unexplained_access"),
                         at, at, {snoop.user_id}, ids)
            )  # fmt: skip
        for _ in range(3):
            # A neighbour in the same building.
            snoop = self.rng.choice(staff)
            neighbour = self._new_patient(address=snoop.address)
            day = self.eval_day()
            at = self._random_shift_time(snoop, day)
            ids = {self._view(snoop, at, neighbour.id)}
            self.scenarios.append(
                Scenario("neighbour_snoop", ("shared_identity", "unexplained_access"),
                         at, at, {snoop.user_id}, ids)
            )  # fmt: skip

    def _inject_resignation_export(self) -> None:
        leavers = self.rng.sample(
            self._by_role("front_desk") + self._by_role("biller"), 2
        )
        for leaver in leavers:
            day = self.eval_day()
            at = self._at(day, leaver.shift_end - 2.5)
            ids: set[uuid.UUID] = set()
            sample = self.rng.sample(self.patients, min(150, len(self.patients) // 2))
            for n, patient in enumerate(sample):
                ids.add(self._view(leaver, at + dt.timedelta(seconds=30 * n),
                                   patient.id))  # fmt: skip
            end = at + dt.timedelta(seconds=30 * len(sample))
            for k in range(2):
                batch = self.rng.sample(self.patients, min(400, len(self.patients)))
                ids.add(
                    self.out.event(
                        self.practice, end + dt.timedelta(minutes=5 * k), "user",
                        leaver.user_id, leaver.role, "export", "patient",
                        [p.id for p in batch], [p.id for p in batch],
                        ip=f"{CLINIC_NET}{10 + self.members.index(leaver)}",
                    )
                )  # fmt: skip
            self.scenarios.append(
                Scenario(
                    "resignation_export",
                    ("bulk_access", "volume_spike", "unexplained_access"),
                    at, end + dt.timedelta(minutes=10), {leaver.user_id}, ids,
                )
            )  # fmt: skip

    def _inject_credential_stuffing(self) -> None:
        for n in range(3):
            day = self.eval_day(weekday=self.rng.random() < 0.6)
            at = self._at(day, self.rng.uniform(0, 23))
            net = ATTACKER_NETS[n % len(ATTACKER_NETS)]
            ip = f"{net}{self.rng.randint(2, 250)}"
            targets = self.rng.sample(self.members, 6)
            t = at
            for _round in range(4):
                for member in targets:
                    t += dt.timedelta(seconds=self.rng.uniform(3, 12))
                    self.out.security_event(
                        t, "account:signin:failure", user_id=member.user_id,
                        practice_id=None, actor_kind="anonymous", actor_id=None,
                        ip=ip, user_agent="python-requests/2.31", reason="bad_password",
                    )  # fmt: skip
            expected: tuple[str, ...] = ("failed_signins",)
            if n == 0:
                # The first attack works: one account signs in from the attacker's
                # network.
                t += dt.timedelta(seconds=30)
                self.out.security_event(
                    t, "account:signin:success", user_id=targets[0].user_id,
                    practice_id=self.practice, actor_kind="user",
                    actor_id=targets[0].user_id, ip=ip,
                    user_agent="python-requests/2.31",
                )  # fmt: skip
                expected = ("failed_signins", "new_signin_network")
            self.scenarios.append(
                Scenario("credential_stuffing", expected, at, t,
                         {m.user_id for m in targets})
            )  # fmt: skip

    def _inject_off_hours(self) -> None:
        for member in self.rng.sample(self._by_role("front_desk") + self._by_role(
                "biller"), 3):  # fmt: skip
            day = self.eval_day()
            at = self._at(day, self.rng.uniform(1, 3.5))
            ids = set()
            for k in range(self.rng.randint(5, 8)):
                patient = self.rng.choice(self.patients)
                ids.add(
                    self._view(
                        member,
                        at + dt.timedelta(minutes=3 * k),
                        patient.id,
                        ip=member.home_ip or "203.0.113.77",
                    )
                )
            self.scenarios.append(
                Scenario("off_hours_browsing", ("unusual_hours", "unexplained_access"),
                         at, at + dt.timedelta(minutes=30), {member.user_id}, ids)
            )  # fmt: skip

    def _inject_stolen_token(self) -> None:
        for n, (index, _replacement, day) in enumerate(self.thefts):
            token = self.tokens[index]
            at = self._at(day, self.rng.uniform(18, 22))
            net = ATTACKER_NETS[(n + 1) % len(ATTACKER_NETS)]
            ip = f"{net}{self.rng.randint(2, 250)}"
            ids = set()
            for k in range(30):
                batch = self.rng.sample(self.patients, min(50, len(self.patients)))
                ids.add(
                    self.out.event(
                        self.practice, at + dt.timedelta(seconds=20 * k), "api_token",
                        token["id"], "manager", "search", "patient",
                        [p.id for p in batch], [p.id for p in batch],
                        ip=ip, user_agent="curl/8.5",
                    )
                )  # fmt: skip
            revoked = at + dt.timedelta(hours=2)
            token["revoked_at"] = revoked
            t = revoked
            for _ in range(5):
                t += dt.timedelta(minutes=self.rng.uniform(1, 10))
                self.out.security_event(
                    t, "practice:api_token:revoked_used", user_id=None,
                    practice_id=self.practice, actor_kind="api_token",
                    actor_id=token["id"], ip=ip, user_agent="curl/8.5",
                    detail={"token_id": str(token["id"])},
                )  # fmt: skip
            self.scenarios.append(
                Scenario(
                    "stolen_api_token",
                    ("token_new_network", "revoked_token", "bulk_access",
                     "volume_spike"),
                    at, t, {token["id"]}, ids,
                )
            )  # fmt: skip

    def _inject_probes(self) -> None:
        for _ in range(2):
            member = self.rng.choice(self._by_role("front_desk"))
            day = self.eval_day()
            at = self._random_shift_time(member, day)
            ids = set()
            for k in range(self.rng.randint(1, 3)):
                foreign = self.rng.choice(self.other_patients)
                ids.add(
                    self.out.event(
                        self.practice, at + dt.timedelta(minutes=k), "user",
                        member.user_id, member.role, "view", "patient", [foreign], [],
                        outcome="not_found", row_count=0,
                    )
                )  # fmt: skip
            self.scenarios.append(
                Scenario("cross_practice_probe", ("cross_practice",), at,
                         at + dt.timedelta(minutes=3), {member.user_id}, ids)
            )  # fmt: skip
        for _ in range(2):
            member = self.rng.choice(self._by_role("front_desk"))
            day = self.eval_day()
            at = self._random_shift_time(member, day)
            ids = set()
            for k in range(6):
                patient = self.rng.choice(self.patients)
                ids.add(
                    self.out.event(
                        self.practice, at + dt.timedelta(minutes=1.5 * k), "user",
                        member.user_id, member.role, "view", "clinical_document",
                        [patient.id], [], outcome="denied", row_count=0,
                    )
                )  # fmt: skip
            self.scenarios.append(
                Scenario("repeated_denied", ("repeated_denied",), at,
                         at + dt.timedelta(minutes=10), {member.user_id}, ids)
            )  # fmt: skip

    def _inject_break_glass(self) -> None:
        for _ in range(2):
            provider = self.rng.choice(self._by_role("provider"))
            day = self.eval_day()
            at = self._random_shift_time(provider, day)
            patient = self.rng.choice(self.patients)
            self.break_glass.append(
                {"user_id": provider.user_id, "patient_id": patient.id, "at": at}
            )
            ids = {
                self.out.event(
                    self.practice, at, "user", provider.user_id, "provider",
                    "break_glass", "break_glass_grant", [uuid.uuid4()], [patient.id],
                    purpose="ETREAT",
                ),
                self._view(provider, at + dt.timedelta(minutes=1), patient.id,
                           resource="clinical_document", purpose="BTG"),
            }  # fmt: skip
            self.scenarios.append(
                Scenario("break_glass_use", ("break_glass",), at,
                         at + dt.timedelta(minutes=1), {provider.user_id}, ids)
            )  # fmt: skip

    def _new_device_once(self) -> None:
        # A member switches browser once in the month: a real, harmless change.
        member = self.rng.choice(self._by_role("front_desk"))
        day = self.eval_day()
        self.out.security_event(
            self._at(day, member.shift_start + 0.05), "account:signin:success",
            user_id=member.user_id, practice_id=self.practice, actor_kind="user",
            actor_id=member.user_id,
            ip=f"{CLINIC_NET}{10 + self.members.index(member)}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        )  # fmt: skip

    # -- writing -------------------------------------------------------------------

    def build(self) -> Month:
        self._people()
        self.tokens = [
            {"id": uuid.uuid4(), "name": name, "revoked_at": None}
            for name in ("EHR sync", "Reminders", "EHR sync 2", "Reminders 2")
        ]
        self.thefts = [(0, 2, self.eval_day()), (1, 3, self.eval_day())]
        self.other_patients = [uuid.uuid4() for _ in range(40)]
        # The second token reads the next day's visits every evening.
        day = self.warmup_from
        while day < self.end:
            self._workday(day)
            self.out.event(
                self.practice, self._at(day, 19), "api_token",
                self._token_on(1, day)["id"],
                "manager", "search", "appointment", [], [],
                ip=INTEGRATION_IP, user_agent="reminders/1.0", row_count=0,
            )  # fmt: skip
            day += dt.timedelta(days=1)
        self._inject_snooping()
        self._inject_resignation_export()
        self._inject_credential_stuffing()
        self._inject_off_hours()
        self._inject_stolen_token()
        self._inject_probes()
        self._inject_break_glass()
        self._new_device_once()
        with psycopg.connect(self.conninfo) as conn:
            self._write(conn)
        return Month(
            practice_id=self.practice,
            other_practice_id=self.other_practice,
            warmup_from=self.warmup_from,
            start=self.start,
            end=self.end,
            scenarios=self.scenarios,
            audit_events=len(self.out.events),
            security_events=len(self.out.security),
            days=self.days,
        )

    def _write(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "select audit.ensure_partitions(%s, %s)",
            (self.warmup_from.date(), (self.days + self.warmup_days) // 28 + 2),
        )
        owner = self._by_role("owner")[0]
        for practice, patients in (
            (self.practice, self.patients),
            (self.other_practice, None),
        ):
            self._practice(conn, practice, owner if patients is not None else None)
        self._phi(conn)
        self._other_practice_patients(conn)
        self._tags(conn)
        self._audit(conn)
        self._security(conn)

    def _practice(
        self, conn: psycopg.Connection[Any], practice: uuid.UUID, owner: Member | None
    ) -> None:
        owner_id = owner.user_id if owner else self.other_owner
        members = self.members if owner else []
        if owner is None:
            conn.execute(
                "insert into app.users (id, email, full_name, password_hash) "
                "values (%s, %s, 'Sim Other Owner', '!simulated')",
                (owner_id, f"sim.other.{practice.hex[:8]}@example.test"),
            )
        for m in members:
            conn.execute(
                "insert into app.users (id, email, full_name, password_hash) "
                "values (%s, %s, %s, '!simulated')",
                (m.user_id, m.email, m.full_name),
            )
        _act(conn, _claims(practice, owner_id, "owner"))
        conn.execute(
            "insert into app.practices (id, name, trial_ends_at, plan, "
            "plan_started_at, created_at) values (%s, %s, %s, 'standard', %s, %s)",
            (
                practice,
                "Simulated Practice" if owner else "Simulated Neighbour Practice",
                self.end + dt.timedelta(days=365),
                self.warmup_from,
                self.warmup_from,
            ),
        )
        conn.execute(
            "insert into app.memberships (practice_id, user_id, role) "
            "values (%s, %s, 'owner')",
            (practice, owner_id),
        )
        for m in members:
            if m is owner:
                continue
            conn.execute(
                "insert into app.memberships (practice_id, user_id, role) "
                "values (%s, %s, %s)",
                (practice, m.user_id, m.role),
            )
        _act(conn, _claims(practice, uuid.UUID(int=0), None, "system"))
        conn.execute(
            "insert into app.baa_executions (practice_id, version, document_sha256, "
            "executed_at) values (%s, 'simulated', %s, %s)",
            (practice, "0" * 64, self.warmup_from),
        )
        _act(conn, _claims(practice, owner_id, "owner"))
        for m in members:
            if m.provider_id:
                conn.execute(
                    "insert into phi.providers (id, practice_id, display_name) "
                    "values (%s, %s, %s)",
                    (m.provider_id, practice, f"Dr. {m.full_name}"),
                )
                conn.execute(
                    "update app.memberships set provider_id = %s "
                    "where practice_id = %s and user_id = %s",
                    (m.provider_id, practice, m.user_id),
                )
        for token in self.tokens if owner else []:
            conn.execute(
                "insert into app.api_tokens (id, practice_id, name, token_hash, "
                "scopes, created_by, created_at, revoked_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    token["id"],
                    practice,
                    token["name"],
                    uuid.uuid4().bytes * 2,
                    ["appointments:view"],
                    owner_id,
                    self.warmup_from,
                    token["revoked_at"],
                ),
            )
        conn.commit()

    def _phi(self, conn: psycopg.Connection[Any]) -> None:
        owner = self._by_role("owner")[0]
        practice = self.practice
        seal = self.vault.seal
        rows = []
        for p in self.patients + self.injected_patients:
            rows.append(
                (
                    p.id,
                    practice,
                    seal(practice, "patients", "name", p.id, p.full_name),
                    seal(
                        practice,
                        "patients",
                        "birth_date",
                        p.id,
                        p.birth_date.isoformat(),
                    ),
                    seal(practice, "patients", "phone", p.id, p.phone),
                    self.vault.index.phone(practice, p.phone),
                    self.vault.name_dob_index(practice, p.full_name, p.birth_date),
                    self.warmup_from - dt.timedelta(days=400),
                )
            )
        _act(conn, _claims(practice, owner.user_id, "owner"))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into phi.patients (id, practice_id, name_ct, birth_date_ct, "
                "phone_ct, phone_bidx, name_dob_bidx, created_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
            cur.executemany(
                "insert into phi.appointments (id, practice_id, patient_id, "
                "provider_id, starts_at, ends_at, status, created_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        a["id"], practice, a["patient_id"], a["provider_id"],
                        a["starts_at"], a["ends_at"], a["status"], a["created_at"],
                    )
                    for a in self.appointments
                ],
            )  # fmt: skip
            coverage_rows = []
            for patient_id, cov in self.coverages.items():
                coverage_id = uuid.uuid4()
                member_id = f"SIM{coverage_id.hex[:9].upper()}"
                coverage_rows.append(
                    (
                        coverage_id, practice, patient_id, "Synthetic Health",
                        seal(practice, "coverages", "member_id", coverage_id,
                             member_id),
                        self.vault.index.member_id(practice, member_id),
                        cov["verified"], self.warmup_from - dt.timedelta(days=300),
                    )
                )  # fmt: skip
            cur.executemany(
                "insert into phi.coverages (id, practice_id, patient_id, payer, "
                "member_id_ct, member_id_bidx, last_verified_at, created_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                coverage_rows,
            )
            for grant in self.break_glass:
                _act(conn, _claims(practice, grant["user_id"], "provider"))
                cur.execute(
                    "insert into phi.break_glass_grants (practice_id, user_id, "
                    "patient_id, reason, starts_at, expires_at) "
                    "values (%s, %s, %s, %s, %s, %s)",
                    (
                        practice, grant["user_id"], grant["patient_id"],
                        "Simulated emergency: patient unconscious at the desk",
                        grant["at"], grant["at"] + dt.timedelta(hours=1),
                    ),
                )  # fmt: skip
            # Calls come from agents and telephony, never from people.
            _act(conn, _claims(practice, self.agent_id, None, "agent"))
            cur.executemany(
                "insert into phi.calls (id, practice_id, direction, started_at, "
                "duration_seconds, patient_id, created_at) "
                "values (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (c["id"], practice, c["direction"], c["started_at"], 120,
                     c["patient_id"], c["started_at"])
                    for c in self.calls
                ],
            )  # fmt: skip
        conn.commit()

    def _other_practice_patients(self, conn: psycopg.Connection[Any]) -> None:
        practice = self.other_practice
        _act(conn, _claims(practice, self.other_owner, "owner"))
        seal = self.vault.seal
        with conn.cursor() as cur:
            cur.executemany(
                "insert into phi.patients (id, practice_id, name_ct, birth_date_ct, "
                "name_dob_bidx) values (%s, %s, %s, %s, %s)",
                [
                    (
                        pid, practice,
                        seal(practice, "patients", "name", pid, "Other Synthetic"),
                        seal(practice, "patients", "birth_date", pid, "1970-01-01"),
                        self.vault.name_dob_index(
                            practice, f"Other {pid.hex[:6]}", dt.date(1970, 1, 1)
                        ),
                    )
                    for pid in self.other_patients
                ],
            )  # fmt: skip
        conn.commit()

    def _tags(self, conn: psycopg.Connection[Any]) -> None:
        practice = self.practice
        index = self.vault.index
        _act(conn, _claims(practice, uuid.UUID(int=0), None, "system"))
        with conn.cursor() as cur:
            member_rows = [
                (practice, m.user_id, kind, tag)
                for m in self.members
                for kind, tag in identity_tags(
                    index, practice, full_name=m.full_name, phone=m.phone,
                    address=m.address,
                )
            ]  # fmt: skip
            cur.executemany(
                "insert into monitor.member_tags (practice_id, user_id, kind, tag) "
                "values (%s, %s, %s, %s) on conflict do nothing",
                member_rows,
            )
            patient_rows = [
                (practice, p.id, kind, tag)
                for p in self.patients + self.injected_patients
                for kind, tag in identity_tags(
                    index, practice, full_name=p.full_name, address=p.address
                )
            ]
            cur.executemany(
                "insert into monitor.patient_tags (practice_id, patient_id, kind, tag) "
                "values (%s, %s, %s, %s) on conflict do nothing",
                patient_rows,
            )
        conn.commit()

    def _audit(self, conn: psycopg.Connection[Any]) -> None:
        _act(conn, _claims(self.practice, uuid.UUID(int=0), None, "system"))
        events = sorted(self.out.events, key=lambda e: e["occurred_at"])
        columns = (
            "id", "practice_id", "occurred_at", "actor_kind", "actor_id", "actor_role",
            "action", "resource_type", "purpose", "ip", "user_agent", "outcome",
            "row_count",
        )  # fmt: skip
        for start in range(0, len(events), 5000):
            chunk = events[start : start + 5000]
            arrays = [[e[c] for e in chunk] for c in columns]
            conn.execute(
                "insert into audit.events (id, practice_id, occurred_at, actor_kind, "
                "actor_id, actor_role, action, resource_type, purpose_of_use, "
                "client_ip, user_agent, outcome, row_count, request_id, "
                "resource_ids, patient_ids) "
                "select x.id, x.practice_id, x.occurred_at, x.actor_kind, x.actor_id, "
                "  x.actor_role, x.action, x.resource_type, x.purpose_of_use, "
                "  x.client_ip, x.user_agent, x.outcome, x.row_count, 'simulate', "
                "  (select coalesce(array_agg(r::uuid), '{}') "
                "     from jsonb_array_elements_text(rs.value) r), "
                "  (select coalesce(array_agg(p::uuid), '{}') "
                "     from jsonb_array_elements_text(ps.value) p) "
                "from unnest(%s::uuid[], %s::uuid[], %s::timestamptz[], %s::text[], "
                "  %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], "
                "  %s::inet[], %s::text[], %s::text[], %s::int[]) "
                "  with ordinality as x(id, practice_id, occurred_at, actor_kind, "
                "  actor_id, actor_role, action, resource_type, purpose_of_use, "
                "  client_ip, user_agent, outcome, row_count, n) "
                "join jsonb_array_elements(%s::jsonb) with ordinality rs(value, n) "
                "  on rs.n = x.n "
                "join jsonb_array_elements(%s::jsonb) with ordinality ps(value, n) "
                "  on ps.n = x.n",
                (
                    *arrays,
                    json.dumps([[str(r) for r in e["resource_ids"]] for e in chunk]),
                    json.dumps([[str(p) for p in e["patient_ids"]] for e in chunk]),
                ),
            )
        conn.commit()

    def _security(self, conn: psycopg.Connection[Any]) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into app.security_events (occurred_at, kind, user_id, "
                "practice_id, actor_kind, actor_id, reason, ip, user_agent, detail) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (s["at"], s["kind"], s["user_id"], s["practice_id"],
                     s["actor_kind"], s["actor_id"], s["reason"], s["ip"],
                     s["user_agent"], s["detail"])
                    for s in sorted(self.out.security, key=lambda s: s["at"])
                ],
            )  # fmt: skip
        conn.commit()
