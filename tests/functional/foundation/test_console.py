"""The console's foundation: sign-up and sign-in pages, CSRF on every form,
security headers on every response, and the trial shown to the owner."""

from __future__ import annotations

import datetime as dt
import re

from starlette.testclient import TestClient
from tests.support.factories import STRONG_PASSWORD, signup_body

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match
    return match.group(1)


def test_every_response_carries_the_security_headers(client):
    for path in (
        "/signup",
        "/api/v1/openapi.json",
        "/healthz",
        "/nowhere",
        "/static/app.css",
    ):
        response = client.get(path)
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-request-id"]


def test_pages_and_api_answers_are_not_cached(client):
    assert client.get("/signup").headers["cache-control"] == "no-store"
    assert client.get("/api/v1/openapi.json").headers["cache-control"] == "no-store"


def test_pages_have_no_inline_script(client):
    for path in ("/signup", "/signin"):
        assert "<script>" not in client.get(path).text


def test_cookies_are_secure_httponly_and_samesite(client):
    response = client.get("/signup")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-")
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert flag in cookie


def test_signup_form_without_csrf_token_is_refused(client):
    client.get("/signup")
    response = client.post("/signup", data=signup_body())
    assert response.status_code == 403
    assert "could not be verified" in response.text


def test_signup_form_from_another_origin_is_refused(client):
    token = form_token(client, "/signup")
    response = client.post(
        "/signup",
        data={**signup_body(), "csrf_token": token},
        headers={"origin": "https://attacker.example"},
    )
    assert response.status_code == 403


def test_signup_in_the_console_shows_the_trial(client, clock):
    token = form_token(client, "/signup")
    body = signup_body()
    response = client.post(
        "/signup", data={**body, "csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?welcome=1"
    session_cookie = next(
        c for c in response.headers.get_list("set-cookie") if "perpetua-session" in c
    )
    assert "HttpOnly" in session_cookie
    assert "Secure" in session_cookie

    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200
    assert body["practice_name"] in dashboard.text
    assert "14 days" in dashboard.text
    ends = clock.now().replace(microsecond=0)
    expected = (ends + dt.timedelta(days=14)).strftime("%-d %B %Y")
    assert expected in dashboard.text


def test_signup_errors_keep_what_was_typed_except_the_password(client):
    token = form_token(client, "/signup")
    body = signup_body(password="tooshort")
    response = client.post("/signup", data={**body, "csrf_token": token})
    assert response.status_code == 422
    assert body["practice_name"] in response.text
    assert "tooshort" not in response.text
    assert "at least 12 characters" in response.text


def test_signin_and_signout_in_the_console(client):
    body = signup_body()
    client.post("/signup", data={**body, "csrf_token": form_token(client, "/signup")})
    client.cookies.clear()

    assert (
        client.get("/dashboard", follow_redirects=False).headers["location"]
        == "/signin"
    )
    wrong = client.post(
        "/signin",
        data={
            "email": body["email"],
            "password": "wrong wrong wrong",
            "csrf_token": form_token(client, "/signin"),
        },
    )
    assert wrong.status_code == 401
    assert "Email or password is incorrect" in wrong.text

    right = client.post(
        "/signin",
        data={
            "email": body["email"],
            "password": STRONG_PASSWORD,
            "csrf_token": form_token(client, "/signin"),
        },
        follow_redirects=False,
    )
    assert right.headers["location"] == "/dashboard"
    dashboard = client.get("/dashboard")
    assert body["practice_name"] in dashboard.text

    token = CSRF.search(dashboard.text).group(1)
    out = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert out.headers["location"] == "/signin"
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_idle_console_session_sends_the_user_to_sign_in(client, clock):
    client.post(
        "/signup", data={**signup_body(), "csrf_token": form_token(client, "/signup")}
    )
    clock.advance(minutes=16)
    response = client.get("/dashboard", follow_redirects=False)
    assert response.headers["location"] == "/signin?ended=1"
    assert "Your session ended" in client.get("/signin?ended=1").text
