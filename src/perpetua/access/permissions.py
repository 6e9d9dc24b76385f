"""The permission matrix as the service sees it: loaded from the database table the
row-level policies read, so the API, the console and the policies share one source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from perpetua.db.pool import Database

Category = Literal[
    "demographics", "schedule", "insurance", "calls", "clinical", "audit_log"
]
Action = Literal["view", "create", "update", "delete", "export"]
CATEGORIES: tuple[Category, ...] = (
    "demographics",
    "schedule",
    "insurance",
    "calls",
    "clinical",
    "audit_log",
)
ACTIONS: tuple[Action, ...] = ("view", "create", "update", "delete", "export")


@dataclass(frozen=True)
class Permissions:
    cells: dict[tuple[str, str, str], str]

    def scope(self, role: str | None, category: str, action: str) -> str | None:
        """'all', 'own' or None (not permitted)."""
        if role is None:
            return None
        return self.cells.get((role, category, action))

    def allows(self, role: str | None, category: str, action: str) -> bool:
        return self.scope(role, category, action) is not None


async def load_permissions(db: Database) -> Permissions:
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select role, category, action, scope from perpetua.permissions"
        )
        rows = await cur.fetchall()
    return Permissions(
        {(r["role"], r["category"], r["action"]): r["scope"] for r in rows}
    )
