"""Checking the database's log against a checkpoint that was witnessed.

A witnessed checkpoint (the daily email, the copy under Object Lock) left
Perpetua's control when it was sent. This module guards the comparison that
makes it worth keeping: the note must carry a valid signature of the practice's
log, the checkpoint stored at that size must be the same signed note, and the
stored Merkle leaves up to that size must hash to the witnessed root. A log
rewritten and re-signed after the copy left fails here even though every stored
checkpoint verifies on its own.

Together with ``db_verify`` (every stored leaf matches its event and every stored
checkpoint its leaves) this shows that the events up to the witnessed size are
the ones that were witnessed. Runs on the owner's connection with system claims
set, like ``db_verify``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteError,
    NoteVerifier,
    open_checkpoint,
)
from perpetua.audit.merkle import root_from_leaf_hashes
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, signer_for
from perpetua.crypto.errors import KeyDestroyed, KeyNotFound
from perpetua.crypto.keystore import DataClass, Keystore

__all__ = ["WitnessCheck", "check_witnessed", "practice_of_note"]

WitnessFailure = Literal[
    "ok",
    "bad_witness",
    "checkpoint_missing",
    "checkpoint_differs",
    "truncated",
    "root_mismatch",
]

_ORIGIN_MARK = "/practice/"


@dataclass(frozen=True)
class WitnessCheck:
    """What comparing one witnessed checkpoint with the stored log established."""

    practice_id: str
    ok: bool
    code: WitnessFailure
    message: str
    size: int | None = None


def practice_of_note(note: str) -> uuid.UUID | None:
    """The practice a note's origin line names, unverified: only to pick the log
    to check it against; the check itself pins the origin."""
    origin = note.split("\n", 1)[0]
    if _ORIGIN_MARK not in origin:
        return None
    try:
        return uuid.UUID(origin.rsplit(_ORIGIN_MARK, 1)[1])
    except ValueError:
        return None


def _verifiers(
    keystore: Keystore, practice: uuid.UUID, origin: str
) -> list[NoteVerifier]:
    # Every version the keystore still holds: a copy witnessed before a key
    # rotation stays checkable.
    found = []
    newest = keystore.current(practice, DataClass.AUDIT_SIGNING).version
    for version in range(1, newest + 1):
        try:
            class_key = keystore.get(practice, DataClass.AUDIT_SIGNING, version)
        except (KeyNotFound, KeyDestroyed):
            continue
        found.append(signer_for(class_key, origin).verifier)
    return found


def _open(note: str, verifiers: list[NoteVerifier], origin: str) -> Checkpoint | None:
    for verifier in verifiers:
        try:
            return open_checkpoint(note, verifier, origin=origin)
        except NoteError:
            continue
    return None


def check_witnessed(
    conn: psycopg.Connection[Any],
    keystore: Keystore,
    practice: uuid.UUID,
    note: str,
    *,
    trusted_key: str | None = None,
    origin_host: str = DEFAULT_ORIGIN_HOST,
) -> WitnessCheck:
    """Compare a witnessed signed note with the practice's stored log.

    ``trusted_key`` is the verifier key received with the note (pinned); without
    it the keys are re-derived from the keystore.
    """
    practice_id = str(practice)
    origin = practice_log_origin(practice_id, origin_host)

    def failed(code: WitnessFailure, message: str, size: int | None) -> WitnessCheck:
        return WitnessCheck(practice_id, False, code, message, size)

    # The witness first: a copy that does not verify proves nothing either way.
    if trusted_key is not None:
        try:
            verifiers = [NoteVerifier.from_key(trusted_key)]
        except NoteError as exc:
            return failed("bad_witness", f"the verifier key is malformed: {exc}", None)
    else:
        verifiers = _verifiers(keystore, practice, origin)
    witnessed = _open(note, verifiers, origin)
    if witnessed is None:
        return failed(
            "bad_witness",
            "the witnessed checkpoint is not a validly signed checkpoint of this "
            "practice's log",
            None,
        )
    size = witnessed.size

    with conn.transaction():
        # One snapshot, so a sealing pass committing meanwhile cannot split the
        # stored checkpoint from the leaves it is compared with.
        conn.execute("set transaction isolation level repeatable read, read only")
        stored = conn.execute(
            "select root, note from audit.checkpoints "
            "where practice_id = %s and size = %s",
            (practice, size),
        ).fetchone()
        leaves = conn.execute(
            "select leaf_index, leaf_hash from audit.sealed "
            "where practice_id = %s and leaf_index < %s order by leaf_index",
            (practice, size),
        ).fetchall()

    if stored is None:
        return failed(
            "checkpoint_missing",
            f"the log holds no checkpoint at the witnessed size {size}: it was "
            "sealed again differently after the copy left",
            size,
        )
    if bytes(stored[0]) != witnessed.root:
        return failed(
            "checkpoint_differs",
            f"the stored checkpoint at size {size} commits to another root than "
            "the witnessed one: the log was rewritten after it was witnessed",
            size,
        )
    if stored[1] != note:
        return failed(
            "checkpoint_differs",
            f"the stored checkpoint at size {size} is not the witnessed note (same "
            "root, different text or signature): it was signed again",
            size,
        )

    if len(leaves) < size or any(row[0] != i for i, row in enumerate(leaves)):
        return failed(
            "truncated",
            f"the log holds fewer than the {size} witnessed events",
            size,
        )
    if root_from_leaf_hashes([bytes(row[1]) for row in leaves]) != witnessed.root:
        return failed(
            "root_mismatch",
            f"the stored leaves up to size {size} do not hash to the witnessed "
            "root: the log was rewritten after it was witnessed",
            size,
        )
    return WitnessCheck(
        practice_id,
        True,
        "ok",
        f"witnessed checkpoint at size {size} matches the stored log",
        size,
    )
