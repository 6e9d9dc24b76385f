"""The JSON API's foundation: sign-up with a 14-day trial, sessions, one problem
shape for every error, and a read-only practice once its trial ends."""

from __future__ import annotations

import datetime as dt

from tests.conftest import owner_connection
from tests.support.factories import STRONG_PASSWORD, sign_up, signup_body

from perpetua.clock import FrozenClock


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert "Traceback" not in response.text
    return body


def test_signup_starts_a_fourteen_day_trial(client, clock: FrozenClock):
    result = sign_up(client)
    practice = result["practice"]
    ends = dt.datetime.fromisoformat(practice["trial_ends_at"])
    assert ends - clock.now() == dt.timedelta(days=14)
    assert practice["trial_days_left"] == 14
    assert practice["status"] == "trial"

    me = client.get("/api/v1/practice", headers=result["auth"])
    assert me.status_code == 200
    assert me.json()["name"] == result["input"]["practice_name"]


def test_trial_days_left_counts_down_with_the_clock(client, clock: FrozenClock):
    result = sign_up(client)
    clock.advance(days=10, minutes=1)
    response = client.get("/api/v1/practice", headers=result["auth"])
    # The session's idle timeout ended it: days passed without a request.
    assert_problem(response, 401, "session_expired")

    token = client.post(
        "/api/v1/sessions",
        json={"email": result["input"]["email"], "password": STRONG_PASSWORD},
    ).json()["token"]
    response = client.get(
        "/api/v1/practice", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.json()["trial_days_left"] == 4


def test_signup_with_a_registered_email_is_a_conflict(client):
    first = sign_up(client)
    again = client.post(
        "/api/v1/signup", json=signup_body(email=first["input"]["email"].upper())
    )
    assert_problem(again, 409, "email_taken")


def test_short_password_is_refused_without_echoing_it(client):
    response = client.post("/api/v1/signup", json=signup_body(password="short-pw"))
    body = assert_problem(response, 422, "password_too_short")
    assert "short-pw" not in response.text
    assert body["title"]


def test_common_password_is_refused(client):
    response = client.post("/api/v1/signup", json=signup_body(password="password1234"))
    assert_problem(response, 422, "password_too_common")


def test_malformed_json_is_a_400_problem(client):
    response = client.post(
        "/api/v1/signup",
        content=b'{"practice_name": ',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")


def test_missing_and_unknown_fields_are_422_without_values(client):
    body = signup_body()
    del body["email"]
    body["surprise"] = "sentinel-value-xyz"
    response = client.post("/api/v1/signup", json=body)
    problem = assert_problem(response, 422, "invalid_input")
    fields = {error["field"] for error in problem["errors"]}
    assert {"email", "surprise"} <= fields
    assert "sentinel-value-xyz" not in response.text
    assert body["password"] not in response.text


def test_invalid_email_is_refused(client):
    response = client.post("/api/v1/signup", json=signup_body(email="not-an-email"))
    assert_problem(response, 422, "invalid_input")


def test_unknown_route_and_wrong_method_are_problems(client):
    assert_problem(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_problem(client.get("/api/v1/signup"), 405, "method_not_allowed")


def test_unknown_email_and_wrong_password_answer_alike(client):
    result = sign_up(client)
    wrong = client.post(
        "/api/v1/sessions",
        json={"email": result["input"]["email"], "password": "not the password!"},
    )
    unknown = client.post(
        "/api/v1/sessions",
        json={"email": "nobody@example.test", "password": "not the password!"},
    )
    first = assert_problem(wrong, 401, "invalid_credentials")
    second = assert_problem(unknown, 401, "invalid_credentials")
    first.pop("request_id")
    second.pop("request_id")
    assert first == second


def test_requests_without_or_with_a_forged_token_are_refused(client):
    assert_problem(client.get("/api/v1/practice"), 401, "not_authenticated")
    forged = {"Authorization": "Bearer " + "A" * 43}
    assert_problem(
        client.get("/api/v1/practice", headers=forged), 401, "not_authenticated"
    )


def test_idle_session_ends_after_fifteen_minutes(client, clock: FrozenClock):
    result = sign_up(client)
    clock.advance(minutes=14)
    assert client.get("/api/v1/practice", headers=result["auth"]).status_code == 200
    clock.advance(minutes=14)
    assert client.get("/api/v1/practice", headers=result["auth"]).status_code == 200
    clock.advance(minutes=15, seconds=1)
    response = client.get("/api/v1/practice", headers=result["auth"])
    assert_problem(response, 401, "session_expired")
    # An ended session stays ended even if the clock is wound back.
    clock.advance(minutes=-30)
    response = client.get("/api/v1/practice", headers=result["auth"])
    assert_problem(response, 401, "session_expired")


def test_signed_out_session_cannot_be_used(client):
    result = sign_up(client)
    assert (
        client.delete("/api/v1/sessions/current", headers=result["auth"]).status_code
        == 204
    )
    response = client.get("/api/v1/practice", headers=result["auth"])
    assert_problem(response, 401, "session_expired")


def test_expired_trial_makes_the_practice_read_only_and_keeps_data(client, target):
    result = sign_up(client)
    practice_id = result["practice"]["id"]
    with owner_connection(target) as conn:
        conn.execute("alter table app.practices disable trigger practices_writable")
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)",
            (
                '{"actor_kind": "system", "sub": '
                '"00000000-0000-0000-0000-000000000000", "request_id": "t", '
                f'"practice_id": "{practice_id}"}}',
            ),
        )
        conn.execute(
            "update app.practices set trial_ends_at = now() - interval '1 day' "
            "where id = %s",
            (practice_id,),
        )
        conn.execute("alter table app.practices enable trigger practices_writable")

    response = client.patch(
        "/api/v1/practice", json={"name": "Renamed"}, headers=result["auth"]
    )
    problem = assert_problem(response, 403, "practice_read_only")
    assert "Nothing has been deleted" in problem["title"]

    still = client.get("/api/v1/practice", headers=result["auth"]).json()
    assert still["status"] == "read_only"
    assert still["name"] == result["input"]["practice_name"]


def test_owner_can_rename_during_trial(client):
    result = sign_up(client)
    response = client.patch(
        "/api/v1/practice", json={"name": "  Cedar   Clinic "}, headers=result["auth"]
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Cedar Clinic"


def test_openapi_document_describes_the_api(client):
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/v1/signup", "/api/v1/sessions", "/api/v1/practice"):
        assert path in document["paths"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_a_weaker_password_hash_is_upgraded_at_sign_in(client, target):
    from perpetua.identity.passwords import Argon2Profile, hash_password, make_hasher

    result = sign_up(client)
    weak = hash_password(
        STRONG_PASSWORD, hasher=make_hasher(Argon2Profile(1, 8 * 1024, 1))
    )
    with owner_connection(target) as conn:
        conn.execute(
            "update app.users set password_hash = %s where id = %s",
            (weak, result["user_id"]),
        )
    response = client.post(
        "/api/v1/sessions",
        json={"email": result["input"]["email"], "password": STRONG_PASSWORD},
    )
    assert response.status_code == 201
    with owner_connection(target) as conn:
        row = conn.execute(
            "select password_hash from app.users where id = %s", (result["user_id"],)
        ).fetchone()
    assert row is not None
    assert row[0] != weak
    assert "m=65536,t=3" in str(row[0])
