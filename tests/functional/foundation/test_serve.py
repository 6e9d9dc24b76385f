"""`perpetua serve` as an operator runs it: HTTPS with TLS 1.3 only, one server per
data directory, data that survives a restart, and the database commands."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import scratch_dir
from tests.support.factories import STRONG_PASSWORD, signup_body
from tests.support.server import Server, insecure_context, perpetua

from perpetua.db.embedded import EmbeddedPostgres


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return scratch_dir("perpetua-serve-") / "data"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Server]:
    running = Server(data_dir).start()
    yield running
    running.stop()


def request(
    server: Server,
    method: str,
    path: str,
    body: dict | None = None,
    token: str | None = None,
) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method)  # noqa: S310
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=insecure_context(), timeout=30) as r:  # noqa: S310
            return r.status, dict(r.headers), json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


def handshake(port: int, version: ssl.TLSVersion) -> str:
    context = insecure_context()
    context.minimum_version = version
    context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def test_health_answers_over_https_with_hsts(server: Server):
    status, headers, body = request(server, "GET", "/healthz")
    assert status == 200
    assert body == {"status": "ok"}
    assert "max-age" in headers["strict-transport-security"]


def test_tls_1_2_handshake_is_refused_and_1_3_accepted(server: Server):
    with pytest.raises(ssl.SSLError):
        handshake(server.port, ssl.TLSVersion.TLSv1_2)
    assert handshake(server.port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_plain_http_gets_no_answer(server: Server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = raw.recv(4096)
    assert b"200 OK" not in answer


def test_second_serve_on_the_same_data_dir_refuses(server: Server, data_dir: Path):
    second = perpetua("serve", "--port", "1", data_dir=data_dir)
    assert second.returncode == 2
    assert "already running" in second.stderr


def test_service_role_in_db_shell_is_not_superuser(server: Server, data_dir: Path):
    result = perpetua(
        "db",
        "shell",
        "--as",
        "service",
        "--",
        "-tAc",
        "select rolsuper, rolbypassrls from pg_roles where rolname = current_user",
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "f|f"

    owned = perpetua(
        "db",
        "shell",
        "--as",
        "service",
        "--",
        "-tAc",
        "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner "
        "where r.rolname = current_user",
        data_dir=data_dir,
    )
    assert owned.stdout.strip() == "0"


def test_db_url_and_migrate_use_the_running_server(server: Server, data_dir: Path):
    url = perpetua("db", "url", "--as", "service", data_dir=data_dir)
    assert url.returncode == 0
    assert url.stdout.startswith("postgresql://perpetua_service:")
    migrate = perpetua("migrate", data_dir=data_dir)
    assert migrate.returncode == 0
    assert "up to date" in migrate.stdout
    # The server is still there after the commands let go of the database.
    assert request(server, "GET", "/readyz")[0] == 200


def test_data_survives_a_restart(server: Server, data_dir: Path):
    body = signup_body()
    status, _, created = request(server, "POST", "/api/v1/signup", body)
    assert status == 201
    server.stop()
    server.start()
    status, _, session = request(
        server,
        "POST",
        "/api/v1/sessions",
        {"email": body["email"], "password": STRONG_PASSWORD},
    )
    assert status == 201
    status, _, practice = request(
        server, "GET", "/api/v1/practice", token=session["token"]
    )
    assert practice["id"] == created["practice"]["id"]
    assert practice["trial_ends_at"] == created["practice"]["trial_ends_at"]


def test_commands_start_and_stop_the_database_when_nothing_runs():
    data_dir = scratch_dir("perpetua-cli-") / "data"
    migrate = perpetua("migrate", data_dir=data_dir)
    assert migrate.returncode == 0, migrate.stderr
    assert "applied 0001_claims" in migrate.stdout
    shell = perpetua("db", "shell", "--", "-tAc", "select 1", data_dir=data_dir)
    assert shell.stdout.strip() == "1"
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_remote_database_without_verified_tls_is_refused(tmp_path: Path):
    result = perpetua(
        "migrate",
        data_dir=tmp_path / "data",
        env={"DATABASE_URL": "postgresql://u:p@db.example.com:5432/perpetua"},
    )
    assert result.returncode == 2
    assert "sslmode=verify-full" in result.stderr
    assert "u:p" not in result.stderr


def test_external_database_url_is_used_as_the_owner(server: Server, data_dir: Path):
    owner = perpetua("db", "url", "--as", "owner", data_dir=data_dir).stdout.strip()
    service = perpetua("db", "url", "--as", "service", data_dir=data_dir).stdout.strip()
    result = perpetua(
        "migrate",
        data_dir=data_dir.parent / "other",
        env={"DATABASE_URL": owner, "SERVICE_DATABASE_URL": service},
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_stopping_serve_stops_its_embedded_database():
    data_dir = scratch_dir("perpetua-stop-") / "data"
    running = Server(data_dir).start()
    running.stop()
    pg = EmbeddedPostgres(data_dir)
    assert pg.postmaster() is None
    assert list((data_dir / "run" / "pg-holders").iterdir()) == []
