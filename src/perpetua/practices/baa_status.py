"""Whether a practice holds an executed Business Associate Agreement in force.

PHI may exist only under a BAA, and the database refuses PHI work without one.
This read lets the console say so plainly, as a locked feature, before it tries
anything. It reads through the service role under row-level security, so a caller
sees only the agreements of the practice its claims name.
"""

from __future__ import annotations

from perpetua.access.claims import Claims
from perpetua.db.pool import Database

_IN_FORCE = """
    select exists (
        select 1
        from app.baa_executions b
        where b.practice_id = %s
          and b.terminated_at is null
    ) as in_force
"""


async def baa_in_force(db: Database, claims: Claims) -> bool:
    """True when the claimed practice has an executed, unterminated BAA."""
    if claims.practice_id is None:
        return False
    async with db.transaction(claims) as conn:
        cur = await conn.execute(_IN_FORCE, (claims.practice_id,))
        row = await cur.fetchone()
    return bool(row and row["in_force"])
