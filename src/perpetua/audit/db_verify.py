"""Verifying a practice's audit log where it lives: in the database.

This module guards the claim that the stored log is the signed log. It rebuilds
each practice's Merkle tree from ``audit.events`` joined to the sealed index,
checks every checkpoint's signature with a key re-derived from the keystore (never
a key read from the database, which an attacker with the database could swap),
checks every checkpoint root against the recomputed tree, and looks for committed
events that were never sealed although the sealer has long passed their time.

Whoever can write the database can change rows, but not re-sign checkpoints, so:

- an event row changed, deleted, or moved to another time or practice is named by
  its index (its recomputed leaf differs from the stored leaf, or it is missing);
- a stored leaf hash rewritten to match is caught by the checkpoint root and
  located to the range after the previous good checkpoint;
- an event slipped in with a back-dated time is an unsealed event older than the
  sealer's window, reported at the index where its time would have put it;
- a sealed index row added, dropped or renumbered breaks the gapless run or
  leaves indices no checkpoint covers.

Successive checkpoints are consistent because every root is recomputed from one
ordered run of leaves, as in ``offline_verify``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from perpetua.audit.canonical import MalformedEvent, encode_event
from perpetua.audit.checkpoint import NoteError, NoteVerifier, open_checkpoint
from perpetua.audit.merkle import Frontier, InvalidProof, leaf_hash
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, event_from_row, signer_for
from perpetua.crypto.errors import KeyDestroyed, KeyNotFound
from perpetua.crypto.keystore import DataClass, Keystore

__all__ = ["DbFailure", "DbVerification", "practices_to_verify", "verify_practice"]

DbFailure = Literal[
    "ok",
    "bad_checkpoint",
    "checkpoint_order",
    "index_gap",
    "missing_event",
    "bad_event",
    "altered_event",
    "root_mismatch",
    "uncovered_index",
    "truncated",
    "state_mismatch",
    "unsealed_event",
]

_CHUNK = 8192


@dataclass(frozen=True)
class DbVerification:
    """What verification of one practice's log established."""

    practice_id: str
    ok: bool
    code: DbFailure
    message: str
    first_bad_index: int | None = None
    sealed_count: int = 0
    checkpoint_count: int = 0
    pending_count: int = 0


class _Failed(Exception):
    def __init__(self, code: DbFailure, index: int, message: str) -> None:
        super().__init__(message)
        self.code: DbFailure = code
        self.index = index
        self.message = message


def practices_to_verify(conn: psycopg.Connection[Any]) -> list[uuid.UUID]:
    """Every practice that has a sealed log or any audit event."""
    rows = conn.execute(
        """
        select practice_id from audit.log_state
        union
        select distinct practice_id from audit.events
        order by 1
        """
    ).fetchall()
    return [row[0] for row in rows]


def verify_practice(
    conn: psycopg.Connection[Any],
    keystore: Keystore,
    practice: uuid.UUID,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
    progress: Callable[[int, int], None] | None = None,
) -> DbVerification:
    """Check one practice's log; ``conn`` is the owner's, with system claims set.

    ``progress(done, total)`` is called as events are checked.
    """
    practice_id = str(practice)
    origin = practice_log_origin(practice_id, origin_host)
    checker = _Checker(conn, keystore, practice, origin, progress)
    try:
        # One snapshot for the whole check: a sealing pass committing halfway
        # through would otherwise look like indices without a checkpoint.
        with conn.transaction():
            conn.execute("set transaction isolation level repeatable read, read only")
            # The whole log is read: plan for all rows, not for the first few
            # (a cursor's default), which can pick a per-row index probe.
            conn.execute("set local cursor_tuple_fraction = 1.0")
            checker.run()
    except _Failed as failure:
        return DbVerification(
            practice_id,
            ok=False,
            code=failure.code,
            message=failure.message,
            first_bad_index=failure.index,
            sealed_count=checker.sealed,
            checkpoint_count=len(checker.checkpoints),
            pending_count=checker.pending,
        )
    message = (
        f"{checker.sealed} events proven by {len(checker.checkpoints)} checkpoints"
    )
    if checker.pending:
        message += f"; {checker.pending} recent events not yet sealed"
    return DbVerification(
        practice_id,
        ok=True,
        code="ok",
        message=message,
        sealed_count=checker.sealed,
        checkpoint_count=len(checker.checkpoints),
        pending_count=checker.pending,
    )


@dataclass(frozen=True)
class _Checkpoint:
    size: int
    root: bytes
    signed_at: datetime


class _Checker:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        keystore: Keystore,
        practice: uuid.UUID,
        origin: str,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.conn = conn
        self.keystore = keystore
        self.practice = practice
        self.origin = origin
        self.progress = progress
        self.checkpoints: list[_Checkpoint] = []
        self.sealed = 0
        self.pending = 0
        self.failures: list[_Failed] = []

    def run(self) -> None:
        # Every kind of damage is looked for; the one at the lowest index is
        # reported, since later indices may only be collateral.
        for step in (self._check_checkpoints, self._check_events, self._check_unsealed):
            try:
                step()
            except _Failed as failure:
                self.failures.append(failure)
        if self.failures:
            raise min(self.failures, key=lambda f: f.index)

    def _verifier(self, version: int, cache: dict[int, NoteVerifier]) -> NoteVerifier:
        if version not in cache:
            try:
                class_key = self.keystore.get(
                    self.practice, DataClass.AUDIT_SIGNING, version
                )
            except (KeyNotFound, KeyDestroyed) as exc:
                raise _Failed(
                    "bad_checkpoint", 0, f"signing key version {version} is missing"
                ) from exc
            cache[version] = signer_for(class_key, self.origin).verifier
        return cache[version]

    def _check_checkpoints(self) -> None:
        rows = self.conn.execute(
            """
            select size, root, note, key_version from audit.checkpoints
            where practice_id = %s order by size
            """,
            (self.practice,),
        ).fetchall()
        cache: dict[int, NoteVerifier] = {}
        previous: _Checkpoint | None = None
        for size, root, note, version in rows:
            start = previous.size if previous else 0
            try:
                opened = open_checkpoint(
                    note, self._verifier(version, cache), origin=self.origin
                )
            except NoteError as exc:
                raise _Failed(
                    "bad_checkpoint",
                    start,
                    f"checkpoint at size {size} does not verify: {exc}",
                ) from exc
            if opened.size != size or opened.root != bytes(root):
                raise _Failed(
                    "bad_checkpoint",
                    start,
                    f"checkpoint row at size {size} differs from its signed note",
                )
            assert opened.time is not None
            if previous is not None and opened.time < previous.signed_at:
                raise _Failed(
                    "checkpoint_order",
                    start,
                    f"checkpoint at size {size} is older than the one before it",
                )
            previous = _Checkpoint(size, opened.root, opened.time)
            self.checkpoints.append(previous)

    def _check_events(self) -> None:
        state = self.conn.execute(
            "select size, frontier from audit.log_state where practice_id = %s",
            (self.practice,),
        ).fetchone()
        sizes = [c.size for c in self.checkpoints]
        total = sizes[-1] if sizes else 0
        frontier = Frontier()
        leaves: list[bytes] = []
        expected = 0
        next_cp = 0
        practice_id = str(self.practice)

        # A server-side cursor streams the log without holding it in memory.
        with self.conn.cursor(name="audit_verify", row_factory=dict_row) as cur:
            cur.itersize = _CHUNK
            cur.execute(
                """
                select
                  s.leaf_index, s.leaf_hash, e.id, e.occurred_at, e.actor_kind,
                  e.actor_id, e.actor_role, e.action, e.resource_type,
                  e.resource_ids, e.patient_ids, e.purpose_of_use, e.reason,
                  host(e.client_ip) as ip, e.user_agent, e.request_id, e.outcome
                from audit.sealed s
                left join audit.events e
                  on e.occurred_at = s.occurred_at
                  and e.id = s.event_id
                  and e.practice_id = s.practice_id
                where s.practice_id = %s
                order by s.leaf_index
                """,
                (self.practice,),
            )
            for row in cur:
                index = row["leaf_index"]
                if index != expected:
                    raise _Failed(
                        "index_gap", expected, f"sealed index {expected} is missing"
                    )
                if row["id"] is None:
                    raise _Failed(
                        "missing_event", index, f"event {index} is gone or was moved"
                    )
                try:
                    data = encode_event(event_from_row(practice_id, index, row))
                except MalformedEvent as exc:
                    raise _Failed(
                        "bad_event", index, f"event {index} is malformed: {exc}"
                    ) from exc
                leaf = leaf_hash(data)
                if leaf != bytes(row["leaf_hash"]):
                    raise _Failed(
                        "altered_event", index, f"event {index} changed after sealing"
                    )
                leaves.append(leaf)
                expected += 1

                # Fold leaves into the tree at each checkpoint size, and every
                # chunk otherwise, so the list stays short.
                if next_cp < len(sizes) and expected == sizes[next_cp]:
                    frontier.extend(leaves)
                    leaves.clear()
                    self._match(frontier, next_cp)
                    next_cp += 1
                elif len(leaves) >= _CHUNK:
                    frontier.extend(leaves)
                    leaves.clear()
                if self.progress is not None and expected % _CHUNK == 0:
                    self.progress(expected, total)
        frontier.extend(leaves)
        self.sealed = min(expected, total)
        if self.progress is not None:
            self.progress(expected, total)

        if expected < total:
            raise _Failed(
                "truncated", expected, f"sealed events end at {expected}, not {total}"
            )
        if expected > total:
            raise _Failed(
                "uncovered_index",
                total,
                f"sealed indices from {total} have no checkpoint",
            )
        self._check_state(state, frontier)

    def _match(self, frontier: Frontier, position: int) -> None:
        checkpoint = self.checkpoints[position]
        if frontier.root() != checkpoint.root:
            start = self.checkpoints[position - 1].size if position else 0
            raise _Failed(
                "root_mismatch",
                start,
                f"events {start}..{checkpoint.size - 1} do not match the signed "
                f"root at size {checkpoint.size}",
            )

    def _check_state(self, state: tuple[Any, ...] | None, frontier: Frontier) -> None:
        if state is None:
            if frontier.size:
                raise _Failed("state_mismatch", 0, "the log's sealing state is gone")
            return
        size, stored = state
        try:
            matches = Frontier.from_bytes(bytes(stored)) == frontier
        except InvalidProof:
            matches = False
        if size != frontier.size or not matches:
            raise _Failed(
                "state_mismatch",
                min(size, frontier.size),
                "the sealing state does not match the sealed events",
            )

    def _check_unsealed(self) -> None:
        # Events without an index are normal while the sealer has not reached
        # them. One older than where the sealer now looks will never be sealed:
        # it was back-dated, or held in a transaction far longer than any request.
        rows = self.conn.execute(
            """
            select
              e.occurred_at,
              e.occurred_at < coalesce(st.scan_from, '-infinity') as stale,
              coalesce(
                (
                  select min(s.leaf_index) from audit.sealed s
                  where s.practice_id = e.practice_id
                    and s.occurred_at > e.occurred_at
                ),
                st.size,
                0
              ) as position
            from audit.events e
            left join audit.log_state st on st.practice_id = e.practice_id
            where e.practice_id = %s
              and not exists (select 1 from audit.sealed x where x.event_id = e.id)
            order by e.occurred_at, e.id
            """,
            (self.practice,),
        ).fetchall()
        self.pending = sum(1 for _at, stale, _pos in rows if not stale)
        stale = [(at, pos) for at, is_stale, pos in rows if is_stale]
        if stale:
            first = min(pos for _at, pos in stale)
            raise _Failed(
                "unsealed_event",
                first,
                f"{len(stale)} event(s) were never sealed although older than the "
                f"sealed log; the first would sit at index {first}",
            )
