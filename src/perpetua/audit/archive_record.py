"""The signed record that one month of a practice's log was archived, and as what.

This module guards the one exception to "every sealed index has its event": a
month moved out of the database after seven years. The record names the log,
the month's range, how many events left and the SHA-256 of the archive file
they went into, and is signed with the practice's audit key, so someone with
the database alone cannot pass a deleted event off as archived.
"""

from __future__ import annotations

from datetime import datetime

from perpetua.audit.canonical import format_time
from perpetua.audit.checkpoint import NoteError, NoteVerifier, open_note

__all__ = ["archive_record_ok", "archive_record_text"]

_TITLE = "perpetua audit archive v1"


def archive_record_text(
    origin: str, range_from: datetime, range_to: datetime, events: int, digest: bytes
) -> str:
    """The note text that is signed when a month is archived."""
    return (
        f"{_TITLE}\n{origin}\n{format_time(range_from)}\n"
        f"{format_time(range_to)}\n{events}\n{digest.hex()}\n"
    )


def archive_record_ok(
    note: str,
    verifier: NoteVerifier,
    origin: str,
    range_from: datetime,
    range_to: datetime,
    events: int,
    digest: bytes,
) -> bool:
    """True when ``note`` is a valid signature over exactly these facts."""
    try:
        opened = open_note(note, [verifier])
    except NoteError:
        return False
    return opened.text == archive_record_text(
        origin, range_from, range_to, events, digest
    )
