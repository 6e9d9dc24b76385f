"""Which PostgreSQL Perpetua talks to and as whom.

Two login roles, always: the *owner* runs migrations and owns every object; the
*service* role runs the application's queries, owns nothing, is not superuser and
cannot bypass row-level security. Embedded, both are created here; with DATABASE_URL
(the owner), the service role comes from SERVICE_DATABASE_URL or is created by the
owner. Either way the service role's powers are checked before anything is served.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from perpetua.config import Settings
from perpetua.db.embedded import ADMIN_ROLE, EmbeddedPostgres
from perpetua.db.secrets_dir import read_or_create_secret
from perpetua.errors import ConfigError

OWNER_ROLE = "perpetua_owner"
SERVICE_ROLE = "perpetua_service"
DATABASE_NAME = "perpetua"
MIN_SERVER_VERSION = 150000


@dataclass(frozen=True)
class DatabaseTarget:
    owner: dict[str, str]
    service: dict[str, str]
    embedded: EmbeddedPostgres | None

    def conninfo(self, role: str) -> str:
        return make_conninfo(**(self.owner if role == "owner" else self.service))

    def url(self, role: str) -> str:
        """A libpq URL for `psql` and other tools."""
        info = self.owner if role == "owner" else self.service
        extra = {k: v for k, v in info.items() if k not in _URL_PARTS}
        netloc = quote(info.get("user", ""), safe="")
        if info.get("password"):
            netloc += ":" + quote(info["password"], safe="")
        host = info.get("host", "")
        query = dict(extra)
        if host.startswith("/"):
            query["host"] = host
            netloc += "@"
            if info.get("port"):
                query["port"] = info["port"]
        else:
            netloc += "@" + host + (f":{info['port']}" if info.get("port") else "")
        qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(query.items()))
        dbname = quote(info.get("dbname", ""), safe="")
        return f"postgresql://{netloc}/{dbname}" + (f"?{qs}" if qs else "")


_URL_PARTS = {"host", "port", "user", "password", "dbname"}


def _is_local_host(host: str) -> bool:
    if not host or host.startswith("/"):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_verified_tls(info: dict[str, str], label: str) -> None:
    """A database across a network is reached over TLS with a verified certificate,
    or not at all: PHI must never cross a network in clear or to an impostor."""
    hosts = [h for h in info.get("host", "").split(",") if h] or [""]
    if all(_is_local_host(h) for h in hosts):
        return
    if info.get("sslmode") != "verify-full":
        raise ConfigError(
            f"{label} points at a host that is not on this machine, so it must use "
            "TLS with certificate verification: add sslmode=verify-full (and "
            "sslrootcert=... if the server's CA is not in the system store)"
        )


def _external_target(settings: Settings) -> DatabaseTarget:
    assert settings.database_url is not None
    owner = _as_strings(conninfo_to_dict(settings.database_url))
    require_verified_tls(owner, "DATABASE_URL")
    if settings.service_database_url:
        service = _as_strings(conninfo_to_dict(settings.service_database_url))
        require_verified_tls(service, "SERVICE_DATABASE_URL")
    else:
        password = os.environ.get("PERPETUA_SERVICE_DB_PASSWORD") or (
            read_or_create_secret(settings.data_dir, "db-service.password")
        )
        service = {**owner, "user": SERVICE_ROLE, "password": password}
    return DatabaseTarget(owner=owner, service=service, embedded=None)


def _as_strings(info: Mapping[str, object]) -> dict[str, str]:
    return {k: str(v) for k, v in info.items() if v is not None}


def _embedded_target(settings: Settings, pg: EmbeddedPostgres) -> DatabaseTarget:
    owner_pw = read_or_create_secret(settings.data_dir, "db-owner.password")
    service_pw = read_or_create_secret(settings.data_dir, "db-service.password")
    return DatabaseTarget(
        owner=pg.conninfo(OWNER_ROLE, owner_pw, DATABASE_NAME),
        service=pg.conninfo(SERVICE_ROLE, service_pw, DATABASE_NAME),
        embedded=pg,
    )


def _ensure_role(cur: psycopg.Cursor[tuple[object, ...]], name: str, pw: str) -> None:
    cur.execute("select 1 from pg_roles where rolname = %s", (name,))
    verb = "alter" if cur.fetchone() else "create"
    cur.execute(
        sql.SQL(
            "{} role {} login nosuperuser nocreatedb nocreaterole nobypassrls "
            "noinherit password {}"
        ).format(sql.SQL(verb), sql.Identifier(name), sql.Literal(pw))
    )


def bootstrap_embedded(settings: Settings, pg: EmbeddedPostgres) -> None:
    """Create the owner and service roles and the database, as the cluster's admin."""
    admin = pg.conninfo(ADMIN_ROLE, pg.admin_password(), "postgres")
    owner_pw = read_or_create_secret(settings.data_dir, "db-owner.password")
    service_pw = read_or_create_secret(settings.data_dir, "db-service.password")
    with (
        psycopg.connect(make_conninfo(**admin), autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        _ensure_role(cur, OWNER_ROLE, owner_pw)
        _ensure_role(cur, SERVICE_ROLE, service_pw)
        ensure_database(cur, DATABASE_NAME)


def ensure_database(cur: psycopg.Cursor[tuple[object, ...]], name: str) -> None:
    cur.execute("select 1 from pg_database where datname = %s", (name,))
    if cur.fetchone() is None:
        cur.execute(
            sql.SQL("create database {} owner {}").format(
                sql.Identifier(name), sql.Identifier(OWNER_ROLE)
            )
        )
    cur.execute(
        sql.SQL("revoke all on database {} from public").format(sql.Identifier(name))
    )
    cur.execute(
        sql.SQL("grant connect, temporary on database {} to {}").format(
            sql.Identifier(name), sql.Identifier(SERVICE_ROLE)
        )
    )


def bootstrap_external(target: DatabaseTarget) -> None:
    """With an external database the owner creates the service role if it is missing
    (the owner needs CREATEROLE for that; Supabase's `postgres` role has it)."""
    if target.service.get("user") != SERVICE_ROLE:
        return
    with (
        psycopg.connect(target.conninfo("owner"), autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("select 1 from pg_roles where rolname = %s", (SERVICE_ROLE,))
        if cur.fetchone() is None:
            _ensure_role(cur, SERVICE_ROLE, target.service["password"])
        cur.execute("select current_database()")
        row = cur.fetchone()
        assert row is not None
        cur.execute(
            sql.SQL("grant connect, temporary on database {} to {}").format(
                sql.Identifier(str(row[0])), sql.Identifier(SERVICE_ROLE)
            )
        )


SERVICE_ROLE_CHECK = """
select r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
       (select count(*) from pg_class c where c.relowner = r.oid)
         + (select count(*) from pg_namespace n where n.nspowner = r.oid)
         + (select count(*) from pg_proc p where p.proowner = r.oid),
       current_setting('server_version_num')::int
from pg_roles r
where r.rolname = current_user
"""


def check_service_role(target: DatabaseTarget) -> None:
    """Fail closed if the service role could step around row-level security."""
    with psycopg.connect(target.conninfo("service"), connect_timeout=15) as conn:
        row = conn.execute(SERVICE_ROLE_CHECK).fetchone()
    assert row is not None
    superuser, bypass, createrole, createdb, owned, version = row
    if superuser or bypass or createrole or createdb:
        raise ConfigError(
            "the service database role must not be superuser, BYPASSRLS, CREATEROLE "
            "or CREATEDB; alter it with NOSUPERUSER NOBYPASSRLS NOCREATEROLE "
            "NOCREATEDB"
        )
    if owned:
        raise ConfigError(
            f"the service database role owns {owned} database objects; it must own "
            "none, so that row-level security always applies to it"
        )
    if int(str(version)) < MIN_SERVER_VERSION:
        raise ConfigError("PostgreSQL 15 or newer is required")


@contextlib.contextmanager
def open_target(settings: Settings) -> Iterator[DatabaseTarget]:
    """Yield a reachable database; start the embedded server if this process needs
    it, and stop it afterwards unless another Perpetua process still holds it."""
    if not settings.embedded:
        target = _external_target(settings)
        bootstrap_external(target)
        yield target
        return
    pg = EmbeddedPostgres(settings.data_dir)
    pg.acquire()
    try:
        bootstrap_embedded(settings, pg)
        yield _embedded_target(settings, pg)
    finally:
        pg.release()
