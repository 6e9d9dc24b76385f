"""Property: whatever claims a transaction carries, the read functions never
return another practice's row, and missing or malformed claims return nothing.

Checked directly against the database functions (so no application code can be
what keeps practices apart), with practices, roles, actor kinds and claims drawn at
random by hypothesis."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.world import ROLES, as_owner_role, execute_baa

from perpetua.db.target import DatabaseTarget

CT = b"\x01sealed-test-bytes"


def _practice(target: DatabaseTarget) -> dict[str, Any]:
    practice = str(uuid.uuid4())
    owner = str(uuid.uuid4())
    claims = {
        "actor_kind": "user",
        "sub": owner,
        "request_id": "setup",
        "practice_id": practice,
        "practice_role": "owner",
    }
    with as_owner_role(target, claims) as conn:
        conn.execute(
            "insert into app.users (id, email, full_name, password_hash) "
            "values (%s, %s, 'Prop Owner', 'x')",
            (owner, f"{owner}@example.test"),
        )
        conn.execute(
            "insert into app.practices (id, name, trial_ends_at) "
            "values (%s, 'Prop Practice', now() + interval '14 days')",
            (practice,),
        )
        conn.execute(
            "insert into app.memberships (practice_id, user_id, role) "
            "values (%s, %s, 'owner')",
            (practice, owner),
        )
    execute_baa(target, practice)
    ids: dict[str, list[str]] = {"patients": [], "appointments": [], "calls": []}
    provider = str(uuid.uuid4())
    with as_owner_role(target, claims) as conn:
        conn.execute(
            "select phi_api.create_provider(%s, 'Dr. Prop', null)", (provider,)
        )
        for n in range(3):
            patient, visit = str(uuid.uuid4()), str(uuid.uuid4())
            conn.execute(
                "select phi_api.create_patient(%s, %s, %s, null, null, %s, %s)",
                (patient, CT, CT, bytes([n]) * 18, bytes([n + 9]) * 18),
            )
            conn.execute(
                "select phi_api.create_appointment(%s, %s, %s, "
                "'2026-03-02T15:00Z', '2026-03-02T15:30Z', null, 'booked')",
                (visit, patient, provider),
            )
            conn.execute(
                "select phi_api.upsert_coverage(%s, %s, 'Payer', %s, %s, null, "
                "null, null, null, null)",
                (str(uuid.uuid4()), patient, CT, bytes([n + 20]) * 18),
            )
            ids["patients"].append(patient)
            ids["appointments"].append(visit)
        system = {**claims, "actor_kind": "system"}
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)", (json.dumps(system),)
        )
        call = str(uuid.uuid4())
        conn.execute(
            "select phi_api.create_call(%s, 'inbound', null, null, "
            "'2026-03-02T14:00Z', 5, %s)",
            (call, ids["patients"][0]),
        )
        ids["calls"].append(call)
    return {"id": practice, "ids": ids, "provider": provider}


READS = (
    ("select id from phi_api.read_patients(%(patients)s)", "patients"),
    ("select id from phi_api.find_patients(%(tag)s, %(tag)s)", "patients"),
    ("select id from phi_api.read_appointments(%(appointments)s)", "appointments"),
    (
        "select id from phi_api.schedule(null, '2026-03-01T00:00Z', "
        "'2026-03-05T00:00Z', false)",
        "appointments",
    ),
    (
        "select patient_id as id from phi_api.read_coverages(%(patient)s, null)",
        "patients",
    ),
    ("select id from phi_api.read_calls(%(calls)s, null, null)", "calls"),
    ("select id from phi_api.export_patients()", "patients"),
)

malformed = st.one_of(
    st.just(""),
    st.text(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
        max_size=30,
    ),
    st.just("[]"),
    st.just('{"actor_kind": "user"}'),
    st.builds(
        lambda kind, practice: json.dumps(
            {
                "actor_kind": kind,
                "sub": "not-a-uuid",
                "request_id": "r",
                "practice_id": practice,
            }
        ),
        st.sampled_from(["user", "agent"]),
        st.just(str(uuid.uuid4())),
    ),
)


def test_reads_never_cross_practices(target: DatabaseTarget):
    practices = [_practice(target) for _ in range(3)]
    owner_of: dict[str, str] = {}
    for p in practices:
        for group in p["ids"].values():
            for rid in group:
                owner_of[rid] = p["id"]
    all_ids = {
        key: [rid for p in practices for rid in p["ids"][key]]
        for key in ("patients", "appointments", "calls")
    }
    conn = psycopg.connect(target.conninfo("service"), autocommit=True)

    def run(claims_text: str) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        params = {
            **all_ids,
            "tag": bytes([0]) * 18,
            "patient": all_ids["patients"][0],
        }
        for sql, _kind in READS:
            with conn.transaction():
                conn.execute(
                    "select set_config('request.jwt.claims', %s, true)", (claims_text,)
                )
                try:
                    rows = conn.execute(sql, params).fetchall()
                except psycopg.Error as exc:
                    # Fail closed is also an answer: no rows. Anything else is not.
                    if exc.sqlstate not in ("PR401", "42501"):
                        raise
                    raise _Refused() from exc
            seen += [(str(r[0]), sql) for r in rows]
        return seen

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        practice=st.sampled_from([p["id"] for p in practices] + [str(uuid.uuid4())]),
        role=st.sampled_from([*ROLES, None]),
        kind=st.sampled_from(["user", "agent", "api_token", "staff", "system"]),
        scopes=st.one_of(
            st.none(),
            st.lists(
                st.sampled_from(
                    [
                        "demographics:view",
                        "schedule:view",
                        "calls:view",
                        "insurance:view",
                        "demographics:export",
                    ]
                ),
                max_size=3,
            ),
        ),
        purpose=st.sampled_from([None, "TREAT", "BTG", "bogus"]),
    )
    def valid_claims_see_only_their_practice(practice, role, kind, scopes, purpose):
        claims: dict[str, Any] = {
            "actor_kind": kind,
            "sub": str(uuid.uuid4()),
            "request_id": "prop",
            "practice_id": practice,
        }
        if role:
            claims["practice_role"] = role
        if scopes is not None:
            claims["scopes"] = scopes
        if purpose:
            claims["purpose_of_use"] = purpose
        try:
            seen = run(json.dumps(claims))
        except _Refused:
            return
        for rid, sql in seen:
            assert owner_of.get(rid) == practice, (claims, sql)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(claims_text=malformed)
    def malformed_claims_see_nothing(claims_text):
        with contextlib.suppress(_Refused):
            assert run(claims_text) == []

    try:
        valid_claims_see_only_their_practice()
        malformed_claims_see_nothing()
        # And the owner's own claims do see their rows: the property is not vacuous.
        own = {
            "actor_kind": "user",
            "sub": str(uuid.uuid4()),
            "request_id": "prop",
            "practice_id": practices[0]["id"],
            "practice_role": "owner",
        }
        seen = {rid for rid, _ in run(json.dumps(own))}
        assert set(practices[0]["ids"]["patients"]) <= seen
    finally:
        conn.close()


class _Refused(Exception):
    pass
