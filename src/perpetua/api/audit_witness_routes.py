"""JSON API saying which audit checkpoint was last witnessed, where and when.

`GET /api/v1/audit/witnessed` lists, per channel (the owners' email, the object
store under Object Lock), the last checkpoint that left Perpetua: its size, root,
time and signed note, and every destination it reached. Owners and managers
only; the database refuses other roles (`audit_api.witnessed`, migration 0072).
No PHI: counts, hashes, signatures, the owners' addresses and an object key.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from perpetua.api.schemas import Problem
from perpetua.audit.witness import last_witnessed
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.context import api_principal, services

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 503)
}

router = APIRouter(prefix="/api/v1/audit", responses=_PROBLEMS, tags=["audit"])

Authed = Annotated[Principal, Depends(api_principal)]


class WitnessedCheckpoint(BaseModel):
    channel: Literal["email", "object_store"] = Field(
        description="where the copy went: the owners' email or the object store"
    )
    size: int = Field(description="events the checkpoint covers")
    root: str = Field(description="Merkle root at that size, base64")
    checkpoint_time: dt.datetime | None = Field(
        description="when the log signed the checkpoint (its own time line)"
    )
    witnessed_at: dt.datetime = Field(description="when the copy was sent")
    destinations: list[str] = Field(
        description="owners' addresses, or the s3:// name of the locked object"
    )
    note: str = Field(description="the signed note exactly as it was sent")


class WitnessedOut(BaseModel):
    witnessed: list[WitnessedCheckpoint] = Field(
        description="the last witnessing of each channel; empty until the first"
    )


@router.get("/witnessed", response_model=WitnessedOut)
async def audit_witnessed(principal: Authed, request: Request) -> WitnessedOut:
    """The audit checkpoint last witnessed on each channel (owners and managers)."""
    svc = services(request)
    found = await last_witnessed(svc.db, request_claims(request, principal))
    return WitnessedOut(
        witnessed=[
            WitnessedCheckpoint(
                channel=w.channel,  # type: ignore[arg-type]
                size=w.size,
                root=w.root,
                checkpoint_time=w.checkpoint_time,
                witnessed_at=w.witnessed_at,
                destinations=list(w.destinations),
                note=w.note,
            )
            for w in found
        ]
    )
