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

Speed comes from asking PostgreSQL for whole chunks at once: one row per chunk
of indices carrying the stored leaves and the events' leaf inputs (version 3
bytes, or version 2 lines for events sealed under it), each joined into one
byte string, which Python splits and hashes in a tight loop.
The lines are rendered by the queries below, written here and not read from the
database, so a function replaced in the database cannot vouch for itself. Any
chunk that is not perfect (a gap, a missing event, a version 1 leaf, a leaf
that differs) is walked again row by row to name the exact index.

Rendering is most of the cost, so chunks are rendered by several connections at
once (one PostgreSQL process each), all reading one exported snapshot, while
this process hashes the chunks in order as they arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from perpetua.audit.archive_record import archive_record_ok
from perpetua.audit.canonical import MalformedEvent, encode_event
from perpetua.audit.checkpoint import NoteError, NoteVerifier, open_checkpoint
from perpetua.audit.merkle import Frontier, InvalidProof, leaf_hash
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, event_from_row, signer_for
from perpetua.crypto.errors import KeyDestroyed, KeyNotFound
from perpetua.crypto.keystore import DataClass, Keystore

__all__ = [
    "CHUNK_LINE_V2",
    "EVENT_BYTES_V3",
    "EVENT_LINE_V2",
    "DbFailure",
    "DbVerification",
    "practices_to_verify",
    "verify_practice",
]

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
    "bad_archive",
]

# Indices per round trip: about 20 MB of lines, few enough queries that their
# fixed cost vanishes, small enough to keep memory flat on any log size.
_CHUNK = 32768

# The version 2 canonical line (canonical.py) of event ``e`` at index
# ``s.leaf_index``. to_json escapes strings exactly as that definition requires
# (the short escapes, lowercase \u00xx for other controls, UTF-8 otherwise);
# uuids, addresses and integers cannot hold a character that needs escaping, so
# they are written directly, which is cheaper. Built with || rather than
# concat(), which looks up every argument's output function on every row.
EVENT_LINE_V2 = """
  '{"action":' || to_json(e.action)::text
  || ',"actor_id":' || coalesce('"' || e.actor_id::text || '"', 'null')
  || ',"actor_kind":' || to_json(e.actor_kind)::text
  || ',"actor_role":' || coalesce(to_json(e.actor_role)::text, 'null')
  || ',"id":"' || e.id::text
  || '","index":' || (s.leaf_index)::text
  || ',"ip":' || coalesce('"' || host(e.client_ip) || '"', 'null')
  || ',"outcome":' || to_json(e.outcome)::text
  || ',"patient_ids":' || to_json(e.patient_ids)::text
  || ',"practice_id":"' || e.practice_id::text
  || '","purpose_of_use":' || coalesce(to_json(e.purpose_of_use)::text, 'null')
  || ',"reason":' || coalesce(to_json(e.reason)::text, 'null')
  || ',"request_id":' || coalesce(to_json(e.request_id)::text, 'null')
  || ',"resource_ids":' || to_json(e.resource_ids)::text
  || ',"resource_type":' || to_json(e.resource_type)::text
  || ',"row_count":' || e.row_count::text
  || ',"time":"' || to_char(
    e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
  )
  || '","user_agent":' || coalesce(to_json(e.user_agent)::text, 'null')
  || ',"v":2}'
"""

# The same line, cheaper: the six enumerated fields (constrained to lowercase
# tags and codes by the table and the application) are written between quotes
# without to_json, which spends more on looking up how to render a text than on
# rendering it. It is only ever used to accept a chunk whose every leaf matches;
# a chunk it cannot reproduce is walked again with the exact line above, so a
# legitimate value that needed escaping costs time, never a wrong verdict.
#
# Accepting on it is sound because the stored line is canonical JSON, where a
# quote inside a string is always escaped: each constant piece between two
# fields (such as '","actor_id":') occurs in it exactly once, at its own place.
# A row whose rendering equals that line must therefore put every constant at
# the same offset, so every field renders to the same piece as the original,
# and each field's rendering determines its value. That holds row by row only
# if the pieces of the joined chunk line up with the rows, so a NULL rendering
# becomes an empty line instead of being skipped by string_agg, and a chunk
# whose line count differs from its row count (a newline in a raw field) is
# never accepted.
CHUNK_LINE_V2 = """
  coalesce(
    '{"action":"' || e.action
    || '","actor_id":' || coalesce('"' || e.actor_id::text || '"', 'null')
    || ',"actor_kind":"' || e.actor_kind
    || '","actor_role":' || coalesce('"' || e.actor_role || '"', 'null')
    || ',"id":"' || e.id::text
    || '","index":' || (s.leaf_index)::text
    || ',"ip":' || coalesce('"' || host(e.client_ip) || '"', 'null')
    || ',"outcome":"' || e.outcome
    || '","patient_ids":' || to_json(e.patient_ids)::text
    || ',"practice_id":"' || e.practice_id::text
    || '","purpose_of_use":' || coalesce('"' || e.purpose_of_use || '"', 'null')
    || ',"reason":' || coalesce(to_json(e.reason)::text, 'null')
    || ',"request_id":' || coalesce(to_json(e.request_id)::text, 'null')
    || ',"resource_ids":' || to_json(e.resource_ids)::text
    || ',"resource_type":"' || e.resource_type
    || '","row_count":' || e.row_count::text
    || ',"time":"' || to_char(
      e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
    )
    || '","user_agent":' || coalesce(to_json(e.user_agent)::text, 'null')
    || ',"v":2}',
    ''
  )
"""

# The version 3 bytes (canonical.event_bytes_v3) of event ``e`` at index
# ``s.leaf_index``: PostgreSQL's binary form of one record of these fields, each
# typed and length-prefixed, nulls marked. Text goes out as stored because the
# verifying transaction sets the client encoding to the server's (UTF-8).
EVENT_BYTES_V3 = """
  record_send(row(
    3, e.id, e.practice_id, s.leaf_index, e.occurred_at, e.actor_kind,
    e.actor_id, e.actor_role, e.action, e.resource_type, e.resource_ids,
    e.patient_ids, e.purpose_of_use, e.reason, substr(inet_send(e.client_ip), 5),
    e.user_agent, e.request_id, e.outcome, e.row_count
  ))
"""

# The sealed rows of one practice in [lo, hi) joined to their events. The
# caller passes the chunk's time span, so the events are read by the practice-time
# index in one range from the right monthly partitions and hash-joined, instead
# of probing the primary key once per index.
_JOINED = """
  select {columns}
  from audit.sealed s
  left join audit.events e
    on e.occurred_at = s.occurred_at
    and e.id = s.event_id
    and e.practice_id = %(practice)s
    and e.occurred_at >= %(first_at)s
    and e.occurred_at <= %(last_at)s
  where s.practice_id = %(practice)s
    and s.leaf_index >= %(lo)s and s.leaf_index < %(hi)s
"""

_SPAN_QUERY = """
  select min(occurred_at), max(occurred_at) from audit.sealed
  where practice_id = %(practice)s and leaf_index >= %(lo)s and leaf_index < %(hi)s
"""

# An index whose event left with its month for a monthly archive (archive.py):
# gone from audit.events, inside a range whose signed record was checked.
_ARCHIVED_ROW = """
  e.id is null and exists (
    select 1
    from unnest(
      %(archived_from)s::timestamptz[], %(archived_to)s::timestamptz[]
    ) a(range_from, range_to)
    where s.occurred_at >= a.range_from and s.occurred_at < a.range_to
  )
"""

# An archived event's line is the marker "A" (no rendering is ever that short),
# and its stored leaf is taken as it is. Version 2 lines are joined by newlines
# (a canonical line holds none); version 3 bytes may hold any byte, so they come
# as an array. Each event is rendered only in the version its leaf was sealed
# under; a chunk mixing both is walked row by row.
_CHUNK_QUERY = _JOINED.format(
    columns=f"""
    count(*) as n,
    min(s.leaf_index) as lo,
    max(s.leaf_index) as hi,
    count(e.id) as present,
    count(*) filter (where {_ARCHIVED_ROW}) as archived,
    count(*) filter (where s.encoding = 2 or e.id is null) as v2,
    count(e.id) filter (where s.encoding = 3) as v3,
    count(e.id) filter (
      where s.occurred_at < coalesce(%(scan_from)s::timestamptz, '-infinity')
    ) as before_scan,
    string_agg(s.leaf_hash, ''::bytea order by s.leaf_index) as leaves,
    string_agg(
      convert_to(
        case when {_ARCHIVED_ROW} then 'A' else {CHUNK_LINE_V2} end, 'UTF8'
      ),
      '\\x0a'::bytea order by s.leaf_index
    ) filter (where s.encoding <> 3 or e.id is null) as lines,
    array_agg(
      case when e.id is null then '\\x41'::bytea else {EVENT_BYTES_V3} end
      order by s.leaf_index
    ) filter (where s.encoding = 3 or e.id is null) as lines_v3
    """
)

_ROWS_QUERY = (
    _JOINED.format(
        columns=f"""
    s.leaf_index, s.leaf_hash, s.encoding, s.occurred_at as sealed_at,
    {_ARCHIVED_ROW} as archived,
    case when e.id is null then null
      when s.encoding = 2 then convert_to({EVENT_LINE_V2}, 'UTF8')
      when s.encoding = 3 then {EVENT_BYTES_V3} end as line,
    e.id, e.occurred_at, e.actor_kind, e.actor_id, e.actor_role, e.action,
    e.resource_type, e.resource_ids, e.patient_ids, e.purpose_of_use, e.reason,
    host(e.client_ip) as ip, e.user_agent, e.request_id, e.outcome, e.row_count
    """
    )
    + " order by s.leaf_index"
)


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
    readers: Sequence[psycopg.Connection[Any]] = (),
) -> DbVerification:
    """Check one practice's log; ``conn`` is the owner's, with system claims set.

    ``readers`` are further idle connections set up like ``conn``; the log's
    chunks are rendered on all of them at once. ``progress(done, total)`` is
    called as events are checked.
    """
    practice_id = str(practice)
    origin = practice_log_origin(practice_id, origin_host)
    checker = _Checker(conn, keystore, practice, origin, progress)
    try:
        # One snapshot for the whole check: a sealing pass committing halfway
        # through would otherwise look like indices without a checkpoint.
        with conn.transaction(), contextlib.ExitStack() as stack:
            _begin_snapshot(conn)
            snapshot = conn.execute("select pg_export_snapshot()").fetchone()
            for reader in readers:
                stack.enter_context(reader.transaction())
                assert snapshot is not None
                _begin_snapshot(reader, snapshot[0])
                checker.readers.append(reader)
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
    if checker.archived:
        message += (
            f" ({checker.archived} of them in months moved to archives, proven by "
            "their stored leaves and signed archive records)"
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


def _begin_snapshot(conn: psycopg.Connection[Any], snapshot: str = "") -> None:
    """Make the open transaction a read-only view of one moment, tuned for
    reading the whole log."""
    conn.execute("set transaction isolation level repeatable read, read only")
    if snapshot:
        conn.execute(
            sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot))
        )

    # The whole log is read: plan for all rows, not for the first few (a
    # cursor's default), and join whole chunks by hashing instead of one index
    # probe per event, whatever the statistics say; give the per-chunk sort room
    # to stay in memory. Chunks are already rendered side by side, so parallel
    # workers inside one query would only compete with the other readers.
    conn.execute("set local cursor_tuple_fraction = 1.0")

    # Version 3 bytes carry text as the server sends it, which is the stored
    # UTF-8 only when the client asks for the server's encoding.
    conn.execute("set local client_encoding = 'UTF8'")
    conn.execute("set local enable_nestloop = off")
    conn.execute("set local work_mem = '64MB'")
    conn.execute("set local max_parallel_workers_per_gather = 0")


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
        # Connections that render chunks; each is used by one thread at a time.
        self.readers: list[psycopg.Connection[Any]] = [conn]
        self.keystore = keystore
        self.practice = practice
        self.origin = origin
        self.progress = progress
        self.checkpoints: list[_Checkpoint] = []
        self.sealed = 0
        self.pending = 0
        self.failures: list[_Failed] = []
        self.scan_from: datetime | None = None
        # Sealed events older than scan_from: every event that old must be one.
        self.sealed_before_scan = 0
        # Month ranges whose events were archived, each with a valid record.
        self.archived_from: list[datetime] = []
        self.archived_to: list[datetime] = []
        self.archived = 0

    def run(self) -> None:
        # Every kind of damage is looked for; the one at the lowest index is
        # reported, since later indices may only be collateral.
        steps = (
            self._check_checkpoints,
            self._check_archives,
            self._check_events,
            self._check_unsealed,
        )
        for step in steps:
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

    def _check_archives(self) -> None:
        """Accept a month as archived only on a valid signed record that counts
        exactly the sealed indices in its range."""
        rows = self.conn.execute(
            """
            select a.range_from, a.range_to, a.events, a.file_sha256, a.note,
              a.key_version,
              (select count(*) from audit.sealed s
                where s.practice_id = a.practice_id
                  and s.occurred_at >= a.range_from
                  and s.occurred_at < a.range_to) as sealed,
              (select min(s.leaf_index) from audit.sealed s
                where s.practice_id = a.practice_id
                  and s.occurred_at >= a.range_from) as first_index
            from audit.archived_months a
            where a.practice_id = %s
            order by a.range_from
            """,
            (self.practice,),
        ).fetchall()
        cache: dict[int, NoteVerifier] = {}
        for start, end, events, digest, note, version, sealed, first in rows:
            at = first if first is not None else 0
            try:
                verifier = self._verifier(version, cache)
            except _Failed as failure:
                raise _Failed("bad_archive", at, failure.message) from None
            signed = archive_record_ok(
                note, verifier, self.origin, start, end, events, bytes(digest)
            )
            if not signed:
                raise _Failed(
                    "bad_archive",
                    at,
                    f"the archive record from {start:%Y-%m} is not validly signed",
                )
            if sealed != events:
                raise _Failed(
                    "bad_archive",
                    at,
                    f"the archive record from {start:%Y-%m} counts {events} events, "
                    f"the sealed index {sealed}",
                )
            self.archived_from.append(start)
            self.archived_to.append(end)

    def _check_events(self) -> None:
        state = self.conn.execute(
            "select size, frontier, scan_from from audit.log_state "
            "where practice_id = %s",
            (self.practice,),
        ).fetchone()
        if state is not None:
            self.scan_from = state[2]
        sizes = [c.size for c in self.checkpoints]
        total = sizes[-1] if sizes else 0
        frontier = Frontier()
        next_cp = 0
        expected = 0

        # Closed at once on a failure, so no reader is left mid-query when the
        # transaction ends.
        with contextlib.closing(self._leaf_chunks(total)) as chunks:
            for leaves in chunks:
                # Fold the chunk into the tree, stopping at every checkpoint
                # size in it to compare the recomputed root with the signed one.
                offset = 0
                end = expected + len(leaves)
                while next_cp < len(sizes) and sizes[next_cp] <= end:
                    cut = sizes[next_cp] - expected
                    frontier.extend(leaves[offset:cut])
                    offset = cut
                    self._match(frontier, next_cp)
                    next_cp += 1
                frontier.extend(leaves[offset:])
                expected = end
                if self.progress is not None:
                    self.progress(expected, total)
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

    def _leaf_chunks(self, total: int) -> Generator[list[bytes]]:
        """The recomputed leaves, in index order, one chunk at a time.

        Each leaf is checked against the stored one before it is yielded.
        """
        sha = hashlib.sha256
        readers = self.readers
        with ThreadPoolExecutor(len(readers)) as pool:
            # One chunk in flight per reader: chunk k goes to reader k mod n,
            # and is asked for only once chunk k - n has been taken, so no
            # reader ever runs two queries at once.
            in_flight: deque[Future[tuple[dict[str, Any], tuple[Any, ...]]]]
            in_flight = deque()
            next_lo = 0
            for reader in readers:
                in_flight.append(pool.submit(self._fetch_chunk, reader, next_lo))
                next_lo += _CHUNK

            while True:
                params, row = in_flight.popleft().result()
                lo = params["lo"]
                n, first, last, present, archived, v2, v3, before = row[:8]
                stored, lines, lines_v3 = row[8:]
                if n == 0:
                    self._check_no_index_after(lo)
                    return
                whole = first == lo and last == lo + n - 1 and present + archived == n
                perfect = whole and n == v2
                if whole and v3 + archived == n and archived:
                    leaves = [
                        stored[32 * k : 32 * k + 32]
                        if data == b"A"
                        else sha(b"\x00" + data).digest()
                        for k, data in enumerate(lines_v3)
                    ]
                    perfect = len(leaves) == n and b"".join(leaves) == stored
                elif whole and v3 == n:
                    leaves = [sha(b"\x00" + data).digest() for data in lines_v3]
                    perfect = len(leaves) == n and b"".join(leaves) == stored
                elif perfect and archived:
                    leaves = [
                        stored[32 * k : 32 * k + 32]
                        if line == b"A"
                        else sha(b"\x00" + line).digest()
                        for k, line in enumerate(lines.split(b"\n"))
                    ]
                    perfect = len(leaves) == n and b"".join(leaves) == stored
                elif perfect:
                    leaves = [
                        sha(b"\x00" + line).digest() for line in lines.split(b"\n")
                    ]
                    perfect = len(leaves) == n and b"".join(leaves) == stored
                if perfect:
                    self.sealed_before_scan += before
                    self.archived += archived
                else:
                    leaves = self._leaves_row_by_row(params, lo)
                yield leaves
                if n < _CHUNK:
                    self._check_no_index_after(params["hi"])
                    return
                reader = readers[(next_lo // _CHUNK) % len(readers)]
                in_flight.append(pool.submit(self._fetch_chunk, reader, next_lo))
                next_lo += _CHUNK

    def _fetch_chunk(
        self, conn: psycopg.Connection[Any], lo: int
    ) -> tuple[dict[str, Any], tuple[Any, ...]]:
        params: dict[str, Any] = {
            "practice": self.practice,
            "lo": lo,
            "hi": lo + _CHUNK,
            "scan_from": self.scan_from,
            "archived_from": self.archived_from,
            "archived_to": self.archived_to,
        }
        span = conn.execute(_SPAN_QUERY, params).fetchone()
        assert span is not None
        params["first_at"], params["last_at"] = span
        row = conn.execute(_CHUNK_QUERY, params, binary=True).fetchone()
        assert row is not None
        return params, row

    def _check_no_index_after(self, start: int) -> None:
        row = self.conn.execute(
            "select min(leaf_index) from audit.sealed "
            "where practice_id = %s and leaf_index >= %s",
            (self.practice, start),
        ).fetchone()
        if row is not None and row[0] is not None:
            raise _Failed("index_gap", start, f"sealed index {start} is missing")

    def _leaves_row_by_row(self, params: dict[str, Any], lo: int) -> list[bytes]:
        """The slow path for a chunk with damage: name the first bad index."""
        practice_id = str(self.practice)
        leaves: list[bytes] = []
        expected = lo
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_ROWS_QUERY, params, binary=True)
            for row in cur:
                index = row["leaf_index"]
                if index != expected:
                    raise _Failed(
                        "index_gap", expected, f"sealed index {expected} is missing"
                    )
                if row["id"] is None:
                    if not row["archived"]:
                        raise _Failed(
                            "missing_event",
                            index,
                            f"event {index} is gone or was moved",
                        )
                    leaves.append(bytes(row["leaf_hash"]))
                    self.archived += 1
                    expected += 1
                    continue
                if row["encoding"] in (2, 3):
                    # A NOT NULL column emptied behind the table's back renders
                    # no version 2 line at all.
                    if row["line"] is None:
                        raise _Failed(
                            "bad_event", index, f"event {index} has a field emptied"
                        )
                    data = bytes(row["line"])
                else:
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
                if self.scan_from is not None and row["occurred_at"] < self.scan_from:
                    self.sealed_before_scan += 1
        return leaves

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
        size, stored, _scan_from = state
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
        # Every sealed index was joined to a distinct existing event above, so
        # equal counts before scan_from prove there is no such event without
        # reading the old log a second time.
        params = {"practice": self.practice, "scan_from": self.scan_from}
        old = self.conn.execute(
            """
            select count(*) from audit.events
            where practice_id = %(practice)s
              and occurred_at < coalesce(%(scan_from)s::timestamptz, '-infinity')
            """,
            params,
        ).fetchone()
        assert old is not None
        recent = self.conn.execute(
            """
            select count(*) from audit.events e
            where e.practice_id = %(practice)s
              and e.occurred_at >= coalesce(%(scan_from)s::timestamptz, '-infinity')
              and not exists (select 1 from audit.sealed x where x.event_id = e.id)
            """,
            params,
        ).fetchone()
        assert recent is not None
        self.pending = recent[0]
        if old[0] == self.sealed_before_scan:
            return

        rows = self.conn.execute(
            """
            select
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
            where e.practice_id = %(practice)s
              and e.occurred_at < coalesce(%(scan_from)s::timestamptz, '-infinity')
              and not exists (select 1 from audit.sealed x where x.event_id = e.id)
            """,
            params,
        ).fetchall()
        if rows:
            first = min(position for (position,) in rows)
            raise _Failed(
                "unsealed_event",
                first,
                f"{len(rows)} event(s) were never sealed although older than the "
                f"sealed log; the first would sit at index {first}",
            )
