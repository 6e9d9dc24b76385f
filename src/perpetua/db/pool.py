"""Connections for the service role, and the one way to use them: a transaction
that carries the caller's claims from its first statement to its commit."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from perpetua.access.claims import Claims
from perpetua.errors import (
    AuditUnavailable,
    BaaNotSigned,
    Forbidden,
    InvalidRange,
    NoValidClaims,
    PerpetuaError,
    PracticeReadOnly,
    StillReferenced,
)

Conn = psycopg.AsyncConnection[dict[str, Any]]

# Refusals the database itself makes, turned into the errors callers understand.
# 42501 is both a missing privilege and a row-level security WITH CHECK violation.
_DATABASE_REFUSALS: dict[str, type[PerpetuaError]] = {
    "PR001": PracticeReadOnly,
    "PR403": Forbidden,
    "PR401": NoValidClaims,
    "PB001": BaaNotSigned,
    "PA500": AuditUnavailable,
    "PV001": InvalidRange,
    "23503": StillReferenced,
    "42501": Forbidden,
}


class Database:
    """The service role's pool. Nothing here can run as the owner."""

    def __init__(self, conninfo: str, *, min_size: int = 2, max_size: int = 20):
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            # Transactions are opened by hand below, so that BEGIN and the claims
            # travel to the server in one round trip.
            kwargs={"row_factory": dict_row, "autocommit": True},
            open=False,
            name="service",
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def transaction(self, claims: Claims | None) -> AsyncIterator[Conn]:
        """One transaction; the claims are set before anything else runs in it and
        vanish at its end, so a pooled connection never carries them over."""
        try:
            async with self.pool.connection() as conn:
                await conn.execute(_begin_with_claims(claims))
                try:
                    yield conn
                except BaseException:
                    if not conn.closed:
                        await conn.execute("rollback")
                    raise
                await conn.execute("commit")
        except psycopg.Error as exc:
            mapped = _DATABASE_REFUSALS.get(exc.sqlstate or "")
            if mapped is None:
                raise
            raise mapped() from exc


def _begin_with_claims(claims: Claims | None) -> sql.Composed:
    # Two statements without parameters go as one simple query; the claims are a
    # quoted literal, never spliced text.
    payload = json.dumps(claims.as_json()) if claims else ""
    return sql.SQL("begin; select set_config('request.jwt.claims', {}, true)").format(
        sql.Literal(payload)
    )
