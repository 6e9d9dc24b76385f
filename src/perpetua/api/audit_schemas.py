"""Bodies of the audit log API: events as the viewer shows them, checkpoints and
Merkle proofs. Hashes travel in standard base64, as in the checkpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from perpetua.audit.viewer import (
    CheckpointInfo,
    ConsistencyProof,
    EventView,
    InclusionProof,
    ProofStatus,
    b64,
)


class PatientRefOut(BaseModel):
    id: uuid.UUID
    name: str | None = Field(description="null when the record is gone or unreadable")


class AuditEventOut(BaseModel):
    id: uuid.UUID
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: uuid.UUID
    actor_name: str | None = Field(description="the member's name, when a member")
    actor_role: str | None
    action: str
    resource_type: str
    resource_ids: list[uuid.UUID]
    patients: list[PatientRefOut]
    purpose_of_use: str
    reason: str | None
    ip: str | None
    user_agent: str | None
    request_id: str
    outcome: str
    row_count: int
    leaf_index: int | None = Field(description="null until the event is sealed")

    @classmethod
    def of(cls, event: EventView) -> AuditEventOut:
        return cls.model_validate(event, from_attributes=True)


class AuditEventPageOut(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last"
    )


class CheckpointOut(BaseModel):
    size: int
    root: str = Field(description="base64 Merkle root the note signs")
    signed_at: dt.datetime
    note: str = Field(description="the C2SP signed checkpoint note")

    @classmethod
    def of(cls, checkpoint: CheckpointInfo) -> CheckpointOut:
        return cls(
            size=checkpoint.size,
            root=b64(checkpoint.root),
            signed_at=checkpoint.signed_at,
            note=checkpoint.note,
        )


class CheckpointListOut(BaseModel):
    origin: str
    verifier_key: str = Field(
        description="pin it from a second channel before trusting a proof"
    )
    checkpoints: list[CheckpointOut]


class InclusionProofOut(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || canonical event)")
    hashes: list[str] = Field(description="base64 RFC 9162 audit path, leaf upward")
    checkpoint: CheckpointOut

    @classmethod
    def of(cls, proof: InclusionProof) -> InclusionProofOut:
        return cls(
            index=proof.index,
            tree_size=proof.tree_size,
            leaf_hash=b64(proof.leaf_hash),
            hashes=[b64(h) for h in proof.hashes],
            checkpoint=CheckpointOut.of(proof.checkpoint),
        )


class ConsistencyProofOut(BaseModel):
    old_size: int
    new_size: int
    hashes: list[str] = Field(description="base64 RFC 9162 consistency proof")
    old_checkpoint: CheckpointOut
    new_checkpoint: CheckpointOut

    @classmethod
    def of(cls, proof: ConsistencyProof) -> ConsistencyProofOut:
        return cls(
            old_size=proof.old.size,
            new_size=proof.new.size,
            hashes=[b64(h) for h in proof.hashes],
            old_checkpoint=CheckpointOut.of(proof.old),
            new_checkpoint=CheckpointOut.of(proof.new),
        )


class ProofStatusOut(BaseModel):
    state: Literal["proven", "unsealed", "failed"]
    message: str
    proof: InclusionProofOut | None

    @classmethod
    def of(cls, status: ProofStatus) -> ProofStatusOut:
        return cls(
            state=status.state,
            message=status.message,
            proof=InclusionProofOut.of(status.proof) if status.proof else None,
        )


class AuditEventDetailOut(BaseModel):
    event: AuditEventOut
    proof: ProofStatusOut
