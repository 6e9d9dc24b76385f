"""Property, through the whole API: a member of one practice, in any role, asking
for any record of any practice by any route, never receives another practice's
data."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.world import ROLES, build_world


def test_no_route_returns_another_practices_records(client, target):
    worlds = [build_world(client, target) for _ in range(2)]
    records = []
    for world in worlds:
        patient = world.patient()
        visit = world.appointment(patient["id"])
        call = world.make_call(target, patient_id=patient["id"])
        coverage = world.api(
            "front_desk",
            "PUT",
            f"/api/v1/patients/{patient['id']}/coverage",
            json={"payer": "Synthetic Mutual", "member_id": f"M{patient['id'][:8]}"},
        ).json()
        records.append(
            {
                "patient": patient,
                "visit": visit["id"],
                "call": call,
                "coverage": coverage,
            }
        )

    def routes(r):
        p = r["patient"]
        return [
            ("GET", f"/api/v1/patients/{p['id']}", None),
            ("GET", f"/api/v1/appointments/{r['visit']}", None),
            ("GET", f"/api/v1/calls/{r['call']}", None),
            ("GET", f"/api/v1/patients/{p['id']}/coverage", None),
            ("GET", f"/api/v1/patients/{p['id']}/access-report", None),
            ("POST", "/api/v1/patients/search", {"phone": p["phone"]}),
            (
                "POST",
                "/api/v1/patients/search",
                {"name": p["name"], "birth_date": p["birth_date"]},
            ),
            (
                "POST",
                "/api/v1/coverage/search",
                {"member_id": r["coverage"]["member_id"]},
            ),
            (
                "PUT",
                f"/api/v1/patients/{p['id']}",
                {"name": "X", "birth_date": "1990-01-01"},
            ),
            ("PATCH", f"/api/v1/appointments/{r['visit']}", {"status": "cancelled"}),
        ]

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        me=st.sampled_from([0, 1]),
        role=st.sampled_from(ROLES),
        route=st.integers(min_value=0, max_value=9),
        purpose=st.sampled_from([None, "BTG", "TREAT"]),
    )
    def never_crosses(me, role, route, purpose):
        other = records[1 - me]
        method, path, body = routes(other)[route]
        headers = {"X-Purpose-Of-Use": purpose} if purpose else {}
        response = worlds[me].api(role, method, path, json=body, headers=headers)
        assert response.status_code in (200, 403, 404, 422), response.text
        text = response.text
        secrets = [
            other["patient"]["name"],
            other["patient"]["phone"],
            other["coverage"]["member_id"],
        ]
        for secret in secrets:
            assert secret not in text
        if response.status_code == 200:
            payload = json.loads(text)
            assert (
                payload in ([], {})
                or "id" not in payload
                or (payload["id"] not in (other["patient"]["id"], other["visit"]))
            )

    never_crosses()

    # Not vacuous: the same routes work within the member's own practice.
    own = worlds[0].api(
        "owner", "GET", f"/api/v1/patients/{records[0]['patient']['id']}"
    )
    assert own.status_code == 200
