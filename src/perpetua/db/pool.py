"""Connections for the service role, and the one way to use them: a transaction
that carries the caller's claims from its first statement to its commit."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from perpetua.access.claims import Claims, ReadCaller, SessionClaims
from perpetua.errors import (
    AuditUnavailable,
    BaaNotSigned,
    Forbidden,
    InvalidRange,
    NotAuthenticated,
    NotFound,
    NoValidClaims,
    PerpetuaError,
    PracticeReadOnly,
    PracticeTerminated,
    SessionExpired,
    StillReferenced,
)
from perpetua.identity.errors import MfaEnrolmentRequired, SecondFactorRequired

Conn = psycopg.AsyncConnection[dict[str, Any]]

# Refusals the database itself makes, turned into the errors callers understand.
# 42501 is both a missing privilege and a row-level security WITH CHECK violation.
_DATABASE_REFUSALS: dict[str, type[PerpetuaError]] = {
    "PR001": PracticeReadOnly,
    "PR403": Forbidden,
    "PR401": NoValidClaims,
    "PB001": BaaNotSigned,
    "PB002": PracticeTerminated,
    "PA500": AuditUnavailable,
    "PV001": InvalidRange,
    "23503": StillReferenced,
    "42501": Forbidden,
    # A session resolved inside a read (app.session_claims).
    "PS401": NotAuthenticated,
    "PS419": SessionExpired,
    "PS421": SecondFactorRequired,
    "PS422": MfaEnrolmentRequired,
    "PS404": NotFound,
}


@dataclass(frozen=True)
class ReadResult:
    rows: list[dict[str, Any]]
    outcome: str | None
    # The practice the claims named, as the database saw them.
    practice_id: uuid.UUID | None


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
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc

    async def read_once(
        self, caller: ReadCaller, query: str, params: tuple[Any, ...]
    ) -> ReadResult:
        """One audited read in one round trip: begin, set the claims (or have the
        database derive them from the caller's session), run `query` (a phi_api
        read that records its audit event), read the outcome flag and the practice
        the claims named, and commit. The rows come back only after the server has
        committed, so no caller holds data whose audit event could still be lost.

        Parameters are bound on the client (psycopg quotes each as a literal),
        which is what lets the statements travel together."""
        if isinstance(caller, SessionClaims):
            prelude = "select app.session_claims(%s, %s, %s)"
            head: tuple[Any, ...] = (
                caller.token_hash,
                caller.now,
                json.dumps(caller.request_json()),
            )
        else:
            prelude = "select set_config('request.jwt.claims', %s, true)"
            head = (json.dumps(caller.as_json()),)
        statement = (
            "begin; "
            + prelude
            + "; "
            + query
            + "; select current_setting('perpetua.outcome', true) as outcome,"
            " perpetua.practice_id() as practice_id; commit"
        )
        try:
            async with self.pool.connection() as conn:
                cur = psycopg.AsyncClientCursor(conn, row_factory=dict_row)
                try:
                    await cur.execute(statement, (*head, *params))
                except BaseException:
                    if not conn.closed:
                        await conn.execute("rollback")
                    raise
                cur.nextset()  # past BEGIN
                cur.nextset()  # past the claims
                rows = list(await cur.fetchall())
                cur.nextset()
                trailer = await cur.fetchone() or {}
        except psycopg.Error as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc
        return ReadResult(
            rows, trailer.get("outcome") or None, trailer.get("practice_id")
        )

    async def call(self, query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        """One statement in its own transaction, with no claims at all: for the
        narrow pre-authentication functions (resolving a session)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()


def _refusal(exc: psycopg.Error) -> PerpetuaError | None:
    """The domain error for a refusal the database made; None for anything else."""
    mapped = _DATABASE_REFUSALS.get(exc.sqlstate or "")
    return mapped() if mapped is not None else None


def _begin_with_claims(claims: Claims | None) -> sql.Composed:
    # Two statements without parameters go as one simple query; the claims are a
    # quoted literal, never spliced text.
    payload = json.dumps(claims.as_json()) if claims else ""
    return sql.SQL("begin; select set_config('request.jwt.claims', {}, true)").format(
        sql.Literal(payload)
    )
