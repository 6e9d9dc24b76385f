"""Moving audit months past retention out of the database, and nothing sooner.

This module guards the seven years. Audit events stay in ``audit.events`` at
least seven years (no setting shortens it; the database itself refuses to drop
a younger partition). After that, ``perpetua audit archive`` takes the oldest
monthly partitions one at a time and, for every practice with events in it:

1. checks that all its events there are sealed and that their lines still hash
   to the stored leaves, and that the stored leaves give the newest checkpoint's
   signed root (a damaged log is not archived: it is reported);
2. writes an encrypted month archive (``archive_file``): each event's canonical
   line with its inclusion proof in that checkpoint's tree;
3. reads the file back, decrypting it and checking every proof, and hashes it
   in the same pass;
4. signs a record of the month (range, count, file hash) with the practice's
   audit key.

Only when every practice's file has been proven are the records inserted and the
partition dropped, in one transaction, by ``audit.drop_archived_partition``,
which refuses unless each practice's record matches its count over that range.
The sealed index (one leaf hash per event) stays, so every checkpoint remains
verifiable, and ``perpetua audit verify`` accepts a missing event only inside a
month with a validly signed record.

Limitation: inclusion proofs are built from every leaf of the practice's log held
in memory (about 64 bytes per event, so 640 MB for a log of ten million events).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from perpetua.audit.archive_file import (
    ArchivedEvent,
    MonthArchiveError,
    MonthContents,
    MonthHeader,
    object_id_for,
    read_month,
    read_prefix,
    write_month,
)
from perpetua.audit.archive_record import archive_record_text
from perpetua.audit.canonical import format_time, leaf_input
from perpetua.audit.checkpoint import (
    NoteError,
    open_checkpoint,
    sign_note,
)
from perpetua.audit.db_verify import EVENT_LINE_V2
from perpetua.audit.merkle import HASH_SIZE, inclusion_proof, leaf_hash, node_hash
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import DEFAULT_ORIGIN_HOST, event_line, signer_for
from perpetua.crypto.digests import DigestingReader
from perpetua.crypto.errors import CryptoError
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.crypto.streaming import iter_decrypt

__all__ = [
    "RETENTION_YEARS",
    "ArchiveRefused",
    "MonthPartition",
    "archive_partition",
    "open_month_file",
    "partitions_due",
]

# The floor. HIPAA asks six years of its documentation; Perpetua promises seven.
RETENTION_YEARS = 7

_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


class ArchiveRefused(Exception):
    """A month cannot be archived now; the message says why."""


@dataclass(frozen=True)
class MonthPartition:
    name: str
    range_from: datetime
    range_to: datetime

    @property
    def label(self) -> str:
        return self.range_from.astimezone(UTC).strftime("%Y-%m")


def retention_line(now: datetime, years: int) -> datetime:
    """``now`` less ``years`` calendar years (29 February becomes the 28th)."""
    if years < RETENTION_YEARS:
        raise ValueError(f"audit events are kept at least {RETENTION_YEARS} years")
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def partitions_due(
    conn: psycopg.Connection[Any], now: datetime, years: int = RETENTION_YEARS
) -> list[MonthPartition]:
    """Monthly partitions that ended before the retention line, oldest first."""
    line = retention_line(now, years)
    rows = conn.execute(
        """
        select c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid)
        from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'audit.events'::regclass
        """
    ).fetchall()
    due = []
    for name, bound in rows:
        match = _BOUND.fullmatch(bound or "")
        if match is None:
            continue  # the default partition is never archived whole
        start = datetime.fromisoformat(match.group(1))
        end = datetime.fromisoformat(match.group(2))
        if end <= line:
            due.append(MonthPartition(name, start, end))
    return sorted(due, key=lambda p: p.range_from)


@dataclass(frozen=True)
class _PracticeMonth:
    practice_id: uuid.UUID
    path: Path
    events: int
    digest: bytes
    note: str
    key_version: int


def archive_partition(
    conn: psycopg.Connection[Any],
    keystore: Keystore,
    partition: MonthPartition,
    out_dir: Path,
    *,
    origin_host: str = DEFAULT_ORIGIN_HOST,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Archive one partition and drop it; ``conn`` is the owner's, as the system.

    Returns the files written, one per practice. ``progress(n)`` is called as
    events are archived.
    """
    practices = [
        row[0]
        for row in conn.execute(
            f"select distinct practice_id from {partition.name} order by 1"
        )
    ]
    months = [
        _archive_practice(
            conn, keystore, partition, practice, out_dir, origin_host, progress
        )
        for practice in practices
    ]

    # Records and the drop land together or not at all; the database function
    # checks every count again before it drops anything.
    with conn.transaction():
        for month in months:
            conn.execute(
                """
                insert into audit.archived_months (
                  practice_id, range_from, range_to, events, file_sha256, note,
                  key_version
                ) values (%s, %s, %s, %s, %s, %s, %s)
                """,
                (
                    month.practice_id,
                    partition.range_from,
                    partition.range_to,
                    month.events,
                    month.digest,
                    month.note,
                    month.key_version,
                ),
            )
        conn.execute(
            "select audit.drop_archived_partition(%s::regclass)", (partition.name,)
        )
    return [month.path for month in months]


def _archive_practice(
    conn: psycopg.Connection[Any],
    keystore: Keystore,
    partition: MonthPartition,
    practice: uuid.UUID,
    out_dir: Path,
    origin_host: str,
    progress: Callable[[int], None] | None,
) -> _PracticeMonth:
    practice_id = str(practice)
    origin = practice_log_origin(practice_id, origin_host)
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        checkpoint_row = conn.execute(
            "select size, note, key_version from audit.checkpoints "
            "where practice_id = %s order by size desc limit 1",
            (practice,),
        ).fetchone()
        if checkpoint_row is None:
            raise ArchiveRefused(f"practice {practice_id} has no sealed log to archive")
        size, note, key_version = checkpoint_row
        signing = signer_for(
            keystore.get(practice, DataClass.AUDIT_SIGNING, key_version), origin
        )
        try:
            checkpoint = open_checkpoint(note, signing.verifier, origin=origin)
        except NoteError as exc:
            raise ArchiveRefused(
                f"practice {practice_id}: the newest checkpoint does not verify"
            ) from exc

        tree = _Tree(_stored_leaves(conn, practice, size))
        if tree.root(0, size) != checkpoint.root:
            raise ArchiveRefused(
                f"practice {practice_id}: stored leaves do not give the signed root;"
                " run `perpetua audit verify`"
            )
        events = _month_events(conn, practice, partition, size, tree)

        header = MonthHeader(
            practice_id=practice_id,
            origin=origin,
            verifier_key=signing.verifier.to_key(),
            range_from=format_time(partition.range_from),
            range_to=format_time(partition.range_to),
            checkpoint_note=note,
        )
        path = out_dir / partition.label / f"{practice_id}.audit-month"
        path.parent.mkdir(parents=True, exist_ok=True)
        archive_id = uuid.uuid4()
        object_id = object_id_for(archive_id)
        data_key = keystore.new_data_key()
        wrapped = keystore.wrap_data_key(
            practice, DataClass.AUDIT_ARCHIVE, object_id, data_key
        )
        with path.open("wb") as out:
            written = write_month(
                out,
                archive_id=archive_id,
                data_key=data_key,
                wrapped_key=wrapped,
                header=header,
                events=_counted(events, progress),
            )

    contents, digest = open_month_file(path, keystore, trusted_key=header.verifier_key)
    if contents.events != written:
        raise ArchiveRefused(f"{path} holds {contents.events} events, not {written}")
    current = keystore.current(practice, DataClass.AUDIT_SIGNING)
    signer = signer_for(current, origin)
    record = archive_record_text(
        origin, partition.range_from, partition.range_to, written, digest
    )
    return _PracticeMonth(
        practice, path, written, digest, sign_note(record, [signer]), current.version
    )


def open_month_file(
    path: Path, keystore: Keystore, *, trusted_key: str | None = None
) -> tuple[MonthContents, bytes]:
    """Decrypt and check a month archive; return what it holds and its SHA-256.

    The plaintext passes through memory a segment at a time, never to disk.
    """
    with path.open("rb") as raw:
        reader = DigestingReader(raw)
        practice, archive_id, wrapped = read_prefix(reader)
        object_id = object_id_for(archive_id)
        try:
            data_key = keystore.unwrap_data_key(
                practice, DataClass.AUDIT_ARCHIVE, object_id, wrapped
            )
        except CryptoError as exc:
            raise MonthArchiveError(f"{path.name}: its key does not open") from exc
        segments = iter_decrypt(
            data_key,
            reader,
            practice_id=practice,
            data_class=DataClass.AUDIT_ARCHIVE,
            object_id=object_id,
        )
        try:
            contents = read_month(_SegmentReader(segments), trusted_key=trusted_key)
        except CryptoError as exc:
            raise MonthArchiveError(f"{path.name} does not decrypt: {exc}") from exc
        if str(practice) != contents.header.practice_id:
            raise MonthArchiveError("the archive's header names another practice")
        # Whatever follows the stream's last segment was never authenticated.
        if raw.read(1):
            raise MonthArchiveError(f"{path.name} has bytes after its end")
        return contents, reader.hash.digest()


class _SegmentReader:
    """``readinto`` over authenticated plaintext segments."""

    def __init__(self, segments: Iterator[bytes]) -> None:
        self._segments = segments
        self._current = memoryview(b"")

    def readinto(self, buffer: memoryview, /) -> int:
        while not self._current:
            segment = next(self._segments, None)
            if segment is None:
                return 0
            self._current = memoryview(segment)
        taken = min(len(buffer), len(self._current))
        buffer[:taken] = self._current[:taken]
        self._current = self._current[taken:]
        return taken


def _counted(
    events: Iterator[ArchivedEvent], progress: Callable[[int], None] | None
) -> Iterator[ArchivedEvent]:
    for event in events:
        yield event
        if progress is not None:
            progress(1)


def _stored_leaves(
    conn: psycopg.Connection[Any], practice: uuid.UUID, size: int
) -> bytes:
    parts = []
    for lo in range(0, size, 65536):
        row = conn.execute(
            "select string_agg(leaf_hash, ''::bytea order by leaf_index), count(*) "
            "from audit.sealed where practice_id = %s "
            "and leaf_index >= %s and leaf_index < %s",
            (practice, lo, min(lo + 65536, size)),
        ).fetchone()
        assert row is not None
        if row[1] != min(65536, size - lo):
            raise ArchiveRefused(
                "the sealed index has a gap; run `perpetua audit verify`"
            )
        parts.append(bytes(row[0]))
    return b"".join(parts)


class _Tree:
    """Subtree hashes of one log, from its leaves, memoized for many proofs."""

    def __init__(self, leaves: bytes) -> None:
        self._levels = [leaves]
        level = leaves
        while len(level) > HASH_SIZE:
            level = b"".join(
                node_hash(
                    level[i : i + HASH_SIZE], level[i + HASH_SIZE : i + 2 * HASH_SIZE]
                )
                for i in range(0, len(level) - HASH_SIZE, 2 * HASH_SIZE)
            )
            self._levels.append(level)
        self._memo: dict[tuple[int, int], bytes] = {}

    def root(self, start: int, end: int) -> bytes:
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            height = width.bit_length() - 1
            at = (start >> height) * HASH_SIZE
            return self._levels[height][at : at + HASH_SIZE]
        key = (start, end)
        if key not in self._memo:
            k = 1 << ((width - 1).bit_length() - 1)
            self._memo[key] = node_hash(
                self.root(start, start + k), self.root(start + k, end)
            )
        return self._memo[key]

    def proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.root)


def _month_events(
    conn: psycopg.Connection[Any],
    practice: uuid.UUID,
    partition: MonthPartition,
    size: int,
    tree: _Tree,
) -> Iterator[ArchivedEvent]:
    params = {
        "practice": practice,
        "from": partition.range_from,
        "to": partition.range_to,
    }
    counts = conn.execute(
        """
        select
          (select count(*) from audit.events e where e.practice_id = %(practice)s
             and e.occurred_at >= %(from)s and e.occurred_at < %(to)s),
          (select count(*) from audit.sealed s where s.practice_id = %(practice)s
             and s.occurred_at >= %(from)s and s.occurred_at < %(to)s)
        """,
        params,
    ).fetchone()
    assert counts is not None
    if counts[0] != counts[1]:
        raise ArchiveRefused(
            f"practice {practice}: {counts[0] - counts[1]} event(s) of "
            f"{partition.label} are not sealed; run `perpetua audit seal` first"
        )
    practice_id = str(practice)
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(
        f"""
        select s.leaf_index, s.leaf_hash, s.encoding,
          case when s.encoding = 2 then convert_to({EVENT_LINE_V2}, 'UTF8') end
            as line,
          e.*, host(e.client_ip) as ip
        from audit.sealed s
        join audit.events e
          on e.occurred_at = s.occurred_at and e.id = s.event_id
          and e.practice_id = s.practice_id
        where s.practice_id = %(practice)s
          and s.occurred_at >= %(from)s and s.occurred_at < %(to)s
        order by s.leaf_index
        """,
        params,
        binary=True,
    )
    for row in cur:
        index = row["leaf_index"]
        if index >= size:
            raise ArchiveRefused(
                f"practice {practice_id}: event {index} is newer than the newest "
                "checkpoint; run `perpetua audit seal` first"
            )
        line = event_line(practice_id, index, row)
        if leaf_hash(leaf_input(line)) != bytes(row["leaf_hash"]):
            raise ArchiveRefused(
                f"practice {practice_id}: event {index} changed after sealing; "
                "run `perpetua audit verify`"
            )
        yield ArchivedEvent(index, line, tree.proof(index, size))
