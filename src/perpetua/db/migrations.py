"""Versioned SQL migrations, applied in order by the owner role and recorded with
their SHA-256. A released migration is never edited: if a file's hash no longer
matches what was applied, the runner refuses to go on rather than guess."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from perpetua.errors import ConfigError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

META_SCHEMA = """
create schema if not exists perpetua_meta;
create table if not exists perpetua_meta.schema_migrations (
  version integer primary key,
  name text not null,
  sha256 text not null,
  applied_at timestamptz not null default now()
);
grant usage on schema perpetua_meta to perpetua_service;
grant select on perpetua_meta.schema_migrations to perpetua_service;
"""

# One number that every migrating process agrees on, so two starts never race.
_LOCK_KEY = 0x70657270


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationTampered(ConfigError):
    code = "migration_tampered"


def discover() -> list[Migration]:
    found = []
    for entry in resources.files("perpetua.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError("two migrations share a version number")
    return found


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    exists = conn.execute(
        "select to_regclass('perpetua_meta.schema_migrations') is not null"
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute(
        "select version, sha256 from perpetua_meta.schema_migrations"
    ).fetchall()
    return {int(str(v)): str(h) for v, h in rows}


def pending(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    done = applied(conn)
    for migration in discover():
        recorded = done.get(migration.version)
        if recorded is not None and recorded != migration.sha256:
            raise MigrationTampered(
                f"migration {migration.version:04d}_{migration.name} was changed "
                "after it was applied; released migrations must never be edited"
            )
    return [m for m in discover() if m.version not in done]


def migrate(conninfo: str) -> list[Migration]:
    """Apply every pending migration, each in its own transaction."""
    ran: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            with conn.transaction():
                conn.execute(META_SCHEMA)
            for migration in pending(conn):
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "insert into perpetua_meta.schema_migrations "
                        "(version, name, sha256) values (%s, %s, %s)",
                        (migration.version, migration.name, migration.sha256),
                    )
                ran.append(migration)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return ran


def is_current(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    return not pending(conn)
