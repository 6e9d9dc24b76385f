"""Fixtures shared by every test: a real embedded PostgreSQL per test process, a
fresh database per test cloned from a migrated template, and the application wired
to that database with a controllable clock. Nothing of Perpetua's is mocked."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from starlette.testclient import TestClient

from perpetua.clock import FrozenClock
from perpetua.config import Settings
from perpetua.db.embedded import ADMIN_ROLE, EmbeddedPostgres, pg_binary
from perpetua.db.migrations import migrate
from perpetua.db.pool import Database
from perpetua.db.secrets_dir import read_or_create_secret
from perpetua.db.target import (
    OWNER_ROLE,
    SERVICE_ROLE,
    DatabaseTarget,
    bootstrap_embedded,
    ensure_database,
)
from perpetua.web.app import create_app

TEMPLATE_DB = "perpetua_template"


_SCRATCH: list[Path] = []


def scratch_dir(prefix: str) -> Path:
    # Not pytest's tmp_path: that lives under a 0700 folder the postgres OS user
    # (used when tests run as root) could not enter.
    base = Path(os.environ.get("PERPETUA_TEST_TMP", tempfile.gettempdir()))
    made = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    _SCRATCH.append(made)
    return made


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # After every fixture, the embedded servers included, has been torn down: the
    # folders held keys, databases and mail of synthetic practices, and a machine
    # running the suite often should not collect them.
    for made in _SCRATCH:
        shutil.rmtree(made, ignore_errors=True)


class Cluster:
    """One embedded server for this test process, with a migrated template."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pg = EmbeddedPostgres(data_dir)
        self.pg.acquire()
        settings = Settings(data_dir=data_dir)
        bootstrap_embedded(settings, self.pg)
        self.owner_pw = read_or_create_secret(data_dir, "db-owner.password")
        self.service_pw = read_or_create_secret(data_dir, "db-service.password")
        with self.admin() as conn, conn.cursor() as cur:
            ensure_database(cur, TEMPLATE_DB)  # type: ignore[arg-type]
        migrate(self.target(TEMPLATE_DB).conninfo("owner"))

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        info = self.pg.conninfo(ADMIN_ROLE, self.pg.admin_password(), dbname)
        return psycopg.connect(**info, autocommit=True)

    def target(self, dbname: str) -> DatabaseTarget:
        return DatabaseTarget(
            owner=self.pg.conninfo(OWNER_ROLE, self.owner_pw, dbname),
            service=self.pg.conninfo(SERVICE_ROLE, self.service_pw, dbname),
            embedded=self.pg,
        )

    def clone(self) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        with self.admin() as conn:
            conn.execute(
                sql.SQL("create database {} template {} owner {}").format(
                    sql.Identifier(name),
                    sql.Identifier(TEMPLATE_DB),
                    sql.Identifier(OWNER_ROLE),
                )
            )
            conn.execute(
                sql.SQL("grant connect, temporary on database {} to {}").format(
                    sql.Identifier(name), sql.Identifier(SERVICE_ROLE)
                )
            )
        return name

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(name)
                )
            )

    def close(self) -> None:
        self.pg.release()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    made = Cluster(scratch_dir("perpetua-test-pg-"))
    yield made
    made.close()


@pytest.fixture
def target(cluster: Cluster) -> Iterator[DatabaseTarget]:
    """A database of its own for this test, already migrated."""
    name = cluster.clone()
    yield cluster.target(name)
    cluster.drop(name)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(cluster: Cluster) -> Settings:
    return Settings(data_dir=cluster.data_dir, host="testserver", port=443)


@contextlib.contextmanager
def app_client(
    target: DatabaseTarget, settings: Settings, clock: FrozenClock
) -> Iterator[TestClient]:
    """The application on `target`'s database, over its ASGI interface."""
    app = create_app(
        settings,
        Database(target.conninfo("service"), min_size=1),
        clock,
        run_jobs=False,
    )
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


@pytest.fixture
def client(
    target: DatabaseTarget, settings: Settings, clock: FrozenClock
) -> Iterator[TestClient]:
    """The whole application over its ASGI interface, with its own database."""
    with app_client(target, settings, clock) as test_client:
        yield test_client


# Shared by one module's tests, for worlds that the tests using them only read: a
# test that writes, or whose assertions depend on what other tests wrote, takes
# the function-scoped `target` and `client` instead.
@pytest.fixture(scope="module")
def module_target(cluster: Cluster) -> Iterator[DatabaseTarget]:
    name = cluster.clone()
    yield cluster.target(name)
    cluster.drop(name)


@pytest.fixture(scope="module")
def module_client(
    module_target: DatabaseTarget, cluster: Cluster
) -> Iterator[TestClient]:
    settings = Settings(data_dir=cluster.data_dir, host="testserver", port=443)
    with app_client(module_target, settings, FrozenClock()) as test_client:
        yield test_client


def owner_connection(target: DatabaseTarget) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(target.conninfo("owner"), autocommit=True)


def admin_dump(target: DatabaseTarget) -> str:
    """A plain `pg_dump` of the test database, as a thief with a copy would see it."""
    assert target.embedded is not None
    info = target.owner
    env = {
        **os.environ,
        "PGHOST": info["host"],
        "PGPORT": info["port"],
        "PGUSER": ADMIN_ROLE,
        "PGPASSWORD": target.embedded.admin_password(),
    }
    result = subprocess.run(
        [pg_binary("pg_dump"), "--no-owner", info["dbname"]],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout


def admin_connection(target: DatabaseTarget) -> psycopg.Connection[tuple[object, ...]]:
    """The cluster's superuser on the test database: sees past row-level security,
    as an auditor's check (or an attacker with full access) would."""
    assert target.embedded is not None
    info = {**target.owner, "user": ADMIN_ROLE}
    info["password"] = target.embedded.admin_password()
    return psycopg.connect(**info, autocommit=True)
