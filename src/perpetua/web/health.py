"""Liveness and readiness for load balancers and operators. Neither reveals anything
about practices; readiness says only whether the database answers and whether its
schema is current."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from perpetua.db.migrations import discover
from perpetua.web.context import services

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    svc = services(request)
    checks = {"database": "ok", "migrations": "ok"}
    try:
        async with svc.db.transaction(None) as conn:
            cur = await conn.execute(
                "select version, sha256 from perpetua_meta.schema_migrations"
            )
            applied = {row["version"]: row["sha256"] for row in await cur.fetchall()}
        expected = {m.version: m.sha256 for m in discover()}
        if applied != expected:
            checks["migrations"] = (
                "pending" if len(applied) < len(expected) else "drift"
            )
    except Exception:  # any failure to reach the database means not ready
        checks["database"] = "unreachable"
        checks["migrations"] = "unknown"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
