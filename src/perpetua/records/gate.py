"""Running PHI functions: claims in, audit in the same transaction, refusals
recorded even when the transaction that caused them is rolled back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import Claims, ReadCaller, SessionClaims
from perpetua.access.permissions import Permissions
from perpetua.db.pool import Conn, Database
from perpetua.errors import Forbidden, NotFound


class RecordsGate:
    def __init__(self, db: Database, permissions: Permissions) -> None:
        self.db = db
        self.permissions = permissions

    async def record_denied(
        self, claims: Claims, action: str, resource_type: str, ids: list[uuid.UUID]
    ) -> None:
        async with self.db.transaction(claims) as conn:
            await conn.execute(
                "select audit_api.record_denied(%s, %s, %s)",
                (action, resource_type, ids),
            )

    async def require(
        self,
        claims: ReadCaller,
        category: str,
        action: str,
        resource_type: str,
        ids: list[uuid.UUID] | None = None,
    ) -> None:
        """Refuse early what the matrix refuses, and record the refusal. The
        database would refuse it too; this only makes the answer clear. A caller
        named by session has no role here yet: the database decides and records."""
        if isinstance(claims, SessionClaims):
            return
        if claims.actor_kind in ("agent", "api_token"):
            return  # scopes are checked by the database, which knows them
        if claims.purpose_of_use == "BTG" and action == "view":
            return  # break-glass reads are narrowed by the policies to one patient
        if not self.permissions.allows(claims.practice_role, category, action):
            audit_action = "view" if action == "view" else action
            await self.record_denied(claims, audit_action, resource_type, ids or [])
            raise Forbidden(f"your role may not {action} {category.replace('_', ' ')}")

    @contextlib.asynccontextmanager
    async def transaction(
        self, claims: Claims, action: str, resource_type: str
    ) -> AsyncIterator[Conn]:
        """A transaction for PHI work; a write the policies refuse is recorded."""
        try:
            async with self.db.transaction(claims) as conn:
                yield conn
        except Forbidden:
            await self.record_denied(claims, action, resource_type, [])
            raise


@dataclass
class Fetched:
    rows: list[dict[str, Any]]
    denied: bool
    # The practice whose keys open the rows: the one the claims named.
    practice_id: uuid.UUID | None = None

    def practice(self) -> uuid.UUID:
        if self.practice_id is None:
            raise NotFound("this session does not act in a practice")
        return self.practice_id

    def ensure(self, expect: int | None = None) -> list[dict[str, Any]]:
        """Raise for a refusal or an absence. Call only after the transaction has
        committed, so the audit event of the refusal or absence is kept."""
        if self.denied:
            raise Forbidden("your role may not see these records")
        if expect is not None and len(self.rows) != expect:
            raise NotFound()
        return self.rows


async def read(
    db: Database, caller: ReadCaller, sql: str, params: tuple[Any, ...]
) -> Fetched:
    """A phi_api read with its audit event, committed in one round trip."""
    result = await db.read_once(caller, sql, params)
    denied = not result.rows and result.outcome == "denied"
    return Fetched(result.rows, denied, result.practice_id)
