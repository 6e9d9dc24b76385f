"""Writing and verifying an audit archive with no database, network or secrets.

This module guards a practice's ability to check its own audit trail. An archive
is a UTF-8 JSON Lines file:

1. a header: archive format and version, practice id, log origin, and the log's
   public verifier key;
2. every event, in index order from 0, each line being exactly the event's
   canonical bytes (so the Merkle leaf is ``SHA-256(0x00 || line)``, except for
   a version 3 event, whose leaf hashes the binary form rebuilt from the line's
   fields, ``canonical.leaf_input``);
   or, for an event moved to a monthly archive after seven years (``archive``),
   ``{"archived_leaf": "<base64 leaf hash>", "index": i, "practice_id": ...}``:
   its place in the tree without its content, counted and reported as such;
3. the signed checkpoints, oldest first, as ``{"checkpoint": "<signed note>"}``;
4. a footer ``{"end": {"checkpoints": k, "events": n}}`` so that a truncated or
   trimmed file is noticed even where no signature would catch it.

Verification recomputes the tree from the events and requires every checkpoint to
carry a valid signature and to match the recomputed root at its size. Because all
checkpoint roots are recomputed from one ordered run of leaves, each checkpoint is
consistent with the ones before it by construction; a consistency proof would show
nothing more. Events after the last checkpoint are counted as unsealed: they are
reported, never called proven.

The event pass parses no version 1 or 2 line on the happy path. It hashes raw
lines and checks indices and practice ids with a few C-level byte searches per
block, which is what lets a laptop check millions of events in seconds. Version
3 lines are decoded strictly, one by one, to rebuild the bytes their leaves
hash. Only when something is wrong is each line of the suspect range fully
decoded, to name the first bad index.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from perpetua.audit.canonical import (
    AuditEvent,
    MalformedEvent,
    canonical_json,
    decode_event,
    encode_event,
    leaf_input,
)
from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteError,
    NoteVerifier,
    open_checkpoint,
)
from perpetua.audit.merkle import Frontier

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "ArchiveHeader",
    "ArchivedLeaf",
    "FailureCode",
    "VerificationReport",
    "practice_log_origin",
    "verify_archive",
    "write_archive",
]

ARCHIVE_FORMAT = "perpetua-audit-archive"
ARCHIVE_VERSION = 1

FailureCode = Literal[
    "ok",
    "bad_header",
    "key_mismatch",
    "bad_event",
    "index_gap",
    "wrong_practice",
    "bad_checkpoint",
    "checkpoint_order",
    "incomplete",
    "root_mismatch",
    "trusted_checkpoint_mismatch",
    "no_checkpoint",
    "bad_footer",
]

_BLOCK = 4 << 20
_MAX_HEADER = 64 << 10
_CHECKPOINT_PREFIX = b'{"checkpoint":'
_END_PREFIX = b'{"end":'
# In canonical JSON a quote inside a string is always escaped, so this pattern
# can only match the top-level key; keys are sorted, so "index" is never first.
_INDEX = re.compile(rb',"index":(\d+),')
_ARCHIVED_PREFIX = b'{"archived_leaf":"'
# Keys are sorted, so a version 3 line ends with its version.
_V3_SUFFIX = b',"v":3}'
_ARCHIVED = re.compile(
    rb'\{"archived_leaf":"([A-Za-z0-9+/]{43}=)","index":(0|[1-9][0-9]*),'
    rb'"practice_id":"([0-9a-f-]{36})"\}'
)


@dataclass(frozen=True, slots=True)
class ArchivedLeaf:
    """An event no longer in the database: its index and leaf hash only."""

    index: int
    leaf: bytes

    def to_line(self, practice_id: str) -> bytes:
        return canonical_json(
            {
                "archived_leaf": base64.b64encode(self.leaf).decode("ascii"),
                "index": self.index,
                "practice_id": practice_id,
            }
        )


def practice_log_origin(practice_id: str, host: str = "perpetua.example") -> str:
    """The conventional origin of one practice's log, e.g. ``host/practice/<id>``."""
    return f"{host}/practice/{practice_id}"


@dataclass(frozen=True, slots=True)
class ArchiveHeader:
    practice_id: str
    origin: str
    verifier_key: str

    def to_line(self) -> bytes:
        return canonical_json(
            {
                "format": ARCHIVE_FORMAT,
                "version": ARCHIVE_VERSION,
                "practice_id": self.practice_id,
                "origin": self.origin,
                "verifier_key": self.verifier_key,
            }
        )


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What verification established; ``code`` is machine-readable."""

    ok: bool
    code: FailureCode
    message: str
    first_bad_index: int | None = None
    practice_id: str | None = None
    origin: str | None = None
    event_count: int = 0
    sealed_count: int = 0
    checkpoint_count: int = 0
    last_checkpoint: Checkpoint | None = None
    key_pinned: bool = False
    # Events present by their leaf hash only, moved to a monthly archive.
    archived_count: int = 0

    @property
    def unsealed_count(self) -> int:
        """Events after the last checkpoint: present, but not proven."""
        return self.event_count - self.sealed_count


class _Rejected(Exception):
    def __init__(self, code: FailureCode, message: str, index: int | None = None):
        super().__init__(message)
        self.code: FailureCode = code
        self.message = message
        self.index = index


# Exporting.


def write_archive(
    out: BinaryIO,
    *,
    practice_id: str,
    origin: str,
    verifier_key: str,
    events: Iterable[AuditEvent | bytes | ArchivedLeaf],
    checkpoints: Iterable[str],
) -> int:
    """Write an archive and return the number of events written.

    ``events`` may be event mappings, their canonical bytes, or the leaves of
    archived events, in index order.
    The writer refuses to produce an archive its own verifier would reject for
    structural reasons (gaps, another practice's event, a foreign key).
    """
    NoteVerifier.from_key(verifier_key)
    out.write(ArchiveHeader(practice_id, origin, verifier_key).to_line() + b"\n")

    count = 0
    for item in events:
        if isinstance(item, ArchivedLeaf):
            if item.index != count or len(item.leaf) != 32:
                raise MalformedEvent(f"archived leaf {item.index} is not event {count}")
            out.write(item.to_line(practice_id) + b"\n")
            count += 1
            continue
        if isinstance(item, bytes):
            line, event = item, decode_event(item)
        else:
            line, event = encode_event(item), item
        if event["index"] != count:
            raise MalformedEvent(f"expected event {count}, got {event['index']}")
        if event["practice_id"] != practice_id:
            raise MalformedEvent(f"event {count} belongs to another practice")
        out.write(line + b"\n")
        count += 1

    written = 0
    for note in checkpoints:
        out.write(canonical_json({"checkpoint": note}) + b"\n")
        written += 1
    out.write(
        canonical_json({"end": {"checkpoints": written, "events": count}}) + b"\n"
    )
    return count


# Verifying.


def verify_archive(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    trusted_key: str | None = None,
    trusted_checkpoints: Sequence[str] = (),
) -> VerificationReport:
    """Verify an archive file end to end and say what it proves.

    ``trusted_key`` is the verifier key the practice holds from a source other
    than the archive; without it, the archive only proves it is self-consistent.
    ``trusted_checkpoints`` are signed notes obtained separately (for example
    from mail); the archive must contain and agree with each, which catches an
    archive that was rolled back to an older, still validly signed state.
    """
    if isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as handle:
            return _Verifier(handle, trusted_key, trusted_checkpoints).run()
    return _Verifier(source, trusted_key, trusted_checkpoints).run()


class _Verifier:
    def __init__(
        self,
        handle: BinaryIO,
        trusted_key: str | None,
        trusted_checkpoints: Sequence[str],
    ) -> None:
        self.handle = handle
        self.trusted_key = trusted_key
        self.trusted_notes = trusted_checkpoints
        self.header: ArchiveHeader | None = None
        self.event_count = 0
        self.archived = 0
        self.sealed = 0
        self.checkpoints: list[Checkpoint] = []
        self.tail_start = 0

    def run(self) -> VerificationReport:
        try:
            return self._run()
        except _Rejected as failure:
            header = self.header
            return VerificationReport(
                ok=False,
                code=failure.code,
                message=failure.message,
                first_bad_index=failure.index,
                practice_id=header.practice_id if header else None,
                origin=header.origin if header else None,
                event_count=self.event_count,
                sealed_count=self.sealed,
                checkpoint_count=len(self.checkpoints),
                last_checkpoint=self.checkpoints[-1] if self.checkpoints else None,
                key_pinned=self.trusted_key is not None,
            )

    def _run(self) -> VerificationReport:
        header, header_end = self._read_header()
        self.header = header
        verifier = self._verifier(header)

        # Checkpoints sit after the events; find and check them first so the
        # event pass knows at which sizes to capture the root.
        tail_start, tail_lines = self._read_tail(header_end)
        self.tail_start = tail_start
        notes, footer = self._split_tail(tail_lines)
        checkpoints = [self._open(note, verifier, header) for note in notes]
        trusted = [self._open_trusted(n, verifier, header) for n in self.trusted_notes]
        self._check_order(checkpoints)

        targets = {c.size for c in checkpoints} | {c.size for c in trusted}
        roots = self._hash_events(header, header_end, tail_start, targets)
        events = self.event_count

        previous = 0
        for checkpoint in checkpoints:
            self._match(checkpoint, roots, previous, header_end, "root_mismatch")
            self.checkpoints.append(checkpoint)
            self.sealed = checkpoint.size
            previous = checkpoint.size
        for checkpoint in trusted:
            self._match(checkpoint, roots, 0, header_end, "trusted_checkpoint_mismatch")
        # Signatures cannot notice a dropped checkpoint or a cut after one; the
        # footer can, when the damage is accidental.
        if footer != {"checkpoints": len(checkpoints), "events": events}:
            raise _Rejected(
                "bad_footer",
                f"footer says {footer}, archive holds {events} events and "
                f"{len(checkpoints)} checkpoints: lines were added or removed",
            )

        if not checkpoints and events:
            raise _Rejected(
                "no_checkpoint", "the archive has events but no checkpoint", 0
            )
        unsealed = events - self.sealed
        message = f"{self.sealed} events proven by {len(checkpoints)} checkpoints"
        if self.archived:
            message += (
                f"; {self.archived} of them were moved to monthly archives after "
                "seven years and are proven by their leaf hash only"
            )
        if unsealed:
            message += f"; {unsealed} later events are unsealed, not proven"
        if self.trusted_key is None:
            message += "; the key came from the archive itself and was not pinned"
        return VerificationReport(
            ok=True,
            code="ok",
            message=message,
            practice_id=header.practice_id,
            origin=header.origin,
            event_count=events,
            sealed_count=self.sealed,
            checkpoint_count=len(checkpoints),
            last_checkpoint=checkpoints[-1] if checkpoints else None,
            key_pinned=self.trusted_key is not None,
            archived_count=self.archived,
        )

    # Header, key, tail.

    def _read_header(self) -> tuple[ArchiveHeader, int]:
        self.handle.seek(0)
        line = self.handle.readline(_MAX_HEADER)
        if not line.endswith(b"\n"):
            raise _Rejected("bad_header", "the first line is not a complete header")
        body = line[:-1]
        try:
            value = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Rejected("bad_header", f"the header is not JSON: {exc}") from exc
        fields = {"format", "version", "practice_id", "origin", "verifier_key"}
        if not isinstance(value, dict) or set(value) != fields:
            raise _Rejected("bad_header", "the header fields are not the expected set")
        if value["format"] != ARCHIVE_FORMAT or value["version"] != ARCHIVE_VERSION:
            raise _Rejected("bad_header", "unknown archive format or version")
        if not all(isinstance(value[k], str) for k in fields - {"version"}):
            raise _Rejected("bad_header", "header values must be strings")
        header = ArchiveHeader(
            value["practice_id"], value["origin"], value["verifier_key"]
        )
        if header.to_line() != body:
            raise _Rejected("bad_header", "the header is not in canonical form")
        return header, len(line)

    def _verifier(self, header: ArchiveHeader) -> NoteVerifier:
        # The key in the archive is only a claim; an attacker who rewrites the
        # whole archive would sign it with a key of their own.
        if self.trusted_key is not None and header.verifier_key != self.trusted_key:
            raise _Rejected(
                "key_mismatch", "the archive's key is not the key you trust"
            )
        try:
            return NoteVerifier.from_key(header.verifier_key)
        except NoteError as exc:
            raise _Rejected("bad_header", f"verifier key: {exc}") from exc

    def _read_tail(self, header_end: int) -> tuple[int, list[bytes]]:
        """Offset and lines of the trailing checkpoint and footer lines."""
        handle = self.handle
        size = handle.seek(0, io.SEEK_END)
        window = 1 << 16
        while True:
            start = max(header_end, size - window)
            handle.seek(start)
            data = handle.read(size - start)
            if not data.endswith(b"\n"):
                raise _Rejected("bad_footer", "the archive does not end with a newline")
            lines = data[:-1].split(b"\n")
            first = len(lines)
            while first > 0 and lines[first - 1].startswith(
                (_CHECKPOINT_PREFIX, _END_PREFIX)
            ):
                first -= 1

            # The window's first line may be cut; widen until the walk stopped on
            # a whole line or the window reaches the header.
            if first > 0 or start == header_end:
                offset = start + sum(len(line) + 1 for line in lines[:first])
                return offset, lines[first:]
            window *= 4

    def _split_tail(self, lines: list[bytes]) -> tuple[list[str], object]:
        if not lines or not lines[-1].startswith(_END_PREFIX):
            raise _Rejected("bad_footer", "the archive's last line is not its footer")
        notes: list[str] = []
        for number, line in enumerate(lines[:-1], start=1):
            value = self._json_line(line, "bad_checkpoint", f"checkpoint {number}")
            if (
                not isinstance(value, dict)
                or set(value) != {"checkpoint"}
                or not isinstance(value["checkpoint"], str)
            ):
                raise _Rejected("bad_checkpoint", f"checkpoint {number} is malformed")
            notes.append(value["checkpoint"])
        footer = self._json_line(lines[-1], "bad_footer", "footer")
        if not isinstance(footer, dict) or set(footer) != {"end"}:
            raise _Rejected("bad_footer", "the footer is malformed")
        return notes, footer["end"]

    @staticmethod
    def _json_line(line: bytes, code: FailureCode, what: str) -> object:
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise _Rejected(code, f"{what} is not JSON: {exc}") from exc

        # One spelling only, so no byte of a line is free to change unnoticed.
        if canonical_json(value) != line:
            raise _Rejected(code, f"{what} is not in canonical form")
        return value

    def _open(
        self, note: str, verifier: NoteVerifier, header: ArchiveHeader
    ) -> Checkpoint:
        try:
            return open_checkpoint(note, verifier, origin=header.origin)
        except NoteError as exc:
            raise _Rejected("bad_checkpoint", f"checkpoint rejected: {exc}") from exc

    def _open_trusted(
        self, note: str, verifier: NoteVerifier, header: ArchiveHeader
    ) -> Checkpoint:
        try:
            return open_checkpoint(note, verifier, origin=header.origin)
        except NoteError as exc:
            raise _Rejected(
                "trusted_checkpoint_mismatch",
                f"a checkpoint you supplied does not verify for this log: {exc}",
            ) from exc

    def _check_order(self, checkpoints: list[Checkpoint]) -> None:
        for earlier, later in itertools.pairwise(checkpoints):
            if later.size < earlier.size:
                raise _Rejected(
                    "checkpoint_order",
                    f"checkpoint for size {later.size} follows one for {earlier.size}",
                )
            if earlier.time and later.time and later.time < earlier.time:
                raise _Rejected(
                    "checkpoint_order",
                    f"checkpoint for size {later.size} is dated before the "
                    f"one for size {earlier.size}",
                )

    def _match(
        self,
        checkpoint: Checkpoint,
        roots: Mapping[int, bytes],
        previous: int,
        header_end: int,
        code: FailureCode,
    ) -> None:
        if checkpoint.size > self.event_count:
            raise _Rejected(
                "incomplete",
                f"a checkpoint covers {checkpoint.size} events but the archive "
                f"stops at {self.event_count}",
                self.event_count,
            )
        if roots[checkpoint.size] == checkpoint.root:
            return
        index, reason = self._locate(header_end, previous, checkpoint.size)
        raise _Rejected(
            code,
            f"events {previous}..{checkpoint.size - 1} do not match the signed "
            f"root for size {checkpoint.size}: {reason}",
            index,
        )

    # Events.

    def _blocks(self, start: int, end: int) -> Iterator[tuple[bytes, list[bytes]]]:
        """Whole lines between two offsets, a few megabytes at a time.

        Each block comes both joined (for C-level searches) and split.
        """
        handle = self.handle
        handle.seek(start)
        remaining = end - start
        carry = b""
        while remaining > 0:
            chunk = handle.read(min(_BLOCK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            data = carry + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            block = data[:cut]
            yield block, block.split(b"\n")
        if carry:
            yield carry, [carry]

    def _hash_events(
        self, header: ArchiveHeader, start: int, end: int, targets: set[int]
    ) -> dict[int, bytes]:
        frontier = Frontier()
        roots: dict[int, bytes] = {}
        if 0 in targets:
            roots[0] = frontier.root()
        pending = sorted(t for t in targets if t > 0)
        owner = b'"practice_id":"' + header.practice_id.encode("utf-8") + b'"'
        sha = hashlib.sha256
        index = 0

        for block, lines in self._blocks(start, end):
            count = len(lines)

            # Cheap whole-block checks; on any doubt, walk the block line by line
            # to name the exact event.
            found = _INDEX.findall(block)
            expected = [b"%d" % i for i in range(index, index + count)]
            if found != expected or block.count(owner) != count:
                self._diagnose(lines, index, header)

            if _ARCHIVED_PREFIX in block or _V3_SUFFIX in block:
                leaves = [self._leaf(line, index + n) for n, line in enumerate(lines)]
            else:
                leaves = [sha(b"\x00" + line).digest() for line in lines]
            offset = 0
            while pending and pending[0] <= index + count:
                cut = pending.pop(0) - index
                frontier.extend(leaves[offset:cut])
                offset = cut
                roots[frontier.size] = frontier.root()
            frontier.extend(leaves[offset:])
            index += count
            self.event_count = index
        return roots

    def _leaf(self, line: bytes, index: int) -> bytes:
        if line.endswith(_V3_SUFFIX):
            try:
                data = leaf_input(line)
            except MalformedEvent as exc:
                raise _Rejected("bad_event", f"event {index}: {exc}", index) from exc
            return hashlib.sha256(b"\x00" + data).digest()
        if not line.startswith(_ARCHIVED_PREFIX):
            return hashlib.sha256(b"\x00" + line).digest()
        # The block checks already matched its index and practice; the whole
        # line must be the one spelling of an archived leaf.
        if _ARCHIVED.fullmatch(line) is None:
            raise _Rejected("bad_event", f"archived event {index} is malformed", index)
        self.archived += 1
        return base64.b64decode(
            line[len(_ARCHIVED_PREFIX) : len(_ARCHIVED_PREFIX) + 44]
        )

    def _diagnose(self, lines: list[bytes], first: int, header: ArchiveHeader) -> None:
        for offset, line in enumerate(lines):
            index = first + offset
            if line.startswith((_CHECKPOINT_PREFIX, _END_PREFIX)):
                raise _Rejected(
                    "bad_event", f"a checkpoint or footer line sits at event {index}"
                )
            match = _INDEX.search(line)
            if match is None:
                try:
                    decode_event(line)
                except MalformedEvent as exc:
                    raise _Rejected(
                        "bad_event", f"event {index}: {exc}", index
                    ) from exc
                raise _Rejected("bad_event", f"event {index} has no index", index)
            claimed = int(match.group(1))
            if match.group(1) != b"%d" % claimed:
                raise _Rejected(
                    "bad_event", f"event {index}: index not canonical", index
                )
            if claimed > index:
                raise _Rejected(
                    "index_gap",
                    f"events {index}..{claimed - 1} are missing",
                    index,
                )
            if claimed < index:
                raise _Rejected(
                    "index_gap",
                    f"event {claimed} appears again, or out of order, at "
                    f"position {index}",
                    index,
                )
            owner = b'"practice_id":"' + header.practice_id.encode("utf-8") + b'"'
            if line.count(owner) != 1:
                try:
                    decode_event(line)
                except MalformedEvent as exc:
                    raise _Rejected(
                        "bad_event", f"event {index}: {exc}", index
                    ) from exc
                raise _Rejected(
                    "wrong_practice",
                    f"event {index} belongs to another practice",
                    index,
                )
        raise _Rejected("bad_event", f"events from {first} are malformed", first)

    def _locate(self, header_end: int, start: int, stop: int) -> tuple[int, str]:
        """Name the first event in [start, stop) that fails a strict decode."""
        index = 0
        for _, lines in self._blocks(header_end, self.tail_start):
            for line in lines:
                if start <= index < stop and not line.startswith(_ARCHIVED_PREFIX):
                    try:
                        decode_event(line)
                    except MalformedEvent as exc:
                        return index, f"event {index} is damaged ({exc})"
                index += 1
                if index >= stop:
                    break
            if index >= stop:
                break
        return start, (
            "every event in that range is well formed, so at least one was "
            "altered after sealing; the signed root cannot say which"
        )
