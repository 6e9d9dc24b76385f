"""Reading a practice's audit log: the filtered list, one event with its inclusion
proof status, and the proofs themselves.

This module guards two things. First, that reading the log stays an owner's or
manager's act that leaves a trace: every read goes through an ``audit_api``
function (migration 0073) that checks the ``audit_log`` permission, records the
read (or the refusal) in the same transaction, and names the patients whose
accesses were shown. Second, that "proven" means proven: an event's status is
computed here from the stored leaves and the checkpoint's signed root, checked
with the verifier key re-derived from the keystore, never read from the database.

Proofs are built from the stored leaf hashes (RFC 9162 inclusion and consistency
proofs, ``merkle.py``) and can be checked by anyone with ``merkle.verify_*`` and
the practice's verifier key. Limitation: no interior node of the tree is stored,
so a proof reads and hashes every leaf up to the checkpoint's size (about one
second per million events here); proofs for very large logs are slow, not wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from perpetua.access.claims import Claims
from perpetua.audit.canonical import leaf_input
from perpetua.audit.checkpoint import NoteError, open_checkpoint
from perpetua.audit.merkle import (
    HASH_SIZE,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, event_line, signer_for
from perpetua.crypto.errors import KeyDestroyed, KeyNotFound
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.db.pool import Database
from perpetua.errors import InvalidInput, NotFound, PerpetuaError
from perpetua.identity import members
from perpetua.records.gate import read
from perpetua.records.vault import UnreadableRecord, Vault

__all__ = [
    "ACTIONS",
    "MAX_EXPORT",
    "MAX_PAGE",
    "CheckpointInfo",
    "ConsistencyProof",
    "DamagedCheckpoint",
    "EventFilters",
    "EventPage",
    "EventView",
    "InclusionProof",
    "PatientRef",
    "ProofStatus",
    "b64",
    "check_consistency",
    "decode_cursor",
    "encode_cursor",
    "event_detail",
    "get_consistency_proof",
    "get_inclusion_proof",
    "list_checkpoints",
    "list_events",
    "member_names",
    "verifier_key",
]

# The actions an audit event can record (the check constraint of audit.events).
ACTIONS = (
    "view",
    "search",
    "create",
    "update",
    "delete",
    "export",
    "playback",
    "api_call",
    "break_glass",
)
MAX_PAGE = 200
# One CSV download holds at most this many events, newest first; the response
# says when the filters matched more.
MAX_EXPORT = 100_000

Access = Literal["view", "export"]


@dataclass(frozen=True)
class EventFilters:
    member: uuid.UUID | None = None
    patient: uuid.UUID | None = None
    action: str | None = None
    purpose: str | None = None
    # Inclusive start, exclusive end.
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.action is not None and self.action not in ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
        if self.since and self.until and self.since >= self.until:
            raise InvalidInput("the date range ends before it starts")


@dataclass(frozen=True)
class PatientRef:
    id: uuid.UUID
    name: str | None


@dataclass(frozen=True)
class EventView:
    id: uuid.UUID
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: uuid.UUID
    actor_name: str | None
    actor_role: str | None
    action: str
    resource_type: str
    resource_ids: list[uuid.UUID]
    patients: list[PatientRef]
    purpose_of_use: str
    reason: str | None
    ip: str | None
    user_agent: str | None
    request_id: str
    outcome: str
    row_count: int
    leaf_index: int | None


@dataclass(frozen=True)
class EventPage:
    events: list[EventView]
    next_cursor: str | None


@dataclass(frozen=True)
class CheckpointInfo:
    size: int
    root: bytes
    signed_at: dt.datetime
    note: str
    key_version: int


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]
    checkpoint: CheckpointInfo


@dataclass(frozen=True)
class ConsistencyProof:
    old: CheckpointInfo
    new: CheckpointInfo
    hashes: list[bytes]


@dataclass(frozen=True)
class ProofStatus:
    """``proven``, ``unsealed`` (no checkpoint covers the event yet) or ``failed``."""

    state: Literal["proven", "unsealed", "failed"]
    message: str
    proof: InclusionProof | None = None


class DamagedCheckpoint(PerpetuaError):
    """A stored checkpoint does not verify: no proof can be served against it."""

    code = "audit_log_damaged"
    status = 409
    title = "The audit log fails verification; run `perpetua audit verify`"


# Keyset cursors: the position of the last event shown, opaque to callers.


def encode_cursor(event: EventView) -> str:
    raw = f"{event.occurred_at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, _, ident = raw.decode("ascii").partition("|")
        moment = dt.datetime.fromisoformat(when)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned") from exc


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def verifier_key(
    keystore: Keystore, practice: uuid.UUID, origin_host: str = DEFAULT_ORIGIN_HOST
) -> tuple[str, str]:
    """The log's origin and its current verifier key, derived from the keystore."""
    origin = practice_log_origin(str(practice), origin_host)
    class_key = keystore.current(practice, DataClass.AUDIT_SIGNING)
    return origin, signer_for(class_key, origin).verifier.to_key()


# Reading events.


async def member_names(db: Database, claims: Claims) -> dict[uuid.UUID, str]:
    """Member names by user id, for the "who" of each event."""
    assert claims.practice_id is not None
    async with db.transaction(claims) as conn:
        listed = await members.list_members(conn, claims.practice_id)
    return {m["user_id"]: m["full_name"] for m in listed}


def _patients(
    vault: Vault, practice: uuid.UUID, ids: Sequence[uuid.UUID], names: Sequence[Any]
) -> list[PatientRef]:
    refs = []
    for pid, sealed in zip(ids, names, strict=True):
        try:
            name = vault.open_text(practice, "patients", "name", pid, sealed)
        except UnreadableRecord:
            # A crypto-shredded or damaged record: the access still shows.
            name = None
        refs.append(PatientRef(pid, name))
    return refs


def _view(
    row: dict[str, Any],
    vault: Vault,
    practice: uuid.UUID,
    names: dict[uuid.UUID, str],
) -> EventView:
    return EventView(
        id=row["id"],
        occurred_at=row["occurred_at"],
        actor_kind=row["actor_kind"],
        actor_id=row["actor_id"],
        actor_name=names.get(row["actor_id"]),
        actor_role=row["actor_role"],
        action=row["action"],
        resource_type=row["resource_type"],
        resource_ids=list(row["resource_ids"]),
        patients=_patients(vault, practice, row["patient_ids"], row["patient_names"]),
        purpose_of_use=row["purpose_of_use"],
        reason=row["reason"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        request_id=row["request_id"],
        outcome=row["outcome"],
        row_count=row["row_count"],
        leaf_index=row["leaf_index"],
    )


async def list_events(
    db: Database,
    vault: Vault,
    claims: Claims,
    filters: EventFilters,
    *,
    cursor: str | None = None,
    limit: int = 50,
    access: Access = "view",
) -> EventPage:
    """A page of the practice's events, newest first (recorded as a read of the
    log naming the patients shown; ``export`` for a download)."""
    ceiling = MAX_EXPORT if access == "export" else MAX_PAGE
    if not 1 <= limit <= ceiling:
        raise InvalidInput(f"limit must be between 1 and {ceiling}")
    before_time, before_id = decode_cursor(cursor) if cursor else (None, None)

    # One more than asked tells whether another page exists.
    fetched = await read(
        db,
        claims,
        "select * from audit_api.list_events(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            access,
            filters.member,
            filters.patient,
            filters.action,
            filters.purpose,
            filters.since,
            filters.until,
            before_time,
            before_id,
            limit + 1,
        ),
    )
    rows = fetched.ensure()
    practice = fetched.practice()
    names = await member_names(db, claims)
    events = [_view(r, vault, practice, names) for r in rows[:limit]]
    more = len(rows) > limit
    return EventPage(events, encode_cursor(events[-1]) if more and events else None)


def _checkpoint(row: dict[str, Any]) -> CheckpointInfo:
    return CheckpointInfo(
        size=row["size"],
        root=bytes(row["root"]),
        signed_at=row["signed_at"],
        note=row["note"],
        key_version=row["key_version"],
    )


async def list_checkpoints(
    db: Database,
    claims: Claims,
    *,
    size: int | None = None,
    before: int | None = None,
    limit: int = 1,
) -> list[CheckpointInfo]:
    """Signed checkpoints, newest first; the one of ``size`` when given."""
    fetched = await read(
        db,
        claims,
        "select * from audit_api.list_checkpoints(%s, %s, %s)",
        (size, before, limit),
    )
    return [_checkpoint(r) for r in fetched.ensure()]


async def _leaves(db: Database, claims: Claims, size: int) -> list[bytes]:
    fetched = await read(
        db, claims, "select * from audit_api.sealed_leaves(%s)", (size,)
    )
    joined = bytes(fetched.ensure(1)[0]["leaves"])
    if len(joined) != size * HASH_SIZE:
        raise NotFound(f"the sealed log does not reach size {size}")
    return [joined[i : i + HASH_SIZE] for i in range(0, len(joined), HASH_SIZE)]


def _subtree(leaves: Sequence[bytes]) -> Any:
    # Memoized: a proof asks for a handful of disjoint subtrees, but callers may
    # ask for the same one twice (inclusion and consistency over one fetch).
    cache: dict[tuple[int, int], bytes] = {}

    def subtree(start: int, end: int) -> bytes:
        if (start, end) not in cache:
            cache[(start, end)] = root_from_leaf_hashes(leaves[start:end])
        return cache[(start, end)]

    return subtree


def _verify_checkpoint(
    keystore: Keystore,
    practice: uuid.UUID,
    checkpoint: CheckpointInfo,
    origin_host: str,
) -> str | None:
    """None when the checkpoint's signature, origin, size and root hold."""
    origin = practice_log_origin(str(practice), origin_host)
    try:
        class_key = keystore.get(
            practice, DataClass.AUDIT_SIGNING, checkpoint.key_version
        )
    except (KeyNotFound, KeyDestroyed):
        return f"the key that signed checkpoint {checkpoint.size} is missing"
    verifier = signer_for(class_key, origin).verifier
    try:
        opened = open_checkpoint(checkpoint.note, verifier, origin=origin)
    except NoteError:
        return f"the checkpoint of size {checkpoint.size} does not verify"
    if opened.size != checkpoint.size or opened.root != checkpoint.root:
        return f"the checkpoint row of size {checkpoint.size} differs from its note"
    return None


async def get_inclusion_proof(
    db: Database,
    keystore: Keystore,
    claims: Claims,
    index: int,
    tree_size: int | None = None,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> InclusionProof:
    """The inclusion proof of ``index`` in the checkpoint of ``tree_size`` (the
    newest checkpoint when None), after checking that checkpoint's signature."""
    found = await list_checkpoints(db, claims, size=tree_size)
    if not found:
        if tree_size is None:
            raise NotFound("this practice's audit log has no checkpoint yet")
        raise NotFound(f"no checkpoint has size {tree_size}")
    checkpoint = found[0]
    if not 0 <= index < checkpoint.size:
        raise NotFound(
            f"index {index} is not in the checkpoint of size {checkpoint.size}"
        )
    practice = claims.practice_id
    assert practice is not None
    failure = _verify_checkpoint(keystore, practice, checkpoint, origin_host)
    if failure:
        raise DamagedCheckpoint(failure)

    leaves = await _leaves(db, claims, checkpoint.size)
    hashes = inclusion_proof(index, checkpoint.size, _subtree(leaves))
    return InclusionProof(index, checkpoint.size, leaves[index], hashes, checkpoint)


async def get_consistency_proof(
    db: Database,
    keystore: Keystore,
    claims: Claims,
    old_size: int,
    new_size: int,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> ConsistencyProof:
    """The proof that the checkpoint of ``old_size`` is a prefix of ``new_size``'s."""
    if not 0 < old_size <= new_size:
        raise InvalidInput("old_size must be at least 1 and at most new_size")
    checkpoints = []
    for size in (old_size, new_size):
        found = await list_checkpoints(db, claims, size=size)
        if not found:
            raise NotFound(f"no checkpoint has size {size}")
        checkpoints.append(found[0])
    practice = claims.practice_id
    assert practice is not None
    for checkpoint in checkpoints:
        failure = _verify_checkpoint(keystore, practice, checkpoint, origin_host)
        if failure:
            raise DamagedCheckpoint(failure)

    leaves = await _leaves(db, claims, new_size)
    hashes = consistency_proof(old_size, new_size, _subtree(leaves))
    return ConsistencyProof(checkpoints[0], checkpoints[1], hashes)


# One event and its proof status.


def _leaf_input(practice: uuid.UUID, row: dict[str, Any]) -> bytes:
    """What the event's leaf hashes at its index, as rendered from the row now."""
    return leaf_input(event_line(str(practice), row["leaf_index"], row))


async def event_detail(
    db: Database,
    vault: Vault,
    claims: Claims,
    event_id: uuid.UUID,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> tuple[EventView, ProofStatus]:
    """One event (recorded as a read naming its patients) and whether the newest
    checkpoint proves it."""
    fetched = await read(
        db, claims, "select * from audit_api.read_event(%s)", (event_id,)
    )
    rows = fetched.ensure()
    if not rows:
        raise NotFound("no such audit event in this practice")
    row = rows[0]
    practice = fetched.practice()
    names = await member_names(db, claims)
    event = _view(row, vault, practice, names)
    return event, await _status(db, vault.keystore, claims, practice, row, origin_host)


async def _status(
    db: Database,
    keystore: Keystore,
    claims: Claims,
    practice: uuid.UUID,
    row: dict[str, Any],
    origin_host: str,
) -> ProofStatus:
    index = row["leaf_index"]
    if index is None:
        return ProofStatus("unsealed", "not sealed yet")
    latest = await list_checkpoints(db, claims)
    if not latest or latest[0].size <= index:
        return ProofStatus("unsealed", f"index {index}, not sealed yet")

    # The event as stored now must hash to the leaf that was sealed.
    try:
        leaf = leaf_hash(_leaf_input(practice, row))
    except ValueError:
        return ProofStatus("failed", f"event {index} no longer encodes")
    if leaf != bytes(row["leaf_hash"]):
        return ProofStatus("failed", f"event {index} was changed after it was sealed")

    try:
        proof = await get_inclusion_proof(
            db, keystore, claims, index, latest[0].size, origin_host=origin_host
        )
    except (DamagedCheckpoint, NotFound) as exc:
        return ProofStatus("failed", exc.detail)
    if not verify_inclusion(
        index, proof.tree_size, leaf, proof.hashes, proof.checkpoint.root
    ):
        return ProofStatus(
            "failed",
            f"event {index} is not in the signed tree of size {proof.tree_size}",
        )
    return ProofStatus(
        "proven", f"proven in checkpoint of size {proof.tree_size}", proof
    )


def check_consistency(proof: ConsistencyProof) -> bool:
    """Whether a consistency proof holds between its two checkpoints' roots."""
    return verify_consistency(
        proof.old.size, proof.new.size, proof.old.root, proof.new.root, proof.hashes
    )
